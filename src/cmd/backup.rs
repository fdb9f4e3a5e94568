//! `replvault backup`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::BackupArgs;

/// Runs `replvault backup`.
pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault backup` is not implemented yet")
}
