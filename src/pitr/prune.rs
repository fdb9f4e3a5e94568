//! Pruning the stream archive: which bases a `--keep-pitr` window needs,
//! and deleting the segments and timelines no kept base can use.
//!
//! A restore to a time needs a base at or before it and every segment from
//! the base's offset on. So, for a window of `--keep-pitr D` ending now,
//! each timeline that reaches into it must keep the newest base at or
//! before the window's start (or its oldest base, when none is that old);
//! and once retention has run, segments that end at or before the oldest
//! remaining base of their timeline serve no restore and go, as do whole
//! timelines with no base left once idle past the grace period (except the
//! newest, which the archiver may still be writing and a base will join).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::archive::{Archive, TimelineInfo, replid_object};
use crate::vault::{Manifest, Vault, VaultError};

/// Bases to keep so that every time from `cutoff` on stays restorable.
pub fn needed_bases(
    archive: &Archive,
    backups: &[Manifest],
    cutoff: DateTime<Utc>,
) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    // A cluster backup's shards, each under the cluster backup's id.
    let backups = &super::archive::bases(backups);
    for t in &archive.timelines {
        if t.last_time().is_none_or(|end| end < cutoff) {
            continue;
        }
        let mut bases: Vec<(DateTime<Utc>, &Manifest)> = backups
            .iter()
            .filter(|m| t.is_base(m))
            .filter_map(|m| Some((t.time_of_offset(u64::try_from(m.source.offset?).ok()?)?, m)))
            .collect();
        bases.sort_by_key(|(time, m)| (*time, m.started_at));
        let chosen = bases
            .iter()
            .rev()
            .find(|(time, _)| *time <= cutoff)
            .or(bases.first());
        if let Some((_, m)) = chosen {
            keep.insert(m.id.clone());
        }
    }
    keep
}

/// What [`prune_archive`] did (or, dry, would do).
#[derive(Debug, Default)]
pub struct ArchiveReport {
    /// Segments deleted.
    pub segments: u64,
    /// Timelines deleted whole.
    pub timelines: Vec<String>,
    /// Deletions that failed: (what, error).
    pub failed: Vec<(String, String)>,
}

/// Deletes what no base in `backups` (the backups left after retention)
/// can restore from. A timeline without a base is deleted whole only once
/// nothing reached it for `grace` (a fresh one waits for its first base;
/// a cluster has one per shard). With `dry_run`, counts instead.
pub async fn prune_archive(
    vault: &Vault,
    archive: &Archive,
    backups: &[Manifest],
    grace: std::time::Duration,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ArchiveReport, VaultError> {
    let backups = &super::archive::bases(backups);
    let mut report = ArchiveReport::default();
    let newest = archive.timelines.last().map(|t| t.info.id.clone());
    for t in &archive.timelines {
        let oldest_base = backups
            .iter()
            .filter(|m| t.is_base(m))
            .filter_map(|m| u64::try_from(m.source.offset?).ok())
            .min();
        let idle_since = t.last_time().unwrap_or(t.info.started_at);
        let stale = now.signed_duration_since(idle_since)
            > chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let whole = oldest_base.is_none() && stale && newest.as_deref() != Some(t.info.id.as_str());
        let mut doomed: Vec<String> = t
            .segments
            .iter()
            .filter(|s| whole || oldest_base.is_some_and(|o| s.end <= o))
            .map(|s| s.object(&t.info.id))
            .collect();
        if whole {
            // Markers, stray objects, and timeline.json last: a timeline
            // without its json is ignored, never half-read.
            for o in vault.store().list(&format!("pitr/{}/", t.info.id)).await? {
                if !doomed.contains(&o.key) && o.key != TimelineInfo::object(&t.info.id) {
                    doomed.push(o.key);
                }
            }
            for (offset, replid) in &t.replids {
                let k = replid_object(&t.info.id, *offset, replid);
                if !doomed.contains(&k) {
                    doomed.push(k);
                }
            }
            doomed.push(TimelineInfo::object(&t.info.id));
        }
        let segs = doomed.iter().filter(|k| k.contains("/seg/")).count() as u64;
        if !dry_run {
            // Oldest first, so a prune cut short leaves a contiguous tail.
            for k in &doomed {
                if let Err(e) = vault.store().delete(k).await {
                    report.failed.push((k.clone(), e.to_string()));
                    break;
                }
            }
        }
        report.segments += segs;
        if whole {
            report.timelines.push(t.info.id.clone());
        }
    }
    Ok(report)
}

/// Retention and archive pruning together, as `prune` and the daemon run
/// them: the bases `keep_pitr` needs are protected from retention, then
/// the archive loses what the remaining bases cannot use.
pub async fn prune_vault(
    vault: &Vault,
    policy: &crate::vault::RetentionPolicy,
    keep_pitr: Option<std::time::Duration>,
    grace: std::time::Duration,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<(crate::vault::retention::Report, Option<ArchiveReport>), VaultError> {
    let archive = Archive::load(vault).await?;
    let backups = vault.list().await?;
    let protect = match keep_pitr {
        Some(d) => {
            let cutoff = now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            needed_bases(&archive, &backups, cutoff)
        }
        None => BTreeSet::new(),
    };
    let report =
        crate::vault::retention::prune(vault, policy, &protect, grace, dry_run, now).await?;
    if archive.timelines.is_empty() {
        return Ok((report, None));
    }
    let deleted: BTreeSet<&str> = report.deleted().map(|d| d.id.as_str()).collect();
    let kept: Vec<Manifest> = backups
        .into_iter()
        .filter(|m| !deleted.contains(m.id.as_str()))
        .collect();
    let archived = prune_archive(vault, &archive, &kept, grace, now, dry_run).await?;
    Ok((report, Some(archived)))
}
