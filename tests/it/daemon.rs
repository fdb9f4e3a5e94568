//! `replvault run` against a real redis-server: scheduled backups with
//! `/metrics` scraped between them, `/healthz` flipping, SIGTERM mid-backup.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::proxy::{Fault, Proxy};
use super::util::*;

/// GET `path`: (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    let status = r.split(' ').nth(1)?.parse().ok()?;
    let body = r.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of one metric line (`name` includes labels).
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn scrape(port: u16) -> String {
    get(port, "/metrics").map(|(_, b)| b).unwrap_or_default()
}

/// The daemon's configuration file: `every` 2s, this vault, listening on
/// `port`, and `extra` lines.
fn write_conf(conf: &std::path::Path, vault: &std::path::Path, port: u16, extra: &str) {
    std::fs::write(
        conf,
        format!(
            "vault = {:?}\nevery = \"2s\"\nlisten = \"127.0.0.1:{port}\"\nunhealthy-after = \"1h\"\n{extra}",
            vault.to_str().unwrap()
        ),
    )
    .unwrap();
}

#[test]
fn daemon_takes_scheduled_backups_and_serves_metrics() {
    let redis = RedisServer::start();
    fill_every_type(&redis);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    // Part of the configuration comes from a file: flags win over it.
    let conf = work.path().join("replvault.toml");
    // An unknown key is refused with a clear line, before anything starts.
    let unused = RefusedPort::new();
    write_conf(
        &conf,
        &vault,
        unused.port,
        "every_typo_is_refused = false\n",
    );
    let err = fails(replvault(&["run", "--config", conf.to_str().unwrap()]));
    assert!(
        err.contains("unknown key \"every_typo_is_refused\""),
        "{err}"
    );
    assert!(!vault.exists(), "a refused configuration touched the vault");
    // Scan mode gives no snapshot a stream can continue from.
    let err = fails(replvault(&[
        "run",
        "--pitr",
        "--mode",
        "scan",
        "--redis",
        &format!("redis://127.0.0.1:{}", unused.port),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]));
    assert!(
        err.contains("--pitr needs base snapshots taken over replication"),
        "{err}"
    );
    assert!(!vault.exists(), "a refused --pitr touched the vault");

    let (c, k, url) = (conf.to_str().unwrap(), key.to_str().unwrap(), redis.url());
    let mut daemon = Daemon::start_with(
        |port| {
            // The port comes from the file.
            write_conf(&conf, &vault, port, "");
            ["run", "--config", c, "--redis", &url, "--key-file", k]
                .map(String::from)
                .to_vec()
        },
        &[],
    );
    let port = daemon.port;
    wait_for("the first backup", Duration::from_secs(30), || {
        metric(&scrape(port), "replvault_backups_total{result=\"success\"}") == Some(1.0)
    });
    let m = scrape(port);
    assert_eq!(metric(&m, "replvault_up"), Some(1.0));
    assert_eq!(metric(&m, "replvault_last_attempt_success"), Some(1.0));
    assert!(
        metric(&m, "replvault_last_rdb_bytes").unwrap() > 1000.0,
        "{m}"
    );
    assert!(
        metric(&m, "replvault_last_stored_bytes").unwrap() > 0.0,
        "{m}"
    );
    assert!(
        metric(&m, "replvault_last_compression_ratio").unwrap() > 0.0,
        "{m}"
    );
    // The wait for the server's fork is part of the wall time.
    let wait = metric(&m, "replvault_last_wait_seconds").unwrap();
    assert!(
        metric(&m, "replvault_last_duration_seconds").unwrap() >= wait,
        "{m}"
    );
    let first_success = metric(&m, "replvault_last_success_timestamp_seconds").unwrap();
    assert!(first_success > 1.7e9, "{m}");
    assert!(metric(&m, "replvault_next_backup_timestamp_seconds").unwrap() >= first_success);
    assert_eq!(
        metric(&m, "replvault_backups_total{result=\"failure\"}"),
        Some(0.0)
    );
    let (status, body) = get(port, "/healthz").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(port, "/nope").unwrap().0, 404);

    wait_for("the second backup", Duration::from_secs(30), || {
        metric(&scrape(port), "replvault_backups_total{result=\"success\"}") == Some(2.0)
    });
    let m = scrape(port);
    assert!(metric(&m, "replvault_last_success_timestamp_seconds").unwrap() > first_success);
    assert_eq!(
        metric(&m, "replvault_rdb_bytes_total").unwrap(),
        2.0 * metric(&m, "replvault_last_rdb_bytes").unwrap()
    );

    let st = daemon.sigterm();
    assert!(st.success(), "{st}: {}", daemon.stderr());
    drop(daemon);
    let v = list_json(&vault);
    let before = v.as_array().unwrap().len();
    assert!(before >= 2, "{v}");
    let newest = v.as_array().unwrap().last().unwrap()["finished_at"]
        .as_str()
        .unwrap()
        .to_string();
    let newest = chrono::DateTime::parse_from_rfc3339(&newest).unwrap();
    // A restart does not back up at once: the newest backup is recent, and
    // the next one is due an `--every` after it.
    let mut daemon = Daemon::start_with(
        |port| {
            write_conf(&conf, &vault, port, "");
            [
                "run",
                "--config",
                c,
                "--every",
                "1h",
                "--redis",
                &url,
                "--key-file",
                k,
            ]
            .map(String::from)
            .to_vec()
        },
        &[],
    );
    let port = daemon.port;
    wait_for(
        "the restarted daemon to plan",
        Duration::from_secs(10),
        || metric(&scrape(port), "replvault_next_backup_timestamp_seconds").unwrap_or(0.0) > 0.0,
    );
    let m = scrape(port);
    let seeded = metric(&m, "replvault_last_success_timestamp_seconds").unwrap();
    assert!(
        (seeded - newest.timestamp_millis() as f64 / 1000.0).abs() < 0.01,
        "the last success is seeded from the vault: {m}"
    );
    let next = metric(&m, "replvault_next_backup_timestamp_seconds").unwrap();
    assert!(
        (next - (seeded + 3600.0)).abs() < 1.0,
        "next backup {next}, an hour after {seeded}: {m}"
    );
    assert_eq!(metric(&m, "replvault_backup_in_progress"), Some(0.0), "{m}");
    assert_eq!(
        metric(&m, "replvault_backups_total{result=\"success\"}"),
        Some(0.0)
    );
    assert_eq!(get(port, "/healthz").unwrap().0, 200);
    let st = daemon.sigterm();
    assert!(st.success(), "{st}: {}", daemon.stderr());
    assert_eq!(list_json(&vault).as_array().unwrap().len(), before);
}

#[test]
fn daemon_sigterm_mid_backup_leaves_nothing() {
    let redis = RedisServer::start();
    fill_every_type(&redis);
    for i in 0..40 {
        let v: Vec<u8> = (0..100_000u32)
            .map(|j| (j.wrapping_mul(2654435761) >> 13) as u8 ^ i as u8)
            .collect();
        redis.cmd_bin(&[b"SET", format!("big:{i}").as_bytes(), &v]);
    }
    // The link stalls part-way (the RDB is about 700 KB): the backup cannot
    // finish before the signal, however slow the machine is to see it
    // under way.
    let proxy = Proxy::start(redis.port, Fault::StallAfter(300_000));
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut daemon = Daemon::start(&[
        "run",
        "--redis",
        &proxy.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--every",
        "1h",
    ]);
    let port = daemon.port;
    wait_for("a backup under way", Duration::from_secs(30), || {
        let m = scrape(port);
        metric(&m, "replvault_backup_in_progress") == Some(1.0)
            && metric(&m, "replvault_backup_progress_bytes").unwrap_or(0.0) > 100_000.0
    });
    let st = daemon.sigterm();
    let err = daemon.stderr();
    assert!(st.success(), "{st}: {err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(files_under(&vault), Vec::<String>::new());
    let list = ok(replvault(&[
        "list",
        "--vault",
        vault.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(list.trim(), "[]");
}

#[test]
fn daemon_healthz_flips_when_backups_fail() {
    let redis = RedisServer::start();
    redis.cmd(&["SET", "k", "v"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut daemon = Daemon::start(&[
        "run",
        "--redis",
        &redis.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--every",
        "1s",
        "--unhealthy-after",
        "3s",
        "--connect-timeout",
        "1s",
    ]);
    let port = daemon.port;
    wait_for("a successful backup", Duration::from_secs(30), || {
        metric(&scrape(port), "replvault_last_attempt_success") == Some(1.0)
    });
    assert_eq!(get(port, "/healthz").unwrap().0, 200);
    // The server starts refusing the daemon. (Stopping it would free its
    // port for another test's server, whose backups would succeed.)
    assert_eq!(
        redis.cmd(&["CONFIG", "SET", "requirepass", "now-required"]),
        Reply::Status("OK".into())
    );
    wait_for("/healthz to fail", Duration::from_secs(30), || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 503)
    });
    let (_, why) = get(port, "/healthz").unwrap();
    assert!(
        why.contains("unhealthy") && why.contains("last error"),
        "{why}"
    );
    assert!(why.contains("requires authentication"), "{why}");
    let m = scrape(port);
    assert_eq!(metric(&m, "replvault_last_attempt_success"), Some(0.0));
    assert!(
        metric(&m, "replvault_failures_total{reason=\"source\"}").unwrap() >= 1.0,
        "{m}"
    );
    let st = daemon.sigterm();
    assert!(st.success(), "{st}");
}

/// What the daemon backs up restores to the same data.
#[test]
fn daemon_backup_restores_to_the_same_data() {
    let redis = RedisServer::start();
    fill_every_type(&redis);
    redis.cmd(&["DEBUG", "POPULATE", "20000", "pop:", "64"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let v = vault.to_str().unwrap();
    let mut daemon = Daemon::start(&[
        "run",
        "--redis",
        &redis.url(),
        "--vault",
        v,
        "--key-file",
        key.to_str().unwrap(),
        "--every",
        "1h",
    ]);
    // The first backup is due at once (the vault is empty). `list` fails
    // until the backup creates the vault.
    let mut listed = serde_json::Value::Null;
    wait_for("a backup in the vault", Duration::from_secs(60), || {
        assert!(daemon.try_wait().is_none(), "{}", daemon.stderr());
        let o = replvault(&["list", "--vault", v, "--json"]);
        if !o.status.success() {
            return false;
        }
        listed = serde_json::from_slice(&o.stdout).unwrap();
        !listed.as_array().unwrap().is_empty()
    });
    let st = daemon.sigterm();
    assert!(st.success(), "{st}: {}", daemon.stderr());
    assert_eq!(list_json(&vault), listed, "one backup, an hour apart");
    let id = listed[0]["id"].as_str().unwrap();
    assert!(
        daemon
            .stderr()
            .contains(&format!("backup complete id={id}")),
        "{}",
        daemon.stderr()
    );

    let dump = work.path().join("restore/dump.rdb");
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let out = ok(replvault(&[
        "restore",
        id,
        "--vault",
        v,
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        dump.to_str().unwrap(),
    ]));
    assert!(out.contains(id), "{out}");
    let copy = RedisServer::start_with_rdb(&dump);
    assert_eq!(copy.digest(), redis.digest(), "restored data differs");
    assert_eq!(copy.keyspace(), redis.keyspace());
    let total: u64 = redis.keyspace().iter().map(|(_, k, _)| k).sum();
    assert!(total > 20_000, "{total}");
}
