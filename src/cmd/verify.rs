//! `replvault verify`: decrypt, decompress, CRC + structure check, SHA-256
//! against the manifest, without writing anything.

use std::process::ExitCode;

use crate::cmd::common::{load_key, open_existing_vault, size};
use crate::cmd::flags::VerifyArgs;
use crate::pitr::Archive;
use crate::pitr::verify::verify_timeline;
use crate::restore;

/// Runs `replvault verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let vault = open_existing_vault(&args.vault).await?;
    let manifests = if args.all {
        vault.list().await?
    } else {
        vec![vault.resolve(&args.backup).await?]
    };
    // `--all` checks the stream archive too.
    let archive = if args.all {
        Archive::load(&vault).await?
    } else {
        Archive::default()
    };
    if manifests.is_empty() && archive.timelines.is_empty() {
        outln!("no backups in {} to verify", vault.store().describe());
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    let mut total = manifests.len();
    for m in &manifests {
        let key = load_key(&args.key)?;
        if m.cluster.is_some() {
            let mut bad = None;
            let (mut bytes, mut keys) = (0, 0);
            for i in 0..m.shard_count() {
                let Some(shard) = m.shard(i) else { continue };
                match restore::verify(&vault, &shard, load_key(&args.key)?).await {
                    Ok(r) => {
                        bytes += r.rdb_bytes;
                        keys += r.summary.total_keys();
                    }
                    Err(e) => {
                        bad = Some(format!("shard {i}: {e}"));
                        break;
                    }
                }
            }
            match bad {
                None => outln!(
                    "OK      {}  cluster of {} shards, {} RDB, {keys} keys, every shard's CRC, structure and SHA-256 valid",
                    m.id,
                    m.shard_count(),
                    size(bytes)
                ),
                Some(e) => {
                    failed += 1;
                    outln!("FAILED  {}  {e}", m.id);
                }
            }
            continue;
        }
        match restore::verify(&vault, m, key).await {
            Ok(r) => outln!(
                "OK      {}  {} RDB, {} keys, CRC and structure valid, SHA-256 matches",
                m.id,
                size(r.rdb_bytes),
                r.summary.total_keys()
            ),
            Err(e) => {
                failed += 1;
                outln!("FAILED  {}  {e}", m.id);
            }
        }
    }
    if !archive.timelines.is_empty() {
        let key = load_key(&args.key)?;
        for t in &archive.timelines {
            total += 1;
            match verify_timeline(&vault, t, key.as_ref()).await {
                Ok(c) => outln!(
                    "OK      timeline {}  {} segment(s), {} commands, {} of stream, offsets contiguous",
                    t.info.id,
                    c.segments,
                    c.commands,
                    size(c.bytes)
                ),
                Err(e) => {
                    failed += 1;
                    outln!("FAILED  timeline {}  {e}", t.info.id);
                }
            }
        }
    }
    if failed > 0 {
        let what = if archive.timelines.is_empty() {
            "backups"
        } else {
            "backups and timelines"
        };
        anyhow::bail!("{failed} of {total} {what} failed verification");
    }
    Ok(ExitCode::SUCCESS)
}
