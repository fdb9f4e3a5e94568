//! `replvault restore`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::RestoreArgs;

/// Runs `replvault restore`.
pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault restore` is not implemented yet")
}
