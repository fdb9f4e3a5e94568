//! Checking the stream archive: every segment opens (seal, zstd, header
//! against key), its bytes are whole commands of the replication stream,
//! one arrival time each, times never go back, and offsets are contiguous.

use replvault_protocol::repl_stream::Splitter;

use super::archive::Timeline;
use super::fetch::Prefetch;
use super::segment::Segment;
use crate::crypto::MasterKey;
use crate::vault::Vault;

/// What a timeline's check found.
#[derive(Clone, Debug, Default)]
pub struct TimelineCheck {
    /// Segments checked.
    pub segments: u64,
    /// Commands in them.
    pub commands: u64,
    /// Stream bytes in them.
    pub bytes: u64,
}

/// Checks every segment of `t`; the error says which one and why.
pub async fn verify_timeline(
    vault: &Vault,
    t: &Timeline,
    key: Option<&MasterKey>,
) -> Result<TimelineCheck, String> {
    if t.unreachable > 0 {
        return Err(format!(
            "{} segment(s) lie past a hole in the offsets (after offset {})",
            t.unreachable,
            t.end_offset()
        ));
    }
    let mut check = TimelineCheck::default();
    let mut prev_end = t.start_offset();
    let mut prev_ms = 0u64;
    let mut fetch = Prefetch::new(vault.store(), &t.info.id, &t.segments);
    while let Some((k, object, stored)) = fetch.next().await {
        let stored = stored.map_err(|e| e.to_string())?;
        let seg = Segment::open(&object, &stored, key.cloned(), &k).map_err(|e| e.to_string())?;
        if seg.header.start != prev_end {
            return Err(format!(
                "{object}: starts at offset {}, the previous segment ended at {prev_end}",
                seg.header.start
            ));
        }
        if seg.header.timeline != t.info.id {
            return Err(format!(
                "{object}: belongs to timeline {}",
                seg.header.timeline
            ));
        }
        let mut commands = 0u64;
        let mut splitter = Splitter::new();
        splitter
            .feed(&seg.stream, &mut |_| commands += 1)
            .map_err(|e| format!("{object}: {e}"))?;
        if splitter.partial() != 0 {
            return Err(format!("{object}: ends inside a command"));
        }
        if commands != seg.times.len() as u64 {
            return Err(format!(
                "{object}: {commands} commands for {} arrival times",
                seg.times.len()
            ));
        }
        if let Some(w) = seg.times.windows(2).find(|w| w[1] < w[0]) {
            return Err(format!(
                "{object}: arrival times go back ({} then {})",
                w[0], w[1]
            ));
        }
        if seg.header.first_ms < prev_ms {
            return Err(format!(
                "{object}: its first command arrived before the previous segment's last"
            ));
        }
        prev_end = seg.header.end;
        prev_ms = seg.header.last_ms;
        check.segments += 1;
        check.commands += commands;
        check.bytes += seg.stream.len() as u64;
    }
    Ok(check)
}
