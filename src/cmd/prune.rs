//! `replvault prune`: applies a retention policy to a vault and prints what
//! it keeps, deletes and why.

use std::process::ExitCode;

use chrono::Utc;

use crate::cmd::common::open_existing_vault;
use crate::cmd::flags::PruneArgs;
use crate::pitr::prune::prune_vault;
use crate::vault::retention::Report;

/// Runs `replvault prune`.
pub async fn run(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let policy = args.retention.policy();
    if policy.is_empty() && args.retention.keep_pitr.is_none() {
        anyhow::bail!(
            "no retention rule: pass at least one of --keep-last, --keep-within, --keep-daily, --keep-weekly, --keep-monthly, --keep-pitr"
        );
    }
    let vault = open_existing_vault(&args.vault).await?;
    let (report, archive) = prune_vault(
        &vault,
        &policy,
        args.retention.keep_pitr,
        args.retention.incomplete_grace,
        args.dry_run,
        Utc::now(),
    )
    .await?;
    print(&report);
    let mut failed = report.failed.clone();
    if let Some(a) = archive {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        outln!(
            "stream archive: {verb} {} segment(s) and {} timeline(s){}",
            a.segments,
            a.timelines.len(),
            if a.timelines.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.timelines.join(", "))
            }
        );
        failed.extend(a.failed);
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "{} deletion(s) failed: {}",
            failed.len(),
            failed
                .iter()
                .map(|(what, e)| format!("{what}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

fn print(r: &Report) {
    let verb = if r.dry_run { "would delete" } else { "delete" };
    for d in &r.decisions {
        if d.kept() {
            let why: Vec<String> = d.keep.iter().map(ToString::to_string).collect();
            outln!("keep   {}  ({})", d.id, why.join(", "));
        } else {
            outln!("{verb} {}  (outside the policy)", d.id);
        }
    }
    for (id, age) in &r.leftovers {
        outln!("{verb} {id}  (incomplete: no manifest, {age} old)");
    }
    for key in &r.aborted_uploads {
        let v = if r.dry_run { "would abort" } else { "abort" };
        outln!("{v} pending upload of {key}");
    }
    let kept = r.decisions.iter().filter(|d| d.kept()).count();
    outln!(
        "{}: kept {kept}, {} {} backup(s) and {} incomplete leftover(s){}",
        if r.dry_run { "dry run" } else { "pruned" },
        if r.dry_run { "would delete" } else { "deleted" },
        r.deleted().count(),
        r.leftovers.len(),
        if r.aborted_uploads.is_empty() {
            String::new()
        } else {
            format!(", aborted {} pending upload(s)", r.aborted_uploads.len())
        }
    );
}
