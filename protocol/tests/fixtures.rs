//! The checker against RDB files written by real servers (fixtures/rdb):
//! accepted in any chunking, with the counts the server itself reported;
//! every single-byte flip (or a wide sample) and every truncation rejected.

use std::path::{Path, PathBuf};

use replvault_protocol::rdb::{CheckError, CheckErrorKind, Checker, Checksum, Summary};
use serde_json::Value;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/rdb");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rdb"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", dir.display());
    v
}

fn check(bytes: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    for c in bytes.chunks(chunk.max(1)) {
        s.feed(c)?;
    }
    s.finish()
}

/// `check` with the content checks deferred and run after each chunk, as
/// restore runs them on another thread.
fn check_deferring(bytes: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    let mut deferred_any = false;
    for c in bytes.chunks(chunk.max(1)) {
        let (deferred, fed) = s.feed_deferring(c);
        deferred_any |= !deferred.is_empty();
        deferred.check(c)?;
        fed?;
    }
    let summary = s.finish()?;
    // Only chunks too small to hold a whole string leave nothing to defer.
    assert!(deferred_any || chunk < 4096 || summary.total_keys() == 0);
    Ok(summary)
}

/// The same verdict, to the byte and the message, either way.
fn check_both(bytes: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let inline = check(bytes, chunk);
    assert_eq!(check_deferring(bytes, chunk), inline, "chunk {chunk}");
    inline
}

fn expected(path: &Path) -> Value {
    let p = path.with_extension("expected.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

#[test]
fn fixtures_pass_with_server_counts_in_any_chunking() {
    for path in fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let exp = expected(&path);
        let name = path.display();
        let whole = check_both(&bytes, bytes.len()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for chunk in [1, 13, 4096, 65536] {
            let s =
                check_both(&bytes, chunk).unwrap_or_else(|e| panic!("{name} chunk {chunk}: {e}"));
            assert_eq!(s, whole, "{name} chunk {chunk}");
        }
        assert_eq!(whole.payload_len, bytes.len() as u64, "{name}");
        // Older fixtures predate the server fields: they are Redis.
        let server = exp["server"].as_str().unwrap_or("redis");
        let version = exp["server_version"]
            .as_str()
            .or(exp["redis_version"].as_str())
            .unwrap();
        // Valkey writes `valkey-ver` (not `redis-ver`) and, from 9.0 on,
        // the VALKEY magic with version 80; Redis and Valkey 8 write REDIS.
        let (magic, aux) = match server {
            "valkey" if version.split('.').next() >= Some("9") => ("VALKEY", "valkey-ver"),
            "valkey" => ("REDIS", "valkey-ver"),
            _ => ("REDIS", "redis-ver"),
        };
        assert_eq!(whole.magic, magic, "{name}");
        if whole.total_keys() > 0 {
            for t in types_written(server, version) {
                assert!(
                    whole.types.contains_key(*t),
                    "{name}: no {t} in {:?}",
                    whole.types
                );
            }
        }
        // AUX fields (and so the version) came with RDB 7 (Redis 3.2).
        let want = (whole.rdb_version >= 7).then_some(version);
        assert_eq!(whole.aux.get(aux).map(String::as_str), want, "{name}");
        let dbs = exp["databases"].as_object().unwrap();
        assert_eq!(
            whole.databases.len(),
            dbs.len(),
            "{name}: {:?}",
            whole.databases
        );
        for (db, counts) in dbs {
            let got = &whole.databases[&db.parse::<u64>().unwrap()];
            assert_eq!(
                got.keys,
                counts["keys"].as_u64().unwrap(),
                "{name} db{db} keys"
            );
            assert_eq!(
                got.expires,
                counts["expires"].as_u64().unwrap(),
                "{name} db{db} expires"
            );
        }
        assert_eq!(
            whole.types.values().sum::<u64>(),
            whole.total_keys(),
            "{name}"
        );
        // Module data: the test module's fixture says what it wrote; a
        // Redis 8 file holds vector sets (a module bundled with it); others
        // none.
        let modules: Vec<(String, u64, u64)> = match exp["modules"].as_object() {
            Some(m) => m
                .iter()
                .map(|(k, v)| {
                    let n = |f: &str| v[f].as_u64().unwrap();
                    (k.clone(), n("values"), n("aux"))
                })
                .collect(),
            None if whole.types.contains_key("module") => {
                assert!(server == "redis" && version >= "8", "{name}");
                vec![("vectorset".into(), whole.types["module"], 0)]
            }
            None => vec![],
        };
        let got: Vec<(String, u64, u64)> = whole
            .modules
            .iter()
            .map(|(k, c)| (k.clone(), c.values, c.aux))
            .collect();
        assert_eq!(got, modules, "{name}");
        assert_eq!(
            whole.types.get("module").copied().unwrap_or(0),
            modules.iter().map(|m| m.1).sum::<u64>(),
            "{name}"
        );
        let mut funcs = whole.functions.clone();
        funcs.sort();
        let exp_funcs: Vec<String> = exp["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(funcs, exp_funcs, "{name}");
        match exp["checksum"].as_str().unwrap() {
            "verified" => assert!(
                matches!(whole.checksum, Checksum::Verified { .. }),
                "{name}"
            ),
            _ => assert_eq!(whole.checksum, Checksum::Disabled, "{name}"),
        }
    }
}

/// Value types populate.sh makes the server write that only some versions
/// have, so each fixture is known to exercise its dialect's own codes.
fn types_written(server: &str, version: &str) -> &'static [&'static str] {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    let v = parts.next().unwrap() * 100 + parts.next().unwrap();
    match server {
        // Valkey 9: its own HASH_2 (type 22 under VALKEY magic).
        "valkey" if v >= 900 => &["hash-ttl-hashtable", "set-listpack", "stream"],
        "valkey" => &["set-listpack", "stream"],
        // Redis 8: field-TTL hashes (types 24, 25), vector sets (a module).
        _ if v >= 800 => &["hash-ttl-hashtable", "hash-ttl-listpack", "module"],
        _ if v >= 702 => &["set-listpack", "stream"],
        _ if v >= 700 => &["hash-listpack", "stream"],
        _ if v >= 500 => &["hash-ziplist", "stream"],
        _ if v >= 302 => &["hash-ziplist", "list-quicklist", "zset-skiplist-v1"],
        _ => &["hash-ziplist", "list-linked", "list-ziplist"],
    }
}

/// Positions to flip: all for small files, else an even spread plus the
/// header and trailer regions.
fn positions(len: usize) -> Vec<usize> {
    if len <= 20_000 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..64).chain(len - 64..len).collect();
    v.extend((0..len).step_by((len / 3000).max(1)));
    v.sort();
    v.dedup();
    v
}

#[test]
fn every_flipped_byte_is_rejected() {
    // Flips caught inside an LZF body or a blob: what a deferred check
    // reports, so its verdict is compared with the in-place one.
    let mut content_errors = 0;
    for path in fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let checksummed = expected(&path)["checksum"] == "verified";
        let pos = positions(bytes.len());
        let mut rejected = 0;
        for &p in &pos {
            let mut b = bytes.clone();
            b[p] ^= 0x5A;
            if let Err(e) = check_both(&b, 4096) {
                rejected += 1;
                content_errors += usize::from(matches!(
                    e.kind,
                    CheckErrorKind::Lzf(_) | CheckErrorKind::Blob { .. }
                ));
            } else {
                assert!(
                    !checksummed,
                    "{}: flip at byte {p} was accepted",
                    path.display()
                );
            }
        }
        if !checksummed {
            // Without a CRC only structure catches flips (values are opaque),
            // but no flip may panic or hang.
            eprintln!(
                "{}: {rejected}/{} flips rejected structurally",
                path.display(),
                pos.len()
            );
        }
    }
    eprintln!("{content_errors} flips caught inside an LZF body or a blob");
    assert!(content_errors > 100, "{content_errors}");
}

#[test]
fn every_truncation_is_rejected() {
    for path in fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        for cut in positions(bytes.len()) {
            let r = check_both(&bytes[..cut], 997);
            let e = r.expect_err(&format!("{}: truncation at {cut} accepted", path.display()));
            assert!(e.to_string().contains("byte"), "{e}");
        }
    }
}

#[test]
fn trailing_garbage_is_rejected() {
    for path in fixtures() {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(0);
        let e = check(&bytes, 4096).unwrap_err();
        assert!(e.to_string().contains("after the end"), "{e}");
    }
}
