//! The checker: feeding chunks, the task loop, and the summary at the end.

use std::collections::BTreeMap;

use super::deferred::{Deferred, Job};
use super::dialect::Dialect;
use super::error::{CheckError, CheckErrorKind, err};
use super::keys::{Event, KeyTrack};
use super::lzf::{self, Lzf};
use super::strings::{LenValue, plain_element, read_len};
use super::summary::{
    CAPTURE_LIMIT, Checksum, DbSummary, ModuleCounts, OTHER_MODULES, Summary, module_type_name,
};
use super::tasks::Task::{self, *};
use super::tasks::{LenUse, StrUse};
use crate::cluster::SlotSet;
use crate::crc64::Crc64;

/// Outcome of running one task.
pub(super) enum Run {
    /// The task finished (or made progress) and consumed this many bytes.
    Done(usize),
    /// The buffered bytes are not enough for the task.
    NeedMore,
}

/// The streaming checker.
#[derive(Debug, Default)]
pub struct Checker {
    crc: Crc64,
    /// Payload bytes consumed so far.
    offset: u64,
    /// Unconsumed bytes carried to the next chunk (a few at most).
    pending: Vec<u8>,
    pub(super) tasks: Vec<Task>,
    started: bool,
    pub(super) finished: bool,
    failed: Option<(u64, String)>,
    pub(super) summary: Summary,
    /// Type and opcode table, from the magic.
    pub(super) dialect: Dialect,
    pub(super) db: u64,
    /// Counts for `db`, added to the summary when the database changes or the
    /// check ends, so that counting a key is no map lookup.
    pub(super) db_counts: DbSummary,
    /// Keys per value type code (a code's name is fixed once the header is
    /// read), turned into names at the end for the same reason.
    pub(super) type_counts: TypeCounts,
    /// Module data by type id without its encoding version (`u64::MAX`:
    /// past [`MAX_MODULE_TYPES`](super::summary::MAX_MODULE_TYPES)); named at the end.
    pub(super) module_counts: BTreeMap<u64, ModuleCounts>,
    pub(super) pending_expire: bool,
    /// String content being collected for a use that needs it.
    pub(super) collect: Vec<u8>,
    pub(super) lzf: Option<Lzf>,
    pub(super) aux_key: Option<String>,
    /// The blob currently collected was too big to check entry by entry.
    pub(super) blob_unchecked: bool,
    /// Content checks are being left to the caller (`feed_deferring`).
    defer: bool,
    /// The bytes being run are the caller's chunk (not carried bytes), so a
    /// span in them can be checked later from that chunk.
    in_chunk: bool,
    /// Payload offset of the bytes the current task starts at.
    pub(super) at: u64,
    /// Checks left for the caller by the current `feed_deferring` call.
    pub(super) jobs: Vec<Job>,
    /// Per-key work, when asked for (slots, re-split events); `None` for a
    /// plain check, which then does none.
    pub(super) track: Option<Box<KeyTrack>>,
    /// Where a failure is reported when not at the failing task's start
    /// (a key's slot is known at its end, reported at its record).
    pub(super) err_at: Option<u64>,
    /// Bounds on declared lengths.
    pub(super) limits: Limits,
}

/// The servers' own largest string (`proto-max-bulk-len`'s default).
pub const DEFAULT_MAX_VALUE: u64 = 512 << 20;

/// The most databases with keys one RDB may hold. The summary keeps a line
/// per database and the manifest that carries it is at most 1 MiB, which
/// holds about 17,000; a hostile RDB of a key per database would otherwise
/// grow the summary with every `SELECTDB`.
pub const MAX_DATABASES: usize = 10_000;

/// Bounds on the lengths a payload declares, so that a stream declaring a
/// 2^40-byte string is refused at once instead of read on for hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The payload's length, when the server sent it (`$<len>`): no string
    /// or element count can reach past it.
    pub payload_len: Option<u64>,
    /// The largest string taken when the payload's length is unknown
    /// (diskless `$EOF:` framing, scan mode).
    pub max_value: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            payload_len: None,
            max_value: DEFAULT_MAX_VALUE,
        }
    }
}

/// Keys per value type code.
#[derive(Debug)]
pub(super) struct TypeCounts(pub(super) [u64; 256]);

impl Default for TypeCounts {
    fn default() -> Self {
        TypeCounts([0; 256])
    }
}

impl Checker {
    /// A checker at the start of a payload.
    pub fn new() -> Self {
        Checker {
            tasks: vec![Record, Header],
            ..Checker::default()
        }
    }

    /// A checker that also requires every key to hash to a slot in
    /// `slots` and to be in database 0, as in a cluster shard that owns
    /// those slots: a key outside fails the check with
    /// [`CheckErrorKind::KeyOutsideSlots`] (the key, its slot, the offset
    /// of its record) or [`CheckErrorKind::ClusterDb`].
    ///
    /// Each key is hashed as it streams past (raw, integer-encoded or LZF,
    /// cut anywhere), never held. That costs about 165 instructions a key
    /// (roughly halving the check's speed on bulk small-string data, a
    /// few percent on data of larger values); [`Checker::new`] does no
    /// per-key work at all.
    pub fn with_slots(slots: SlotSet) -> Self {
        Checker::tracking(KeyTrack::new(Some(slots), false))
    }

    /// A checker doing the per-key work `track` asks for.
    pub(crate) fn tracking(track: KeyTrack) -> Self {
        Checker {
            track: Some(Box::new(track)),
            ..Checker::new()
        }
    }

    /// Sets the bounds on declared lengths (by default: no payload length
    /// known, strings up to [`DEFAULT_MAX_VALUE`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Refuses a `declared` length whose bytes (or, for an element count,
    /// `counts_bytes` false, whose elements of at least a byte each) start
    /// `header` bytes after the current task and reach past the payload's
    /// end when its length is known; else a string past the value limit.
    pub(super) fn check_declared(
        &self,
        what: &'static str,
        declared: u64,
        header: usize,
        counts_bytes: bool,
    ) -> Result<(), CheckErrorKind> {
        match self.limits.payload_len {
            Some(total) => {
                let left = total.saturating_sub(self.at.saturating_add(header as u64));
                if declared > left {
                    return Err(CheckErrorKind::BeyondPayload {
                        what,
                        declared,
                        left,
                    });
                }
            }
            None if counts_bytes && declared > self.limits.max_value => {
                return Err(CheckErrorKind::ValueTooLarge {
                    what,
                    declared,
                    max: self.limits.max_value,
                });
            }
            None => {}
        }
        Ok(())
    }

    /// Moves the re-split events recorded so far to the end of `into`.
    pub(crate) fn take_events(&mut self, into: &mut Vec<Event>) {
        if let Some(events) = self.track.as_mut().and_then(|t| t.events.as_mut()) {
            into.append(events);
        }
    }

    /// The per-key state (tests).
    #[cfg(test)]
    pub(crate) fn track_mut(&mut self) -> Option<&mut KeyTrack> {
        self.track.as_deref_mut()
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// Feeds the next chunk of the payload.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), CheckError> {
        if let Some((offset, msg)) = &self.failed {
            return Err(err(
                *offset,
                CheckErrorKind::Invalid(format!("the check already failed: {msg}")),
            ));
        }
        self.started = true;
        let result = self.feed_inner(&mut chunk);
        if let Err(e) = &result {
            self.failed = Some((e.offset, e.kind.to_string()));
        }
        result
    }

    /// Feeds the next chunk like [`feed`](Self::feed), but leaves the
    /// content checks of LZF bodies and encoded blobs that lie wholly inside
    /// `chunk` to the returned [`Deferred`], which the caller runs (on any
    /// thread) against the same bytes. The record structure, lengths and
    /// CRC-64 are still checked here.
    ///
    /// The check fails if any `Deferred` fails, and then with the first such
    /// failure in feed order, which comes before any error `feed_deferring`
    /// itself returns for that chunk or later ones.
    pub fn feed_deferring(&mut self, chunk: &[u8]) -> (Deferred, Result<(), CheckError>) {
        let base = self.offset();
        self.defer = true;
        let result = self.feed(chunk);
        self.defer = false;
        let jobs = std::mem::take(&mut self.jobs);
        (Deferred { base, jobs }, result)
    }

    /// True when a content check of the current task's bytes may be left
    /// to the caller.
    pub(super) fn deferring(&self) -> bool {
        self.defer && self.in_chunk
    }

    fn feed_inner(&mut self, chunk: &mut &[u8]) -> Result<(), CheckError> {
        // Finish a unit that straddled the previous chunk boundary by topping
        // up the carried bytes a little at a time, then run on the chunk
        // itself without copying it.
        self.in_chunk = false;
        while !self.pending.is_empty() && !chunk.is_empty() {
            let old = self.pending.len();
            let take = chunk.len().min(64);
            self.pending.extend_from_slice(&chunk[..take]);
            let buf = std::mem::take(&mut self.pending);
            let used = self.run(&buf)?;
            if used >= old {
                *chunk = &chunk[used - old..];
                break;
            }
            self.pending = buf[used..].to_vec();
            *chunk = &chunk[take..];
        }
        if self.pending.is_empty() && !chunk.is_empty() {
            self.in_chunk = true;
            let used = self.run(chunk);
            self.in_chunk = false;
            let used = used?;
            self.pending.extend_from_slice(&chunk[used..]);
        }
        Ok(())
    }

    /// Runs tasks over `data`; returns bytes consumed.
    fn run(&mut self, data: &[u8]) -> Result<usize, CheckError> {
        let mut pos = 0;
        // Start of the bytes not yet in the CRC; `None` once the trailer is
        // reached (the CRC covers everything before it).
        let mut crc_from = Some(0);
        let res = self.run_tasks(data, &mut pos, &mut crc_from);
        if let Some(from) = crc_from {
            self.crc.update(&data[from..pos]);
        }
        self.offset += pos as u64;
        res.map(|()| pos)
    }

    fn run_tasks(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        crc_from: &mut Option<usize>,
    ) -> Result<(), CheckError> {
        loop {
            if self.finished {
                if *pos < data.len() {
                    return Err(err(self.offset + *pos as u64, CheckErrorKind::TrailingData));
                }
                return Ok(());
            }
            let Some(task) = self.tasks.pop() else {
                let at = self.offset + *pos as u64;
                return Err(err(at, CheckErrorKind::Invalid("internal: no task".into())));
            };
            if let (Trailer, Some(from)) = (task, *crc_from) {
                self.crc.update(&data[from..*pos]);
                *crc_from = None;
            }
            let at = self.offset + *pos as u64;
            self.at = at;
            match self.step(task, &data[*pos..]) {
                Ok(Run::Done(n)) => *pos += n,
                Ok(Run::NeedMore) => {
                    self.tasks.push(task);
                    return Ok(());
                }
                Err(kind) => return Err(err(self.err_at.take().unwrap_or(at), kind)),
            }
        }
    }

    fn step(&mut self, task: Task, d: &[u8]) -> Result<Run, CheckErrorKind> {
        match task {
            Header => self.header(d),
            Record => self.record(d),
            Len(usage) => {
                let Some((len, n)) = read_len(d)? else {
                    return Ok(Run::NeedMore);
                };
                let LenValue::Len(len) = len else {
                    return Err(CheckErrorKind::Invalid(
                        "encoded string where a length was expected".into(),
                    ));
                };
                self.use_len(usage, len)?;
                Ok(Run::Done(n))
            }
            Str(usage) => self.string_header(d, usage),
            Fixed(n, _) => {
                if d.len() < n as usize {
                    return Ok(Run::NeedMore);
                }
                Ok(Run::Done(n as usize))
            }
            OldDouble => {
                let Some(&l) = d.first() else {
                    return Ok(Run::NeedMore);
                };
                let n = if l >= 253 { 1 } else { 1 + l as usize };
                if d.len() < n {
                    return Ok(Run::NeedMore);
                }
                Ok(Run::Done(n))
            }
            Repeat { mut left, body } => {
                // Fast path: elements made only of plain strings and fixed
                // fields (most collections) are checked in place while they
                // lie wholly in this chunk, without a task per field.
                let mut used = 0;
                if body
                    .iter()
                    .all(|t| matches!(t, Str(StrUse::Plain) | Fixed(..)))
                {
                    let defer = self.deferring();
                    while left > 0 {
                        let mark = self.jobs.len();
                        let jobs = defer.then_some(&mut self.jobs);
                        let Some(n) = plain_element(body, &d[used..], self.at + used as u64, jobs)
                        else {
                            self.jobs.truncate(mark);
                            break;
                        };
                        used += n;
                        left -= 1;
                    }
                }
                if left > 0 {
                    self.tasks.push(Repeat {
                        left: left - 1,
                        body,
                    });
                    self.tasks.extend(body.iter().rev().copied());
                }
                Ok(Run::Done(used))
            }
            Body { left, usage } => {
                if d.is_empty() {
                    return Ok(Run::NeedMore);
                }
                let n = (left as usize)
                    .min(d.len())
                    .min(left.min(usize::MAX as u64) as usize);
                let keep = match usage {
                    StrUse::Plain => false,
                    StrUse::Key => {
                        if let Some(t) = self.track.as_deref_mut() {
                            t.key_bytes(&d[..n]);
                        }
                        false
                    }
                    StrUse::Blob(_) => !self.blob_unchecked,
                    // Captured text is cut anyway: collect no more than that.
                    _ => self.collect.len() < CAPTURE_LIMIT,
                };
                if keep {
                    self.collect.extend_from_slice(&d[..n]);
                }
                let left = left - n as u64;
                if left > 0 {
                    self.tasks.push(Body { left, usage });
                } else {
                    self.string_done(usage)?;
                }
                Ok(Run::Done(n))
            }
            LzfBody { usage } => {
                let Some(lzf) = self.lzf.as_mut() else {
                    return Err(CheckErrorKind::Invalid("internal: no LZF state".into()));
                };
                // A long key's output is handed on as it is decoded; a
                // little input at a time bounds what that holds.
                let stream = usage == StrUse::Key && !lzf.keeps_all();
                let input = if stream { &d[..d.len().min(4096)] } else { d };
                match lzf.step(input).map_err(CheckErrorKind::Lzf)? {
                    lzf::Step::NeedMore => Ok(Run::NeedMore),
                    lzf::Step::Consumed(n) => {
                        if stream && let Some(t) = self.track.as_deref_mut() {
                            lzf.take_fresh(|b| t.key_bytes(b));
                        }
                        if lzf.done() {
                            lzf.complete().map_err(CheckErrorKind::Lzf)?;
                            if let Some(l) = self.lzf.take()
                                && usage.wants_content()
                                && !stream
                            {
                                self.collect = l.out;
                            }
                            self.string_done(usage)?;
                        } else {
                            self.tasks.push(LzfBody { usage });
                        }
                        Ok(Run::Done(n))
                    }
                }
            }
            ModuleOps => {
                self.tasks.push(Len(LenUse::ModuleOpcode));
                Ok(Run::Done(0))
            }
            Trailer => {
                if d.len() < 8 {
                    return Ok(Run::NeedMore);
                }
                let mut t = [0u8; 8];
                t.copy_from_slice(&d[..8]);
                let expected = u64::from_le_bytes(t);
                let computed = self.crc.value();
                self.summary.checksum = if expected == 0 {
                    Checksum::Disabled
                } else if expected == computed {
                    Checksum::Verified { crc64: computed }
                } else {
                    return Err(CheckErrorKind::ChecksumMismatch { expected, computed });
                };
                self.finished = true;
                Ok(Run::Done(8))
            }
        }
    }

    /// Ends the check: the payload must have ended exactly after the trailer.
    pub fn finish(mut self) -> Result<Summary, CheckError> {
        if let Some((offset, msg)) = self.failed {
            return Err(err(
                offset,
                CheckErrorKind::Invalid(format!("the check already failed: {msg}")),
            ));
        }
        let end = self.offset();
        if !self.finished {
            let what = match self.tasks.last() {
                _ if !self.started || self.summary.magic.is_empty() => "the header",
                Some(Trailer) => "the CRC-64 trailer",
                Some(Fixed(_, what)) => what,
                Some(Record) => "the key space (no EOF opcode)",
                Some(Body { .. }) | Some(LzfBody { .. }) | Some(Str(_)) => "a string",
                _ => "a value",
            };
            return Err(err(end, CheckErrorKind::Truncated(what)));
        }
        self.flush_db_counts().map_err(|e| err(end, e))?;
        for (code, &n) in self.type_counts.0.iter().enumerate() {
            if n == 0 {
                continue;
            }
            // Every counted code was accepted by value_type during the check.
            if let Ok(code) = u8::try_from(code)
                && let Ok((name, _)) = self.dialect.value_type(code, self.summary.rdb_version)
            {
                *self.summary.types.entry(name.to_string()).or_default() += n;
            }
        }
        for (id, c) in std::mem::take(&mut self.module_counts) {
            let name = match id {
                u64::MAX => OTHER_MODULES.to_string(),
                _ => module_type_name(id << 10),
            };
            let m = self.summary.modules.entry(name).or_default();
            m.values += c.values;
            m.aux += c.aux;
        }
        self.summary.payload_len = end;
        Ok(self.summary)
    }

    /// Adds the current database's counts to the summary. A database is
    /// listed only once it has a key, and at most [`MAX_DATABASES`] are.
    pub(super) fn flush_db_counts(&mut self) -> Result<(), CheckErrorKind> {
        let counts = std::mem::take(&mut self.db_counts);
        if counts.keys > 0 {
            let dbs = &mut self.summary.databases;
            if dbs.len() >= MAX_DATABASES && !dbs.contains_key(&self.db) {
                return Err(CheckErrorKind::TooManyDatabases { max: MAX_DATABASES });
            }
            let db = dbs.entry(self.db).or_default();
            db.keys += counts.keys;
            db.expires += counts.expires;
        }
        Ok(())
    }
}
