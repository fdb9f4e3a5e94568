//! Fuzz target bodies, shared by the cargo-fuzz targets and the smoke test.
//!
//! Each function takes one fuzzer input and panics only when a property
//! fails (errors from the code under test are fine). The cargo-fuzz targets
//! in `protocol/fuzz/` are one-line wrappers around these, and
//! `tests/fuzz_smoke.rs` replays fixtures, any saved corpus and generated
//! inputs through the same functions on stable Rust. Not a stable API.

use crate::cluster::{Resplit, ResplitSummary, SlotHasher, SlotSet, create_ranges, key_slot};
use crate::dump::{Dump, RdbWriter, make_payload};
use crate::payload::{Framing, PayloadReader};
use crate::rdb::{CheckError, CheckErrorKind, Checker, Summary};
use crate::replica::{Config, Handshake};
use crate::resp::decode;

fn check_inline(rest: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    for piece in rest.chunks(chunk) {
        s.feed(piece)?;
    }
    s.finish()
}

fn check_deferring(rest: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    for piece in rest.chunks(chunk) {
        let (deferred, fed) = s.feed_deferring(piece);
        deferred.check(piece)?;
        fed?;
    }
    s.finish()
}

/// Arbitrary bytes into the streaming RDB checker, in chunks whose sizes
/// come from the first input byte, then `finish`. Must never panic, hang or
/// allocate without bound; errors are fine. A second checker leaves its
/// content checks deferred (as restore runs them, on another thread) and
/// must reach the same verdict, to the byte and the message.
pub fn rdb_check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // Up to 64 bytes, or (top bit set) the whole input in one chunk, where
    // most strings lie wholly inside it and are deferred.
    let chunk = if first & 0x80 != 0 {
        rest.len().max(1)
    } else {
        usize::from(first % 64) + 1
    };
    assert_eq!(check_inline(rest, chunk), check_deferring(rest, chunk));
}

/// Arbitrary bytes into the RESP decoder, frame after frame, and a prefix
/// of them.
pub fn resp(data: &[u8]) {
    let mut buf = data;
    // Decode frames one after another, as a client reading replies does.
    while let Ok(Some((_, used))) = decode(buf) {
        assert!(used > 0 && used <= buf.len());
        buf = &buf[used..];
    }
    // A prefix is either incomplete, an error, or a complete frame.
    if let Some(&b) = data.first() {
        let cut = usize::from(b) % (data.len() + 1);
        let _ = decode(&data[..cut]);
    }
}

/// The replica handshake, with options from the first byte, fed arbitrary
/// server replies in chunks.
pub fn handshake(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut hs = Handshake::new(Config {
        username: (first & 1 == 1).then(|| "u".to_string()),
        password: (first & 2 == 2).then(|| "p".to_string()),
        rdb_only: first & 4 == 4,
        force_sync: first & 8 == 8,
        announce_version: (first & 16 == 16).then(|| "9.0.0".to_string()),
        ..Config::default()
    });
    let chunk = usize::from(first >> 5) * 7 + 1;
    let mut buf: Vec<u8> = Vec::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            while hs.poll_transmit().is_some() {}
            match hs.handle_input(&buf) {
                Ok(0) => break,
                Ok(n) => {
                    assert!(n <= buf.len());
                    buf.drain(..n);
                }
                Err(_) => return,
            }
            while hs.poll_event().is_some() {}
            if hs.is_complete() {
                return;
            }
        }
    }
    let _ = hs.handle_eof();
}

/// RDB transfer framing: a header line picks `$len` or `$EOF:` framing,
/// then arbitrary chunks are fed through the reader.
pub fn payload(data: &[u8]) {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Some(framing) = Framing::from_header(&data[..nl]) else {
        return;
    };
    let rest = &data[nl + 1..];
    let chunk = rest.first().map_or(1, |&b| usize::from(b % 50) + 1);
    let mut r = PayloadReader::new(framing);
    let mut out = 0usize;
    let mut buf: Vec<u8> = Vec::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        match r.feed(&buf, &mut |b| out += b.len()) {
            Ok(n) => {
                assert!(n <= buf.len());
                buf.drain(..n);
            }
            Err(_) => return,
        }
        assert!(out as u64 == r.delivered());
        if r.is_complete() {
            return;
        }
    }
    let _ = r.handle_eof();
}

/// DUMP payloads: footer checks, and records built from them pass the
/// checker or fail cleanly.
pub fn dump(data: &[u8]) {
    let _ = Dump::parse(data);
    // The same bytes as a value with a valid footer: the writer embeds it,
    // and the checker must judge the result without panicking.
    let p = make_payload(data, 10);
    let Ok(d) = Dump::parse(&p) else { return };
    let mut out = Vec::new();
    let mut w = RdbWriter::new(10, &mut out);
    w.select_db(&mut out, 0, 1, 0);
    if w.key(&mut out, b"k", &d, Some(1)).is_err() {
        return;
    }
    w.finish(&mut out);
    let mut s = Checker::new();
    if s.feed(&out).is_ok() {
        let _ = s.finish();
    }
}

/// Arbitrary bytes as a primary's replication stream, split in pieces whose
/// size comes from the first byte. Must never panic or hold more than a
/// header line; the boundaries found must not depend on the pieces, must
/// not cover more bytes than given, and each command they delimit must
/// split into its arguments.
pub fn repl_stream(data: &[u8]) {
    use crate::repl_stream::{Splitter, command_args};
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first % 32) + 1;
    let run = |size: usize| {
        let mut s = Splitter::new();
        let mut found = Vec::new();
        let mut result = Ok(());
        for p in rest.chunks(size) {
            result = s.feed(p, &mut |b| found.push(b));
            if result.is_err() {
                break;
            }
        }
        (found, result.is_ok(), s.partial())
    };
    let (pieces, ok, partial) = run(piece);
    let (whole, whole_ok, whole_partial) = run(rest.len().max(1));
    let covered: u64 = pieces.iter().map(|b| b.len).sum();
    assert!(covered + if ok { partial } else { 0 } <= rest.len() as u64);
    assert_eq!(ok, whole_ok, "the verdict depends on the pieces");
    if ok {
        assert_eq!(pieces, whole, "the boundaries depend on the pieces");
        assert_eq!(partial, whole_partial);
        assert_eq!(covered + partial, rest.len() as u64);
    }
    let mut at = 0usize;
    for b in &pieces {
        let cmd = &rest[at..at + b.len as usize];
        assert!(
            command_args(cmd).is_some(),
            "a delimited command does not split"
        );
        at += b.len as usize;
    }
}

/// The slot check: arbitrary bytes as an RDB, checked with and without
/// [`Checker::with_slots`]; the first byte picks the slots (all, or one of
/// the three redis-cli ranges) and the chunk size. The slot check may only
/// add the failures it is for: it passes only files the plain check
/// passes (with the same summary), fails every file the plain check
/// fails, fails a passing file only for a key outside the slots or
/// outside database 0, and with every slot fails it exactly when it has
/// keys outside database 0. The same bytes as a key, cut at two places,
/// must hash to the slot [`key_slot`] gives.
pub fn slot_check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first >> 2) % 32 * 9 + 1;
    let slots = match first & 3 {
        0 => SlotSet::all(),
        i => match create_ranges(3) {
            Ok(r) => SlotSet::from_ranges([r[usize::from(i - 1)].clone()]).unwrap_or_default(),
            Err(_) => return,
        },
    };
    let all = first & 3 == 0;
    let plain = check_inline(rest, chunk);
    let mut c = Checker::with_slots(slots.clone());
    let sliced = rest
        .chunks(chunk)
        .try_for_each(|piece| c.feed(piece))
        .and_then(|()| c.finish());
    match (&plain, &sliced) {
        (Ok(p), Ok(s)) => {
            assert_eq!(p, s, "the slot check changed the summary");
            assert!(
                p.databases.keys().all(|&db| db == 0),
                "a key outside db 0 passed"
            );
        }
        (Err(_), Ok(_)) => panic!("the slot check passed a file the check fails"),
        (Ok(p), Err(e)) => match e.kind {
            CheckErrorKind::ClusterDb { db } => assert!(db != 0 && p.databases.contains_key(&db)),
            CheckErrorKind::KeyOutsideSlots { slot, .. } => {
                assert!(!all && !slots.contains(slot), "slot {slot} is in the set")
            }
            _ => panic!("the slot check failed a valid file: {e}"),
        },
        (Err(_), Err(_)) => {}
    }
    // Whole or in pieces, the same verdict.
    let mut whole = Checker::with_slots(slots);
    let verdict = whole.feed(rest).and_then(|()| whole.finish());
    assert_eq!(
        verdict.is_ok(),
        sliced.is_ok(),
        "the verdict depends on the chunks"
    );
    let key = rest;
    let a = usize::from(first) % (key.len() + 1);
    let b = a + (key.len() - a) / 2;
    let mut h = SlotHasher::new();
    for piece in [&key[..a], &key[a..b], &key[b..]] {
        h.update(piece);
    }
    assert_eq!(h.slot(), key_slot(key));
}

/// The outputs of a re-split, and its summary.
type Split = (Vec<Vec<u8>>, ResplitSummary);

/// Runs a re-split of `input` into `n`, in chunks of `chunk`.
fn resplit_in(n: usize, input: &[u8], chunk: usize) -> Option<Result<Split, CheckError>> {
    let mut r = Resplit::new(n).ok()?;
    let mut outs = vec![Vec::new(); n];
    for piece in input.chunks(chunk) {
        if let Err(e) = r.feed(piece, &mut |i, b| outs[i].extend_from_slice(b)) {
            return Some(Err(e));
        }
    }
    Some(
        r.finish(&mut |i, b| outs[i].extend_from_slice(b))
            .map(|s| (outs, s)),
    )
}

/// Arbitrary bytes as an RDB re-split by slot; the first byte picks the
/// number of outputs (1, 2, 3 or 5) and the chunk size. Must never panic
/// or hold more than the input. A split passes only inputs the check
/// passes; its outputs do not depend on the chunks, are each at most a
/// few bytes longer than the input, pass the slot check for their own
/// ranges, and hold the input's keys between them.
pub fn resplit(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let n = [1, 2, 3, 5][usize::from(first & 3)];
    let chunk = usize::from(first >> 2) % 32 * 13 + 1;
    let Some(split) = resplit_in(n, rest, chunk) else {
        return;
    };
    let Some(whole) = resplit_in(n, rest, rest.len().max(1)) else {
        return;
    };
    let plain = check_inline(rest, rest.len().max(1));
    let (outs, summary) = match (split, whole) {
        (Ok(a), Ok(b)) => {
            assert!(a == b, "the outputs depend on the chunks");
            a
        }
        (Err(_), Err(_)) => {
            return;
        }
        _ => panic!("the verdict depends on the chunks"),
    };
    let Ok(p) = plain else {
        panic!("a split passed a file the check fails");
    };
    assert_eq!(summary.input, p);
    let Ok(ranges) = create_ranges(n) else {
        return;
    };
    let mut keys = 0;
    for (i, out) in outs.iter().enumerate() {
        // Header and aux fields repeat in each; each adds SELECTDB 0 and
        // may end with a CRC where the input's was zero.
        assert!(out.len() <= rest.len() + 2, "output {i} grew");
        let Ok(set) = SlotSet::from_ranges([ranges[i].clone()]) else {
            return;
        };
        let mut c = Checker::with_slots(set);
        let s = c.feed(out).and_then(|()| c.finish());
        let s = match s {
            Ok(s) => s,
            Err(e) => panic!("output {i} of {n} fails its check: {e}"),
        };
        assert_eq!(s.total_keys(), summary.outputs[i].keys);
        assert_eq!(s.payload_len, summary.outputs[i].bytes);
        keys += s.total_keys();
    }
    assert_eq!(keys, p.total_keys(), "keys lost or made");
}
