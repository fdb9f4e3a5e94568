//! Sentinel: backups through a `sentinel://` URL from a replica, following a
//! real failover, and the stream archive continuing across it.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::util::*;

/// One `redis-server --sentinel` process.
struct Sentinel {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sentinel {
    fn start(master_port: u16) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor m 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds m 1000\n\
                 sentinel failover-timeout m 10000\n\
                 sentinel parallel-syncs m 2\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sentinel.log")).unwrap();
        let child = Command::new(redis_server_bin())
            .arg(&conf)
            .arg("--sentinel")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Sentinel {
            port,
            _dir: dir,
            child,
        };
        wait_until(Duration::from_secs(20), "the sentinel answers", || {
            call(port, &["PING"]).is_some_and(|r| r.contains("PONG"))
        });
        s
    }
}

/// A command to `port`; the reply as text, or `None` if nothing answers.
fn call(port: u16, args: &[&str]) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(out.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Replies here are small: read what arrives within the timeout.
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n") && n < chunk.len() {
            break;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A primary, two real replicas and three sentinels watching them.
struct Group {
    nodes: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
}

impl Group {
    fn start() -> Group {
        let primary = RedisServer::start();
        let p = primary.port.to_string();
        let mut nodes = vec![primary];
        for _ in 0..2 {
            nodes.push(RedisServer::start_with(&["--replicaof", "127.0.0.1", &p]));
        }
        let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(nodes[0].port)).collect();
        let g = Group { nodes, sentinels };
        // Every sentinel knows both replicas with their links up.
        for s in &g.sentinels {
            wait_until(
                Duration::from_secs(30),
                "sentinels see the replicas",
                || {
                    call(s.port, &["SENTINEL", "REPLICAS", "m"])
                        .is_some_and(|r| r.matches("master-link-status\r\n$2\r\nok").count() == 2)
                },
            );
        }
        g
    }

    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("sentinel://{}/m", hosts.join(","))
    }

    /// The node the sentinels call the master.
    fn master(&self) -> &RedisServer {
        let r = call(
            self.sentinels[0].port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"],
        )
        .unwrap_or_default();
        self.nodes
            .iter()
            .find(|n| r.contains(&format!("\r\n{}\r\n", n.port)))
            .unwrap_or_else(|| panic!("no node is the master: {r}"))
    }

    /// Writes, and waits until both real replicas hold them.
    fn write(&self, tag: &str) {
        let m = self.master();
        for i in 0..200 {
            m.cmd(&["SET", &format!("{tag}:{i}"), &format!("value {i} of {tag}")]);
        }
        m.cmd(&["HSET", &format!("{tag}:h"), "a", "1", "b", "2"]);
        m.cmd(&["RPUSH", &format!("{tag}:l"), "x", "y", "z"]);
        let want = m.digest();
        for n in &self.nodes {
            wait_until(Duration::from_secs(20), "the replicas catch up", || {
                n.digest() == want
            });
        }
    }

    fn failover(&self) -> u16 {
        let old = self.master().port;
        let r = call(self.sentinels[0].port, &["SENTINEL", "FAILOVER", "m"]).unwrap_or_default();
        assert!(r.contains("OK"), "SENTINEL FAILOVER: {r}");
        wait_until(Duration::from_secs(60), "a new master is in charge", || {
            let r = call(
                self.sentinels[0].port,
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"],
            )
            .unwrap_or_default();
            let now = self
                .nodes
                .iter()
                .find(|n| r.contains(&format!("\r\n{}\r\n", n.port)));
            now.is_some_and(|n| {
                n.port != old
                    && n.cmd(&["INFO", "replication"])
                        .text()
                        .contains("role:master")
            })
        });
        // The other nodes follow it (the old master included).
        let new = self.master().port;
        for n in self.nodes.iter().filter(|n| n.port != new) {
            wait_until(
                Duration::from_secs(60),
                "the others replicate the new master",
                || {
                    let info = n.cmd(&["INFO", "replication"]).text();
                    info.contains(&format!("master_port:{new}"))
                        && info.contains("master_link_status:up")
                },
            );
        }
        new
    }
}

fn sync_full(n: &RedisServer) -> u64 {
    n.cmd(&["INFO", "stats"])
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("sync_full:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn backup(url: &str, vault: &Path, key: &Path, extra: &[&str]) -> serde_json::Value {
    ok(backup_to(url, vault, key, extra));
    let list = list_json(vault);
    list.as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("a backup is listed")
}

/// The port in a manifest's `source.address`.
fn source_port(m: &serde_json::Value) -> u16 {
    m["source"]["address"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {}", m["source"]))
}

fn restored_digest(vault: &Path, key: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("dump.rdb");
    ok(restore_to(vault, key, &file));
    RedisServer::start_with_rdb(&file).digest()
}

#[test]
fn sentinel_url_backs_up_from_a_replica_and_follows_a_failover() {
    let g = Group::start();
    g.write("before");
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let primary = g.master().port;
    let forks = sync_full(g.master());
    let m = backup(&g.url(), &vault, &key, &[]);
    let from = source_port(&m);
    assert_ne!(from, primary, "the backup came from the primary");
    assert!(
        g.nodes.iter().any(|n| n.port == from),
        "{from} is no node of the group"
    );
    assert_eq!(sync_full(g.master()), forks, "the primary made a full sync");
    assert_eq!(restored_digest(&vault, &key), g.master().digest());
    // --from primary asks for the primary.
    let m = backup(&g.url(), &vault, &key, &["--from", "primary"]);
    assert_eq!(source_port(&m), primary);

    let new = g.failover();
    assert_ne!(new, primary);
    g.write("after");
    let m = backup(&g.url(), &vault, &key, &[]);
    let from = source_port(&m);
    assert_ne!(
        from, new,
        "after the failover the backup came from the new primary"
    );
    assert_eq!(restored_digest(&vault, &key), g.master().digest());
    let m = backup(&g.url(), &vault, &key, &["--from", "primary"]);
    assert_eq!(source_port(&m), new);
}

#[test]
fn a_sentinel_url_that_names_no_master_or_no_sentinel_fails_clearly() {
    let g = Group::start();
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let url = g.url().replace("/m", "/nosuchmaster");
    let e = fails(backup_to(&url, &vault, &key, &[]));
    assert!(e.contains("no master named \"nosuchmaster\""), "{e}");
    let dead = format!("sentinel://127.0.0.1:{}/m", free_port());
    let e = fails(backup_to(&dead, &vault, &key, &[]));
    assert!(e.contains("no sentinel could say where master"), "{e}");
    assert!(!vault.join("backups").exists() || files_under(&vault.join("backups")).is_empty());
}

#[test]
fn the_archive_continues_across_a_sentinel_failover_without_a_gap() {
    let g = Group::start();
    g.write("one");
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut child = replvault_spawn(&[
        "run",
        "--pitr",
        "--pitr-interval",
        "200ms",
        "--every",
        "1h",
        "--redis",
        &g.url(),
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let archived = |n: &RedisServer| {
        let off: u64 = n
            .cmd(&["INFO", "replication"])
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX);
        let segs = files_under(&vault.join("pitr"));
        segs.iter().any(|s| {
            s.contains("/seg/")
                && s.rsplit('/')
                    .next()
                    .and_then(|n| n.split('-').nth(1))
                    .and_then(|e| e.parse::<u64>().ok())
                    .is_some_and(|e| e >= off)
        })
    };
    wait_until(
        Duration::from_secs(30),
        "the archive reaches the primary's offset",
        || {
            g.write("tick");
            archived(g.master())
        },
    );
    let new = g.failover();
    g.write("two");
    wait_until(
        Duration::from_secs(60),
        "the archive reaches the new primary's offset",
        || archived(g.nodes.iter().find(|n| n.port == new).unwrap()),
    );
    let digest = g.master().digest();
    send_signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "replvault run exited with {status}");
    let timelines: Vec<String> = std::fs::read_dir(vault.join("pitr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(timelines.len(), 1, "a gap: {timelines:?}");
    let markers = files_under(&vault.join("pitr"));
    assert!(
        markers.iter().any(|m| m.contains("/replid/")),
        "the replication id change is not recorded: {markers:?}"
    );
    let out = work.path().join("at.rdb");
    ok(replvault(&[
        "restore",
        "--at",
        "latest",
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(RedisServer::start_with_rdb(&out).digest(), digest);
}
