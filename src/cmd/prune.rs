//! `replvault prune`.
// SKELETON: to be implemented.

use std::process::ExitCode;

use crate::cli::PruneArgs;

/// Runs `replvault prune`.
pub async fn run(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("`replvault prune` is not implemented yet")
}
