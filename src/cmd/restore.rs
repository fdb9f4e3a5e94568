//! `replvault restore`: a backup back as a verified dump.rdb, then the
//! steps of a stop-replace-start cycle.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::common::{load_key, open_existing_vault, size};
use crate::cmd::flags::RestoreArgs;
use crate::restore;

/// Runs `replvault restore`.
pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    // Before the vault is opened: no listing or download for a target
    // that would be refused.
    restore::check_target(&args.out, args.force)?;
    let vault = open_existing_vault(&args.vault).await?;
    let m = vault.resolve(&args.backup).await?;
    let key = load_key(&args.key)?;
    let report = restore::restore(
        &vault,
        &m,
        key,
        &args.out,
        restore::RestoreOptions {
            force: args.force,
            direct_io: !args.no_direct_io,
        },
    )
    .await
    .with_context(|| {
        format!(
            "restore of backup {} failed, nothing was written to {}",
            m.id,
            args.out.display()
        )
    })?;
    let out = args.out.display();
    outln!(
        "restored backup {} ({} from {}, taken {}) to {out}: {} keys, CRC-64 and structure verified",
        m.id,
        size(report.rdb_bytes),
        m.source.address,
        m.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.summary.total_keys()
    );
    if !m.source.point_in_time {
        outln!("note: this is a scan-mode backup, not a point-in-time snapshot");
    }
    outln!();
    outln!("Next steps to load it into Redis:");
    outln!("  1. Stop Redis (e.g. `redis-cli SHUTDOWN NOSAVE` or `systemctl stop redis-server`),");
    outln!("     NOSAVE so it does not overwrite the file on the way down.");
    outln!(
        "  2. Check `appendonly`: with `appendonly yes` Redis loads the AOF and IGNORES dump.rdb."
    );
    outln!(
        "     Either start once with `appendonly no`, then run `CONFIG SET appendonly yes` (Redis"
    );
    outln!("     rewrites the AOF from the loaded data), or move the appendonlydir aside first.");
    outln!(
        "  3. Put the file where `CONFIG GET dir` / `dbfilename` point (usually dump.rdb), e.g."
    );
    outln!("     `mv {out} /var/lib/redis/dump.rdb && chown redis:redis /var/lib/redis/dump.rdb`.");
    outln!(
        "     The file is mode 0600 (its owner only): Redis reads it once chown makes it the owner."
    );
    if !report.summary.modules.is_empty() {
        let names: Vec<&str> = report.summary.modules.keys().map(String::as_str).collect();
        outln!(
            "     The file holds data of module types {}: Redis refuses it unless the modules",
            names.join(", ")
        );
        outln!("     that define them are loaded (`loadmodule` in redis.conf).");
    }
    outln!("  4. Start Redis and compare `INFO keyspace` with what the backup holds:");
    for (db, s) in &report.summary.databases {
        outln!("       db{db}:keys={},expires={}", s.keys, s.expires);
    }
    if report.summary.databases.is_empty() {
        outln!("       (no keys)");
    }
    outln!("     Keys with an expiry that passed since the backup are dropped on load.");
    Ok(ExitCode::SUCCESS)
}
