//! `replvault restore`: a backup back as a verified dump.rdb, then the
//! steps of a stop-replace-start cycle.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::common::{load_key, open_existing_vault, size};
use crate::cmd::flags::{At, AtFormat, RestoreArgs};
use crate::pitr::restore_at::{self, AtOptions, Format};
use crate::restore;

/// Runs `replvault restore`.
pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    if let Some(at) = args.at {
        return restore_at(&args, at).await;
    }
    // Before the vault is opened: no listing or download for a target
    // that would be refused.
    let vault = open_existing_vault(&args.vault).await?;
    let m = vault.resolve(&args.backup).await?;
    let key = load_key(&args.key)?;
    if let Some(n) = args.shards {
        return restore_split(&args, &vault, &m, key, usize::from(n)).await;
    }
    if m.cluster.is_some() {
        return restore_cluster(&args, &vault, &m, key).await;
    }
    restore::check_target(&args.out, args.force)?;
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

/// `restore --at`.
async fn restore_at(args: &RestoreArgs, at: At) -> anyhow::Result<ExitCode> {
    if args.backup != "latest" {
        anyhow::bail!(
            "give either a backup id ({}) or --at, not both",
            args.backup
        );
    }
    let vault = open_existing_vault(&args.vault).await?;
    let key = load_key(&args.key)?;
    let format = match args.format {
        AtFormat::Rdb => Format::Rdb,
        AtFormat::AofDir => Format::AofDir,
        AtFormat::Aof => Format::Aof,
    };
    let time = match at {
        At::Latest => None,
        At::Time(t) => Some(t),
    };
    let opts = AtOptions {
        format,
        server_bin: args.server_bin.clone(),
        force: args.force,
        direct_io: !args.no_direct_io,
    };
    if restore_at::is_cluster(&vault.list().await?) {
        let reports = restore_at::restore_cluster_at(&vault, key, time, &args.out, &opts)
            .await
            .with_context(|| {
                format!(
                    "restore of the cluster to a time failed, nothing was written to {}",
                    args.out.display()
                )
            })?;
        outln!(
            "restored {} shards to {} (each cut by its own archive's times; slots.json says which slots each holds):",
            reports.len(),
            args.out.display()
        );
        for (name, r) in &reports {
            outln!(
                "  {name}: as of {}, base backup {} + {} commands{}",
                r.plan
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                r.plan.base.id,
                r.stats.commands,
                r.summary
                    .as_ref()
                    .map(|s| format!(", {} keys, verified", s.total_keys()))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = restore_at::restore_at(&vault, key, time, &args.out, &opts)
        .await
        .with_context(|| {
            format!(
                "restore to a time failed, nothing was written to {}",
                args.out.display()
            )
        })?;
    let p = &report.plan;
    let s = &report.stats;
    let shown = |ms: Option<u64>| {
        ms.map(|ms| {
            crate::pitr::archive::ms_time(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|| "(none after the base)".into())
    };
    outln!(
        "restored the data as of {} to {}: base backup {} (offset {}) + {} commands from timeline {} (last at {})",
        p.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        args.out.display(),
        p.base.id,
        p.base_offset,
        s.commands,
        p.timeline,
        shown(s.last_ms),
    );
    if s.partial_transaction > 0 {
        outln!(
            "note: a transaction of {} commands was still open at that time and is left out",
            s.partial_transaction
        );
    }
    match format {
        Format::Rdb => {
            if let Some(sum) = &report.summary {
                outln!(
                    "RDB: {} keys, CRC-64 and structure verified",
                    sum.total_keys()
                );
            }
            outln!("Load it as any restored dump.rdb (see `replvault restore --help`).");
        }
        Format::AofDir => outln!(
            "Put the directory where `CONFIG GET appenddirname` points (under `dir`) and start Redis 7+ with `appendonly yes`."
        ),
        Format::Aof => outln!(
            "Put the file where `appendfilename` points and start Redis (4 to 6.2) with `appendonly yes`."
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A cluster backup: one verified RDB per shard in `--out DIR`, and
/// `DIR/slots.json` saying which slots and node each came from.
async fn restore_cluster(
    args: &RestoreArgs,
    vault: &crate::vault::Vault,
    m: &crate::vault::Manifest,
    key: Option<crate::crypto::MasterKey>,
) -> anyhow::Result<ExitCode> {
    let out = &args.out;
    if out.exists() && !args.force {
        anyhow::bail!(
            "{} already exists: a cluster backup restores into a new directory (one RDB per shard); pass --force to replace it",
            out.display()
        );
    }
    let tmp = temp_beside(out)?;
    let result = async {
        let mut files = Vec::new();
        for i in 0..m.shard_count() {
            let shard = m
                .shard(i)
                .ok_or_else(|| anyhow::anyhow!("shard {i} is missing from the manifest"))?;
            let file = format!("shard-{i}.rdb");
            let report = restore::restore(
                vault,
                &shard,
                key.clone(),
                &tmp.join(&file),
                restore::RestoreOptions {
                    force: false,
                    direct_io: !args.no_direct_io,
                },
            )
            .await
            .with_context(|| format!("shard {i}"))?;
            files.push((file, report));
        }
        let shards = m
            .cluster
            .as_ref()
            .map(|c| &c.shards[..])
            .unwrap_or_default();
        let slots: Vec<serde_json::Value> = shards
            .iter()
            .zip(&files)
            .map(|(s, (file, r))| {
                serde_json::json!({
                    "file": file,
                    "slots": s.slots,
                    "node": s.node,
                    "keys": r.summary.total_keys(),
                })
            })
            .collect();
        let json =
            serde_json::to_vec_pretty(&serde_json::json!({ "backup": m.id, "shards": slots }))?;
        std::fs::write(tmp.join("slots.json"), json)?;
        publish_dir(&tmp, out, args.force)?;
        anyhow::Ok(files)
    }
    .await;
    let files = match result {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.context(format!(
                "restore of cluster backup {} failed, nothing was written to {}",
                m.id,
                out.display()
            )));
        }
    };
    outln!(
        "restored cluster backup {} ({} shards, taken {}) to {}: every shard's CRC-64 and structure verified",
        m.id,
        files.len(),
        m.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
        out.display()
    );
    for (file, r) in &files {
        outln!(
            "  {file}: {} keys, {}",
            r.summary.total_keys(),
            size(r.rdb_bytes)
        );
    }
    outln!(
        "slots.json says which slots and node each file came from; load each into the node that owns those slots."
    );
    Ok(ExitCode::SUCCESS)
}

/// A temp directory beside `out` (its owner's only), for a restore that
/// writes several files and publishes them at once.
fn temp_beside(out: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("--out {} is not a path to create", out.display()))?;
    let mut r = [0u8; 6];
    crate::crypto::keys::random_bytes(&mut r)?;
    let tmp = parent.join(format!(".{name}.replvault-tmp-{}", hex::encode(r)));
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(tmp)
}

/// Renames the finished directory `tmp` to `out`, replacing what is
/// there with `force`.
fn publish_dir(tmp: &std::path::Path, out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if force && out.exists() {
        if out.is_dir() {
            std::fs::remove_dir_all(out)
        } else {
            std::fs::remove_file(out)
        }
        .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::rename(tmp, out).with_context(|| format!("cannot rename into place {}", out.display()))
}

/// `--shards N`: the backup's keys (every shard of a cluster backup, or
/// a standalone backup) re-split by hash slot into N RDB files. Each
/// input is restored (and verified) to a temp file, routed to the
/// outputs and removed before the next, so the disk holds the outputs
/// and one input at most.
async fn restore_split(
    args: &RestoreArgs,
    vault: &crate::vault::Vault,
    m: &crate::vault::Manifest,
    key: Option<crate::crypto::MasterKey>,
    n: usize,
) -> anyhow::Result<ExitCode> {
    use crate::restore::resplit::SplitWriter;
    let out = &args.out;
    if out.exists() && !args.force {
        anyhow::bail!(
            "{} already exists: pass --force to replace it",
            out.display()
        );
    }
    let inputs: Vec<crate::vault::Manifest> = if m.cluster.is_some() {
        (0..m.shard_count())
            .map(|i| {
                m.shard(i)
                    .ok_or_else(|| anyhow::anyhow!("shard {i} is missing from the manifest"))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        vec![m.clone()]
    };
    let tmp = temp_beside(out)?;
    let names: Vec<String> = if n == 1 {
        vec!["dump.rdb".into()]
    } else {
        (0..n).map(|i| format!("shard-{i}.rdb")).collect()
    };
    let result = async {
        let mut w = SplitWriter::create(names.iter().map(|f| tmp.join(f)).collect())?;
        for (i, part) in inputs.iter().enumerate() {
            let what = if inputs.len() > 1 {
                format!("shard {i}")
            } else {
                "the backup".to_string()
            };
            let input = tmp.join(format!(".input-{i}.rdb"));
            restore::restore(
                vault,
                part,
                key.clone(),
                &input,
                restore::RestoreOptions {
                    force: false,
                    direct_io: !args.no_direct_io,
                },
            )
            .await
            .with_context(|| format!("restoring {what}"))?;
            w = tokio::task::spawn_blocking(move || {
                let r = w.add_input(&input);
                let _ = std::fs::remove_file(&input);
                r.map(|()| w)
            })
            .await?
            .with_context(|| format!("re-splitting {what} by hash slot"))?;
        }
        let files = tokio::task::spawn_blocking(move || w.finish())
            .await?
            .context("ending the re-split files")?;
        if n == 1 {
            if args.force && out.is_dir() {
                anyhow::bail!(
                    "{} is a directory; --shards 1 writes one file",
                    out.display()
                );
            }
            std::fs::rename(&files[0].path, out)
                .with_context(|| format!("cannot rename into place {}", out.display()))?;
            let _ = std::fs::remove_dir(&tmp);
        } else {
            let shards: Vec<serde_json::Value> = files
                .iter()
                .zip(&names)
                .map(|(f, name)| {
                    let slots: Vec<(u16, u16)> = f
                        .slots
                        .ranges()
                        .into_iter()
                        .map(|r| (*r.start(), *r.end()))
                        .collect();
                    serde_json::json!({ "file": name, "slots": slots, "keys": f.keys })
                })
                .collect();
            let json = serde_json::to_vec_pretty(&serde_json::json!({
                "backup": m.id,
                "resplit_from_shards": inputs.len(),
                "shards": shards,
            }))?;
            std::fs::write(tmp.join("slots.json"), json)?;
            publish_dir(&tmp, out, args.force)?;
        }
        anyhow::Ok(files)
    }
    .await;
    let files = match result {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.context(format!(
                "restore of backup {} into {n} shard(s) failed, nothing was written to {}",
                m.id,
                out.display()
            )));
        }
    };
    let keys: u64 = files.iter().map(|f| f.keys).sum();
    outln!(
        "restored backup {} ({} keys from {} {}) re-split by hash slot into {n} file(s) at {}: each file's CRC-64, structure and slots verified",
        m.id,
        keys,
        inputs.len(),
        if m.cluster.is_some() {
            "shard(s)"
        } else {
            "standalone backup"
        },
        out.display()
    );
    if n > 1 {
        for (f, name) in files.iter().zip(&names) {
            let ranges: Vec<String> = f
                .slots
                .ranges()
                .into_iter()
                .map(|r| format!("{}-{}", r.start(), r.end()))
                .collect();
            outln!(
                "  {name}: slots {}, {} keys, {}",
                ranges.join(","),
                f.keys,
                size(f.bytes)
            );
        }
        outln!(
            "slots.json says which slots each file holds: load each into the primary that owns them (redis-cli --cluster create assigns these ranges in this order)."
        );
    }
    Ok(ExitCode::SUCCESS)
}
