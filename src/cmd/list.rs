//! `replvault list`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::ListArgs;

/// Runs `replvault list`.
pub async fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault list` is not implemented yet")
}
