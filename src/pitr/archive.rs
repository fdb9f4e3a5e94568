//! The stream archive as stored: timelines, their segments, and the windows
//! of time they make restorable with the base backups beside them
//! (`docs/FORMAT.md`, "The stream archive").

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::segment::SegmentKey;
use crate::vault::{Manifest, Vault, VaultError};

/// Current timeline format.
pub const FORMAT: u32 = 1;
/// Largest `timeline.json` a reader takes (real ones are under 1 KiB).
const MAX_TIMELINE_JSON: usize = 64 * 1024;

/// The server a timeline archives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineSource {
    /// `redis://host:port` without user or password.
    pub address: String,
    /// `redis` or `valkey`, if known.
    pub server: Option<String>,
    /// Server version, if known.
    pub version: Option<String>,
}

/// `pitr/<id>/timeline.json`: where a timeline starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineInfo {
    /// Timeline format.
    pub format: u32,
    /// The timeline's id (the form of a backup id).
    pub id: String,
    /// When the full resync that starts it was answered.
    pub started_at: DateTime<Utc>,
    /// Replication id of that full resync.
    pub replid: String,
    /// Its offset: the base snapshot holds the stream up to here.
    pub start_offset: u64,
    /// The server.
    pub source: TimelineSource,
    /// `first` or `full resync`.
    pub reason: String,
    /// The timeline this one follows after a gap.
    pub previous: Option<String>,
    /// The cluster shard whose stream this is (its first slot at the
    /// time), where one archiver per shard shares the vault; absent for
    /// a standalone server and in vaults older than cluster archiving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u16>,
}

impl TimelineInfo {
    /// Object key of a timeline's `timeline.json`.
    pub fn object(id: &str) -> String {
        format!("pitr/{id}/timeline.json")
    }
}

/// Object key of the empty marker that records a replication id change
/// at `offset` (the last byte sent under the old id).
pub fn replid_object(timeline: &str, offset: u64, replid: &str) -> String {
    format!("pitr/{timeline}/replid/{offset:020}-{replid}")
}

/// A timeline and the segments stored for it.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Its `timeline.json`.
    pub info: TimelineInfo,
    /// Its segments in offset order, from the first one stored (pruning
    /// removes the oldest) up to the first hole (the archiver cannot write
    /// one; one made by hand ends what is usable).
    pub segments: Vec<SegmentKey>,
    /// Segments stored past a hole, which no restore can reach.
    pub unreachable: usize,
    /// Replication ids the primary switched to within the timeline (a
    /// failover keeps the offsets and changes the id), with the offset
    /// from which each applies.
    pub replids: Vec<(u64, String)>,
}

impl Timeline {
    /// Offset from which the archive holds the stream.
    pub fn start_offset(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.info.start_offset, |s| s.start)
    }

    /// Offset of the last archived byte.
    pub fn end_offset(&self) -> u64 {
        self.segments
            .last()
            .map_or(self.info.start_offset, |s| s.end)
    }

    /// The time by which the stream up to `offset` had arrived, at most: the
    /// timeline's start for its start offset, else the last arrival time of
    /// the segment that holds the byte at `offset` (`None` when the archive
    /// does not reach it yet).
    pub fn time_of_offset(&self, offset: u64) -> Option<DateTime<Utc>> {
        if offset == self.info.start_offset {
            return Some(self.info.started_at);
        }
        if self.segments.first().is_some_and(|s| s.start == offset) {
            // What came before was pruned; nothing after arrived earlier.
            return self.segments.first().map(|s| ms_time(s.first_ms));
        }
        self.segments
            .iter()
            .find(|s| s.start < offset && offset <= s.end)
            .map(|s| ms_time(s.last_ms))
    }

    /// The newest arrival time archived.
    pub fn last_time(&self) -> Option<DateTime<Utc>> {
        self.segments.last().map(|s| ms_time(s.last_ms))
    }

    /// Whether `m` is a base of this timeline: a snapshot of the same
    /// replication history at an offset the archive reaches.
    pub fn is_base(&self, m: &Manifest) -> bool {
        let (Some(replid), Some(offset)) = (&m.source.replid, m.source.offset) else {
            return false;
        };
        let Ok(offset) = u64::try_from(offset) else {
            return false;
        };
        m.source.point_in_time
            && (self.info.replid == *replid || self.replids.iter().any(|(_, r)| r == replid))
            && offset >= self.start_offset()
            && offset <= self.end_offset()
    }
}

/// A span of time that `restore --at` can rebuild.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The timeline.
    pub timeline: String,
    /// The earliest restorable time (the oldest base's).
    pub from: DateTime<Utc>,
    /// The newest (the last archived command's).
    pub to: DateTime<Utc>,
    /// The cluster shard (its first slot), for a cluster's archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u16>,
}

/// Every timeline in a vault.
#[derive(Clone, Debug, Default)]
pub struct Archive {
    /// Oldest first.
    pub timelines: Vec<Timeline>,
}

/// The backups a timeline can replay from: each standalone backup, and
/// each shard of a cluster backup (as its own manifest, with the cluster's
/// id), since every shard's stream is archived on its own.
pub fn bases(backups: &[Manifest]) -> Vec<Manifest> {
    let mut out = Vec::with_capacity(backups.len());
    for m in backups {
        if m.cluster.is_some() {
            out.extend((0..m.shard_count()).filter_map(|i| m.shard(i)));
        } else {
            out.push(m.clone());
        }
    }
    out
}

/// Unix milliseconds as a time (saturating at the far future).
pub fn ms_time(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Archive {
    /// Reads the timelines and segment keys under `pitr/`.
    pub async fn load(vault: &Vault) -> Result<Archive, VaultError> {
        let mut keys: BTreeMap<String, Vec<SegmentKey>> = BTreeMap::new();
        let mut replids: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        let mut infos: BTreeMap<String, ()> = BTreeMap::new();
        for o in vault.store().list("pitr/").await? {
            let mut parts = o.key.splitn(4, '/');
            let (Some("pitr"), Some(id), Some(rest)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            match (rest, parts.next()) {
                ("timeline.json", None) => {
                    infos.insert(id.to_string(), ());
                }
                ("seg", Some(name)) => {
                    if let Some(k) = SegmentKey::parse(name) {
                        keys.entry(id.to_string()).or_default().push(k);
                    }
                }
                ("replid", Some(name)) => {
                    if let Some((o, r)) = name.split_once('-')
                        && let Ok(o) = o.parse()
                    {
                        replids
                            .entry(id.to_string())
                            .or_default()
                            .push((o, r.to_string()));
                    }
                }
                _ => {}
            }
        }
        let mut timelines = Vec::new();
        for id in infos.keys() {
            let info = match read_info(vault, id).await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(timeline = %id, error = %e, "skipping a timeline whose timeline.json cannot be read");
                    continue;
                }
            };
            let mut segs = keys.remove(id).unwrap_or_default();
            segs.sort();
            // Pruning removes segments from the front: the usable run starts
            // at the first one left.
            let mut next = segs.first().map_or(info.start_offset, |s| s.start);
            let reachable = segs
                .iter()
                .take_while(|s| {
                    let ok = s.start == next;
                    next = s.end;
                    ok
                })
                .count();
            let unreachable = segs.len() - reachable;
            if unreachable > 0 {
                tracing::warn!(timeline = %id, unreachable, "segments past a hole in the archive cannot be restored");
            }
            segs.truncate(reachable);
            let mut switched = replids.remove(id).unwrap_or_default();
            switched.sort();
            timelines.push(Timeline {
                info,
                segments: segs,
                unreachable,
                replids: switched,
            });
        }
        timelines.sort_by_key(|t| t.info.started_at);
        Ok(Archive { timelines })
    }

    /// The restorable windows, oldest first: per timeline, from its oldest
    /// base's time to its newest archived command.
    pub fn windows(&self, backups: &[Manifest]) -> Vec<Window> {
        let backups = &bases(backups);
        let mut out = Vec::new();
        for t in &self.timelines {
            let from = backups
                .iter()
                .filter(|m| t.is_base(m))
                .filter_map(|m| t.time_of_offset(m.source.offset? as u64))
                .min();
            let to = t.last_time();
            if let (Some(from), Some(to)) = (from, to.or(from))
                && from <= to
            {
                out.push(Window {
                    timeline: t.info.id.clone(),
                    from,
                    to,
                    shard: t.info.shard,
                });
            }
        }
        out
    }
}

async fn read_info(vault: &Vault, id: &str) -> Result<TimelineInfo, VaultError> {
    let bad = |reason: String| VaultError::BadManifest {
        id: format!("timeline {id}"),
        reason,
    };
    let bytes = vault
        .store()
        .get(&TimelineInfo::object(id), MAX_TIMELINE_JSON as u64)
        .await?;
    if bytes.len() > MAX_TIMELINE_JSON {
        return Err(bad(format!("{} bytes is too large", bytes.len())));
    }
    let info: TimelineInfo = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if info.format > FORMAT {
        return Err(bad(format!(
            "format {} is newer than this replvault: upgrade",
            info.format
        )));
    }
    if info.id != id {
        return Err(bad(format!("it names timeline {}", info.id)));
    }
    Ok(info)
}

/// Writes a timeline's `timeline.json` (before its first segment).
pub async fn write_info(vault: &Vault, info: &TimelineInfo) -> Result<(), VaultError> {
    let json = serde_json::to_vec_pretty(info).map_err(|e| VaultError::Pipeline(e.to_string()))?;
    Ok(vault
        .store()
        .put(&TimelineInfo::object(&info.id), Bytes::from(json))
        .await?)
}

/// A span of time no point of which can be restored, between windows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The end of the window before.
    pub from: DateTime<Utc>,
    /// The start of the window after.
    pub to: DateTime<Utc>,
    /// The cluster shard (its first slot), for a cluster's archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u16>,
}

/// The gaps between consecutive windows of the same stream (each shard's
/// timelines follow one another; different shards' run side by side).
pub fn gaps(windows: &[Window]) -> Vec<Gap> {
    let mut shards: Vec<Option<u16>> = windows.iter().map(|w| w.shard).collect();
    shards.sort_unstable();
    shards.dedup();
    let mut out: Vec<Gap> = Vec::new();
    for shard in shards {
        let mine: Vec<&Window> = windows.iter().filter(|w| w.shard == shard).collect();
        out.extend(
            mine.windows(2)
                .filter(|w| w[0].to < w[1].from)
                .map(|w| Gap {
                    from: w[0].to,
                    to: w[1].from,
                    shard,
                }),
        );
    }
    out.sort_by_key(|g| (g.from, g.shard));
    out
}
