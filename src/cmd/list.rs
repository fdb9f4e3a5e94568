//! `replvault list`: complete backups, oldest first (newest last).

use std::process::ExitCode;

use crate::cmd::common::{open_existing_vault, size};
use crate::cmd::flags::ListArgs;
use crate::pitr::archive::gaps;
use crate::pitr::{Archive, Window};

/// Runs `replvault list`.
pub async fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    let vault = open_existing_vault(&args.vault).await?;
    let backups = vault.list().await?;
    let archive = Archive::load(&vault).await?;
    let windows = archive.windows(&backups);
    if args.json {
        // A vault without a stream archive keeps the plain array.
        if archive.timelines.is_empty() {
            outln!("{}", serde_json::to_string_pretty(&backups)?);
        } else {
            let timelines: Vec<serde_json::Value> = archive
                .timelines
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.info.id,
                        "started_at": t.info.started_at,
                        "reason": t.info.reason,
                        "previous": t.info.previous,
                        "replid": t.info.replid,
                        "start_offset": t.start_offset(),
                        "end_offset": t.end_offset(),
                        "segments": t.segments.len(),
                        "unreachable_segments": t.unreachable,
                        "last_arrival": t.last_time(),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "backups": backups,
                "pitr": {
                    "windows": windows,
                    "gaps": gaps(&windows),
                    "timelines": timelines,
                },
            });
            outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if backups.is_empty() && archive.timelines.is_empty() {
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
    if !archive.timelines.is_empty() {
        print_pitr(&archive, &windows);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_pitr(archive: &Archive, windows: &[Window]) {
    let t =
        |d: &chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    outln!();
    outln!("Point-in-time recovery (`restore --at TIME`):");
    if windows.is_empty() {
        outln!("  nothing restorable yet: no base backup of a timeline");
    }
    let mut prev: Option<&Window> = None;
    for w in windows {
        if let Some(p) = prev
            && p.to < w.from
        {
            outln!(
                "  gap      {} to {}  (the primary could not continue the stream)",
                t(&p.to),
                t(&w.from)
            );
        }
        outln!(
            "  window   {} to {}  timeline {}",
            t(&w.from),
            t(&w.to),
            w.timeline
        );
        prev = Some(w);
    }
    for tl in &archive.timelines {
        outln!(
            "  timeline {}  {} segment(s), offsets {} to {}{}",
            tl.info.id,
            tl.segments.len(),
            tl.start_offset(),
            tl.end_offset(),
            if tl.unreachable > 0 {
                format!(", {} past a hole (unusable)", tl.unreachable)
            } else {
                String::new()
            }
        );
    }
}
