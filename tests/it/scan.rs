//! Scan mode (SCAN + DUMP written as an RDB) against real servers that
//! refuse replication: auto fallback, explicit `--mode scan` with a
//! least-privilege ACL user, and keys vanishing during the walk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::backup_restore::{round_trip, round_trip_logged};
use super::util::*;

fn no_replication_server() -> RedisServer {
    let conf = tempfile::tempdir().unwrap();
    let path = conf.path().join("redis.conf");
    std::fs::write(
        &path,
        "rename-command SYNC \"\"\nrename-command PSYNC \"\"\n",
    )
    .unwrap();
    let s = RedisServer::start_with(&[path.to_str().unwrap()]);
    // The config file is read at start; the directory can go.
    drop(conf);
    s
}

#[test]
fn auto_mode_falls_back_to_scan_and_restores_the_same_data() {
    let src = no_replication_server();
    fill_every_type(&src);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let o = replvault(&[
        "backup",
        "--redis",
        &src.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let log = stderr(&o);
    ok(o);
    assert_eq!(log.matches("falling back to scan mode").count(), 1, "{log}");

    // The full round trip: same DEBUG DIGEST and keyspace in a fresh server.
    let m = round_trip(&src, &src.url(), &[]);
    assert_eq!(m["source"]["mode"], "scan", "{m}");
    assert_eq!(m["source"]["point_in_time"], false, "{m}");
    assert_eq!(m["summary"]["aux"]["replvault-mode"], "scan", "{m}");
    assert!(
        !m["summary"]["functions"].as_array().unwrap().is_empty(),
        "{m}"
    );

    // Sync mode says why it cannot work, and what to do.
    let err = fails(replvault(&[
        "backup",
        "--mode",
        "sync",
        "--redis",
        &src.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]));
    assert!(
        err.contains("refuses SYNC/PSYNC") && err.contains("--mode scan"),
        "{err}"
    );
}

#[test]
fn scan_mode_with_a_least_privilege_user() {
    let src = RedisServer::start();
    fill_every_type(&src);
    let r = src.cmd(&[
        "ACL",
        "SETUSER",
        "checker",
        "on",
        ">scan-secret",
        "+scan",
        "+dump",
        "+pttl",
        "+select",
        "+info",
        "+ping",
        "+function|dump",
        "%R~*",
    ]);
    assert_eq!(r.text(), "OK");
    let url = format!("redis://checker:scan-secret@127.0.0.1:{}", src.port);
    let m = round_trip(&src, &url, &["--mode", "scan", "--scan-count", "7"]);
    assert_eq!(m["source"]["mode"], "scan");

    // Without DUMP the error names what the user needs.
    src.cmd(&["ACL", "SETUSER", "checker", "-dump"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let err = fails(replvault(&[
        "backup",
        "--mode",
        "scan",
        "--redis",
        &url,
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]));
    assert!(err.contains("+dump"), "{err}");
    assert!(!err.contains("scan-secret"), "{err}");
    assert_eq!(files_under(&vault), Vec::<String>::new());
}

#[test]
fn keys_deleted_and_expiring_during_the_walk() {
    let src = no_replication_server();
    fill_every_type(&src);
    // 20,000 plain keys; a quarter expire within a second.
    let port = src.port.to_string();
    let mut script = String::new();
    for i in 0..20_000 {
        script.push_str(&format!("SET churn:{i} value-{i}\n"));
        if i % 4 == 0 {
            script.push_str(&format!("PEXPIRE churn:{i} {}\n", 200 + (i % 800)));
        }
    }
    let mut child = std::process::Command::new("redis-cli")
        .args(["-p", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let before: u64 = src.cmd(&["DBSIZE"]).text().parse().unwrap();

    // Meanwhile another client deletes keys.
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, port2) = (stop.clone(), src.port);
    let deleter = std::thread::spawn(move || {
        let mut n = 0;
        let mut i = 1;
        while !stop2.load(Ordering::Relaxed) && i < 20_000 {
            let st = std::process::Command::new("redis-cli")
                .args(["-p", &port2.to_string(), "DEL"])
                .args((0..50).map(|j| format!("churn:{}", i + j * 2)))
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            n += 50;
            i += 101;
            // Paces the deletions over the walk; the assertions hold for
            // any interleaving (they bound by what was deleted).
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    });
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let o = replvault(&[
        "backup",
        "--redis",
        &src.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--scan-count",
        "50",
        "--scan-rate",
        "20000",
    ]);
    let log = stderr(&o);
    ok(o);
    stop.store(true, Ordering::Relaxed);
    let deleted = deleter.join().unwrap();
    assert!(deleted > 0);
    let dump = work.path().join("dump.rdb");
    ok(restore_to(&vault, &key, &dump));
    let copy = RedisServer::start_with_rdb(&dump);
    let after: u64 = copy.cmd(&["DBSIZE"]).text().parse().unwrap();
    assert!(after <= before, "{after} > {before}");
    assert!(
        after >= before - 5_000 - deleted as u64,
        "{after} {before} {deleted}"
    );
    // The closing log line counts what was written, and what was skipped.
    let done = log
        .lines()
        .find(|l| l.contains("walk complete"))
        .unwrap_or_else(|| panic!("{log}"));
    let field = |name: &str| -> u64 {
        let v = done
            .split(&format!(" {name}="))
            .nth(1)
            .unwrap_or_else(|| panic!("{done}"));
        v.split(' ').next().unwrap().parse().unwrap()
    };
    // Keys that expired since the backup are dropped when Redis loads it.
    assert!(
        after <= field("keys") && field("keys") <= before,
        "{after} {done}"
    );
    // A repeat is of a key SCAN gave before (rare: the table must shrink).
    assert!(
        field("repeated") <= field("keys") + field("vanished"),
        "{done}"
    );
    assert!(field("vanished") <= deleted as u64 + 5_000, "{done}");
    // What is there is intact: the every-type keys in db 0 survived.
    assert_eq!(
        copy.cmd(&["XLEN", "stream:s"]).text(),
        src.cmd(&["XLEN", "stream:s"]).text()
    );
}

/// A cluster node holding every slot: both modes back up its keys (db 0,
/// the only one in cluster mode), scan mode says to back up every master,
/// and each backup restores into a standalone server with the same digest.
#[test]
fn cluster_node_backs_up_in_both_modes() {
    // The cluster bus on a port of its own: by default it is the port plus
    // 10,000, which may be taken, or above 65,535.
    let src = RedisServer::start_with_ports(1, |ports| {
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &ports[0].to_string(),
        ]
        .map(String::from)
        .to_vec()
    });
    assert_eq!(
        src.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        Reply::Status("OK".into())
    );
    wait_for("cluster_state:ok", Duration::from_secs(30), || {
        src.cmd(&["CLUSTER", "INFO"])
            .text()
            .contains("cluster_state:ok")
    });
    assert_eq!(
        src.cmd(&["DEBUG", "POPULATE", "2000", "k", "40"]),
        Reply::Status("OK".into())
    );
    for i in 0..50 {
        let i = i.to_string();
        src.cmd(&["HSET", &format!("h{{{i}}}"), "a", &i, "b", "x"]);
        src.cmd(&["RPUSH", &format!("l{{{i}}}"), "a", "b", &i]);
        src.cmd(&["SADD", &format!("s{{{i}}}"), "1", "2", &i]);
        src.cmd(&["ZADD", &format!("z{{{i}}}"), "1", "a", "2", &i]);
        src.cmd(&["XADD", &format!("x{{{i}}}"), "*", "f", &i]);
        src.cmd(&["SET", &format!("t{{{i}}}"), &i, "EX", "3600"]);
    }

    let m = round_trip(&src, &src.url(), &["--mode", "sync"]);
    assert_eq!(m["source"]["mode"], "sync", "{m}");
    let (m, log) = round_trip_logged(&src, &src.url(), &["--mode", "scan"]);
    assert_eq!(m["source"]["mode"], "scan", "{m}");
    assert!(log.contains("back up every master"), "{log}");
}

#[test]
fn scan_mode_carries_module_values_but_not_module_aux_data() {
    // What a module keeps outside keys is in no DUMP reply: scan mode says
    // so when modules are loaded, and sync mode is the way to keep it.
    let so = test_module().to_str().unwrap();
    let src = RedisServer::start_with(&["--loadmodule", so]);
    fill_every_type(&src);
    src.cmd(&["RVTEST.AUX", "index definitions"]);
    for i in 0..20 {
        let key = format!("mod:{i}");
        let long = "x".repeat(i * 30);
        let r = src.cmd(&["RVTEST.SET", &key, "-5", "6", "7.5", "8.25", &long]);
        assert_eq!(r, Reply::Status("OK".into()));
    }
    let (m, log) = scan_backup_restored_with_module(&src, so);
    assert_eq!(m["source"]["mode"], "scan", "{m}");
    assert!(
        log.contains("modules loaded") && log.contains("rvtest"),
        "{log}"
    );
    assert_eq!(
        m["summary"]["modules"]["rvtest-t1"],
        serde_json::json!({"values": 20, "aux": 0}),
        "{m}"
    );
}

/// A scan-mode backup of `src` restored into a fresh server with the test
/// module loaded: the same keys (DEBUG DIGEST), none of the aux data.
fn scan_backup_restored_with_module(src: &RedisServer, so: &str) -> (serde_json::Value, String) {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let o = backup_to(&src.url(), &vault, &key, &["--mode", "scan"]);
    let log = stderr(&o);
    ok(o);
    let m = list_json(&vault)[0].clone();
    let restored = tempfile::tempdir().unwrap();
    let dump = restored.path().join("dump.rdb");
    ok(restore_to(&vault, &key, &dump));
    let copy = RedisServer::start_in(restored, &["--loadmodule", so]);
    assert_eq!(copy.digest(), src.digest(), "restored keys differ");
    assert_eq!(
        copy.cmd(&["RVTEST.AUX"]),
        Reply::Array(vec![Reply::Bulk(Some(Vec::new())), Reply::Int(0)]),
        "scan mode cannot have carried the aux data"
    );
    (m, log)
}

/// ACL users that may not replicate: `--mode auto` (the default) says so
/// once and backs up in scan mode, `--mode sync` fails saying what the
/// user lacks, and a user that can do neither gets an error naming what
/// scan mode needs. Nothing is listed after a failure.
#[test]
fn users_without_sync_permission_fall_back_or_fail_clearly() {
    let src = RedisServer::start();
    fill_every_type(&src);
    let scan_rights = [
        "+scan",
        "+dump",
        "+pttl",
        "+select",
        "+info",
        "+ping",
        "+function|dump",
        "%R~*",
    ];
    // The README's scan user (refused at REPLCONF), and one that may
    // REPLCONF but neither SYNC nor PSYNC (refused at PSYNC).
    for (user, extra) in [("scanonly", &[][..]), ("noreplicate", &["+replconf"][..])] {
        let mut acl = vec!["ACL", "SETUSER", user, "on", ">Nosync-Pw-51"];
        acl.extend(scan_rights);
        acl.extend(extra);
        assert_eq!(src.cmd(&acl).text(), "OK");
        let url = format!("redis://{user}:Nosync-Pw-51@127.0.0.1:{}", src.port);

        let (m, log) = round_trip_logged(&src, &url, &[]);
        assert_eq!(m["source"]["mode"], "scan", "{user}: {m}");
        assert_eq!(m["source"]["point_in_time"], false, "{user}: {m}");
        assert_eq!(
            log.matches("falling back to scan mode").count(),
            1,
            "{user}: {log}"
        );
        assert!(
            log.contains("NOPERM"),
            "{user}: the reason is logged: {log}"
        );

        let work = tempfile::tempdir().unwrap();
        let key = keygen(work.path());
        let vault = work.path().join("vault");
        let o = backup_to(&url, &vault, &key, &["--mode", "sync"]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        let err = fails(o);
        assert!(
            err.contains("denied") && err.contains("NOPERM"),
            "{user}: {err}"
        );
        assert!(
            err.contains("+sync") && err.contains("+psync") && err.contains("+replconf"),
            "{user}: what the user needs: {err}"
        );
        assert!(!all.contains("falling back"), "{user}: {all}");
        assert!(!all.contains("Nosync-Pw-51"), "{user}: {all}");
        assert_eq!(files_under(&vault), Vec::<String>::new(), "{user}");
        if vault.exists() {
            assert_eq!(list_json(&vault), serde_json::json!([]), "{user}");
        }
    }
    // The server never started a full sync for any of them.
    let stats = src.cmd(&["INFO", "stats"]).text();
    assert!(stats.contains("sync_full:0\r\n"), "{stats}");

    // Neither replication nor DUMP: the fallback's error names what scan
    // mode needs.
    let acl = [
        "ACL",
        "SETUSER",
        "nothing",
        "on",
        ">Nosync-Pw-51",
        "+ping",
        "+info",
    ];
    assert_eq!(src.cmd(&acl).text(), "OK");
    let url = format!("redis://nothing:Nosync-Pw-51@127.0.0.1:{}", src.port);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let err = fails(backup_to(&url, &vault, &key, &[]));
    assert!(err.contains("+scan") && err.contains("+dump"), "{err}");
    assert_eq!(files_under(&vault), Vec::<String>::new());
}
