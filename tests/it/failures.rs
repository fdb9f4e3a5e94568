//! Bad input gets one clear error line and loses nothing: wrong password,
//! refused SYNC, corruption and cuts in transit, interruption, wrong key,
//! tampered or truncated objects, an existing --out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::proxy::{Fault, Proxy};
use super::util::*;

struct Setup {
    work: tempfile::TempDir,
    key: PathBuf,
    vault: PathBuf,
}

fn setup() -> Setup {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    // Made up front, as an operator's mounted volume would be, so `list`
    // after a failure that never reached the vault still reads it; a
    // missing root has its own test.
    let vault = work.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    Setup { work, key, vault }
}

impl Setup {
    fn backup(&self, url: &str) -> std::process::Output {
        replvault(&self.backup_args(url, &["--idle-timeout", "20s"]))
    }
    /// `backup --redis URL` into this vault with this key, then `extra`.
    fn backup_args<'a>(&'a self, url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "backup",
            "--redis",
            url,
            "--vault",
            self.v(),
            "--key-file",
            self.k(),
        ];
        args.extend_from_slice(extra);
        args
    }
    /// `restore` of the newest backup to `out`, then `extra`.
    fn restore(&self, out: &Path, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "restore",
            "--vault",
            self.v(),
            "--key-file",
            self.k(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        replvault(&args)
    }
    fn v(&self) -> &str {
        self.vault.to_str().unwrap()
    }
    fn k(&self) -> &str {
        self.key.to_str().unwrap()
    }
    /// Nothing listed and nothing stored.
    fn assert_empty(&self) {
        let list = ok(replvault(&["list", "--vault", self.v(), "--json"]));
        assert_eq!(list.trim(), "[]");
        assert_eq!(files_under(&self.vault), Vec::<String>::new());
    }
    fn one_backup(&self) -> (String, PathBuf) {
        let list: serde_json::Value =
            serde_json::from_str(&ok(replvault(&["list", "--vault", self.v(), "--json"]))).unwrap();
        let id = list[0]["id"].as_str().unwrap().to_string();
        let data = self.vault.join(format!("backups/{id}/data"));
        (id, data)
    }
}

fn dataset() -> RedisServer {
    let src = RedisServer::start_with(&["--repl-diskless-sync", "no"]);
    fill_every_type(&src);
    src
}

#[test]
fn wrong_or_missing_password() {
    let src = RedisServer::start_with(&["--requirepass", "right"]);
    let s = setup();
    let e = fails(s.backup(&format!("redis://:wrongpw@127.0.0.1:{}", src.port)));
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("wrongpw"));
    let e = fails(s.backup(&src.url()));
    assert!(e.contains("requires authentication"), "{e}");
    s.assert_empty();
}

#[test]
fn sync_and_psync_renamed_away() {
    let conf = tempfile::tempdir().unwrap();
    let path = conf.path().join("redis.conf");
    std::fs::write(
        &path,
        "rename-command SYNC \"\"\nrename-command PSYNC \"\"\n",
    )
    .unwrap();
    let src = RedisServer::start_with(&[path.to_str().unwrap()]);
    let s = setup();
    // Auto mode would fall back to scan mode (tests/it/scan.rs): ask for
    // replication only.
    let url = src.url();
    let e = fails(replvault(&s.backup_args(&url, &["--mode", "sync"])));
    assert!(e.contains("refuses SYNC/PSYNC"), "{e}");
    s.assert_empty();
}

#[test]
fn no_key_is_refused_before_touching_the_server() {
    let src = RedisServer::start();
    // Each `cmd` is a connection of its own: this INFO is one.
    let connections = |src: &RedisServer| -> u64 {
        let info = src.cmd(&["INFO", "stats"]).text();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = connections(&src);
    let s = setup();
    let e = fails(replvault(&[
        "backup",
        "--redis",
        &src.url(),
        "--vault",
        s.v(),
    ]));
    assert!(
        e.contains("--key-file") && e.contains("--no-encryption"),
        "{e}"
    );
    assert_eq!(
        connections(&src),
        before + 1,
        "replvault connected to the server"
    );
    s.assert_empty();
}

#[test]
fn byte_flipped_in_transit_fails_and_leaves_nothing() {
    let src = dataset();
    // Well inside the payload (the handshake replies are < 100 bytes).
    let proxy = Proxy::start(src.port, Fault::FlipAt(20_000));
    let s = setup();
    let e = fails(s.backup(&proxy.url()));
    assert!(e.contains("corrupt") || e.contains("CRC"), "{e}");
    s.assert_empty();
}

#[test]
fn connection_cut_mid_transfer_fails_and_leaves_nothing() {
    let src = dataset();
    let proxy = Proxy::start(src.port, Fault::CutAfter(30_000));
    let s = setup();
    let e = fails(s.backup(&proxy.url()));
    assert!(
        e.contains("cut") || e.contains("closed") || e.contains("truncated"),
        "{e}"
    );
    s.assert_empty();
}

#[test]
fn a_server_that_hangs_mid_transfer_hits_the_idle_timeout() {
    let src = RedisServer::start();
    src.cmd(&["DEBUG", "POPULATE", "200000", "key", "100"]);
    let proxy = Proxy::start(src.port, Fault::StallAfter(100_000));
    let s = setup();
    let t = Instant::now();
    let url = proxy.url();
    let e = fails(replvault(&s.backup_args(&url, &["--idle-timeout", "2s"])));
    assert!(e.contains("no data from the server for 2s"), "{e}");
    assert!(e.contains("--idle-timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    s.assert_empty();
}

#[test]
fn a_silent_endpoint_hits_the_timeouts() {
    // Listening, never accepting: TCP connects (the kernel completes it),
    // and then nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let s = setup();
    // TLS: the handshake counts against --connect-timeout.
    let tls = format!("rediss://127.0.0.1:{port}");
    let e = fails(replvault(
        &s.backup_args(&tls, &["--connect-timeout", "1s"]),
    ));
    assert!(e.contains("timed out after 1s"), "{e}");
    assert!(e.contains("--connect-timeout"), "{e}");
    // Plain TCP: no reply to the handshake counts against --idle-timeout.
    let tcp = format!("redis://127.0.0.1:{port}");
    let e = fails(replvault(
        &s.backup_args(&tcp, &["--idle-timeout", "1s", "--mode", "sync"]),
    ));
    assert!(e.contains("no data from the server for 1s"), "{e}");
    s.assert_empty();
    drop(silent);
}

/// A backup from a source that stalls part-way (so it cannot finish, on
/// however slow a machine), returned once its staged data file exists
/// (with the server and proxy, which must outlive it).
fn backup_in_flight() -> (RedisServer, Proxy, Setup, std::process::Child) {
    let src = RedisServer::start();
    // An RDB of about 7 MB; the source stops sending after 3 MB.
    src.cmd(&["DEBUG", "POPULATE", "200000", "key", "100"]);
    let proxy = Proxy::start(src.port, Fault::StallAfter(3_000_000));
    let s = setup();
    let url = proxy.url();
    let mut child = replvault_spawn(&s.backup_args(&url, &[]));
    wait_for(
        "the backup to stage its data",
        Duration::from_secs(30),
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the backup ended early: {:?}",
                files_under(&s.vault)
            );
            !files_under(&s.vault).is_empty()
        },
    );
    (src, proxy, s, child)
}

#[test]
fn sigterm_during_a_backup_leaves_nothing() {
    let (_src, _proxy, s, child) = backup_in_flight();
    send_signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    let e = fails(out);
    assert!(e.contains("interrupted"), "{e}");
    s.assert_empty();
}

#[test]
fn a_killed_backup_is_never_listed_and_prune_removes_its_debris() {
    let (_src, _proxy, s, mut child) = backup_in_flight();
    // No chance to clean up: the staged data file stays behind.
    child.kill().unwrap();
    child.wait().unwrap();
    let debris = files_under(&s.vault);
    assert!(
        !debris.is_empty() && debris.iter().all(|f| f.contains(".partial-")),
        "{debris:?}"
    );
    let list = ok(replvault(&["list", "--vault", s.v(), "--json"]));
    assert_eq!(list.trim(), "[]", "{list}");
    // Within the grace period it may be a backup in progress: kept.
    let out = ok(replvault(&["prune", "--vault", s.v(), "--keep-last", "1"]));
    assert!(!out.contains("abort"), "{out}");
    assert_eq!(files_under(&s.vault), debris);
    // Past it, removed, directory and all.
    let out = ok(replvault(&[
        "prune",
        "--vault",
        s.v(),
        "--keep-last",
        "1",
        "--incomplete-grace",
        "0s",
    ]));
    assert!(out.contains("abort pending upload of backups/"), "{out}");
    assert!(out.contains("aborted 1 pending upload(s)"), "{out}");
    s.assert_empty();
}

fn backed_up() -> (RedisServer, Setup) {
    let src = dataset();
    let s = setup();
    ok(s.backup(&src.url()));
    (src, s)
}

fn restore_fails(s: &Setup, key: &Path, expect: &str) {
    let out = s.work.path().join("out/dump.rdb");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let e = fails(replvault(&[
        "restore",
        "--vault",
        s.v(),
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains(expect), "expected {expect:?} in {e}");
    assert_eq!(
        files_under(out.parent().unwrap()),
        Vec::<String>::new(),
        "restore left files behind"
    );
    let e = fails(replvault(&[
        "verify",
        "--vault",
        s.v(),
        "--key-file",
        key.to_str().unwrap(),
    ]));
    assert!(e.contains("failed verification"), "{e}");
}

#[test]
fn wrong_key_is_refused_up_front() {
    let (_src, s) = backed_up();
    let other = s.work.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let k2 = keygen(&other);
    restore_fails(&s, &k2, "wrong key");
}

#[test]
fn tampered_data_object_is_detected() {
    let (_src, s) = backed_up();
    let (_, data) = s.one_backup();
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    restore_fails(&s, &s.key, "tampered");
}

#[test]
fn truncated_data_object_is_detected() {
    let (_src, s) = backed_up();
    let (_, data) = s.one_backup();
    let bytes = std::fs::read(&data).unwrap();
    // docs/FORMAT.md: a 54-byte header, then segments of 65,536 bytes of
    // ciphertext plus a 16-byte tag, the last one shorter and flagged.
    let (header, segment) = (54, 65_536 + 16);
    let segments = (bytes.len() - header).div_ceil(segment);
    // A cut object no longer has the size its manifest records.
    std::fs::write(&data, &bytes[..bytes.len() - 100]).unwrap();
    restore_fails(&s, &s.key, "cut short");
    // With the manifest's byte count rewritten to match, the STREAM still
    // catches it. Cut inside the last segment: it no longer authenticates.
    let cut = |len: usize| {
        std::fs::write(&data, &bytes[..len]).unwrap();
        let path = data.with_file_name("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m["stored"]["bytes"] = len.into();
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    };
    cut(bytes.len() - 100);
    restore_fails(&s, &s.key, "segment");
    // Cut exactly before the last segment: every segment left is intact,
    // but none is flagged last.
    cut(header + (segments - 1) * segment);
    restore_fails(&s, &s.key, "truncated");
}

#[test]
fn existing_out_needs_force() {
    let (src, s) = backed_up();
    let out = s.work.path().join("dump.rdb");
    std::fs::write(&out, b"precious").unwrap();
    let e = fails(s.restore(&out, &[]));
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    ok(s.restore(&out, &["--force"]));
    let copy = RedisServer::start_with_rdb(&out);
    assert_eq!(copy.digest(), src.digest());
}

#[test]
fn out_that_is_a_directory_is_refused_before_anything_is_read() {
    let (src, s) = backed_up();
    let (_, data) = s.one_backup();
    let dir = s.work.path().join("restore-here");
    std::fs::create_dir(&dir).unwrap();
    // With the data object gone, any read of the backup would fail: the
    // directory must be named first.
    let saved = std::fs::read(&data).unwrap();
    std::fs::remove_file(&data).unwrap();
    for extra in [&[][..], &["--force"]] {
        let e = fails(s.restore(&dir, extra));
        let example = dir.join("dump.rdb");
        assert!(
            e.contains("is a directory") && e.contains(example.to_str().unwrap()),
            "{e}"
        );
    }
    std::fs::write(&data, saved).unwrap();
    assert!(files_under(&dir).is_empty());

    // A missing parent directory: the cause is said once.
    let e = fails(s.restore(&s.work.path().join("no/such/dir/dump.rdb"), &[]));
    assert!(e.contains("nothing was written"), "{e}");
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");

    ok(s.restore(&dir.join("dump.rdb"), &[]));
    let copy = RedisServer::start_with_rdb(&dir.join("dump.rdb"));
    assert_eq!(copy.digest(), src.digest());
}

#[test]
fn a_vault_path_that_is_a_file_fails_before_the_server_forks() {
    let src = dataset();
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let not_a_dir = work.path().join("vault");
    std::fs::write(&not_a_dir, b"precious").unwrap();
    let e = fails(backup_to(&src.url(), &not_a_dir, &key, &[]));
    assert!(
        e.contains("the vault root") && e.contains("not a directory"),
        "{e}"
    );
    // The server was never asked for a snapshot.
    let stats = src.cmd(&["INFO", "stats"]).text();
    assert!(stats.contains("sync_full:0"), "{stats}");
    assert_eq!(std::fs::read(&not_a_dir).unwrap(), b"precious");
    let e = fails(replvault(&["list", "--vault", not_a_dir.to_str().unwrap()]));
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn reading_a_vault_that_does_not_exist_is_an_error_not_an_empty_list() {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let typo = work.path().join("vaultt");
    let (v, k) = (typo.to_str().unwrap(), key.to_str().unwrap());
    let out = work.path().join("dump.rdb");
    for args in [
        vec!["list", "--vault", v],
        vec!["verify", "--vault", v, "--key-file", k],
        vec!["prune", "--vault", v, "--keep-last", "1"],
        vec![
            "restore",
            "--vault",
            v,
            "--key-file",
            k,
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let e = fails(replvault(&args));
        assert!(
            e.contains("the vault root") && e.contains("does not exist") && e.contains(v),
            "{args:?}: {e}"
        );
    }
    // Reading created nothing.
    assert!(!typo.exists());
    assert!(!out.exists());
}

#[test]
fn inspect_reports_bad_files_with_an_offset() {
    let fixture = root().join("fixtures/rdb/redis-7.0.15.rdb");
    let out = ok(replvault(&["inspect", fixture.to_str().unwrap()]));
    assert!(out.contains("verified") && out.contains("db0"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(replvault(&[
        "inspect",
        "--json",
        fixture.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(json["rdb_version"], 10);
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&fixture).unwrap();
    let len = bytes.len();
    // (name, file, where the error is, what it says)
    let cases: Vec<(&str, Vec<u8>, usize, &str)> = vec![
        (
            "flipped",
            {
                let mut b = bytes.clone();
                b[5000] ^= 1;
                b
            },
            // Found by the CRC-64, at the trailer.
            len - 8,
            "CRC-64 mismatch",
        ),
        (
            "truncated",
            bytes[..len - 20].to_vec(),
            len - 20,
            "truncated",
        ),
        (
            "trailing",
            [bytes.clone(), b"junk".to_vec()].concat(),
            len,
            "unexpected data after the end",
        ),
        (
            "unknown-type",
            {
                let mut b = b"REDIS0010".to_vec();
                b.push(100);
                b
            },
            9,
            "unknown opcode or value type 100",
        ),
    ];
    for (name, b, at, what) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        let e = fails(replvault(&["inspect", p.to_str().unwrap()]));
        assert!(
            e.contains(&format!("at byte {at}:")) && e.contains(what),
            "{name}: expected {what:?} at byte {at}: {e}"
        );
    }
}

#[test]
fn inspect_counts_aux_records_past_the_cap_instead_of_keeping_them() {
    // A hostile file: 100,000 distinct aux fields and nothing else.
    let mut b = b"REDIS0010".to_vec();
    for i in 0..100_000u32 {
        let k = format!("k{i}");
        b.extend([0xFA, k.len() as u8]);
        b.extend(k.as_bytes());
        b.extend([1, b'v']);
    }
    b.push(0xFF);
    let crc = replvault_protocol::crc64::checksum(&b);
    b.extend(crc.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("aux.rdb");
    std::fs::write(&p, b).unwrap();
    let out = ok(replvault(&["inspect", p.to_str().unwrap()]));
    assert!(out.contains("verified"), "{out}");
    assert!(
        out.contains("aux: 99936 more records of further fields, not kept"),
        "{out}"
    );
    assert_eq!(out.lines().filter(|l| l.starts_with("aux k")).count(), 64);
    let json: serde_json::Value =
        serde_json::from_str(&ok(replvault(&["inspect", "--json", p.to_str().unwrap()]))).unwrap();
    assert_eq!(json["aux_omitted"], 99_936);
    assert_eq!(json["aux"].as_object().map(|m| m.len()), Some(64));
}

/// A tmpfs mount that is unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a small tmpfs needs root (the test command runs as root)"
        );
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_at_restore_is_clear_and_leaves_nothing() {
    let src = dataset();
    // Incompressible bulk, so the RDB is far larger than the disk.
    let v: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    src.cmd_bin(&[b"SET", b"bulk", &v]);
    let s = setup();
    ok(s.backup(&src.url()));
    let disk = SmallDisk::new("512k");
    let out = disk.dir.path().join("dump.rdb");
    let e = fails(replvault(&[
        "restore",
        "--vault",
        s.v(),
        "--key-file",
        s.k(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains("no space left on device"), "{e}");
    assert_eq!(files_under(disk.dir.path()), Vec::<String>::new());
}

#[test]
fn keygen_never_overwrites_and_if_missing_keeps_a_valid_key() {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let k = key.to_str().unwrap();
    let before = std::fs::read(&key).unwrap();
    let e = fails(replvault(&["keygen", "--out", k]));
    assert!(e.contains(k), "{e}");
    let out = ok(replvault(&["keygen", "--out", k, "--if-missing"]));
    assert!(out.contains("left as it is"), "{out}");
    assert_eq!(std::fs::read(&key).unwrap(), before);
    // Not a key: refused, and untouched.
    let junk = work.path().join("junk.key");
    std::fs::write(&junk, b"not a key").unwrap();
    let e = fails(replvault(&[
        "keygen",
        "--out",
        junk.to_str().unwrap(),
        "--if-missing",
    ]));
    assert!(e.contains("junk.key"), "{e}");
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a key");
    // Missing: written.
    let fresh = work.path().join("fresh.key");
    let out = ok(replvault(&[
        "keygen",
        "--out",
        fresh.to_str().unwrap(),
        "--if-missing",
    ]));
    assert!(out.contains("wrote a new key"), "{out}");
    // A real key: 32 bytes, readable by its owner only, kept by a second
    // --if-missing, and different from the first key.
    use std::os::unix::fs::PermissionsExt;
    for k in [&key, &fresh] {
        let meta = std::fs::metadata(k).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", k.display());
        assert_eq!(meta.len(), 32, "{}", k.display());
    }
    let made = std::fs::read(&fresh).unwrap();
    ok(replvault(&[
        "keygen",
        "--out",
        fresh.to_str().unwrap(),
        "--if-missing",
    ]));
    assert_eq!(std::fs::read(&fresh).unwrap(), made);
    assert_ne!(made, before);
}

#[test]
fn verify_all_checks_every_backup_and_names_the_bad_one() {
    let (src, s) = backed_up();
    // Three backups, two of them possibly in the same second: listed in
    // the order they were made all the same.
    ok(s.backup(&src.url()));
    ok(s.backup(&src.url()));
    let list: serde_json::Value =
        serde_json::from_str(&ok(replvault(&["list", "--vault", s.v(), "--json"]))).unwrap();
    let ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let started: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| chrono::DateTime::parse_from_rfc3339(m["started_at"].as_str().unwrap()).unwrap())
        .collect();
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(started, sorted);
    let out = ok(replvault(&[
        "verify",
        "--all",
        "--vault",
        s.v(),
        "--key-file",
        s.k(),
    ]));
    assert_eq!(out.matches("OK ").count(), 3, "{out}");
    // Tamper with the middle one: the others still verify, it is named.
    let data = s.vault.join(format!("backups/{}/data", ids[1]));
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    let o = replvault(&["verify", "--all", "--vault", s.v(), "--key-file", s.k()]);
    let (out, e) = (stdout(&o), stderr(&o));
    assert!(!o.status.success());
    assert!(out.contains(&format!("FAILED  {}", ids[1])), "{out}");
    for good in [&ids[0], &ids[2]] {
        assert!(out.contains(&format!("OK      {good}")), "{out}");
    }
    assert!(e.contains("1 of 3 backups failed verification"), "{e}");
}

#[test]
fn progress_on_a_terminal_structured_logs_otherwise() {
    let src = RedisServer::start();
    src.cmd(&["DEBUG", "POPULATE", "100000", "key", "100"]);
    // Slow enough for a few progress ticks (every 250 ms).
    let proxy = Proxy::start(src.port, Fault::Throttle(4_000_000));
    let s = setup();
    let bin = env!("CARGO_BIN_EXE_replvault");
    // Under a pseudo-terminal (util-linux `script`): a progress line.
    let cmd = format!(
        "{bin} backup --redis {} --vault {} --key-file {}",
        proxy.url(),
        s.v(),
        s.k()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) must be installed");
    let tty = stdout(&o);
    assert!(o.status.success(), "{tty}");
    assert!(tty.contains("received") && tty.contains("/s)"), "{tty}");
    assert!(tty.contains("complete"), "{tty}");
    // Not a terminal: no progress line; JSON logs on request.
    let url = proxy.url();
    let o = replvault(&s.backup_args(&url, &["--log-format", "json"]));
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{err}");
    assert!(out.contains("complete"), "{out}");
    assert!(!err.contains("received"), "{err}");
    let logs: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "backup started"),
        "{err}"
    );
}

/// `restore SELECTOR` into an empty directory fails with one error line
/// holding each of `expect`, and leaves the directory empty (no file at
/// --out, no temp file beside it). Gives all of stderr.
fn restore_refused(s: &Setup, selector: &str, expect: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dump.rdb");
    let o = replvault(&[
        "restore",
        selector,
        "--vault",
        s.v(),
        "--key-file",
        s.k(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let all = stderr(&o);
    let e = fails(o);
    for x in expect {
        assert!(e.contains(x), "restore {selector}: expected {x:?} in {e}");
    }
    assert_eq!(
        files_under(dir.path()),
        Vec::<String>::new(),
        "restore {selector} left files behind"
    );
    all
}

#[test]
fn restore_refuses_a_missing_truncated_or_tampered_manifest() {
    let (src, s) = backed_up();
    let (id, data) = s.one_backup();
    let manifest = data.with_file_name("manifest.json");
    let good = std::fs::read(&manifest).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let vault_files = files_under(&s.vault);

    // Missing: the data alone is no backup (docs/FORMAT.md invariant 4).
    std::fs::remove_file(&manifest).unwrap();
    restore_refused(&s, &id, &["no backup", &id]);
    restore_refused(&s, "latest", &["no complete backups"]);

    // Truncated, cut in half, invalid JSON, or empty: unreadable.
    for (what, bytes) in [
        ("cut in half", good[..good.len() / 2].to_vec()),
        ("invalid JSON", b"{\"format\": 1, \"id\": oops}".to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&manifest, &bytes).unwrap();
        restore_refused(&s, &id, &["manifest of backup", &id, "unreadable"]);
        // `latest` skips it, and says which backup and why.
        let all = restore_refused(&s, "latest", &["no complete backups"]);
        assert!(
            all.contains(&id) && all.contains("unreadable"),
            "{what}: {all}"
        );
    }

    // A field changed: each is checked against what the backup holds.
    let tampered = |path: &[&str], value: serde_json::Value| {
        let mut m = parsed.clone();
        let mut at = &mut m;
        for p in path {
            at = &mut at[*p];
        }
        assert!(!at.is_null(), "no field {path:?} in the manifest");
        *at = value;
        std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    };
    let rdb_bytes = parsed["rdb"]["bytes"].as_u64().unwrap();
    let cases: Vec<(&[&str], serde_json::Value, &[&str])> = vec![
        (
            &["rdb", "bytes"],
            (rdb_bytes + 1).into(),
            &["does not match its manifest", "bytes"],
        ),
        (
            &["rdb", "bytes"],
            (rdb_bytes - 1).into(),
            &["does not match its manifest", "bytes"],
        ),
        (
            &["rdb", "crc64"],
            "0123456789abcdef".into(),
            &["does not match its manifest", "CRC-64"],
        ),
        (
            &["stored", "sha256"],
            "0".repeat(64).into(),
            &["does not match its manifest", "SHA-256"],
        ),
        (
            &["encryption", "key_id"],
            "0000000000000000".into(),
            &["wrong key"],
        ),
        (
            &["stored", "key"],
            format!("backups/{id}/elsewhere").into(),
            &["not found"],
        ),
        // Another backup's object is not this backup's data.
        (
            &["stored", "key"],
            "backups/20200101T000000Z-0000/data".into(),
            &["unreadable", "is not under"],
        ),
        (&["format"], 99.into(), &["unreadable", "newer"]),
    ];
    for (path, value, expect) in cases {
        tampered(path, value.clone());
        let mut want = vec![id.as_str()];
        want.extend_from_slice(expect);
        restore_refused(&s, &id, &want);
        if !expect.contains(&"unreadable") {
            // `verify` checks the same, and names the backup.
            let o = replvault(&["verify", &id, "--vault", s.v(), "--key-file", s.k()]);
            let out = stdout(&o);
            let e = fails(o);
            assert!(e.contains("failed verification"), "{path:?} = {value}: {e}");
            assert!(
                out.contains(&format!("FAILED  {id}")),
                "{path:?} = {value}: {out}"
            );
        } else {
            let e = fails(replvault(&[
                "verify",
                &id,
                "--vault",
                s.v(),
                "--key-file",
                s.k(),
            ]));
            assert!(
                e.contains(&id) && e.contains("unreadable"),
                "{path:?} = {value}: {e}"
            );
        }
    }

    // The vault holds what it held, and the backup, made whole again,
    // restores the same data: the failures above came from the manifest.
    std::fs::write(&manifest, &good).unwrap();
    assert_eq!(files_under(&s.vault), vault_files);
    let out = s.work.path().join("restored.rdb");
    ok(s.restore(&out, &[]));
    assert_eq!(RedisServer::start_with_rdb(&out).digest(), src.digest());
}

#[test]
fn bad_durations_name_the_flag_and_an_example() {
    let s = setup();
    let vault = s.work.path().join("not-created");
    let v = vault.to_str().unwrap();
    let conf = s.work.path().join("replvault.toml");
    let c = conf.to_str().unwrap();
    fn args<'a>(v: &'a str, k: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "run",
            "--redis",
            "redis://127.0.0.1:1",
            "--vault",
            v,
            "--key-file",
            k,
        ];
        a.extend_from_slice(extra);
        a
    }
    let run = |extra: &[&'static str]| args(v, s.k(), extra);
    // (what, arguments, environment, config file, flag, bad value)
    type Case<'a> = (
        &'a str,
        Vec<&'a str>,
        Vec<(&'a str, &'a str)>,
        &'a str,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "run --every",
            run(&["--every", "5x"]),
            vec![],
            "",
            "--every",
            "5x",
        ),
        (
            "REPLVAULT_EVERY",
            run(&[]),
            vec![("REPLVAULT_EVERY", "5x")],
            "",
            "--every",
            "5x",
        ),
        (
            "every in --config",
            args(v, s.k(), &["--config", c]),
            vec![],
            "every = \"5x\"\n",
            "--every",
            "5x",
        ),
        (
            "run --keep-within",
            run(&["--every", "1h", "--keep-within", "soon"]),
            vec![],
            "",
            "--keep-within",
            "soon",
        ),
        (
            "prune --keep-within",
            vec!["prune", "--vault", s.v(), "--keep-within", "soon"],
            vec![],
            "",
            "--keep-within",
            "soon",
        ),
        (
            "REPLVAULT_KEEP_WITHIN",
            vec!["prune", "--vault", s.v()],
            vec![("REPLVAULT_KEEP_WITHIN", "soon")],
            "",
            "--keep-within",
            "soon",
        ),
        (
            "run --every (empty)",
            run(&["--every", ""]),
            vec![],
            "",
            "--every",
            "''",
        ),
    ];
    for (what, args, env, file, flag, bad) in cases {
        std::fs::write(&conf, file).unwrap();
        let e = fails(replvault_env(&args, &env));
        assert!(
            e.contains(flag) && e.contains(bad),
            "{what}: the flag and the value: {e}"
        );
        assert!(e.contains("examples: 30s"), "{what}: an example: {e}");
        assert!(!vault.exists(), "{what}: the vault was created");
    }
    // A zero interval is refused too (it would back up in a loop).
    let e = fails(replvault(&run(&["--every", "0s"])));
    assert!(e.contains("--every") && e.contains("zero"), "{e}");
    assert!(!vault.exists());
    // Nothing was pruned from the real vault either.
    assert!(files_under(&s.vault).is_empty());
}
