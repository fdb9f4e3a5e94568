//! `replvault keygen`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::KeygenArgs;

/// Runs `replvault keygen`.
pub async fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault keygen` is not implemented yet")
}
