//! `replvault run`: the daemon (see [`crate::daemon`]).

use std::process::ExitCode;

use crate::cli::RunArgs;
use crate::cmd::backup::shutdown_signal;
use crate::cmd::common::{load_backup_key, open_vault};
use crate::daemon::{self, Schedule};

/// Runs `replvault run` until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let schedule = Schedule::new(args.every, args.cron.as_deref())?;
    let key = load_backup_key(&args.backup.key, &args.backup.write)?;
    let vault = open_vault(&args.backup.vault).await?;
    daemon::run(args, vault, key, schedule, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
