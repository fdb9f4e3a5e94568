//! `replvault verify`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::VerifyArgs;

/// Runs `replvault verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault verify` is not implemented yet")
}
