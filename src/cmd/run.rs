//! `replvault run`: the daemon (see [`crate::daemon`]).

use std::process::ExitCode;

use crate::cmd::backup::shutdown_signal;
use crate::cmd::common::{load_backup_key, open_vault};
use crate::cmd::flags::RunArgs;
use crate::daemon;

/// Runs `replvault run` until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let key = load_backup_key(&args.backup.key, &args.backup.write)?;
    let vault = open_vault(&args.backup.vault).await?;
    daemon::run(options, vault, key, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
