//! A fuzz smoke run on stable Rust, in the normal test run: the fuzz
//! targets' own bodies (`replvault_protocol::fuzzing`, assertions included)
//! fed the real-server fixtures, any corpus a cargo-fuzz run left in
//! `protocol/fuzz/corpus/<target>/`, and a bounded number of inputs from a
//! seeded RNG: random bytes and mutations of the seeds (bit flips, byte
//! changes, truncations, cuts, insertions, splices). The same inputs on
//! every run; docs/FUZZING.md says what it covers and what it does not.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use replvault_protocol::cluster::Resplit;
use replvault_protocol::fuzzing;
use replvault_protocol::rdb::Checker;

/// Seeded xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        (0..self.below(max_len + 1))
            .map(|_| self.next() as u8)
            .collect()
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir` (ending in `ext` if given), sorted by name; none if
/// `dir` does not exist.
fn files(dir: &Path, ext: Option<&str>) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| ext.is_none_or(|ext| p.extension().is_some_and(|e| e == ext)))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable");
            (p, bytes)
        })
        .collect()
}

/// The real-server RDB files.
fn fixtures() -> Vec<Vec<u8>> {
    let v: Vec<Vec<u8>> = files(&manifest_dir().join("../fixtures/rdb"), Some("rdb"))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert!(v.len() >= 20, "fixtures/rdb has {} files", v.len());
    v
}

/// The replica transcripts (what a server sent after the handshake's
/// commands: replies, payload header, payload).
fn transcripts() -> Vec<Vec<u8>> {
    let v: Vec<Vec<u8>> = files(&manifest_dir().join("testdata"), Some("bin"))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert!(!v.is_empty(), "no transcripts in protocol/testdata");
    v
}

/// Most saved corpus inputs replayed per target: a long fuzz run's corpus
/// stays within the time budget.
const MAX_CORPUS: usize = 4000;

/// Runs one input; if it panics, saves it where cargo-fuzz can replay it
/// and fails with that path.
fn run_one(target: &str, run: fn(&[u8]), input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| run(input)).is_ok() {
        return;
    }
    let mut h = DefaultHasher::new();
    input.hash(&mut h);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fuzz-smoke-{target}-{:016x}", h.finish()));
    std::fs::write(&path, input).expect("the failing input saved");
    panic!(
        "{target}: {what} failed; input saved to {p} (replay: cargo fuzz run {target} {p})",
        p = path.display()
    );
}

/// Replays `protocol/fuzz/corpus/<target>/`, if there is one (cargo-fuzz
/// keeps it there; it is not in git).
fn replay_corpus(target: &str, run: fn(&[u8])) -> usize {
    let inputs = files(&manifest_dir().join("fuzz/corpus").join(target), None);
    for (path, bytes) in inputs.iter().take(MAX_CORPUS) {
        run_one(target, run, bytes, &path.display().to_string());
    }
    inputs.len().min(MAX_CORPUS)
}

/// Bytes a parser treats specially: length prefixes, opcodes, encodings.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xC0, 0xC3, 0xF0, 0xF5, 0xFA, 0xFE, 0xFF,
    b'\r', b'\n', b'$', b'*', b'+', b'-', b':',
];

/// One to three mutations of a seed.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(3) {
        let len = v.len();
        match rng.below(7) {
            // Bit flips.
            0 if len > 0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(len);
                    v[at] ^= 1 << rng.below(8);
                }
            }
            // A byte set to one a parser looks for.
            1 if len > 0 => {
                let at = rng.below(len);
                v[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            // Truncation.
            2 => v.truncate(rng.below(len + 1)),
            // A run cut out.
            3 => {
                let at = rng.below(len + 1);
                let end = at + rng.below(len - at + 1).min(1 + rng.below(64));
                v.drain(at..end);
            }
            // Random bytes inserted.
            4 => {
                let at = rng.below(len + 1);
                let bytes = rng.bytes(16);
                v.splice(at..at, bytes);
            }
            // A run of the seed repeated in place.
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let run = v[at..end].to_vec();
                v.splice(at..at, run);
            }
            // Splice: this seed's head, another's tail.
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                v.truncate(rng.below(len + 1));
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

/// Runs `target` over its seeds, its saved corpus, and `n` generated
/// inputs made by `generate`; asserts the generated inputs really vary.
fn smoke(
    target: &str,
    run: fn(&[u8]),
    seeds: &[Vec<u8>],
    n: usize,
    mut generate: impl FnMut(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
) {
    let start = Instant::now();
    for (i, s) in seeds.iter().enumerate() {
        run_one(target, run, s, &format!("seed {i}"));
    }
    let corpus = replay_corpus(target, run);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ target.len() as u64);
    let mut distinct = HashSet::new();
    let mut bytes = 0;
    for i in 0..n {
        let input = generate(&mut rng, seeds);
        let mut h = DefaultHasher::new();
        input.hash(&mut h);
        distinct.insert(h.finish());
        bytes += input.len();
        run_one(target, run, &input, &format!("generated input {i}"));
    }
    eprintln!(
        "{target}: {} seeds, {corpus} corpus inputs, {n} generated ({} distinct, {bytes} bytes) in {:.1?}",
        seeds.len(),
        distinct.len(),
        start.elapsed()
    );
    assert!(
        distinct.len() > n * 4 / 5,
        "{target}: only {} distinct of {n} generated inputs",
        distinct.len()
    );
}

/// A random byte in front picks the chunking (`rdb_check`) or the options
/// (`handshake`); half the time keep the seed's own.
fn reselect(mut v: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    if !v.is_empty() && rng.below(2) == 0 {
        v[0] = rng.next() as u8;
    }
    v
}

/// An `rdb_check` input: mostly a mutated fixture, some a valid header
/// then random bytes, some random bytes.
fn rdb_input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(8) {
        0 => {
            let magics: [&[u8]; 4] = [b"REDIS0011", b"REDIS0012", b"VALKEY080", b"REDIS0003"];
            let mut v = vec![rng.next() as u8];
            v.extend_from_slice(magics[rng.below(magics.len())]);
            v.extend(rng.bytes(256));
            v
        }
        1 => rng.bytes(256),
        _ => reselect(mutate(rng, seeds), rng),
    }
}

#[test]
fn rdb_check() {
    // The first byte picks the chunking: whole, 64-byte and 7-byte chunks.
    let mut seeds = Vec::new();
    for f in fixtures() {
        for selector in [0x80, 0x3F, 0x06] {
            let mut v = vec![selector];
            v.extend_from_slice(&f);
            seeds.push(v);
        }
    }
    smoke("rdb_check", fuzzing::rdb_check, &seeds, 20_000, rdb_input);
    // The mutants reach deep into the files: most are judged past the
    // first kilobyte, not all turned away at the header.
    let mut rng = Rng(7);
    let (mut deep, n) = (0, 1000);
    for _ in 0..n {
        let input = rdb_input(&mut rng, &seeds);
        let mut c = Checker::new();
        let at = match c.feed(input.get(1..).unwrap_or_default()) {
            Ok(()) => c.finish().map_or_else(|e| e.offset, |s| s.payload_len),
            Err(e) => e.offset,
        };
        deep += usize::from(at > 1024);
    }
    assert!(deep > n / 2, "{deep} of {n} inputs judged past byte 1024");
}

#[test]
fn resp() {
    let frames: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR bad\r\n",
        b":-42\r\n",
        b"$3\r\na\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"_\r\n",
        b"#t\r\n",
        b",1.5\r\n",
        b"*2\r\n:1\r\n$1\r\nx\r\n",
        b"%1\r\n+k\r\n:2\r\n",
        b"~1\r\n:1\r\n",
        b">2\r\n+a\r\n+b\r\n",
        b"=7\r\ntxt:abc\r\n",
        b"!5\r\nERR x\r\n",
        b"(123456789012345678901234567890\r\n",
        b"|1\r\n+a\r\n+b\r\n:5\r\n",
        b"+FULLRESYNC 2b1fddc90b6b65e5d84bc6b55e0222d5f25a41e0 0\r\n",
    ];
    let mut seeds: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
    seeds.push(frames.concat());
    smoke("resp", fuzzing::resp, &seeds, 100_000, |rng, seeds| {
        if rng.below(4) == 0 {
            return rng.bytes(64);
        }
        // A few frames in a row, then mutated.
        let mut v = Vec::new();
        for _ in 0..1 + rng.below(4) {
            v.extend_from_slice(&seeds[rng.below(seeds.len())]);
        }
        mutate(rng, &[v])
    });
}

#[test]
fn handshake() {
    // The replies up to and a little past the payload header, under a few
    // option bytes (the transcripts answer a handshake without AUTH,
    // version or rdb-only), in 1-, 22- and 50-byte chunks.
    let mut seeds = Vec::new();
    for t in transcripts() {
        for selector in [0x00, 0x60, 0xE0, 0x04, 0x08] {
            let mut v = vec![selector];
            v.extend_from_slice(&t[..t.len().min(160)]);
            seeds.push(v);
        }
    }
    for replies in [
        &b"-NOAUTH Authentication required.\r\n"[..],
        b"+OK\r\n+OK\r\n-ERR unknown command 'PSYNC'\r\n$5\r\nREDIS",
        b"\n\n+OK\r\n+OK\r\n+FULLRESYNC abc 12\r\n\n\n$EOF:0123456789012345678901234567890123456789\r\n",
        b"+OK\r\n-LOADING Redis is loading\r\n",
        b"+OK\r\n+OK\r\n+OK\r\n-ERR unknown option\r\n+FULLRESYNC x -1\r\n$0\r\n",
    ] {
        for selector in [0x00, 0x1F, 0x17] {
            let mut v = vec![selector];
            v.extend_from_slice(replies);
            seeds.push(v);
        }
    }
    smoke(
        "handshake",
        fuzzing::handshake,
        &seeds,
        50_000,
        |rng, seeds| match rng.below(8) {
            0 => rng.bytes(128),
            _ => reselect(mutate(rng, seeds), rng),
        },
    );
}

#[test]
fn payload() {
    // Each transcript's payload under both framings; the byte after the
    // header line also picks the chunk size.
    let mut seeds = Vec::new();
    let mark = b"0123456789abcdefghij0123456789ABCDEFGHIJ";
    for t in transcripts() {
        let at = t
            .windows(3)
            .position(|w| w == b"\r\n$")
            .expect("a payload header")
            + 2;
        let header_end = at + t[at..].iter().position(|&b| b == b'\n').expect("a line");
        let body = &t[header_end + 1..];
        let mut v = format!("${}\n", body.len().min(2000)).into_bytes();
        v.extend_from_slice(&body[..body.len().min(2000)]);
        seeds.push(v);
        let mut v = b"$EOF:".to_vec();
        v.extend_from_slice(mark);
        v.push(b'\n');
        v.extend_from_slice(&body[..body.len().min(2000)]);
        v.extend_from_slice(mark);
        v.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        seeds.push(v);
    }
    smoke(
        "payload",
        fuzzing::payload,
        &seeds,
        50_000,
        |rng, seeds| match rng.below(8) {
            0 => {
                let mut v = format!("${}\n", rng.below(300)).into_bytes();
                v.extend(rng.bytes(300));
                v
            }
            _ => mutate(rng, seeds),
        },
    );
}

#[test]
fn dump() {
    // Values as DUMP carries them (type byte, body): a string, an integer,
    // an LZF string, and the record bytes that follow the first key of
    // each fixture (some a valid value, the rest a run of records).
    let mut seeds: Vec<Vec<u8>> = vec![
        b"\x00\x05hello".to_vec(),
        b"\x00\xC0\x07".to_vec(),
        b"\x00\xC3\x05\x08\x01ab\x80\x01".to_vec(),
        b"\x02\x02\x01a\x01b".to_vec(),
        b"\x0B\x0A\x02\x00\x00\x00\x01\x00\x00\x00\x05\x00".to_vec(),
    ];
    for f in fixtures() {
        if let Some(at) = f.windows(2).position(|w| w == [0xFE, 0x00]) {
            seeds.push(f[at + 2..f.len().min(at + 2 + 4096)].to_vec());
        }
    }
    smoke(
        "dump",
        fuzzing::dump,
        &seeds,
        50_000,
        |rng, seeds| match rng.below(8) {
            0 => rng.bytes(256),
            _ => mutate(rng, seeds),
        },
    );
}

#[test]
fn repl_stream() {
    let commands: &[&[&[u8]]] = &[
        &[b"SELECT", b"1"],
        &[b"SET", b"k", b"v"],
        &[b"PING"],
        &[b"REPLCONF", b"GETACK", b"*"],
        &[b"MULTI"],
        &[b"EXEC"],
        &[b"PUBLISH", b"__sentinel__:hello", b"x"],
        &[b"HSET", b"h", b"f", b"\r\n"],
    ];
    let seeds: Vec<Vec<u8>> = commands
        .iter()
        .map(|c| {
            let mut out = vec![0x07];
            replvault_protocol::resp::encode_command(c, &mut out);
            out
        })
        .collect();
    smoke(
        "repl_stream",
        fuzzing::repl_stream,
        &seeds,
        50_000,
        |rng, seeds| {
            if rng.below(4) == 0 {
                return rng.bytes(96);
            }
            let mut v = vec![rng.below(256) as u8];
            for _ in 0..1 + rng.below(6) {
                v.extend_from_slice(&seeds[rng.below(seeds.len())][1..]);
            }
            mutate(rng, &[v])
        },
    );
}

/// The fixtures' database 0 (their first), cut where database 1 starts and
/// ended there: files a cluster shard could hold, so the re-split and the
/// slot check get past the first key of database 1.
fn db0_fixtures() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for f in fixtures() {
        let Some(at) = f.windows(2).position(|w| w == [0xFE, 0x01]) else {
            continue;
        };
        let mut cut = f[..at].to_vec();
        cut.push(0xFF);
        let crc = replvault_protocol::crc64::checksum(&cut);
        cut.extend(crc.to_le_bytes());
        let mut c = Checker::new();
        if c.feed(&cut).is_ok() && c.finish().is_ok() {
            v.push(cut);
        }
    }
    assert!(v.len() >= 10, "{} fixtures cut at database 1", v.len());
    v
}

/// Seeds for `resplit` and `slot_check`: each cluster-shaped file and a
/// few fixtures whole, under a few selector bytes (outputs or slots, and
/// chunk size).
fn cluster_seeds(selectors: &[u8]) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let whole = fixtures();
    for f in db0_fixtures().iter().chain(whole.iter().step_by(5)) {
        for &selector in selectors {
            let mut v = vec![selector];
            v.extend_from_slice(f);
            seeds.push(v);
        }
    }
    seeds
}

/// Half the time, the last eight bytes made the CRC-64 of the rest (the
/// first byte, the selector, aside): mutants then pass the trailer check,
/// so what is split or checked goes on to be judged whole.
fn fix_crc(mut v: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    if v.len() > 9 + 8 && rng.below(2) == 0 {
        let end = v.len() - 8;
        let crc = replvault_protocol::crc64::checksum(&v[1..end]);
        v[end..].copy_from_slice(&crc.to_le_bytes());
    }
    v
}

/// A `resplit` or `slot_check` input: mostly a mutated seed (its CRC often
/// made right), some a header and random bytes.
fn cluster_input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(8) {
        0 => {
            let mut v = vec![rng.next() as u8];
            v.extend_from_slice(b"REDIS0011\xfe\x00");
            v.extend(rng.bytes(256));
            fix_crc(v, rng)
        }
        _ => fix_crc(reselect(mutate(rng, seeds), rng), rng),
    }
}

#[test]
fn resplit() {
    // 1, 2, 3 and 5 outputs; chunks of 1, 14 and 300 bytes.
    let seeds = cluster_seeds(&[0x00, 0x05, 0x5A, 0x8B]);
    smoke("resplit", fuzzing::resplit, &seeds, 800, cluster_input);
    // The mutants reach deep into the files, and some are split whole
    // (so their outputs are checked too).
    let mut rng = Rng(11);
    let (mut deep, mut whole, n) = (0, 0, 300);
    for _ in 0..n {
        let input = cluster_input(&mut rng, &seeds);
        let mut r = Resplit::new(2).expect("valid");
        let rest = input.get(1..).unwrap_or_default();
        let at = match r.feed(rest, &mut |_, _| {}) {
            Ok(()) => match r.finish(&mut |_, _| {}) {
                Ok(s) => {
                    whole += 1;
                    s.input.payload_len
                }
                Err(e) => e.offset,
            },
            Err(e) => e.offset,
        };
        deep += usize::from(at > 1024);
    }
    assert!(deep > n / 2, "{deep} of {n} inputs judged past byte 1024");
    assert!(whole >= 5, "{whole} of {n} inputs split");
}

#[test]
fn slot_check() {
    // All slots, and each of three ranges; chunks of 1, 10 and 280 bytes.
    let seeds = cluster_seeds(&[0x00, 0x05, 0x7E, 0x07]);
    smoke(
        "slot_check",
        fuzzing::slot_check,
        &seeds,
        1_500,
        |rng, seeds| match rng.below(8) {
            0 => {
                // Keys made of the bytes the hash-tag rule looks at.
                let mut v = vec![rng.next() as u8];
                v.extend((0..rng.below(24)).map(|_| b"{}ab"[rng.below(4)]));
                v
            }
            _ => cluster_input(rng, seeds),
        },
    );
}
