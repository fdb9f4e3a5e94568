//! `replvault run`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::RunArgs;

/// Runs `replvault run`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault run` is not implemented yet")
}
