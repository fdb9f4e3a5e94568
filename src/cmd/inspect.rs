//! `replvault inspect`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::InspectArgs;

/// Runs `replvault inspect`.
pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault inspect` is not implemented yet")
}
