//! Choosing what to replay for a point in time: the base, the segments
//! after it, and the commands up to the time, as a server would apply them.
//!
//! Only commands that change data pass (keepalives, `REPLCONF` and
//! `PUBLISH` are dropped); a transaction passes whole or not at all; the
//! database selected before each command is tracked across segments; and
//! expiries the primary sent relative (Redis 6.2 and older send `EXPIRE`,
//! `SETEX`, `SET .. EX`) are made absolute at their arrival time, so a
//! replay later does not stretch them.

use chrono::{DateTime, Utc};
use replvault_protocol::repl_stream::{Kind, Splitter, command_args};
use replvault_protocol::resp::encode_command;

use super::archive::{Archive, Timeline, Window};
use super::fetch::Prefetch;
use super::segment::{Segment, SegmentKey};
use crate::crypto::MasterKey;
use crate::vault::{Manifest, Vault, VaultError};

/// Why a time cannot be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The vault has no stream archive.
    #[error(
        "the vault has no stream archive: `replvault run --pitr` writes one; restore a backup by id instead"
    )]
    NoArchive,
    /// The time is outside every restorable window.
    #[error("{at} is not restorable: {why}; restorable: {windows}")]
    NotRestorable {
        /// The time asked for.
        at: DateTime<Utc>,
        /// Where it falls.
        why: String,
        /// The windows, as text.
        windows: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A segment is unreadable.
    #[error(transparent)]
    Segment(#[from] super::segment::SegmentError),
    /// A segment's bytes are not a replication stream.
    #[error("segment {key}: {reason}")]
    Stream {
        /// Object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// The windows as one line of text.
pub fn describe(windows: &[Window]) -> String {
    if windows.is_empty() {
        return "none yet (no base backup of any timeline)".into();
    }
    windows
        .iter()
        .map(|w| {
            format!(
                "{} to {} (timeline {})",
                w.from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                w.to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                w.timeline
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What to replay for a time: a base and the segments after it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The time asked for (for `latest`, the last archived command's).
    pub at: DateTime<Utc>,
    /// The timeline.
    pub timeline: String,
    /// The base backup.
    pub base: Manifest,
    /// Its offset: commands after it are replayed.
    pub base_offset: u64,
    /// Segments that may hold commands to replay, in order.
    pub segments: Vec<SegmentKey>,
}

/// Picks the newest base at or before `at` (`None`: the latest time
/// archived) and the segments after it.
pub fn plan(
    archive: &Archive,
    backups: &[Manifest],
    at: Option<DateTime<Utc>>,
) -> Result<Plan, ReplayError> {
    if archive.timelines.is_empty() {
        return Err(ReplayError::NoArchive);
    }
    let windows = archive.windows(backups);
    let refuse = |at: DateTime<Utc>, why: String| ReplayError::NotRestorable {
        at,
        why,
        windows: describe(&windows),
    };
    let at = match at {
        Some(t) => t,
        None => windows
            .last()
            .map(|w| w.to)
            .ok_or_else(|| refuse(Utc::now(), "no timeline has a base backup yet".into()))?,
    };
    let Some(window) = windows.iter().rev().find(|w| w.from <= at && at <= w.to) else {
        let why = match (windows.first(), windows.last()) {
            (Some(first), _) if at < first.from => "it is before the first base backup".into(),
            (_, Some(last)) if at > last.to => format!(
                "the archive ends at {}",
                last.to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            (None, _) => "no timeline has a base backup yet".into(),
            _ => "it falls in a gap of the archive (the primary could not continue the stream)"
                .into(),
        };
        return Err(refuse(at, why));
    };
    let t: &Timeline = archive
        .timelines
        .iter()
        .find(|t| t.info.id == window.timeline)
        .ok_or_else(|| refuse(at, "its timeline vanished".into()))?;
    let base = backups
        .iter()
        .filter(|m| t.is_base(m))
        .filter_map(|m| {
            let o = u64::try_from(m.source.offset?).ok()?;
            let time = t.time_of_offset(o)?;
            (time <= at).then_some((o, m))
        })
        .max_by_key(|(o, m)| (*o, m.started_at))
        .ok_or_else(|| refuse(at, "no base backup of its timeline is older".into()))?;
    let (base_offset, base) = (base.0, base.1.clone());
    let segments = t
        .segments
        .iter()
        .filter(|s| s.end > base_offset)
        .take_while(|s| s.first_ms <= at.timestamp_millis().max(0) as u64)
        .cloned()
        .collect();
    Ok(Plan {
        at,
        timeline: t.info.id.clone(),
        base,
        base_offset,
        segments,
    })
}

/// One command to replay, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// The command, as RESP, with relative expiries made absolute.
    pub bytes: Vec<u8>,
    /// When it arrived, Unix milliseconds.
    pub at_ms: u64,
}

/// What a replay found, for the report.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    /// Commands replayed (transactions counted by their commands).
    pub commands: u64,
    /// Commands dropped as not data.
    pub skipped: u64,
    /// Commands of a transaction cut by the time, dropped.
    pub partial_transaction: u64,
    /// Arrival of the last replayed command.
    pub last_ms: Option<u64>,
}

/// Walks the plan's commands in order, handing each one to replay (with
/// a `SELECT` before it where the database changes) to `out`.
pub async fn replay(
    vault: &Vault,
    plan: &Plan,
    key: Option<&MasterKey>,
    mut out: impl FnMut(&Replayed) -> std::io::Result<()>,
) -> Result<ReplayStats, ReplayError> {
    let at_ms = plan.at.timestamp_millis().max(0) as u64;
    let mut stats = ReplayStats::default();
    // The database the target is in, and the one the stream is in.
    let mut target_db: Option<u32> = None;
    let mut db = None;
    let mut tx: Option<Vec<(Replayed, u32)>> = None;
    let io = |e: std::io::Error| ReplayError::Vault(VaultError::Pipeline(e.to_string()));
    let mut fetch = Prefetch::new(vault.store(), &plan.timeline, &plan.segments);
    'segments: while let Some((k, object, stored)) = fetch.next().await {
        let stored = stored.map_err(VaultError::from)?;
        let seg = Segment::open(&object, &stored, key.cloned(), &k)?;
        drop(stored);
        let mut cur_db = db.unwrap_or(seg.header.db);
        let mut lens = Vec::with_capacity(seg.times.len());
        Splitter::new()
            .feed(&seg.stream, &mut |b| lens.push((b.len, b.kind)))
            .map_err(|e| ReplayError::Stream {
                key: object.clone(),
                reason: e.to_string(),
            })?;
        if lens.len() != seg.times.len() {
            return Err(ReplayError::Stream {
                key: object,
                reason: format!(
                    "{} commands for {} arrival times",
                    lens.len(),
                    seg.times.len()
                ),
            });
        }
        let mut pos = 0usize;
        let mut offset = seg.header.start;
        for ((len, kind), &t) in lens.into_iter().zip(&seg.times) {
            let cmd = &seg.stream[pos..pos + len as usize];
            pos += len as usize;
            offset += len;
            if offset <= plan.base_offset {
                // In the base already; only the database matters.
                if let Kind::Select(n) = kind {
                    cur_db = n;
                }
                continue;
            }
            if t > at_ms {
                break 'segments;
            }
            match kind {
                Kind::Select(n) => cur_db = n,
                Kind::Multi => tx = Some(Vec::new()),
                Kind::Exec => {
                    let cmds = tx.take().unwrap_or_default();
                    let multi = Replayed {
                        bytes: b"*1\r\n$5\r\nMULTI\r\n".to_vec(),
                        at_ms: t,
                    };
                    let exec = Replayed {
                        bytes: cmd.to_vec(),
                        at_ms: t,
                    };
                    let first_db = cmds.first().map_or(cur_db, |c| c.1);
                    emit(&mut out, &mut target_db, first_db, &multi).map_err(io)?;
                    for (c, d) in &cmds {
                        emit(&mut out, &mut target_db, *d, c).map_err(io)?;
                    }
                    emit(&mut out, &mut target_db, cur_db, &exec).map_err(io)?;
                    stats.commands += cmds.len() as u64 + 2;
                    stats.last_ms = Some(t);
                }
                Kind::Data => {
                    let r = Replayed {
                        bytes: absolute_expiry(cmd, t),
                        at_ms: t,
                    };
                    match tx.as_mut() {
                        Some(cmds) => cmds.push((r, cur_db)),
                        None => {
                            emit(&mut out, &mut target_db, cur_db, &r).map_err(io)?;
                            stats.commands += 1;
                            stats.last_ms = Some(t);
                        }
                    }
                }
                Kind::Ping | Kind::GetAck | Kind::Replconf | Kind::Publish => stats.skipped += 1,
            }
        }
        db = Some(cur_db);
    }
    if let Some(cmds) = tx {
        stats.partial_transaction = cmds.len() as u64 + 1;
    }
    Ok(stats)
}

/// Hands `r` on, after a `SELECT` if the target is in another database.
fn emit(
    out: &mut impl FnMut(&Replayed) -> std::io::Result<()>,
    target_db: &mut Option<u32>,
    db: u32,
    r: &Replayed,
) -> std::io::Result<()> {
    if *target_db != Some(db) {
        let mut sel = Vec::new();
        encode_command(&[b"SELECT", db.to_string().as_bytes()], &mut sel);
        out(&Replayed {
            bytes: sel,
            at_ms: r.at_ms,
        })?;
        *target_db = Some(db);
    }
    out(r)
}

/// `cmd` with a relative expiry made absolute at `at_ms` (its arrival);
/// any other command as it is.
pub fn absolute_expiry(cmd: &[u8], at_ms: u64) -> Vec<u8> {
    let Some(ranges) = command_args(cmd) else {
        return cmd.to_vec();
    };
    let args: Vec<&[u8]> = ranges.iter().map(|r| &cmd[r.clone()]).collect();
    let name = args[0].to_ascii_uppercase();
    let num = |b: &[u8]| -> Option<i64> { std::str::from_utf8(b).ok()?.parse().ok() };
    let abs = |ms: i64| -> Vec<u8> { (at_ms as i64).saturating_add(ms).to_string().into_bytes() };
    let rebuilt = |new: Vec<Vec<u8>>| -> Vec<u8> {
        let refs: Vec<&[u8]> = new.iter().map(Vec::as_slice).collect();
        let mut out = Vec::with_capacity(cmd.len() + 16);
        encode_command(&refs, &mut out);
        out
    };
    let owned = |a: &[&[u8]]| a.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
    match (name.as_slice(), args.len()) {
        (b"EXPIRE" | b"PEXPIRE", n) if n >= 3 => {
            let Some(v) = num(args[2]) else {
                return cmd.to_vec();
            };
            let ms = if name == b"EXPIRE" {
                v.saturating_mul(1000)
            } else {
                v
            };
            let mut new = owned(&args);
            new[0] = b"PEXPIREAT".to_vec();
            new[2] = abs(ms);
            rebuilt(new)
        }
        (b"SETEX" | b"PSETEX", 4) => {
            let Some(v) = num(args[2]) else {
                return cmd.to_vec();
            };
            let ms = if name == b"SETEX" {
                v.saturating_mul(1000)
            } else {
                v
            };
            rebuilt(vec![
                b"SET".to_vec(),
                args[1].to_vec(),
                args[3].to_vec(),
                b"PXAT".to_vec(),
                abs(ms),
            ])
        }
        (b"SET" | b"GETEX", _) => {
            let first_opt = if name == b"SET" { 3 } else { 2 };
            let mut new = owned(&args);
            let mut i = first_opt;
            let mut changed = false;
            while i + 1 < new.len() {
                let opt = new[i].to_ascii_uppercase();
                if opt == b"EX" || opt == b"PX" {
                    if let Some(v) = num(&new[i + 1]) {
                        let ms = if opt == b"EX" {
                            v.saturating_mul(1000)
                        } else {
                            v
                        };
                        new[i] = b"PXAT".to_vec();
                        new[i + 1] = abs(ms);
                        changed = true;
                    }
                    i += 2;
                } else if opt == b"EXAT" || opt == b"PXAT" {
                    i += 2;
                } else {
                    i += 1;
                }
            }
            if changed { rebuilt(new) } else { cmd.to_vec() }
        }
        (b"RESTORE", n) if n >= 4 => {
            let absttl = args[4..].iter().any(|a| a.eq_ignore_ascii_case(b"ABSTTL"));
            match num(args[2]) {
                Some(ttl) if ttl > 0 && !absttl => {
                    let mut new = owned(&args);
                    new[2] = abs(ttl);
                    new.push(b"ABSTTL".to_vec());
                    rebuilt(new)
                }
                _ => cmd.to_vec(),
            }
        }
        _ => cmd.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        out
    }

    #[test]
    fn relative_expiries_become_absolute_at_arrival() {
        let t = 1_000_000;
        for (given, want) in [
            (
                cmd(&[b"EXPIRE", b"k", b"10"]),
                cmd(&[b"PEXPIREAT", b"k", b"1010000"]),
            ),
            (
                cmd(&[b"pexpire", b"k", b"250", b"NX"]),
                cmd(&[b"PEXPIREAT", b"k", b"1000250", b"NX"]),
            ),
            (
                cmd(&[b"SETEX", b"k", b"2", b"v"]),
                cmd(&[b"SET", b"k", b"v", b"PXAT", b"1002000"]),
            ),
            (
                cmd(&[b"PSETEX", b"k", b"5", b"v"]),
                cmd(&[b"SET", b"k", b"v", b"PXAT", b"1000005"]),
            ),
            (
                cmd(&[b"SET", b"k", b"v", b"NX", b"ex", b"3"]),
                cmd(&[b"SET", b"k", b"v", b"NX", b"PXAT", b"1003000"]),
            ),
            (
                cmd(&[b"GETEX", b"k", b"PX", b"7"]),
                cmd(&[b"GETEX", b"k", b"PXAT", b"1000007"]),
            ),
            (
                cmd(&[b"RESTORE", b"k", b"100", b"payload"]),
                cmd(&[b"RESTORE", b"k", b"1000100", b"payload", b"ABSTTL"]),
            ),
        ] {
            assert_eq!(
                absolute_expiry(&given, t),
                want,
                "{}",
                String::from_utf8_lossy(&given)
            );
        }
        // Already absolute, or without an expiry: unchanged.
        for same in [
            cmd(&[b"SET", b"k", b"v", b"PXAT", b"5"]),
            cmd(&[b"SET", b"ex", b"px"]),
            cmd(&[b"PEXPIREAT", b"k", b"5"]),
            cmd(&[b"RESTORE", b"k", b"0", b"p"]),
            cmd(&[b"RESTORE", b"k", b"5", b"p", b"ABSTTL"]),
            cmd(&[b"DEL", b"k"]),
        ] {
            assert_eq!(absolute_expiry(&same, t), same);
        }
    }
}
