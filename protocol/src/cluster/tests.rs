//! The slot check and the re-splitter against synthetic files and the
//! real-server fixtures (`fixtures/rdb`).
//!
//! The fixtures hold databases 0, 1, 5 and 15, which a cluster cannot; the
//! re-split tests take their database 0 first (the file cut where
//! database 1 starts and ended there, checked against the counts the
//! server reported for database 0), then split that.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{Resplit, ResplitSummary, SlotSet, create_ranges, key_slot};
use crate::crc64;
use crate::dump::{put_len, put_str};
use crate::rdb::keys::{KeyTrack, REPLICATION_AUX};
use crate::rdb::{CheckError, CheckErrorKind, Checker, Checksum, Summary};

/// Seeded xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A greedy LZF compressor (literal runs and back-references to the last
/// place each 3-byte sequence was seen), enough to build compressed keys.
fn lzf_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let flush = |out: &mut Vec<u8>, lit: &mut Vec<u8>| {
        for run in lit.chunks(32) {
            out.push((run.len() - 1) as u8);
            out.extend_from_slice(run);
        }
        lit.clear();
    };
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut p = 0;
    while p < data.len() {
        let found = data
            .get(p..p + 3)
            .and_then(|k| seen.get(k).copied())
            .filter(|&at| p - at <= 8192);
        if let Some(p3) = data.get(p..p + 3) {
            seen.insert(p3, p);
        }
        let Some(at) = found else {
            lit.push(data[p]);
            p += 1;
            continue;
        };
        let mut len = 0;
        while len < 264 && p + len < data.len() && data[at + len] == data[p + len] {
            len += 1;
        }
        flush(&mut out, &mut lit);
        let (l, b) = (len - 2, p - at - 1);
        if l < 7 {
            out.extend([((l << 5) | (b >> 8)) as u8, b as u8]);
        } else {
            out.extend([((7 << 5) | (b >> 8)) as u8, (l - 7) as u8, b as u8]);
        }
        p += len;
    }
    flush(&mut out, &mut lit);
    out
}

/// A string as Redis saves it: an integer when it is one's canonical text
/// and fits 32 bits, LZF when longer than 20 bytes and that is shorter,
/// else raw. Strings starting `raw:` stay raw (long strings a server with
/// `rdbcompression no` writes).
fn rdb_string(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(n) = std::str::from_utf8(s)
        .ok()
        .filter(|t| t.len() <= 11)
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|n| n.to_string().as_bytes() == s)
    {
        if let Ok(n) = i8::try_from(n) {
            v.push(0xC0);
            v.extend(n.to_le_bytes());
            return v;
        } else if let Ok(n) = i16::try_from(n) {
            v.push(0xC1);
            v.extend(n.to_le_bytes());
            return v;
        } else if let Ok(n) = i32::try_from(n) {
            v.push(0xC2);
            v.extend(n.to_le_bytes());
            return v;
        }
    }
    if s.len() > 20 && !s.starts_with(b"raw:") {
        let c = lzf_compress(s);
        if c.len() < s.len() {
            v.push(0xC3);
            put_len(&mut v, c.len() as u64);
            put_len(&mut v, s.len() as u64);
            v.extend(c);
            return v;
        }
    }
    put_str(&mut v, s);
    v
}

fn aux(v: &mut Vec<u8>, k: &str, val: &str) {
    v.push(0xFA);
    put_str(v, k.as_bytes());
    put_str(v, val.as_bytes());
}

fn end(mut v: Vec<u8>) -> Vec<u8> {
    v.push(0xFF);
    let crc = crc64::checksum(&v);
    v.extend(crc.to_le_bytes());
    v
}

/// The keys of the synthetic file: short and long, tagged and not,
/// integer-like, binary, empty, one over 64 KiB raw, one of 1.5 MiB
/// (LZF), and a thousand random ones.
fn synthetic_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = [
        &b"123456789"[..],
        b"-5",
        b"70000",
        b"4294967296",
        b"",
        b"{user1000}.following",
        b"{user1000}.followers",
        b"foo{}{bar}",
        b"foo{{bar}}zap",
        b"foo{bar}{zap}",
        b"\x00\xff{\xfe}binary",
        b"a key long enough to be compressed, compressed, compressed",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    // Raw and tagged: its slot is known at its fifth byte.
    let mut long = b"raw:{tag}".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100_000));
    keys.push(long);
    // Raw and untagged: hashed whole, over several pieces.
    let mut rng = Rng(99);
    let mut long = b"raw:".to_vec();
    long.extend((0..70_000).map(|_| b'a' + rng.below(26) as u8));
    keys.push(long);
    // 1.5 MiB of LZF output: decoded a window at a time.
    let mut huge: Vec<u8> = b"huge:".to_vec();
    huge.extend((0..1_500_000u32).map(|i| b'a' + (i / 1000 % 26) as u8));
    keys.push(huge);
    let mut rng = Rng(7);
    for i in 0..1000 {
        let k = match rng.below(4) {
            0 => format!("user:{i}:{{u{}}}:session", rng.below(50)),
            1 => format!("key:{i}:{}", "z".repeat(rng.below(40) as usize)),
            2 => format!("{{t{}}}.{i}", rng.below(1000)),
            _ => format!("k{i}"),
        };
        keys.push(k.into_bytes());
    }
    keys
}

/// The synthetic file (RDB 11): aux fields (the source's replication
/// identity among them), a module aux record, a function library, then
/// the keys in database 0 with values of four types, some with an expiry,
/// an LRU idle time or an LFU frequency, one value of 1 MiB. `as_output`:
/// the file a one-output re-split must make of it (no RESIZEDB, no
/// replication aux fields, SELECTDB 0 just before the first key).
fn synthetic(as_output: bool) -> Vec<u8> {
    let mut v = b"REDIS0011".to_vec();
    aux(&mut v, "redis-ver", "7.2.4");
    if !as_output {
        aux(&mut v, "repl-stream-db", "0");
        aux(
            &mut v,
            "repl-id",
            "2b1fddc90b6b65e5d84bc6b55e0222d5f25a41e0",
        );
        aux(&mut v, "repl-offset", "1234");
    }
    aux(&mut v, "aof-base", "0");
    // Module aux: type id 1 (encoding version 0), when 2, a uint, EOF.
    v.extend([0xF7, 0x81]);
    v.extend((1u64 << 10).to_be_bytes());
    v.extend([2, 2, 2, 7, 0]);
    v.push(0xF5);
    put_str(
        &mut v,
        b"#!lua name=mylib\nredis.register_function('f', function() return 1 end)",
    );
    v.extend([0xFE, 0x00]);
    let keys = synthetic_keys();
    if !as_output {
        v.push(0xFB);
        put_len(&mut v, keys.len() as u64);
        put_len(&mut v, 10);
    }
    let mut rng = Rng(3);
    for (i, key) in keys.iter().enumerate() {
        if i % 7 == 3 {
            v.push(0xFC);
            v.extend((4_102_444_800_000u64 + i as u64).to_le_bytes());
        }
        match i % 11 {
            5 => {
                v.push(0xF8);
                put_len(&mut v, i as u64 * 1000);
            }
            6 => v.extend([0xF9, (i % 256) as u8]),
            _ => {}
        }
        let kind = rng.below(4);
        match if i == 20 { 0 } else { kind } {
            0 => {
                v.push(0);
                v.extend(rdb_string(key));
                let value = if i == 20 {
                    [&b"raw:"[..], &[b'v'; 1 << 20]].concat()
                } else {
                    format!("value {i}").into_bytes()
                };
                v.extend(rdb_string(&value));
            }
            1 => {
                v.push(2);
                v.extend(rdb_string(key));
                put_len(&mut v, 3);
                for m in ["a", "bb", "12"] {
                    v.extend(rdb_string(m.as_bytes()));
                }
            }
            2 => {
                v.push(4);
                v.extend(rdb_string(key));
                put_len(&mut v, 2);
                for f in ["f1", "v1", "f2", "v2"] {
                    v.extend(rdb_string(f.as_bytes()));
                }
            }
            _ => {
                v.push(5);
                v.extend(rdb_string(key));
                put_len(&mut v, 1);
                v.extend(rdb_string(b"member"));
                v.extend(1.5f64.to_le_bytes());
            }
        }
    }
    end(v)
}

fn check(bytes: &[u8]) -> Result<Summary, CheckError> {
    let mut c = Checker::new();
    c.feed(bytes)?;
    c.finish()
}

fn check_slots(bytes: &[u8], slots: &SlotSet, chunk: usize) -> Result<Summary, CheckError> {
    let mut c = Checker::with_slots(slots.clone());
    for piece in bytes.chunks(chunk.max(1)) {
        c.feed(piece)?;
    }
    c.finish()
}

/// The keys of database 0, in file order, as the checker reads them.
fn keys_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut track = KeyTrack::new(None, false);
    track.keys = Some(Vec::new());
    let mut c = Checker::tracking(track);
    c.feed(bytes).expect("a valid file");
    let keys = c
        .track_mut()
        .and_then(|t| t.keys.take())
        .expect("keys kept");
    c.finish().expect("a valid file");
    keys
}

type Split = (Vec<Vec<u8>>, ResplitSummary);

fn run_split(mut r: Resplit, input: &[u8], chunk: usize) -> Result<Split, CheckError> {
    let mut outs = vec![Vec::new(); r.outputs()];
    for piece in input.chunks(chunk.max(1)) {
        r.feed(piece, &mut |i, b| outs[i].extend_from_slice(b))?;
    }
    let summary = r.finish(&mut |i, b| outs[i].extend_from_slice(b))?;
    Ok((outs, summary))
}

fn split(n: usize, input: &[u8], chunk: usize) -> Result<Split, CheckError> {
    run_split(Resplit::new(n).expect("a valid count"), input, chunk)
}

fn aux_without_replication(s: &Summary) -> BTreeMap<String, String> {
    let mut aux = s.aux.clone();
    aux.retain(|k, _| !REPLICATION_AUX.contains(&k.as_str()));
    aux
}

/// Splits `input` (keys only in database 0) into `n` and checks every
/// promise of [`Resplit`]; the outputs.
fn check_split(input: &[u8], n: usize, chunks: &[usize], name: &str) -> Vec<Vec<u8>> {
    let whole = check(input).unwrap_or_else(|e| panic!("{name}: {e}"));
    let in_keys = keys_of(input);
    let order: HashMap<&[u8], usize> = in_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_slice(), i))
        .collect();
    assert_eq!(order.len(), in_keys.len(), "{name}: duplicate keys");
    assert_eq!(in_keys.len() as u64, whole.total_keys(), "{name}");
    let (outs, summary) = split(n, input, 4096).unwrap_or_else(|e| panic!("{name}: {e}"));
    for &chunk in chunks {
        let (o, s) = split(n, input, chunk).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(o == outs, "{name}: chunks of {chunk} give other outputs");
        assert_eq!(s, summary, "{name}: chunks of {chunk}");
    }
    assert_eq!(summary.input, whole, "{name}");
    let ranges = create_ranges(n).expect("a valid count");
    let mut all_keys = 0;
    let mut expires = 0;
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = vec![false; in_keys.len()];
    for (i, out) in outs.iter().enumerate() {
        let what = format!("{name}: output {i} of {n}");
        let set = SlotSet::from_ranges([ranges[i].clone()]).expect("valid");
        let s = check_slots(out, &set, 4096).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(check(out).as_ref(), Ok(&s), "{what}");
        let o = &summary.outputs[i];
        assert_eq!(o.slots, set, "{what}");
        assert_eq!(o.keys, s.total_keys(), "{what}");
        assert_eq!(o.expires, s.total_expires(), "{what}");
        assert_eq!(o.bytes, out.len() as u64, "{what}");
        assert!(s.databases.keys().all(|&db| db == 0), "{what}");
        assert_eq!(s.magic, whole.magic, "{what}");
        assert_eq!(s.rdb_version, whole.rdb_version, "{what}");
        assert_eq!(out[..9], input[..9], "{what}");
        match (o.crc64, &s.checksum) {
            (Some(c), Checksum::Verified { crc64 }) => assert_eq!(c, *crc64, "{what}"),
            (None, Checksum::Absent) => {}
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(s.aux, aux_without_replication(&whole), "{what}");
        assert_eq!(s.functions, whole.functions, "{what}");
        let module_aux = |s: &Summary| -> Vec<(String, u64)> {
            s.modules.iter().map(|(k, m)| (k.clone(), m.aux)).collect()
        };
        let want: Vec<_> = module_aux(&whole)
            .into_iter()
            .filter(|&(_, a)| a > 0)
            .collect();
        let got: Vec<_> = module_aux(&s).into_iter().filter(|&(_, a)| a > 0).collect();
        assert_eq!(got, want, "{what}");
        // Keys in the input's order, each in this output's slots.
        let mut last = None;
        for k in keys_of(out) {
            assert!(set.contains(key_slot(&k)), "{what}");
            let at = order[k.as_slice()];
            assert!(!seen[at], "{what}: a key twice");
            seen[at] = true;
            assert!(last < Some(at), "{what}: keys out of order");
            last = Some(at);
        }
        all_keys += s.total_keys();
        expires += s.total_expires();
        for (t, c) in s.types {
            *types.entry(t).or_default() += c;
        }
        // Split again by the same ranges: every key stays, byte for byte.
        let (again, _) = split(n, out, 65536).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(again[i] == *out, "{what}: not a fixed point");
        for (j, other) in again.iter().enumerate() {
            if j != i {
                assert_eq!(check(other).map(|s| s.total_keys()), Ok(0), "{what}");
            }
        }
    }
    assert!(seen.iter().all(|&s| s), "{name}: keys lost");
    assert_eq!(all_keys, whole.total_keys(), "{name}");
    assert_eq!(expires, whole.total_expires(), "{name}");
    assert_eq!(types, whole.types, "{name}");
    outs
}

#[test]
fn the_synthetic_file_splits_into_1_2_3_and_5() {
    let input = synthetic(false);
    let s = check(&input).expect("valid");
    assert_eq!(s.total_keys(), synthetic_keys().len() as u64);
    assert!(input.len() > 1 << 20, "the 1 MiB value is raw");
    assert_eq!(keys_of(&input), synthetic_keys());
    for n in [1, 2, 3, 5] {
        let outs = check_split(&input, n, &[7, 1 << 20], &format!("synthetic, {n}"));
        if n == 1 {
            // The input as a standalone file: no size hints, no
            // replication identity, every other byte the same.
            assert!(outs[0] == synthetic(true), "one output");
        }
    }
    // One byte at a time (slow: once).
    let (one, _) = split(3, &input, 1).expect("valid");
    assert!(one == split(3, &input, 4096).expect("valid").0);
}

/// Re-splits `inputs` (whole RDBs, one after another) into `n`.
fn merge(n: usize, inputs: &[Vec<u8>], chunk: usize) -> Result<Split, CheckError> {
    let mut r = Resplit::new(n).expect("a valid count");
    let mut outs = vec![Vec::new(); n];
    for (j, input) in inputs.iter().enumerate() {
        if j > 0 {
            r.next_input()?;
        }
        for piece in input.chunks(chunk) {
            r.feed(piece, &mut |i, b| outs[i].extend_from_slice(b))?;
        }
    }
    let summary = r.finish(&mut |i, b| outs[i].extend_from_slice(b))?;
    Ok((outs, summary))
}

fn sorted(mut keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    keys.sort();
    keys
}

/// Three shards re-split into two (and one, and five) hold the keys that
/// splitting the whole file into two gives, each output a complete RDB
/// of its own slots with the first input's aux fields, function
/// libraries and module data once.
#[test]
fn several_inputs_re_split_as_one() {
    let input = synthetic(false);
    let (shards, _) = split(3, &input, 1 << 16).expect("valid");
    for n in [1, 2, 5] {
        let (direct, _) = split(n, &input, 1 << 16).expect("valid");
        for chunk in [7, 1 << 20] {
            let (merged, summary) = merge(n, &shards, chunk).expect("valid");
            assert_eq!(merged.len(), n);
            for (i, (m, d)) in merged.iter().zip(&direct).enumerate() {
                let set = summary.outputs[i].slots.clone();
                let got = check_slots(m, &set, 4096)
                    .unwrap_or_else(|e| panic!("{n} outputs, output {i}: {e}"));
                let want = check(d).expect("valid");
                assert_eq!(sorted(keys_of(m)), sorted(keys_of(d)), "{n}: output {i}");
                assert_eq!(got.aux, want.aux, "{n}: output {i}");
                assert_eq!(got.functions, want.functions, "{n}: output {i}");
                assert_eq!(got.modules, want.modules, "{n}: output {i}");
                assert_eq!(got.total_keys(), want.total_keys());
            }
        }
    }
    // A later input of another RDB version is refused, naming both.
    let mut other = shards[1].clone();
    other[..9].copy_from_slice(b"REDIS0010");
    let body = other.len() - 8;
    let crc = crc64::checksum(&other[..body]);
    other[body..].copy_from_slice(&crc.to_le_bytes());
    let e = merge(2, &[shards[0].clone(), other], 4096).expect_err("versions differ");
    assert!(
        e.to_string()
            .contains("version 10, the first was REDIS version 11"),
        "{e}"
    );
    // A broken later input fails the merge.
    let mut bad = shards[2].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = merge(2, &[shards[0].clone(), shards[1].clone(), bad], 4096).expect_err("CRC");
    assert!(e.to_string().contains("CRC"), "{e}");
}

#[test]
fn values_stream_through_and_tagged_keys_are_not_held() {
    let input = synthetic(false);
    for chunk in [4096, 1 << 20] {
        let mut r = Resplit::new(3).expect("valid");
        for piece in input.chunks(chunk) {
            r.feed(piece, &mut |_, _| {}).expect("valid");
        }
        // The longest raw untagged key (70 KB) is held up to the piece its
        // end is in (as is the LZF form of the 1.5 MiB one, far shorter);
        // the 1 MiB value and the 100 KB tagged key are not held.
        assert!(r.peak_held < 70_100, "{}", r.peak_held);
        if chunk == 4096 {
            assert!(r.peak_held > 70_000 - 4096, "{}", r.peak_held);
        }
        r.finish(&mut |_, _| {}).expect("valid");
    }
}

/// A fixture's database 0, as a file of its own: the servers write it
/// first, so the file cut at `SELECTDB 1` and ended there (EOF, CRC-64)
/// is it, when that passes the check with keys in database 0 only.
fn db0(bytes: &[u8], name: &str) -> Vec<u8> {
    let total = check(bytes)
        .map(|s| s.total_keys())
        .expect("a valid fixture");
    for at in (0..bytes.len().saturating_sub(1)).filter(|&i| bytes[i..i + 2] == [0xFE, 0x01]) {
        let cut = end(bytes[..at].to_vec());
        if let Ok(s) = check(&cut)
            && s.databases.keys().all(|&db| db == 0)
        {
            assert!(s.total_keys() < total, "{name}");
            return cut;
        }
    }
    assert_eq!(total, 0, "{name}: no database 1");
    bytes.to_vec()
}

/// `file` without its RESIZEDB record, as a one-output split writes it.
fn without_resizedb(file: &[u8]) -> Vec<u8> {
    let Some(at) = file.windows(3).position(|w| w == [0xFE, 0x00, 0xFB]) else {
        return file.to_vec();
    };
    let len = |b: u8| match b >> 6 {
        0 => 1,
        1 => 2,
        _ if b == 0x80 => 5,
        _ => 9,
    };
    let first = at + 3;
    let second = first + len(file[first]);
    let after = second + len(file[second]);
    let body = [&file[..at + 2], &file[after..file.len() - 9]].concat();
    end(body)
}

fn fixtures() -> Vec<(PathBuf, Vec<u8>, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/rdb");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/rdb")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rdb"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "{}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable");
            let exp = std::fs::read(p.with_extension("expected.json")).expect("expected");
            let exp = serde_json::from_slice(&exp).expect("json");
            (p, bytes, exp)
        })
        .collect()
}

#[test]
fn fixtures_database_0_splits_into_1_2_3_and_5() {
    let mut redis8 = false;
    let mut valkey9 = false;
    for (path, bytes, exp) in fixtures() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let input = db0(&bytes, &name);
        // Database 0 taken alone: what the server counted for it.
        let s = check(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = &exp["databases"]["0"];
        let keys = want["keys"].as_u64().unwrap_or(0);
        assert_eq!(s.total_keys(), keys, "{name}");
        assert_eq!(
            s.total_expires(),
            want["expires"].as_u64().unwrap_or(0),
            "{name}"
        );
        assert!(matches!(s.checksum, Checksum::Verified { .. }), "{name}");
        redis8 |= name.starts_with("redis-8") && keys > 0;
        valkey9 |= name.starts_with("valkey-9") && keys > 0;
        for n in [1, 2, 3, 5] {
            let chunks: &[usize] = if n == 3 { &[1, 7] } else { &[7] };
            let outs = check_split(&input, n, chunks, &format!("{name}, {n}"));
            if n == 1 {
                // No repl-* aux fields in these (saved, not replicated).
                assert!(outs[0] == without_resizedb(&input), "{name}");
            }
        }
        // The whole fixture, other databases and all, is refused: a
        // cluster has only database 0.
        if s.total_keys() < check(&bytes).expect("valid").total_keys() {
            let e = split(2, &bytes, 4096).expect_err("other databases");
            assert_eq!(e.kind, CheckErrorKind::ClusterDb { db: 1 }, "{name}");
            let e = check_slots(&bytes, &SlotSet::all(), 4096).expect_err("db 1");
            assert_eq!(e.kind, CheckErrorKind::ClusterDb { db: 1 }, "{name}");
        } else {
            assert!(bytes == input, "{name}");
        }
    }
    assert!(redis8 && valkey9);
}

#[test]
fn a_key_outside_the_slots_fails_the_check_naming_it() {
    let input = synthetic(false);
    let keys = synthetic_keys();
    // Each key of a few kinds in turn left out of the set: the check
    // names it, its slot and its record, however the file is cut.
    let picks = [0usize, 1, 4, 5, 11, 12, 13, 14, 40];
    let mut tested = Vec::new();
    for &pick in &picks {
        let key = &keys[pick];
        let slot = key_slot(key);
        let mut set = SlotSet::new();
        for k in &keys {
            set.insert(key_slot(k)).expect("a slot");
        }
        // Another key sharing the slot would be named first.
        if keys[..pick].iter().any(|k| key_slot(k) == slot) {
            continue;
        }
        let mut without = SlotSet::new();
        for r in set.ranges() {
            for s in r {
                if s != slot {
                    without.insert(s).expect("a slot");
                }
            }
        }
        check_slots(&input, &set, 4096).expect("every key's slot");
        let want = check_slots(&input, &without, input.len()).expect_err("one slot missing");
        let CheckErrorKind::KeyOutsideSlots {
            key: shown,
            slot: s,
        } = &want.kind
        else {
            panic!("{want}");
        };
        assert_eq!(*s, slot);
        let lossy = String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned();
        assert!(shown.starts_with(&lossy), "{shown:?}");
        if key.len() > 64 {
            assert!(
                shown.ends_with(&format!("… ({} bytes)", key.len())),
                "{shown}"
            );
        } else {
            assert_eq!(*shown, lossy);
        }
        // The offset is the record's type byte.
        let at = usize::try_from(want.offset).expect("small");
        let body = rdb_string(key);
        let rest = &input[at..];
        assert!(matches!(rest[0], 0 | 2 | 4 | 5), "a type byte at {at}");
        assert!(rest[1..].starts_with(&body), "offset {at}");
        for chunk in [1, 7, 4096] {
            // One byte at a time is slow on this file: for two keys.
            if chunk == 1 && ![0, 14].contains(&pick) {
                continue;
            }
            assert_eq!(
                check_slots(&input, &without, chunk).as_ref(),
                Err(&want),
                "chunks of {chunk}"
            );
        }
        assert_eq!(
            want.to_string(),
            format!(
                "invalid RDB at byte {at}: key \"{shown}\" hashes to slot {slot}, outside the expected slots"
            )
        );
        // The re-splitter refuses it too, with outputs not holding it.
        let sets: Vec<SlotSet> = create_ranges(2)
            .expect("valid")
            .into_iter()
            .map(|r| {
                let mut s = SlotSet::new();
                for x in r.filter(|&x| x != slot) {
                    s.insert(x).expect("a slot");
                }
                s
            })
            .collect();
        let r = Resplit::with_slot_sets(sets).expect("disjoint");
        assert_eq!(run_split(r, &input, 4096).err(), Some(want));
        tested.push(pick);
    }
    // Among them: an integer key, the long raw ones, the LZF one.
    for pick in [0, 12, 13, 14] {
        assert!(tested.contains(&pick), "{pick} not tested: {tested:?}");
    }
}

#[test]
fn keys_outside_database_0_are_refused() {
    let mut v = b"REDIS0011".to_vec();
    v.extend([0xFE, 0x00, 0x00, 0x01, b'a', 0x01, b'x']);
    let at = v.len() + 2;
    v.extend([0xFE, 0x03, 0x00, 0x01, b'b', 0x01, b'y']);
    let v = end(v);
    check(&v).expect("valid");
    let want = || CheckError {
        offset: at as u64,
        kind: CheckErrorKind::ClusterDb { db: 3 },
    };
    assert_eq!(check_slots(&v, &SlotSet::all(), 1), Err(want()));
    assert_eq!(split(1, &v, 1).err(), Some(want()));
    assert_eq!(
        want().to_string(),
        format!(
            "invalid RDB at byte {at}: a key in database 3: a Redis Cluster has only database 0"
        )
    );
    // A SELECTDB with no keys after it is no key outside database 0.
    let mut v = b"REDIS0011".to_vec();
    v.extend([0xFE, 0x02, 0xFE, 0x00, 0x00, 0x01, b'a', 0x01, b'x']);
    let v = end(v);
    check_slots(&v, &SlotSet::all(), 4096).expect("valid");
    let (outs, s) = split(2, &v, 4096).expect("valid");
    assert_eq!(s.outputs.iter().map(|o| o.keys).sum::<u64>(), 1);
    // Each output: header, SELECTDB 0 if it has keys, the key, EOF, CRC.
    let body: &[u8] = &[0xFE, 0x00, 0x00, 0x01, b'a', 0x01, b'x'];
    let i = usize::from(key_slot(b"a") >= 8192);
    assert_eq!(outs[i], end([&b"REDIS0011"[..], body].concat()));
    assert_eq!(outs[1 - i], end(b"REDIS0011".to_vec()));
}

#[test]
fn old_versions_and_disabled_checksums() {
    // RDB 4 has no trailer, nor do its outputs.
    let mut v = b"REDIS0004".to_vec();
    v.extend([0xFE, 0x00, 0x00, 0x03]);
    v.extend(b"foo");
    v.extend([0x01, b'x', 0x00, 0x03]);
    v.extend(b"bar");
    v.extend([0x01, b'y', 0xFF]);
    let s = check(&v).expect("valid");
    assert_eq!(s.checksum, Checksum::Absent);
    let outs = check_split(&v, 2, &[1], "RDB 4");
    assert!(outs.iter().all(|o| o.last() == Some(&0xFF)));
    let (_, s) = split(2, &v, 4096).expect("valid");
    assert!(s.outputs.iter().all(|o| o.crc64.is_none()));
    // A zero trailer (rdbchecksum no): the outputs get a real one.
    let mut v = end(b"REDIS0011\xfe\x00\x00\x03foo\x01x".to_vec());
    let n = v.len();
    v[n - 8..].fill(0);
    assert_eq!(check(&v).expect("valid").checksum, Checksum::Disabled);
    let (outs, _) = split(1, &v, 4096).expect("valid");
    assert!(matches!(
        check(&outs[0]).expect("valid").checksum,
        Checksum::Verified { .. }
    ));
}

#[test]
fn idle_or_freq_not_followed_by_a_key_is_refused() {
    for (op, arg) in [(0xF8u8, 5u8), (0xF9, 7)] {
        let mut v = b"REDIS0011".to_vec();
        v.extend([0xFE, 0x00, op, arg]);
        aux(&mut v, "x", "y");
        v.extend([0x00, 0x01, b'a', 0x01, b'x']);
        let v = end(v);
        check(&v).expect("the checker leaves this to the loader");
        let e = split(2, &v, 4096).expect_err("no key after");
        assert_eq!(e.offset, 13, "{e}");
        assert!(e.to_string().contains("not followed by a key"), "{e}");
    }
}

#[test]
fn errors_in_the_input_fail_the_split() {
    let input = synthetic(false);
    // A flipped byte in the middle of a value: the CRC catches it at the
    // end; cut short: truncated.
    let mut bad = input.clone();
    let at = input.len() / 2;
    bad[at] ^= 0x40;
    // (Where in a corrupt LZF string the failure is reported depends on
    // how much of it each step saw, which differs with the chunking and,
    // for keys, with the slot check's smaller steps; what failed does not.)
    let want = check(&bad).expect_err("corrupt");
    let got = split(3, &bad, 4096).expect_err("corrupt");
    assert_eq!(got.kind, want.kind);
    let cut = &input[..input.len() - 3];
    assert_eq!(split(3, cut, 4096).err(), check(cut).err());
    // After an error, feeding more fails too.
    let mut r = Resplit::new(2).expect("valid");
    assert!(r.feed(b"NOTANRDB!", &mut |_, _| {}).is_err());
    assert!(r.feed(&input, &mut |_, _| {}).is_err());
    assert!(r.finish(&mut |_, _| {}).is_err());
}

#[test]
fn output_sets_must_not_overlap() {
    use super::SlotError;
    assert_eq!(Resplit::new(0).err(), Some(SlotError::Count(0)));
    assert_eq!(Resplit::new(16385).err(), Some(SlotError::Count(16385)));
    assert_eq!(
        Resplit::with_ranges([0..=100, 100..=200]).err(),
        Some(SlotError::Overlap(100))
    );
    assert_eq!(
        Resplit::with_slot_sets(Vec::new()).err(),
        Some(SlotError::Count(0))
    );
    let r = Resplit::with_ranges([0..=8191, 8192..=16383]).expect("valid");
    assert_eq!(r.outputs(), 2);
    assert_eq!(r.slots(1).map(|s| s.to_string()), Some("8192-16383".into()));
    // The ranges redis-cli gives 16384 primaries: one slot each.
    let r = Resplit::new(16384).expect("valid");
    let (outs, s) = run_split(r, &synthetic(false), 1 << 20).expect("valid");
    assert_eq!(outs.len(), 16384);
    for (i, o) in s.outputs.iter().enumerate() {
        assert_eq!(o.slots.ranges(), vec![i as u16..=i as u16]);
    }
    assert_eq!(
        s.outputs.iter().map(|o| o.keys).sum::<u64>(),
        synthetic_keys().len() as u64
    );
}
