//! `replvault inspect`: CRC + structural check and summary of a local RDB.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use replvault_protocol::rdb::{Checker, Checksum};

use crate::cmd::common::size;
use crate::cmd::flags::InspectArgs;

/// Runs `replvault inspect`.
pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.clone();
    let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let shown = path.display().to_string();
        let mut f = std::fs::File::open(&path).with_context(|| format!("cannot open {shown}"))?;
        let mut checker = Checker::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("cannot read {shown}"))?;
            if n == 0 {
                break;
            }
            checker.feed(&buf[..n]).with_context(|| shown.clone())?;
        }
        checker.finish().with_context(|| shown.clone())
    })
    .await??;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}: valid {} RDB version {}, {}",
        args.file.display(),
        summary.magic,
        summary.rdb_version,
        size(summary.payload_len)
    );
    match summary.checksum {
        Checksum::Verified { crc64 } => outln!("checksum: CRC-64 {crc64:016x} verified"),
        Checksum::Disabled => {
            outln!("checksum: disabled on the server (rdbchecksum no): structure checked only")
        }
        Checksum::Absent => outln!("checksum: none (RDB version before 5)"),
    }
    for (k, v) in &summary.aux {
        let shown = match k.as_str() {
            "ctime" => v
                .parse::<i64>()
                .ok()
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| format!("{v} ({})", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_else(|| v.clone()),
            "used-mem" => v.parse::<u64>().map(size).unwrap_or_else(|_| v.clone()),
            _ => v.clone(),
        };
        outln!("aux {k}: {shown}");
    }
    if summary.aux_omitted > 0 {
        outln!(
            "aux: {} more records of further fields, not kept",
            summary.aux_omitted
        );
    }
    outln!(
        "keys: {} ({} with expiry)",
        summary.total_keys(),
        summary.total_expires()
    );
    for (db, s) in &summary.databases {
        outln!("  db{db}: {} keys, {} expires", s.keys, s.expires);
    }
    for (t, n) in &summary.types {
        outln!("  {t}: {n}");
    }
    for (name, c) in &summary.modules {
        outln!("module {name}: values {}, aux records {}", c.values, c.aux);
    }
    if !summary.modules.is_empty() {
        outln!("  a server loads this file only with these modules loaded");
    }
    if !summary.functions.is_empty() {
        outln!("function libraries: {}", summary.functions.join(", "));
    }
    if summary.functions_omitted > 0 {
        outln!(
            "  and {} more libraries, not named",
            summary.functions_omitted
        );
    }
    Ok(ExitCode::SUCCESS)
}
