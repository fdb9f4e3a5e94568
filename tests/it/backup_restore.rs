//! Backup → restore → a fresh server on the restored dump.rdb holds the
//! same data (DEBUG DIGEST), over every sync framing, ACL user and TLS.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::util::*;

/// Backs `src` up through `url`, restores, and checks the digest.
pub fn round_trip(src: &RedisServer, url: &str, extra: &[&str]) -> serde_json::Value {
    round_trip_logged(src, url, extra).0
}

/// [`round_trip`], also giving the backup's log (stderr).
pub fn round_trip_logged(
    src: &RedisServer,
    url: &str,
    extra: &[&str],
) -> (serde_json::Value, String) {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let o = backup_to(url, &vault, &key, extra);
    let log = stderr(&o);
    let out = ok(o);
    assert!(out.contains("complete"), "{out}");

    let list = list_json(&vault);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let m = list[0].clone();

    ok(verify_in(&vault, &key));
    let dump = work.path().join("restore/dump.rdb");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let out = ok(restore_to(&vault, &key, &dump));
    assert!(out.contains("appendonly"), "next steps missing: {out}");

    let copy = RedisServer::start_with_rdb(&dump);
    assert_eq!(copy.digest(), src.digest(), "restored data differs");
    assert_eq!(copy.keyspace(), src.keyspace());
    // The manifest's counts are what the server has.
    let total: u64 = src.keyspace().iter().map(|(_, k, _)| k).sum();
    let manifest_total: u64 = m["summary"]["databases"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["keys"].as_u64().unwrap())
        .sum();
    assert_eq!(manifest_total, total);
    // The stored object holds none of the dataset in the clear.
    let data =
        std::fs::read(vault.join(format!("backups/{}/data", m["id"].as_str().unwrap()))).unwrap();
    for needle in [
        &b"replvault_lib"[..],
        b"str:compressible",
        b"hash:big",
        b"member-1",
    ] {
        assert!(
            !data.windows(needle.len()).any(|w| w == needle),
            "plaintext {:?} in the data object",
            String::from_utf8_lossy(needle)
        );
    }
    (m, log)
}

#[test]
fn diskless_sync_round_trip_every_type() {
    let src = RedisServer::start_with(&["--repl-diskless-sync", "yes"]);
    fill_every_type(&src);
    let m = round_trip(&src, &src.url(), &[]);
    assert_eq!(m["source"]["mode"], "sync");
    assert_eq!(m["source"]["replid"].as_str().unwrap().len(), 40);
    assert_eq!(m["encryption"]["algorithm"], "aes-256-gcm-stream");
    assert_eq!(m["summary"]["functions"][0], "replvault_lib");
}

#[test]
fn disk_based_sync_round_trip_every_type() {
    let src = RedisServer::start_with(&["--repl-diskless-sync", "no"]);
    fill_every_type(&src);
    round_trip(&src, &src.url(), &[]);
}

#[test]
fn lru_and_lfu_policies_with_expiring_keys() {
    // Such servers write IDLE or FREQ between a key's expiry and the key.
    for policy in ["allkeys-lru", "allkeys-lfu", "volatile-lfu"] {
        let src = RedisServer::start_with(&["--maxmemory-policy", policy]);
        fill_every_type(&src);
        for i in 0..50 {
            let k = format!("ttl:{policy}:{i}");
            src.cmd(&["SET", &k, "v", "EX", "3600"]);
        }
        let expiring: u64 = src.keyspace().iter().map(|(_, _, e)| e).sum();
        assert!(expiring >= 50, "{policy}: {expiring}");
        round_trip(&src, &src.url(), &[]);
    }
}

#[test]
fn binary_keys_and_rdbcompression_off() {
    let src = RedisServer::start_with(&["--rdbcompression", "no"]);
    for i in 0..200u32 {
        let k = [b"\x00\xff".as_slice(), &i.to_le_bytes(), b"\r\n"].concat();
        src.cmd_bin(&[b"SET", &k, &[0u8, 1, 2, 255][..]]);
    }
    src.cmd(&["DEBUG", "POPULATE", "20000", "pop", "300"]);
    round_trip(&src, &src.url(), &["--compression-level", "1"]);
}

#[test]
fn acl_user_with_only_replication_permissions() {
    let src = RedisServer::start();
    fill_every_type(&src);
    // The least privilege documented in the README.
    assert_eq!(
        src.cmd(&[
            "ACL",
            "SETUSER",
            "backup",
            "on",
            ">s3cret",
            "+sync",
            "+psync",
            "+replconf"
        ])
        .text(),
        "OK"
    );
    round_trip(
        &src,
        &format!("redis://backup:s3cret@127.0.0.1:{}", src.port),
        &[],
    );
    // Even without +psync, SYNC is enough.
    assert_eq!(
        src.cmd(&[
            "ACL",
            "SETUSER",
            "nopsync",
            "on",
            ">s3cret",
            "+sync",
            "+replconf"
        ])
        .text(),
        "OK"
    );
    let m = round_trip(
        &src,
        &format!("redis://nopsync:s3cret@127.0.0.1:{}", src.port),
        &[],
    );
    assert_eq!(m["source"]["mode"], "sync (SYNC fallback)");
    assert!(!m.to_string().contains("s3cret"));
}

#[test]
fn password_from_environment_and_plaintext_by_request() {
    let src = RedisServer::start_with(&["--requirepass", "pw"]);
    src.cmd(&["SET", "k", "v"]);
    let work = tempfile::tempdir().unwrap();
    let vault = work.path().join("v");
    let url = src.url();
    let o = replvault_env(
        &[
            "backup",
            "--redis",
            &url,
            "--vault",
            vault.to_str().unwrap(),
            "--no-encryption",
        ],
        &[("REPLVAULT_REDIS_PASSWORD", "pw")],
    );
    ok(o);
    let dump = work.path().join("dump.rdb");
    ok(replvault(&[
        "restore",
        "--vault",
        vault.to_str().unwrap(),
        "--out",
        dump.to_str().unwrap(),
    ]));
    let copy = RedisServer::start_with_rdb(&dump);
    assert_eq!(copy.cmd(&["GET", "k"]).text(), "v");
    // Plaintext, as asked (and restored above without a key): the
    // manifest says so.
    let m = &list_json(&vault)[0];
    assert_eq!(m["encryption"]["algorithm"], "none", "{m}");
    assert!(m["encryption"]["key_id"].is_null(), "{m}");
}

#[test]
fn tls_with_a_private_ca() {
    let tls = tls_files();
    let (crt, key, ca) = (tls.crt.clone(), tls.key.clone(), tls.ca.clone());
    let src = RedisServer::start_with_ports(1, |ports| {
        [
            "--tls-port",
            &ports[0].to_string(),
            "--tls-cert-file",
            &crt,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]
        .map(String::from)
        .to_vec()
    });
    let tls_port = src.extra_ports[0];
    fill_every_type(&src);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    round_trip(&src, &url, &["--tls-ca-file", &ca]);
    // SNI / verification name different from the address.
    round_trip(
        &src,
        &url,
        &["--tls-ca-file", &ca, "--tls-server-name", "redis.test"],
    );
    // Without the CA the certificate is refused.
    let work = tempfile::tempdir().unwrap();
    let e = fails(replvault(&[
        "backup",
        "--redis",
        &url,
        "--vault",
        work.path().to_str().unwrap(),
        "--no-encryption",
    ]));
    assert!(e.contains("TLS"), "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

fn sha256_of(path: &Path) -> String {
    let data = std::fs::read(path).unwrap();
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &data).as_ref())
}

/// `fixtures/vault` holds a backup written before backups were cut into
/// independent zstd frames (one frame of unknown size), by the binary of
/// commit a1d7c05, from Redis 7.0.15 filled by `populate.sh --small` and
/// `DEBUG POPULATE 30000 pop: 64`. It must still verify and restore, to
/// the same bytes and data; and the data backed up again comes back the
/// same through the new layout.
#[test]
fn a_backup_of_one_zstd_stream_from_before_frames_still_restores() {
    const RDB_SHA256: &str = "43e7ebe440138f40e15f074b3e02932a449fc9b05d18c21a6e6dedde62c3a5d1";
    const DIGEST: &str = "e8a334c440f1e2f4be162a6111667d60cf3b97d6";
    let work = tempfile::tempdir().unwrap();
    let vault = work.path().join("vault");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(root().join("fixtures/vault"))
        .arg(&vault)
        .status()
        .unwrap();
    assert!(copy.success());
    // Git keeps no file modes, and replvault refuses a key others can read.
    let key = vault.join("fixture.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let k = key.to_str().unwrap();
    // `verify` or `restore` of the latest backup in `vault`, with -v: the log.
    let read = |args: &[&str], vault: &Path| {
        let mut all = vec!["-v"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--vault", vault.to_str().unwrap(), "--key-file", k]);
        let o = replvault(&all);
        let log = stderr(&o);
        ok(o);
        log
    };

    let log = read(&["verify"], &vault);
    assert!(log.contains("decoding one zstd stream"), "{log}");
    let dump = work.path().join("old.rdb");
    let log = read(&["restore", "--out", dump.to_str().unwrap()], &vault);
    assert!(log.contains("decoding one zstd stream"), "{log}");
    assert_eq!(sha256_of(&dump), RDB_SHA256, "restored bytes differ");
    let server = RedisServer::start_with_rdb(&dump);
    assert_eq!(server.digest(), DIGEST);

    // The same data through a new backup, in frames.
    let new_vault = work.path().join("new");
    ok(backup_to(&server.url(), &new_vault, &key, &[]));
    let again = work.path().join("again.rdb");
    let log = read(&["restore", "--out", again.to_str().unwrap()], &new_vault);
    assert!(log.contains("decoding independent zstd frames"), "{log}");
    assert_eq!(RedisServer::start_with_rdb(&again).digest(), DIGEST);
}

#[test]
fn restore_through_the_page_cache_on_request() {
    let src = RedisServer::start_with(&["--rdbcompression", "no"]);
    fill_every_type(&src);
    // More than one 4 MiB stage of the direct writer.
    src.cmd(&["DEBUG", "POPULATE", "60000", "bulk:", "100"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    ok(backup_to(&src.url(), &vault, &key, &[]));
    let (vault, key) = (vault.to_str().unwrap(), key.to_str().unwrap());
    let restore = |name: &str, env: &[(&str, &str)]| {
        let out = work.path().join(name);
        let o = replvault_env(
            &[
                "-v",
                "restore",
                "--vault",
                vault,
                "--key-file",
                key,
                "--out",
                out.to_str().unwrap(),
            ],
            env,
        );
        let log = stderr(&o);
        ok(o);
        (out, log)
    };
    let (direct, log) = restore("direct.rdb", &[]);
    assert!(
        log.contains("decoding independent zstd frames"),
        "a new backup is made of frames: {log}"
    );
    assert!(
        log.contains("writing the restored file with O_DIRECT")
            || log.contains("the filesystem refuses O_DIRECT"),
        "the default should try O_DIRECT: {log}"
    );
    let (buffered, log) = restore("buffered.rdb", &[("REPLVAULT_NO_DIRECT_IO", "true")]);
    assert!(
        log.contains("writing the restored file through the page cache"),
        "{log}"
    );
    assert!(
        !log.contains("refuses O_DIRECT"),
        "it should not try: {log}"
    );
    let bytes = std::fs::read(&buffered).unwrap();
    assert!(bytes.len() > 4 << 20, "{}", bytes.len());
    assert_eq!(bytes, std::fs::read(&direct).unwrap());
    let copy = RedisServer::start_with_rdb(&buffered);
    assert_eq!(copy.digest(), src.digest());
}

#[test]
fn a_diskless_sync_delay_is_waited_out_and_reported() {
    // The server holds its PSYNC reply for the delay, sending a keepalive
    // every second: an idle timeout shorter than the delay must not fire.
    let src = RedisServer::start_with(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "4",
    ]);
    fill_every_type(&src);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let o = backup_to(&src.url(), &vault, &key, &["--idle-timeout", "2s"]);
    let log = stderr(&o);
    let out = ok(o);
    let waited: f64 = out
        .split_once("s waiting for the server to start sending")
        .and_then(|(before, _)| before.rsplit_once('('))
        .and_then(|(_, w)| w.parse().ok())
        .unwrap_or_else(|| panic!("no wait in the summary: {out}"));
    // Redis counts the delay in whole seconds of its clock.
    assert!((2.5..12.0).contains(&waited), "{waited}: {out}");
    assert!(log.contains("waited=\""), "{log}");
    let list = list_json(&vault);
    let recorded = list[0]["source"]["wait_secs"].as_f64().unwrap();
    assert!((recorded - waited).abs() < 0.06, "{recorded} vs {waited}");
    // The transfer itself is short; the wait is not counted in it.
    assert!(list[0]["duration_secs"].as_f64().unwrap() < waited);
}

#[test]
fn module_values_and_aux_records_round_trip() {
    let so = test_module().to_str().unwrap();
    let src = RedisServer::start_with(&["--loadmodule", so]);
    fill_every_type(&src);
    assert_eq!(
        src.cmd(&["RVTEST.AUX", "index definitions"]),
        Reply::Status("OK".into())
    );
    for i in 0..40usize {
        let key = format!("mod:{i}");
        let reply = src.cmd(&[
            "RVTEST.SET",
            &key,
            &(-(i as i64) * 1_000_003).to_string(),
            "18446744073709551615",
            &format!("{}.25", i),
            "0.5",
            // Long ones are LZF-compressed inside the module value.
            &"module-".repeat(i * 3),
        ]);
        assert_eq!(reply, Reply::Status("OK".into()), "{key}");
    }
    src.cmd(&["EXPIRE", "mod:7", "100000"]);

    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    ok(backup_to(&src.url(), &vault, &key, &[]));
    let m = &list_json(&vault)[0];
    assert_eq!(
        m["summary"]["modules"]["rvtest-t1"],
        serde_json::json!({"values": 40, "aux": 2}),
        "{m}"
    );
    ok(verify_in(&vault, &key));
    let restored = tempfile::tempdir().unwrap();
    let dump = restored.path().join("dump.rdb");
    let out = ok(restore_to(&vault, &key, &dump));
    assert!(
        out.contains("rvtest-t1") && out.contains("loadmodule"),
        "the next steps should name the module type: {out}"
    );
    let inspected = ok(replvault(&["inspect", dump.to_str().unwrap()]));
    assert!(
        inspected.contains("module rvtest-t1: values 40, aux records 2"),
        "{inspected}"
    );

    let copy = RedisServer::start_in(restored, &["--loadmodule", so]);
    assert_eq!(copy.digest(), src.digest(), "restored data differs");
    assert_eq!(copy.keyspace(), src.keyspace());
    // DEBUG DIGEST covers keys only: the aux records came back too, the one
    // written before the keyspace (the text) and the one after (the count).
    assert_eq!(
        copy.cmd(&["RVTEST.AUX"]),
        Reply::Array(vec![
            Reply::Bulk(Some(b"index definitions".to_vec())),
            Reply::Int(40)
        ])
    );
    assert_eq!(
        copy.cmd(&["RVTEST.GET", "mod:39"]),
        src.cmd(&["RVTEST.GET", "mod:39"])
    );
}
