//! Hostile input (issue 30, item 2): a source that trickles a corrupt RDB,
//! secrets in `--help`, file modes of a local vault and a restored file,
//! backup ids that are paths, oversized manifests and data objects, and
//! scan mode's memory bound.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::util::*;

/// How a fake primary frames the RDB payload.
#[derive(Clone, Copy, Debug)]
enum Framing {
    /// `$<len>\r\n` (disk-based sync) with this length.
    Length(u64),
    /// `$EOF:<40-byte mark>\r\n` (diskless sync).
    Eof,
}

/// The fake primary's side of one connection: reads one RESP command (an
/// array of bulk strings) from the replica.
fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut b = vec![0u8; len + 2];
        r.read_exact(&mut b).ok()?;
        b.truncate(len);
        args.push(String::from_utf8_lossy(&b).into_owned());
    }
    Some(args)
}

/// A fake primary on a free port: answers the replication handshake with
/// `+OK` and `+FULLRESYNC`, sends the payload header, then `burst` at once
/// and then `trickle` one byte every `every`, until the replica goes away
/// or `give_up` has passed (then it closes the connection).
fn trickling_primary(
    framing: Framing,
    burst: Vec<u8>,
    trickle: Vec<u8>,
    every: Duration,
    give_up: Duration,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        while let Some(cmd) = read_command(&mut r) {
            let name = cmd
                .first()
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_default();
            if name == "PSYNC" || name == "SYNC" {
                break;
            }
            if w.write_all(b"+OK\r\n").is_err() {
                return;
            }
        }
        let replid = "0123456789abcdef0123456789abcdef01234567";
        let header = match framing {
            Framing::Length(n) => format!("+FULLRESYNC {replid} 0\r\n${n}\r\n"),
            Framing::Eof => format!("+FULLRESYNC {replid} 0\r\n$EOF:{}\r\n", "m".repeat(40)),
        };
        if w.write_all(header.as_bytes()).is_err() || w.write_all(&burst).is_err() {
            return;
        }
        let start = Instant::now();
        for b in trickle.iter().cycle() {
            if start.elapsed() > give_up || w.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(every);
        }
        let _ = w.shutdown(std::net::Shutdown::Both);
    });
    port
}

/// A backup of a fake primary at `port` into a fresh local vault: its
/// error line, how long it took, and the vault (which must be empty).
fn backup_of_fake(port: u16) -> (String, Duration, tempfile::TempDir) {
    backup_of_fake_with(port, &[])
}

/// [`backup_of_fake`] with more flags.
fn backup_of_fake_with(port: u16, extra: &[&str]) -> (String, Duration, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    let t = Instant::now();
    let e = fails(backup_to(
        &format!("redis://127.0.0.1:{port}"),
        &vault,
        &key,
        &[&["--mode", "sync", "--idle-timeout", "60s"], extra].concat(),
    ));
    let took = t.elapsed();
    eprintln!("the backup failed after {took:?}: {e}");
    let list = ok(replvault(&[
        "list",
        "--vault",
        vault.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(list.trim(), "[]", "{e}");
    assert_eq!(files_under(&vault), Vec::<String>::new(), "{e}");
    (e, took, work)
}

/// A source that keeps sending a broken RDB a byte at a time is rejected
/// by the checker within seconds, whatever the framing: its bytes do not
/// wait for a full chunk before they are checked, and the idle timeout
/// (which a trickle never trips) is not what ends it.
#[test]
fn a_source_trickling_a_corrupt_rdb_fails_within_seconds() {
    // Bad magic from the first byte, one byte per 60 ms.
    let mut bad = b"XEDIS0011".to_vec();
    bad.extend_from_slice(&[0x55; 64]);
    let port = trickling_primary(
        Framing::Length(1 << 30),
        Vec::new(),
        bad,
        Duration::from_millis(60),
        Duration::from_secs(20),
    );
    let (e, took, _work) = backup_of_fake(port);
    assert!(e.contains("not an RDB file"), "{e}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {e}");

    // Diskless framing: a valid header and aux field, then garbage (an
    // unknown type byte); the first 100 bytes at once (the EOF framing
    // holds back the last 40 received bytes, which may be its end mark),
    // then one garbage byte per 60 ms.
    let mut start = b"REDIS0011".to_vec();
    start.extend_from_slice(b"\xfa\x09redis-ver\x057.2.4");
    start.resize(100, 0x55);
    let port = trickling_primary(
        Framing::Eof,
        start,
        vec![0x55],
        Duration::from_millis(60),
        Duration::from_secs(20),
    );
    let (e, took, _work) = backup_of_fake(port);
    assert!(e.contains("unknown opcode or value type"), "{e}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {e}");
}
/// An RDB whose first key's string value declares `declared` bytes: a
/// header, an aux field, `SELECT 0`, a string record for `k`, and the
/// 64-bit length, with no value bytes after it.
fn rdb_declaring(declared: u64) -> Vec<u8> {
    let mut rdb = b"REDIS0011".to_vec();
    rdb.extend_from_slice(b"\xfa\x09redis-ver\x057.2.4\xfe\x00\x00\x01k\x81");
    rdb.extend_from_slice(&declared.to_be_bytes());
    rdb
}

/// A record declaring a huge string is refused as soon as its length is
/// read: beyond the payload's length when the server sent one, beyond
/// `--max-value-size` (default 512 MiB, the servers' own limit) when it
/// did not. Before, the checker read on for as long as bytes came.
#[test]
fn a_declared_length_beyond_the_payload_or_the_value_limit_is_refused_at_once() {
    // `$<len>` framing: 64 KiB of payload, a string declaring 2^40 bytes,
    // then zeros a byte every 5 ms (a stream that does not stop).
    let port = trickling_primary(
        Framing::Length(64 << 10),
        rdb_declaring(1 << 40),
        vec![0],
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    let (e, took, _work) = backup_of_fake(port);
    assert!(
        e.contains("a string declares 1099511627776 bytes, but only")
            && e.contains("bytes of the payload are left"),
        "{e}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}: {e}");

    // Diskless framing (no length): 2^40 bytes is past the default limit,
    // and the message names the flag. 100 bytes at once, then zeros.
    let mut burst = rdb_declaring(1 << 40);
    burst.resize(100, 0);
    let port = trickling_primary(
        Framing::Eof,
        burst,
        vec![0],
        Duration::from_millis(5),
        Duration::from_secs(20),
    );
    let (e, took, _work) = backup_of_fake(port);
    assert!(
        e.contains("a string declares 1099511627776 bytes, more than the largest value taken (536870912 bytes)")
            && e.contains("--max-value-size"),
        "{e}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}: {e}");

    // The flag moves the limit both ways: 600 MiB is refused by default
    // and taken with `--max-value-size 1GiB` (the fake then ends the
    // stream inside the value, which is a different error).
    for (extra, refused) in [(&[][..], true), (&["--max-value-size", "1GiB"][..], false)] {
        let mut burst = rdb_declaring(600 << 20);
        burst.resize(100, 0);
        let port = trickling_primary(
            Framing::Eof,
            burst,
            vec![0; 4096],
            Duration::from_micros(10),
            Duration::from_secs(2),
        );
        let (e, _, _work) = backup_of_fake_with(port, extra);
        assert_eq!(e.contains("--max-value-size"), refused, "{extra:?}: {e}");
    }
}

/// Neither `backup --help` nor `help backup` (nor `run`'s, nor through a
/// config file) shows the value of a variable that can hold a password.
#[test]
fn help_never_shows_secret_environment_values() {
    let secret = "s3cr3tpw";
    let url = format!("redis://u:{secret}@h:1");
    let env = [
        ("REPLVAULT_REDIS", url.as_str()),
        ("REPLVAULT_REDIS_PASSWORD", secret),
    ];
    for args in [
        &["backup", "--help"][..],
        &["backup", "-h"],
        &["help", "backup"],
        &["run", "--help"],
        &["help", "run"],
    ] {
        let o = replvault_env(args, &env);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(o.status.success(), "{args:?}: {text}");
        assert!(text.contains("REPLVAULT_REDIS"), "{args:?}: {text}");
        assert!(!text.contains(secret), "{args:?} shows the secret: {text}");
    }
    // A config file's values become environment defaults before parsing.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("replvault.toml");
    std::fs::write(
        &conf,
        format!("redis = \"{url}\"\nredis-password = \"{secret}\"\n"),
    )
    .unwrap();
    let o = replvault(&["run", "--config", conf.to_str().unwrap(), "--help"]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{text}");
    assert!(
        !text.contains(secret),
        "the config file's secret shows: {text}"
    );
}

/// Runs the binary under umask 022 (the usual one), with a clean
/// environment.
fn replvault_umask_022(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_replvault"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under umask 022 a local vault's directories are 0700 and its objects
/// 0600, and a restored file is 0600: none of it readable by others.
#[test]
fn local_vault_and_restored_file_are_private() {
    let src = RedisServer::start();
    fill_every_type(&src);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    // Not made beforehand: the backup creates the root too.
    let vault = work.path().join("vaults/prod");
    let v = vault.to_str().unwrap();
    let url = src.url();
    ok(replvault_umask_022(&[
        "backup",
        "--redis",
        &url,
        "--vault",
        v,
        "--key-file",
        key.to_str().unwrap(),
    ]));
    let id = list_json(&vault)[0]["id"].as_str().unwrap().to_string();
    let dir = vault.join("backups").join(&id);
    for d in [
        work.path().join("vaults"),
        vault.clone(),
        vault.join("backups"),
        dir.clone(),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in [dir.join("data"), dir.join("manifest.json")] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let out = work.path().join("dump.rdb");
    let printed = ok(replvault_umask_022(&restore_args(v, &key, &out)));
    assert_eq!(mode(&out), 0o600);
    // The next steps still tell the operator to give Redis the file.
    assert!(printed.contains("chown redis:redis"), "{printed}");
    assert!(printed.contains("0600"), "{printed}");
}

/// A vault with one backup of an every-type dataset.
fn one_backup() -> (RedisServer, tempfile::TempDir, PathBuf, PathBuf, String) {
    let src = RedisServer::start();
    fill_every_type(&src);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    ok(backup_to(&src.url(), &vault, &key, &[]));
    let id = list_json(&vault)[0]["id"].as_str().unwrap().to_string();
    (src, work, vault, key, id)
}

/// `restore ID` and `verify ID` accept only ids of the documented form
/// (or `latest`): a path such as `a/b` cannot reach a manifest planted
/// elsewhere, and the id restored is always named.
#[test]
fn backup_ids_other_than_the_documented_form_are_refused() {
    let (_src, work, vault, key, id) = one_backup();
    let v = vault.to_str().unwrap();
    let k = key.to_str().unwrap();
    // A manifest planted at backups/a/b/, pointing at the real data.
    let planted = vault.join("backups/a/b");
    std::fs::create_dir_all(&planted).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vault.join(format!("backups/{id}/manifest.json"))).unwrap(),
    )
    .unwrap();
    m["id"] = "a/b".into();
    std::fs::write(
        planted.join("manifest.json"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    let out = work.path().join("dump.rdb");
    let o = out.to_str().unwrap();
    for bad in [
        "a/b",
        "../x",
        "",
        "20261124T152116Z-99",
        "20261124T152116Z-99zz",
    ] {
        let e = fails(replvault(&[
            "restore",
            bad,
            "--vault",
            v,
            "--key-file",
            k,
            "--out",
            o,
        ]));
        assert!(e.contains("not a backup id"), "restore {bad:?}: {e}");
        assert!(e.contains("latest"), "restore {bad:?}: {e}");
        assert!(!out.exists());
        let e = fails(replvault(&["verify", bad, "--vault", v, "--key-file", k]));
        assert!(e.contains("not a backup id"), "verify {bad:?}: {e}");
    }
    // A manifest under a valid id that is not its own: not listed, and
    // not restored as the backup it names.
    let moved = "20200101T000000Z-abcd";
    std::fs::create_dir_all(vault.join("backups").join(moved)).unwrap();
    std::fs::copy(
        vault.join(format!("backups/{id}/manifest.json")),
        vault.join(format!("backups/{moved}/manifest.json")),
    )
    .unwrap();
    let listed = list_json(&vault);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    let e = fails(replvault(&restore_args_id(v, moved, &key, &out)));
    assert!(
        e.contains(moved) && e.contains(&format!("manifest of backup \"{id}\"")),
        "{e}"
    );
    // A manifest of its own id whose data object is another backup's:
    // not listed, not restored.
    let borrowed = "20200101T000001Z-abce";
    std::fs::create_dir_all(vault.join("backups").join(borrowed)).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vault.join(format!("backups/{id}/manifest.json"))).unwrap(),
    )
    .unwrap();
    m["id"] = borrowed.into();
    assert_eq!(m["stored"]["key"], format!("backups/{id}/data"));
    std::fs::write(
        vault.join(format!("backups/{borrowed}/manifest.json")),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    let listed = list_json(&vault);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let e = fails(replvault(&restore_args_id(v, borrowed, &key, &out)));
    assert!(
        e.contains(borrowed) && e.contains(&format!("is not under backups/{borrowed}/")),
        "{e}"
    );
    assert!(!out.exists());
    // The documented forms work, and say which backup they read.
    let printed = ok(replvault(&[
        "restore",
        "latest",
        "--vault",
        v,
        "--key-file",
        k,
        "--out",
        o,
    ]));
    assert!(
        printed.contains(&format!("restored backup {id}")),
        "{printed}"
    );
    let printed = ok(replvault(&["verify", &id, "--vault", v, "--key-file", k]));
    assert!(printed.contains(&id), "{printed}");
    let printed = ok(replvault(&[
        "verify",
        "latest",
        "--vault",
        v,
        "--key-file",
        k,
    ]));
    assert!(printed.contains(&id), "{printed}");
}

/// A 2 MiB manifest (real ones are about 2 KB): `list` skips it with a
/// warning naming the backup, `restore` of it fails clearly, and neither
/// reads it whole.
#[test]
fn an_oversized_manifest_is_skipped_by_list_and_refused_by_restore() {
    let (_src, work, vault, key, id) = one_backup();
    let v = vault.to_str().unwrap();
    // A valid manifest, padded with 2 MiB of JSON whitespace.
    let big_id = "20200101T000000Z-0bad";
    let mut m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(vault.join(format!("backups/{id}/manifest.json"))).unwrap(),
    )
    .unwrap();
    m["id"] = big_id.into();
    let mut json = serde_json::to_vec(&m).unwrap();
    json.resize(json.len() + (2 << 20), b' ');
    let dir = vault.join("backups").join(big_id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), &json).unwrap();

    let o = replvault(&["list", "--vault", v, "--json"]);
    let log = stderr(&o);
    let listed: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert!(log.contains(big_id) && log.contains("manifest"), "{log}");

    let out = work.path().join("dump.rdb");
    let e = fails(replvault(&restore_args_id(v, big_id, &key, &out)));
    assert!(e.contains(big_id) && e.contains("manifest"), "{e}");
    assert!(e.contains("larger than"), "{e}");
    assert!(!out.exists());
}

fn restore_args_id<'a>(vault: &'a str, id: &'a str, key: &'a Path, out: &'a Path) -> Vec<&'a str> {
    let mut a = restore_args(vault, key, out).to_vec();
    a[1] = id;
    a
}

/// A data object with one byte appended fails `verify` on its size,
/// before it is read.
#[test]
fn a_data_object_with_a_byte_appended_fails_verify_on_its_size() {
    let (_src, _work, vault, key, id) = one_backup();
    let data = vault.join(format!("backups/{id}/data"));
    let size = std::fs::metadata(&data).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&data)
        .unwrap();
    f.write_all(b"\0").unwrap();
    drop(f);
    let o = verify_in(&vault, &key);
    let text = stdout(&o);
    fails(o);
    assert!(
        text.contains(&format!("data object is {} bytes", size + 1))
            && text.contains(&format!("manifest says {size}")),
        "{text}"
    );
}

/// A scan-mode backup whose seen-key set would outgrow `--scan-memory`
/// walks the database in several SCAN passes, each keeping the digests of
/// its own share of the keys, and still holds every key exactly once.
#[test]
fn scan_mode_over_its_memory_bound_walks_in_passes_and_restores_everything() {
    let src = RedisServer::start();
    fill_every_type(&src);
    assert_eq!(
        src.cmd(&["DEBUG", "POPULATE", "30000", "pop", "8"]),
        Reply::Status("OK".into())
    );
    let (m, log) = super::backup_restore::round_trip_logged(
        &src,
        &src.url(),
        &[
            "--mode",
            "scan",
            "--scan-memory",
            "64KiB",
            "--scan-count",
            "500",
        ],
    );
    assert_eq!(m["source"]["mode"], "scan", "{m}");
    let passes = log
        .lines()
        .filter(|l| l.contains("scan mode: pass"))
        .count();
    assert!(passes >= 8, "expected several passes: {log}");
    assert!(log.contains("--scan-memory"), "{log}");
}

/// A database that grows during a pass past what `--scan-memory` holds
/// fails the backup with an error naming the flag, and leaves nothing.
#[test]
fn scan_mode_fails_clearly_when_a_pass_outgrows_its_memory() {
    let src = RedisServer::start();
    assert_eq!(
        src.cmd(&["DEBUG", "POPULATE", "1000", "a", "8"]),
        Reply::Status("OK".into())
    );
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    std::fs::create_dir(&vault).unwrap();
    let args = [
        "backup",
        "--redis",
        &src.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--mode",
        "scan",
        // 4,096 slots: the 1,000 keys fit one pass, 3,072 at most.
        "--scan-memory",
        "64KiB",
        "--scan-count",
        "10",
        "--scan-rate",
        "500",
    ]
    .map(String::from);
    let child = replvault_spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // While the walk is young, the database grows twentyfold.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        src.cmd(&["DEBUG", "POPULATE", "20000", "b", "8"]),
        Reply::Status("OK".into())
    );
    let e = fails(child.wait_with_output().unwrap());
    assert!(e.contains("db 0 grew during the walk"), "{e}");
    assert!(e.contains("raise --scan-memory"), "{e}");
    let list = ok(replvault(&[
        "list",
        "--vault",
        vault.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(list.trim(), "[]");
    assert_eq!(files_under(&vault), Vec::<String>::new());
}
