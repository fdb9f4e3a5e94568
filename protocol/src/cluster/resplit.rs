//! Re-splitting one RDB into N by hash slot, streaming.
//!
//! The input is walked by a [`Checker`] that reports where each record
//! starts and, once a key is read, its slot (`rdb::keys`). Bytes are routed
//! by those reports, never re-encoded:
//!
//! | input | outputs |
//! |---|---|
//! | header (magic, version) | every output, as is |
//! | AUX fields | every output, except the replication identity (`repl-id`, `repl-offset`, `repl-stream-db`) |
//! | FUNCTION2 libraries, module aux data | every output |
//! | key record, with its EXPIRETIME / IDLE / FREQ opcodes | the output owning its slot, as is |
//! | SELECTDB, RESIZEDB, SLOT_INFO, Valkey's SLOT_IMPORT | none: each output writes `SELECTDB 0` before its first key, no size hints |
//! | EOF, CRC-64 | none: each output ends with EOF and its own CRC-64 (none before RDB 5, as the input) |
//!
//! A record's bytes up to the point its slot is known (the key's end, or a
//! closed hash tag) are held; everything after streams through, so a value
//! of any size passes without being held, and memory is bounded by the
//! longest key (plus the output buffers: up to 64 KiB per output, 1 MiB
//! over all of them, at least 512 bytes each).

use std::ops::RangeInclusive;

use super::slot::{SLOTS, SlotError, SlotSet, create_ranges};
use crate::crc64::Crc64;
use crate::rdb::keys::{Event, KeyTrack};
use crate::rdb::{CheckError, CheckErrorKind, Checker, Summary};

/// Input is given to the checker this much at a time, which bounds the
/// events one feed records.
const PIECE: usize = 64 * 1024;

/// Output bytes gathered before they are passed on, over all outputs (at
/// least 512 bytes each).
const OUTPUT_BUFFERS: usize = 1 << 20;

/// Most bytes of one key record held before its slot is known: Redis's
/// default `proto-max-bulk-len` (512 MB, the longest key a client can
/// write with it), plus its opcodes and length fields.
const MAX_HELD: usize = (512 << 20) + 64;

/// Where the bytes of the current record go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    /// Every output.
    All,
    /// No output.
    Drop,
    /// A key record whose slot is not known yet: held.
    Key,
    /// An aux record whose field name is not read yet: held.
    Aux,
    /// One output.
    Out(usize),
}

/// What one output received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSummary {
    /// The slots the output holds keys of.
    pub slots: SlotSet,
    /// Keys written to it.
    pub keys: u64,
    /// Of those, keys with an expiry.
    pub expires: u64,
    /// Its length in bytes, trailer included.
    pub bytes: u64,
    /// Its CRC-64 trailer (`None` for RDB versions before 5, which have
    /// none).
    pub crc64: Option<u64>,
}

/// What [`Resplit::finish`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResplitSummary {
    /// The input's check.
    pub input: Summary,
    /// Each output, by index.
    pub outputs: Vec<OutputSummary>,
}

#[derive(Debug)]
struct Output {
    /// Bytes not yet passed on, up to `cap`.
    buf: Vec<u8>,
    cap: usize,
    crc: Crc64,
    bytes: u64,
    keys: u64,
    expires: u64,
    /// `SELECTDB 0` is written.
    selected: bool,
}

/// A streaming re-splitter: one RDB in (fed in chunks of any size), N RDBs
/// out, each holding the keys of its slots (sans-IO: the bytes of output
/// `i` are passed to the caller's `out(i, bytes)`, a buffer at a time).
///
/// Every output starts with the input's header and aux fields, carries its
/// function libraries and module aux data, and is a complete RDB that
/// passes [`Checker::with_slots`] for its slots once [`Resplit::finish`]
/// returns. The input is fully checked on the way (structure and CRC-64);
/// it must have keys only in database 0 ([`CheckErrorKind::ClusterDb`]
/// otherwise), and only in slots some output holds
/// ([`CheckErrorKind::KeyOutsideSlots`]).
///
/// After any error the outputs are incomplete and must be discarded.
///
/// ```
/// use replvault_protocol::cluster::Resplit;
/// # let rdb: Vec<u8> = {
/// #     let mut v = b"REDIS0011\xfe\x00\x00\x03foo\x03bar\x00\x03baz\x01x\xff".to_vec();
/// #     let crc = replvault_protocol::crc64::checksum(&v);
/// #     v.extend(crc.to_le_bytes());
/// #     v
/// # };
/// let mut split = Resplit::new(3)?; // 0-5460, 5461-10922, 10923-16383
/// let mut files = vec![Vec::new(); 3];
/// for chunk in rdb.chunks(4096) {
///     split.feed(chunk, &mut |i, bytes| files[i].extend_from_slice(bytes))?;
/// }
/// let summary = split.finish(&mut |i, bytes| files[i].extend_from_slice(bytes))?;
/// // "foo" is in slot 12182, "baz" in 4813.
/// assert_eq!(summary.outputs.iter().map(|o| o.keys).collect::<Vec<_>>(), [1, 0, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Resplit {
    checker: Checker,
    sets: Vec<SlotSet>,
    /// Output of each slot (`u16::MAX`: none).
    owner: Box<[u16]>,
    outputs: Vec<Output>,
    dest: Dest,
    /// The current record's bytes while its destination is unknown.
    held: Vec<u8>,
    /// The current key record has an expiry.
    expiring: bool,
    /// Payload offset up to which input bytes are routed.
    routed: u64,
    /// Bytes of the piece being routed that go to one output, not yet
    /// written: output, start and end in the piece. Neighbouring records
    /// of one output are written (and checksummed) together.
    run: Option<(usize, usize, usize)>,
    events: Vec<Event>,
    failed: bool,
    /// Every slot some output holds.
    all: SlotSet,
    /// The first input's magic and version, once one has ended: later
    /// inputs must match them (their header and aux fields are dropped).
    first: Option<(String, u32)>,
    /// The most bytes held at once (tests).
    #[cfg(test)]
    pub(crate) peak_held: usize,
}

impl Resplit {
    /// Splits into `n` outputs by the slot ranges `redis-cli --cluster
    /// create` assigns `n` primaries ([`create_ranges`]); output `i` holds
    /// the `i`-th range.
    pub fn new(n: usize) -> Result<Self, SlotError> {
        Self::with_ranges(create_ranges(n)?)
    }

    /// Splits into one output per range (ranges must not overlap; keys of
    /// slots no range holds fail the split).
    pub fn with_ranges(
        ranges: impl IntoIterator<Item = RangeInclusive<u16>>,
    ) -> Result<Self, SlotError> {
        let sets = ranges
            .into_iter()
            .map(|r| SlotSet::from_ranges([r]))
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_slot_sets(sets)
    }

    /// Splits into one output per set (sets must not overlap; keys of
    /// slots no set holds fail the split).
    pub fn with_slot_sets(sets: Vec<SlotSet>) -> Result<Self, SlotError> {
        if sets.is_empty() || sets.len() > usize::from(SLOTS) {
            return Err(SlotError::Count(sets.len()));
        }
        let mut owner = vec![u16::MAX; usize::from(SLOTS)].into_boxed_slice();
        let mut all = SlotSet::new();
        for (i, set) in sets.iter().enumerate() {
            for r in set.ranges() {
                for slot in r {
                    let o = &mut owner[usize::from(slot)];
                    if *o != u16::MAX {
                        return Err(SlotError::Overlap(slot));
                    }
                    // At most 16384 outputs: the index fits.
                    *o = i as u16;
                }
            }
            all.union_with(set);
        }
        let outputs = sets
            .iter()
            .map(|_| Output {
                buf: Vec::new(),
                cap: (OUTPUT_BUFFERS / sets.len()).clamp(512, 64 * 1024),
                crc: Crc64::new(),
                bytes: 0,
                keys: 0,
                expires: 0,
                selected: false,
            })
            .collect();
        let checker = Checker::tracking(KeyTrack::new(Some(all.clone()), true));
        Ok(Resplit {
            checker,
            sets,
            owner,
            outputs,
            dest: Dest::All,
            held: Vec::new(),
            expiring: false,
            routed: 0,
            run: None,
            events: Vec::new(),
            failed: false,
            all,
            first: None,
            #[cfg(test)]
            peak_held: 0,
        })
    }

    /// The number of outputs.
    pub fn outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The slots of output `i`.
    pub fn slots(&self, i: usize) -> Option<&SlotSet> {
        self.sets.get(i)
    }

    /// Input bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.checker.offset()
    }

    /// Feeds the next chunk of the input; output bytes go to `out(i,
    /// bytes)`, in order for each output. They are gathered into pieces of
    /// up to 64 KiB per output (1 MiB over all of them) first, so some may
    /// wait for a later call, at the latest [`Resplit::finish`].
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CheckError> {
        for piece in chunk.chunks(PIECE) {
            let base = self.checker.offset();
            let fed = self.checker.feed(piece);
            self.checker.take_events(&mut self.events);
            if let Err(e) = fed {
                self.failed = true;
                self.events.clear();
                return Err(e);
            }
            if let Err(e) = self.route(piece, base, out) {
                self.failed = true;
                self.events.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Ends the current input (which must be a whole RDB) and makes ready
    /// for the next, whose keys join the same outputs: the shards of a
    /// cluster backup re-split into another number of shards. The outputs
    /// keep the first input's header, aux fields, function libraries and
    /// module aux data (every node of a cluster holds the same libraries);
    /// the next input's are checked and dropped, and it must have the
    /// first's magic and RDB version. Returns the ended input's summary.
    pub fn next_input(&mut self) -> Result<Summary, CheckError> {
        let end = self.checker.offset();
        let fresh = Checker::tracking(KeyTrack::new(Some(self.all.clone()), true));
        let checker = std::mem::replace(&mut self.checker, fresh);
        if self.failed {
            return Err(match checker.finish() {
                Err(e) => e,
                Ok(_) => invalid(end, "the split already failed"),
            });
        }
        let result = checker.finish().and_then(|input| {
            if matches!(self.dest, Dest::Key | Dest::Aux) {
                return Err(invalid(end, "internal: a record still held at the end"));
            }
            Self::check_like_first(&mut self.first, &input, end)?;
            Ok(input)
        });
        if result.is_err() {
            self.failed = true;
            return result;
        }
        self.dest = Dest::Drop;
        self.held.clear();
        self.expiring = false;
        self.routed = 0;
        self.run = None;
        self.events.clear();
        result
    }

    /// Records the first input's magic and version, or checks a later
    /// input's against them.
    fn check_like_first(
        first: &mut Option<(String, u32)>,
        input: &Summary,
        end: u64,
    ) -> Result<(), CheckError> {
        match first {
            None => {
                *first = Some((input.magic.clone(), input.rdb_version));
                Ok(())
            }
            Some((magic, version)) if *magic == input.magic && *version == input.rdb_version => {
                Ok(())
            }
            Some((magic, version)) => Err(invalid(
                end,
                &format!(
                    "this input is {} RDB version {}, the first was {magic} version {version}: \
                     inputs of different versions are not merged",
                    input.magic, input.rdb_version
                ),
            )),
        }
    }

    /// Ends the input (which must be a whole RDB) and the outputs: each
    /// gets the EOF opcode and its CRC-64.
    pub fn finish(
        mut self,
        out: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<ResplitSummary, CheckError> {
        let end = self.checker.offset();
        if self.failed {
            // The checker repeats its own failure.
            return Err(match self.checker.finish() {
                Err(e) => e,
                Ok(_) => invalid(end, "the split already failed"),
            });
        }
        let input = self.checker.finish()?;
        if matches!(self.dest, Dest::Key | Dest::Aux) {
            return Err(invalid(end, "internal: a record still held at the end"));
        }
        Self::check_like_first(&mut self.first, &input, end)?;
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for (i, (o, slots)) in self.outputs.iter_mut().zip(self.sets).enumerate() {
            emit(o, i, &[0xFF], out);
            flush(o, i, out);
            let crc64 = (input.rdb_version >= 5).then(|| o.crc.value());
            if let Some(crc) = crc64 {
                let trailer = crc.to_le_bytes();
                out(i, &trailer);
                o.bytes += trailer.len() as u64;
            }
            outputs.push(OutputSummary {
                slots,
                keys: o.keys,
                expires: o.expires,
                bytes: o.bytes,
                crc64,
            });
        }
        Ok(ResplitSummary { input, outputs })
    }

    /// Routes `piece` (at payload offset `base`) by the checker's events.
    fn route(
        &mut self,
        piece: &[u8],
        base: u64,
        out: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CheckError> {
        let events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for &ev in &events {
            result = self.event(ev, piece, base, out);
            if result.is_err() {
                break;
            }
        }
        self.events = events;
        self.events.clear();
        result?;
        self.send_until(base + piece.len() as u64, piece, base, out)?;
        self.flush_run(piece, out);
        Ok(())
    }

    /// Writes the bytes of `run`.
    fn flush_run(&mut self, piece: &[u8], out: &mut dyn FnMut(usize, &[u8])) {
        if let Some((i, from, to)) = self.run.take()
            && let (Some(o), Some(bytes)) = (self.outputs.get_mut(i), piece.get(from..to))
        {
            emit(o, i, bytes, out);
        }
    }

    fn event(
        &mut self,
        ev: Event,
        piece: &[u8],
        base: u64,
        out: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CheckError> {
        match ev {
            Event::Record { at, op } => {
                self.send_until(at, piece, base, out)?;
                self.start_record(at, op)
            }
            Event::Slot(slot) => {
                let at = self.routed;
                if self.dest != Dest::Key {
                    return Err(invalid(at, "internal: a slot outside a key record"));
                }
                let i = match self.owner.get(usize::from(slot)) {
                    Some(&o) if o != u16::MAX => usize::from(o),
                    _ => return Err(invalid(at, "internal: a slot no output holds")),
                };
                self.flush_run(piece, out);
                let o = &mut self.outputs[i];
                if !o.selected {
                    o.selected = true;
                    emit(o, i, &[0xFE, 0x00], out);
                }
                o.keys += 1;
                o.expires += u64::from(self.expiring);
                emit(o, i, &self.held, out);
                self.held.clear();
                self.dest = Dest::Out(i);
                Ok(())
            }
            Event::Aux(keep) => {
                if self.dest != Dest::Aux {
                    return Err(invalid(self.routed, "internal: an aux name outside aux"));
                }
                // A later input's aux fields are checked, not copied.
                let keep = keep && self.first.is_none();
                if keep {
                    self.flush_run(piece, out);
                    for (i, o) in self.outputs.iter_mut().enumerate() {
                        emit(o, i, &self.held, out);
                    }
                }
                self.held.clear();
                self.dest = if keep { Dest::All } else { Dest::Drop };
                Ok(())
            }
        }
    }

    /// A record with opcode `op` starts at `at`: where its bytes go.
    fn start_record(&mut self, at: u64, op: u8) -> Result<(), CheckError> {
        let in_key = self.dest == Dest::Key;
        let key_part = matches!(op, 0xF8 | 0xF9 | 0xFC | 0xFD) || op < 0xF3;
        if in_key && !key_part {
            // The checker refuses an expiry so placed; IDLE and FREQ it
            // leaves to the loader, which would give them to the next key.
            return Err(err(
                at,
                CheckErrorKind::Invalid("an LRU or LFU opcode not followed by a key".into()),
            ));
        }
        if !in_key {
            self.expiring = false;
        }
        self.expiring |= matches!(op, 0xFC | 0xFD);
        self.dest = match op {
            _ if key_part => Dest::Key,
            0xFA => Dest::Aux,
            // FUNCTION2, MODULE_AUX: the first input's only.
            0xF5 | 0xF7 if self.first.is_none() => Dest::All,
            // EOF (and the trailer), SELECTDB, RESIZEDB, SLOT_INFO,
            // Valkey's SLOT_IMPORT: each output writes its own or none.
            _ => Dest::Drop,
        };
        Ok(())
    }

    /// Routes the input from `routed` up to offset `to` (in `piece`).
    fn send_until(
        &mut self,
        to: u64,
        piece: &[u8],
        base: u64,
        out: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<(), CheckError> {
        let span = self
            .routed
            .checked_sub(base)
            .zip(to.checked_sub(base))
            .and_then(|(s, e)| Some((usize::try_from(s).ok()?, usize::try_from(e).ok()?)))
            .filter(|&(s, e)| s <= e && e <= piece.len());
        let Some((from, to_in_piece)) = span else {
            return Err(invalid(
                self.routed,
                "internal: a record boundary outside the bytes fed",
            ));
        };
        let bytes = &piece[from..to_in_piece];
        self.routed = to;
        match self.dest {
            Dest::Drop => {}
            Dest::All => {
                self.flush_run(piece, out);
                for (i, o) in self.outputs.iter_mut().enumerate() {
                    emit(o, i, bytes, out);
                }
            }
            Dest::Key | Dest::Aux => {
                if self.held.len() + bytes.len() > MAX_HELD {
                    return Err(invalid(
                        to,
                        "a key or aux record runs past 512 MiB before where it goes is \
                         known (a key longer than Redis's default bulk limit): not re-split",
                    ));
                }
                self.held.extend_from_slice(bytes);
                #[cfg(test)]
                {
                    self.peak_held = self.peak_held.max(self.held.len());
                }
            }
            Dest::Out(i) => match self.run {
                Some((j, a, b)) if j == i && b == from => self.run = Some((i, a, to_in_piece)),
                _ => {
                    self.flush_run(piece, out);
                    self.run = Some((i, from, to_in_piece));
                }
            },
        }
        Ok(())
    }
}

/// Writes `bytes` to output `i`: gathered in its buffer, and passed on
/// (and checksummed) a buffer at a time, so records of a few bytes each
/// cost neither a call nor a CRC update of their own.
fn emit(o: &mut Output, i: usize, bytes: &[u8], out: &mut dyn FnMut(usize, &[u8])) {
    if bytes.is_empty() {
        return;
    }
    o.bytes += bytes.len() as u64;
    if o.buf.len() + bytes.len() <= o.cap {
        o.buf.extend_from_slice(bytes);
        return;
    }
    flush(o, i, out);
    if bytes.len() >= o.cap {
        o.crc.update(bytes);
        out(i, bytes);
    } else {
        o.buf.extend_from_slice(bytes);
    }
}

/// Passes on what output `i` has gathered.
fn flush(o: &mut Output, i: usize, out: &mut dyn FnMut(usize, &[u8])) {
    if !o.buf.is_empty() {
        o.crc.update(&o.buf);
        out(i, &o.buf);
        o.buf.clear();
    }
}

fn err(offset: u64, kind: CheckErrorKind) -> CheckError {
    CheckError { offset, kind }
}

fn invalid(offset: u64, what: &str) -> CheckError {
    err(offset, CheckErrorKind::Invalid(what.into()))
}
