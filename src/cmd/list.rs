//! `replvault list`: complete backups, oldest first (newest last).

use std::process::ExitCode;

use crate::cmd::common::{open_existing_vault, size};
use crate::cmd::flags::ListArgs;

/// Runs `replvault list`.
pub async fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    let vault = open_existing_vault(&args.vault).await?;
    let backups = vault.list().await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&backups)?);
        return Ok(ExitCode::SUCCESS);
    }
    if backups.is_empty() {
        outln!("no backups in {} yet", vault.store().describe());
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<24} {:<20} {:<28} {:>10} {:>10} {:>10} {:>8}",
        "ID",
        "FINISHED (UTC)",
        "SOURCE",
        "RDB",
        "STORED",
        "KEYS",
        "TIME"
    );
    for m in backups {
        outln!(
            "{:<24} {:<20} {:<28} {:>10} {:>10} {:>10} {:>7.1}s",
            m.id,
            m.finished_at.format("%Y-%m-%d %H:%M:%S"),
            format!("{} ({})", m.source.address, m.source.mode),
            size(m.rdb.bytes),
            size(m.stored.bytes),
            m.summary.total_keys(),
            m.wall_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}
