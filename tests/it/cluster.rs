//! Redis Cluster: `backup --cluster` against real clusters of three
//! primaries and three replicas (Redis 7.0 through CLUSTER SHARDS, Valkey
//! 9.1, Redis 6.2 through CLUSTER NODES): every shard from a replica, the
//! restore's files each with its primary's DEBUG DIGEST, verify, list and
//! prune; failures (a shard with no reachable node, slots nobody owns, a
//! link cut mid-transfer) that leave nothing behind; `--from primary` and
//! the fallback to a primary; `--cluster-address-map`.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use super::proxy::{Fault, Proxy};
use super::util::*;
use super::versions::server_bin;

/// Slots of the three shards, as the fixture assigns them.
const RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// How long cluster set-up and convergence may take on a loaded machine.
const SETTLE: Duration = Duration::from_secs(90);

/// CRC16/XMODEM, the cluster's key hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key, hashtags included.
fn key_slot(key: &str) -> u16 {
    let hashed = key
        .find('{')
        .and_then(|a| {
            let rest = &key[a + 1..];
            rest.find('}').map(|b| &rest[..b])
        })
        .filter(|t| !t.is_empty())
        .unwrap_or(key);
    crc16(hashed.as_bytes()) % 16384
}

/// For every slot, a hashtag that hashes to it.
fn tags_for_every_slot() -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; 16384];
    let mut left = tags.len();
    let mut i = 0u64;
    while left > 0 {
        let t = format!("t{i}");
        let s = usize::from(crc16(t.as_bytes()) % 16384);
        if tags[s].is_none() {
            tags[s] = Some(t);
            left -= 1;
        }
        i += 1;
    }
    tags.into_iter().map(Option::unwrap).collect()
}

/// Runs `cmds` on `port` over one connection, pipelined; fails the test on
/// any error reply.
fn pipeline(port: u16, cmds: &[Vec<String>]) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for batch in cmds.chunks(1000) {
        let mut out = Vec::new();
        for c in batch {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            encode(&args, &mut out);
        }
        w.write_all(&out).unwrap();
        for c in batch {
            if let Reply::Error(e) = read_reply(&mut r) {
                panic!("{c:?} on port {port}: {e}");
            }
        }
    }
}

/// The leaves of a reply, as text.
fn leaves(r: &Reply, out: &mut Vec<String>) {
    match r {
        Reply::Array(a) => a.iter().for_each(|x| leaves(x, out)),
        other => out.push(other.text()),
    }
}

/// `field:` of an INFO section.
fn info_field(n: &RedisServer, section: &str, field: &str) -> Option<String> {
    n.cmd(&["INFO", section])
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn sync_full(n: &RedisServer) -> u64 {
    info_field(n, "stats", "sync_full")
        .and_then(|v| v.parse().ok())
        .expect("INFO stats has sync_full")
}

/// A port that was free a moment ago and whose cluster bus port (port plus
/// 10,000, the only choice before 7.0) fits and was free too.
fn port_with_free_bus() -> u16 {
    loop {
        let p = free_port();
        if p < 55_536 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// A cluster node of `bin`: the cluster bus on a port of its own (7.0 on;
/// by default it is the port plus 10,000, which may be taken or above
/// 65,535), or on the port plus 10,000 before 7.0, chosen free.
/// With `tls` (7.0 on), the node also listens with TLS on a port of its
/// own, and the cluster bus and replication use TLS.
fn start_node(bin: &str, tls: Option<&TlsFiles>) -> (RedisServer, u16) {
    let common = |bus: Option<u16>, tls_port: Option<u16>| {
        let mut a: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            // Failure detection within seconds, yet no failover of a
            // merely slow node on a busy machine.
            "--cluster-node-timeout",
            "5000",
            "--repl-diskless-sync",
            "yes",
        ]
        .map(String::from)
        .to_vec();
        if let Some(b) = bus {
            a.extend(["--cluster-port".into(), b.to_string()]);
        }
        if let (Some(t), Some(files)) = (tls_port, tls) {
            a.extend(["--tls-port".into(), t.to_string()]);
            for (k, v) in [
                ("--tls-cert-file", &files.crt),
                ("--tls-key-file", &files.key),
                ("--tls-ca-cert-file", &files.ca),
            ] {
                a.extend([k.to_string(), v.clone()]);
            }
            for k in ["--tls-cluster", "--tls-replication"] {
                a.extend([k.to_string(), "yes".into()]);
            }
            a.extend(["--tls-auth-clients".into(), "no".into()]);
        }
        a
    };
    let dir = tempfile::tempdir().unwrap();
    if server_major_version(bin) >= 7 {
        let ports = if tls.is_some() { 2 } else { 1 };
        let n = RedisServer::start_bin_ports(bin, dir, ports, free_port, |p| {
            common(Some(p[0]), p.get(1).copied())
        });
        let bus = n.extra_ports[0];
        (n, bus)
    } else {
        assert!(tls.is_none(), "TLS clusters here are 7.0 on");
        let n =
            RedisServer::start_bin_ports(bin, dir, 0, port_with_free_bus, |_| common(None, None));
        let bus = n.port + 10_000;
        (n, bus)
    }
}

/// Three primaries (nodes 0 to 2, slots [`RANGES`]) and a replica of each
/// (node 3 + i replicates node i), created by hand (ADDSLOTS, MEET,
/// REPLICATE) so that any server version works with the redis-cli here.
struct Cluster {
    bin: String,
    nodes: Vec<Option<RedisServer>>,
    ids: Vec<String>,
    /// Whether CLUSTER SHARDS exists (7.0 on).
    shards_cmd: bool,
}

impl Cluster {
    fn start(bin: &str) -> Cluster {
        Cluster::start_with(bin, None)
    }

    fn start_with(bin: &str, tls: Option<&TlsFiles>) -> Cluster {
        let modern = server_major_version(bin) >= 7;
        let started: Vec<(RedisServer, u16)> = (0..6).map(|_| start_node(bin, tls)).collect();
        let ids: Vec<String> = started
            .iter()
            .map(|(n, _)| n.cmd(&["CLUSTER", "MYID"]).text())
            .collect();
        for (i, (n, _)) in started.iter().enumerate() {
            // Distinct epochs from the start, as redis-cli sets them.
            let r = n.cmd(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]);
            assert_eq!(r, Reply::Status("OK".into()), "SET-CONFIG-EPOCH");
        }
        for (i, &(a, b)) in RANGES.iter().enumerate() {
            let mut args: Vec<String> = vec!["CLUSTER".into(), "ADDSLOTS".into()];
            args.extend((a..=b).map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(started[i].0.cmd(&args), Reply::Status("OK".into()));
        }
        for (n, bus) in &started[1..] {
            let (port, bus) = (n.port.to_string(), bus.to_string());
            let mut meet = vec!["CLUSTER", "MEET", "127.0.0.1", &port];
            if modern {
                meet.push(&bus);
            }
            assert_eq!(started[0].0.cmd(&meet), Reply::Status("OK".into()));
        }
        let c = Cluster {
            bin: bin.to_string(),
            nodes: started.into_iter().map(|(n, _)| Some(n)).collect(),
            ids,
            shards_cmd: modern,
        };
        wait_for("every node to know all six", SETTLE, || {
            c.alive().all(|(_, n)| {
                let t = n.cmd(&["CLUSTER", "NODES"]).text();
                t.lines().count() == 6
                    && !t.contains("handshake")
                    && !t.contains("noaddr")
                    && t.lines()
                        .all(|l| l.contains("myself") || l.contains(" connected"))
            })
        });
        for i in 0..3 {
            let r = c.node(3 + i).cmd(&["CLUSTER", "REPLICATE", &c.ids[i]]);
            assert_eq!(r, Reply::Status("OK".into()), "CLUSTER REPLICATE");
        }
        c.wait_converged();
        c
    }

    fn node(&self, i: usize) -> &RedisServer {
        self.nodes[i].as_ref().expect("that node was killed")
    }

    fn primary(&self, shard: usize) -> &RedisServer {
        self.node(shard)
    }

    fn replica(&self, shard: usize) -> &RedisServer {
        self.node(3 + shard)
    }

    fn alive(&self) -> impl Iterator<Item = (usize, &RedisServer)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// Kills node `i` (SIGKILL).
    fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// `127.0.0.1:port`, as the cluster announces node `i`.
    fn announced(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.node(i).port)
    }

    /// Whether `n` sees the fixture's topology: three primaries with their
    /// slots, each with its replica, none failing or in handshake.
    fn sees_topology(&self, n: &RedisServer) -> bool {
        let text = n.cmd(&["CLUSTER", "NODES"]).text();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let line = |id: &str| lines.iter().find(|f| f.first() == Some(&id)).cloned();
        (0..3).all(|i| {
            let (Some(p), Some(r)) = (line(&self.ids[i]), line(&self.ids[3 + i])) else {
                return false;
            };
            let (a, b) = RANGES[i];
            let ok_flags = |f: &str| !f.contains("fail") && !f.contains("handshake");
            p.len() == 9
                && p[2].contains("master")
                && ok_flags(p[2])
                && p[8] == format!("{a}-{b}")
                && r[2].contains("slave")
                && ok_flags(r[2])
                && r[3] == self.ids[i]
        })
    }

    /// Waits until every node sees the topology and `cluster_state:ok`, and
    /// every replica's link to its primary is up.
    fn wait_converged(&self) {
        wait_for("the cluster to converge", SETTLE, || {
            self.alive().all(|(_, n)| {
                self.sees_topology(n)
                    && n.cmd(&["CLUSTER", "INFO"])
                        .text()
                        .contains("cluster_state:ok")
            })
        });
        for i in 0..3 {
            wait_for("a replica's link to its primary", SETTLE, || {
                info_field(self.replica(i), "replication", "master_link_status").as_deref()
                    == Some("up")
            });
        }
    }

    /// Fills every slot: a string in each, and in every eighth slot a hash,
    /// list, set, sorted set, stream and expiring string under one hashtag
    /// (a big hash and list every 512th); each command goes to the primary
    /// that owns its slot. Then waits until the replicas hold the same
    /// data and every node reports every node online.
    fn fill(&self) {
        let per_shard = fill_commands();
        std::thread::scope(|sc| {
            for (i, cmds) in per_shard.iter().enumerate() {
                let port = self.primary(i).port;
                sc.spawn(move || pipeline(port, cmds));
            }
        });
        // The hash function here is the cluster's.
        let tags = tags_for_every_slot();
        let t = &tags[12_345];
        assert_eq!(
            self.primary(2)
                .cmd(&["CLUSTER", "KEYSLOT", &format!("k:{{{t}}}")]),
            Reply::Int(12_345)
        );
        for (i, cmds) in per_shard.iter().enumerate() {
            let keys = self.primary(i).cmd(&["DBSIZE"]);
            assert_eq!(keys, Reply::Int(cmds.len() as i64), "shard {i}");
        }
        self.wait_caught_up();
    }

    /// Waits until each live replica has its primary's DEBUG DIGEST and
    /// (7.0 on) every node reports every live node `online` in CLUSTER
    /// SHARDS (a replica whose offset the asked node has not heard of yet
    /// is `loading`, and replvault rightly passes it over).
    fn wait_caught_up(&self) {
        for i in 0..3 {
            let Some(r) = self.nodes[3 + i].as_ref() else {
                continue;
            };
            let want = self.primary(i).digest();
            wait_for("a replica to catch up with its primary", SETTLE, || {
                r.digest() == want
            });
        }
        if self.shards_cmd {
            let live = self.alive().count();
            wait_for("every node to report every node online", SETTLE, || {
                self.alive().all(|(_, n)| {
                    let mut l = Vec::new();
                    leaves(&n.cmd(&["CLUSTER", "SHARDS"]), &mut l);
                    l.iter().filter(|x| *x == "online").count() == live
                })
            });
        }
    }
}

/// The fill of [`Cluster::fill`], per shard: a string in every slot, and
/// in every eighth slot a hash, list, set, sorted set, stream and expiring
/// string under one hashtag (a big hash and list every 512th).
fn fill_commands() -> Vec<Vec<Vec<String>>> {
    let tags = tags_for_every_slot();
    let mut per_shard: Vec<Vec<Vec<String>>> = vec![Vec::new(); 3];
    let owner = |slot: u16| RANGES.iter().position(|&(a, b)| (a..=b).contains(&slot));
    let cmd = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    for (slot, t) in tags.iter().enumerate() {
        let s = slot.to_string();
        let mut cmds = vec![cmd(&["SET", &format!("k:{{{t}}}"), &format!("slot {s}")])];
        if slot % 8 == 0 {
            cmds.extend([
                cmd(&["HSET", &format!("h:{{{t}}}"), "a", &s, "b", "x"]),
                cmd(&["RPUSH", &format!("l:{{{t}}}"), "a", "b", &s]),
                cmd(&["SADD", &format!("s:{{{t}}}"), "1", "2", &s]),
                cmd(&["ZADD", &format!("z:{{{t}}}"), "1", "a", "2.5", &s]),
                cmd(&["XADD", &format!("x:{{{t}}}"), "1-1", "f", &s]),
                cmd(&["SET", &format!("e:{{{t}}}"), &s, "EX", "86400"]),
            ]);
        }
        if slot % 512 == 0 {
            let mut h = cmd(&["HSET", &format!("bh:{{{t}}}")]);
            let mut l = cmd(&["RPUSH", &format!("bl:{{{t}}}")]);
            for f in 0..300 {
                h.extend([format!("field-{f}"), "v".repeat(f % 70)]);
                l.push(format!("item-{f}-{}", "x".repeat(f % 90)));
            }
            cmds.extend([h, l]);
        }
        for c in &cmds {
            assert_eq!(usize::from(key_slot(&c[1])), slot, "{c:?}");
        }
        per_shard[owner(slot as u16).unwrap()].extend(cmds);
    }
    per_shard
}

/// A work dir with a key and a vault path.
struct Work {
    _dir: tempfile::TempDir,
    key: PathBuf,
    vault: PathBuf,
}

impl Work {
    /// `run --pitr --cluster` from `seed` into this vault, once it has the
    /// cluster base and an archive window per shard.
    fn cluster_pitr(&self, seed: &str, extra: &[&str]) -> Daemon {
        let mut args = vec!["run", "--pitr", "--cluster", "--redis", seed];
        args.extend(extra);
        args.extend([
            "--vault",
            self.vault(),
            "--key-file",
            self.key(),
            "--pitr-interval",
            "200ms",
            "--every",
            "1h",
        ]);
        let daemon = Daemon::start(&args);
        wait_for("the cluster base and an archive per shard", SETTLE, || {
            let l = list_json(&self.vault);
            l["backups"].as_array().is_some_and(|b| b.len() == 1)
                && l["pitr"]["windows"]
                    .as_array()
                    .is_some_and(|x| x.len() == 3)
        });
        daemon
    }

    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let key = keygen(dir.path());
        // An empty vault, so that `list` answers after a backup that
        // failed before it wrote anything.
        let vault = dir.path().join("vault");
        std::fs::create_dir(&vault).unwrap();
        Work {
            _dir: dir,
            key,
            vault,
        }
    }

    fn vault(&self) -> &str {
        self.vault.to_str().unwrap()
    }

    fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }

    /// `backup --cluster --redis URL EXTRA...`.
    fn backup(&self, url: &str, extra: &[&str]) -> Output {
        let mut args = vec!["--cluster"];
        args.extend_from_slice(extra);
        backup_to(url, &self.vault, &self.key, &args)
    }

    /// A successful backup's manifest and its log.
    fn backup_ok(&self, url: &str, extra: &[&str]) -> (serde_json::Value, String) {
        let out = self.backup(url, extra);
        let log = stderr(&out);
        let text = ok(out);
        assert!(text.contains("complete"), "{text}");
        assert!(
            text.contains("from cluster of 3 shards"),
            "the summary names the cluster: {text}"
        );
        let list = list_json(&self.vault);
        let m = list.as_array().and_then(|a| a.last()).cloned().unwrap();
        (m, log)
    }

    /// A failed backup's error line; the vault lists nothing and holds no
    /// object under backups/.
    fn backup_fails(&self, url: &str, extra: &[&str]) -> String {
        let e = fails(self.backup(url, extra));
        eprintln!("the backup failed as it should: {e}");
        self.assert_empty();
        e
    }

    fn assert_empty(&self) {
        assert_eq!(list_json(&self.vault), serde_json::json!([]));
        let left = files_under(&self.vault.join("backups"));
        assert!(left.is_empty(), "objects left behind: {left:?}");
    }

    /// `restore ID --out DIR`.
    fn restore(&self, id: &str, out: &Path) -> String {
        ok(replvault(&[
            "restore",
            id,
            "--vault",
            self.vault(),
            "--key-file",
            self.key(),
            "--out",
            out.to_str().unwrap(),
        ]))
    }
}

/// The manifest's shard entries.
fn shards(m: &serde_json::Value) -> &Vec<serde_json::Value> {
    m["cluster"]["shards"]
        .as_array()
        .unwrap_or_else(|| panic!("no cluster.shards in {m}"))
}

/// Asserts the manifest's shards: the fixture's slots, and shard i read
/// from the node `from(i)` of the cluster in the role that node has.
fn assert_shards(c: &Cluster, m: &serde_json::Value, from: impl Fn(usize) -> usize) {
    let s = shards(m);
    assert_eq!(s.len(), 3, "{m}");
    for (i, shard) in s.iter().enumerate() {
        let (a, b) = RANGES[i];
        assert_eq!(shard["slots"], serde_json::json!([[a, b]]), "shard {i}");
        let n = from(i);
        let role = if n < 3 { "primary" } else { "replica" };
        assert_eq!(shard["node"]["role"], role, "shard {i}: {}", shard["node"]);
        assert_eq!(shard["node"]["id"], c.ids[n].as_str(), "shard {i}");
        assert_eq!(shard["node"]["address"], c.announced(n), "shard {i}");
    }
}

/// Restores backup `id`, then loads each shard's file into a fresh
/// standalone server of the cluster's binary: it has its primary's DEBUG
/// DIGEST and key count. `slots.json` names each file's slots and node.
fn assert_restores(c: &Cluster, w: &Work, m: &serde_json::Value) {
    let id = m["id"].as_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("restored");
    let text = w.restore(id, &dir);
    assert!(text.contains("3 shards"), "{text}");
    // The directory is new: restoring there again needs --force.
    let again = [
        "restore",
        id,
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
        "--out",
        dir.to_str().unwrap(),
    ];
    let e = fails(replvault(&again));
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    std::fs::write(dir.join("stale"), "x").unwrap();
    let mut forced = again.to_vec();
    forced.push("--force");
    ok(replvault(&forced));
    assert!(
        !dir.join("stale").exists(),
        "--force replaces the directory"
    );
    let mut files = files_under(&dir);
    files.sort();
    assert_eq!(
        files,
        ["shard-0.rdb", "shard-1.rdb", "shard-2.rdb", "slots.json"]
    );
    let slots: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("slots.json")).unwrap()).unwrap();
    assert_eq!(slots["backup"], id);
    for (i, s) in shards(m).iter().enumerate() {
        let entry = &slots["shards"][i];
        assert_eq!(entry["file"], format!("shard-{i}.rdb"));
        assert_eq!(entry["slots"], s["slots"]);
        assert_eq!(entry["node"], s["node"]);
        let fresh = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.join(format!("shard-{i}.rdb")),
            fresh.path().join("dump.rdb"),
        )
        .unwrap();
        let copy = RedisServer::start_bin_in(&c.bin, fresh, &["--cluster-enabled", "no"]);
        let primary = c.primary(i);
        assert_eq!(copy.digest(), primary.digest(), "shard {i}: data differs");
        let keys = primary.cmd(&["DBSIZE"]);
        assert_eq!(copy.cmd(&["DBSIZE"]), keys, "shard {i}");
        assert_eq!(entry["keys"].as_i64(), Some(keys.text().parse().unwrap()));
    }
}

/// `restore --shards N` of cluster backup `m` (three shards): `--shards
/// 1` gives one standalone dump.rdb whose DEBUG DIGEST is that of a
/// standalone server given the same writes; `--shards 2` gives two files
/// that load into two servers, each holding only keys of its half of the
/// slots, all keys between them.
fn assert_resplits(c: &Cluster, w: &Work, m: &serde_json::Value, total: u64) {
    let id = m["id"].as_str().unwrap();
    let reference = RedisServer::start_bin_in(&c.bin, tempfile::tempdir().unwrap(), &[]);
    for cmds in fill_commands() {
        pipeline(reference.port, &cmds);
    }
    assert_eq!(reference.cmd(&["DBSIZE"]), Reply::Int(total as i64));
    let out = tempfile::tempdir().unwrap();
    let restore = |n: &str, to: &Path| {
        ok(replvault(&[
            "restore",
            id,
            "--vault",
            w.vault(),
            "--key-file",
            w.key(),
            "--shards",
            n,
            "--out",
            to.to_str().unwrap(),
        ]))
    };
    let one = out.path().join("dump.rdb");
    let text = restore("1", &one);
    assert!(text.contains("re-split by hash slot into 1 file"), "{text}");
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(&one, fresh.path().join("dump.rdb")).unwrap();
    let standalone = RedisServer::start_bin_in(&c.bin, fresh, &["--cluster-enabled", "no"]);
    assert_eq!(standalone.cmd(&["DBSIZE"]), Reply::Int(total as i64));
    assert_eq!(standalone.digest(), reference.digest(), "--shards 1");

    let dir = out.path().join("two");
    let text = restore("2", &dir);
    assert!(text.contains("shard-1.rdb: slots 8192-16383"), "{text}");
    let mut files = files_under(&dir);
    files.sort();
    assert_eq!(files, ["shard-0.rdb", "shard-1.rdb", "slots.json"]);
    let slots: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("slots.json")).unwrap()).unwrap();
    assert_eq!(slots["resplit_from_shards"], 3);
    let mut sum = 0;
    for (i, (a, b)) in [(0u16, 8191u16), (8192, 16383)].into_iter().enumerate() {
        assert_eq!(slots["shards"][i]["slots"], serde_json::json!([[a, b]]));
        let fresh = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.join(format!("shard-{i}.rdb")),
            fresh.path().join("dump.rdb"),
        )
        .unwrap();
        let half = RedisServer::start_bin_in(&c.bin, fresh, &["--cluster-enabled", "no"]);
        let keys = scan_all(&half);
        assert!(keys.len() > 1000, "half {i}: {} keys", keys.len());
        for k in &keys {
            let s = key_slot(k);
            assert!((a..=b).contains(&s), "half {i} holds {k} of slot {s}");
        }
        assert_eq!(slots["shards"][i]["keys"], keys.len());
        sum += keys.len() as u64;
    }
    assert_eq!(sum, total);
}

/// Every key of `n`'s database 0.
fn scan_all(n: &RedisServer) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Reply::Array(r) = n.cmd(&["SCAN", &cursor, "COUNT", "1000"]) else {
            panic!("SCAN");
        };
        cursor = r[0].text();
        if let Reply::Array(ks) = &r[1] {
            keys.extend(ks.iter().map(Reply::text));
        }
        if cursor == "0" {
            return keys;
        }
    }
}

/// The whole round trip on `bin`: backup from replicas (the primaries do
/// not fork), restore, verify, list, prune.
fn round_trip(bin: &str) {
    let c = Cluster::start(bin);
    c.fill();
    let w = Work::new();
    let forks: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    // Any node will do as the seed: a replica here, a primary below.
    let seed = c.replica(1);
    assert_eq!(
        seed.cmd(&["CONFIG", "RESETSTAT"]),
        Reply::Status("OK".into())
    );
    let (m, _) = w.backup_ok(&seed.url(), &[]);
    // CLUSTER SHARDS from 7.0 on, CLUSTER NODES before (where the server
    // counts no subcommands, and refuses SHARDS).
    let stats = seed.cmd(&["INFO", "commandstats"]).text();
    if c.shards_cmd {
        assert!(
            stats.contains("cmdstat_cluster|shards:calls=1,")
                && !stats.contains("cmdstat_cluster|nodes:"),
            "{stats}"
        );
    } else {
        assert!(stats.contains("cmdstat_cluster:calls="), "{stats}");
    }
    let after: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    assert_eq!(after, forks, "a primary served a full sync");
    for i in 0..3 {
        assert!(sync_full(c.replica(i)) >= 1, "replica {i} served none");
    }
    assert_shards(&c, &m, |i| 3 + i);
    assert_eq!(m["format"], 2);
    assert_eq!(m["source"]["address"], "cluster of 3 shards");
    let total: u64 = (0..3)
        .map(|i| c.primary(i).cmd(&["DBSIZE"]).text().parse::<u64>().unwrap())
        .sum();
    assert_eq!(m["summary"]["databases"]["0"]["keys"], total, "{m}");
    assert_restores(&c, &w, &m);
    assert_resplits(&c, &w, &m, total);

    let out = ok(replvault(&[
        "verify",
        "latest",
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
    ]));
    assert!(
        out.starts_with("OK")
            && out.contains("cluster of 3 shards")
            && out.contains(&format!("{total} keys")),
        "{out}"
    );
    let out = ok(replvault(&["list", "--vault", w.vault()]));
    let id = m["id"].as_str().unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with(id) && l.contains("cluster of 3 shards")),
        "{out}"
    );

    // Prune removes a cluster backup whole, and keeps the newer one.
    // One shard at a time this time.
    let (newer, _) = w.backup_ok(&c.primary(0).url(), &["--cluster-concurrency", "1"]);
    assert_shards(&c, &newer, |i| 3 + i);
    let newer_id = newer["id"].as_str().unwrap();
    assert_ne!(newer_id, id);
    let objects = files_under(&w.vault.join("backups"));
    for i in 0..3 {
        assert!(
            objects
                .iter()
                .any(|o| o.starts_with(&format!("{id}/shard-{i}"))),
            "{objects:?}"
        );
    }
    let out = ok(replvault(&[
        "prune",
        "--vault",
        w.vault(),
        "--keep-last",
        "1",
    ]));
    assert!(out.contains("deleted 1 backup"), "{out}");
    let left = files_under(&w.vault.join("backups"));
    assert!(left.iter().all(|o| o.starts_with(newer_id)), "{left:?}");
    assert!(left.len() >= 4, "the newer backup's objects: {left:?}");
    let list = list_json(&w.vault);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], newer_id);
    let out = ok(replvault(&[
        "verify",
        "--all",
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
    ]));
    assert!(out.contains(newer_id), "{out}");

    // One flipped byte in shard 1's object: verify names the shard, and
    // restore writes nothing (no directory, no temporary one).
    let object = left
        .iter()
        .find(|o| o.starts_with(&format!("{newer_id}/shard-1")))
        .unwrap_or_else(|| panic!("no shard-1 object in {left:?}"));
    let path = w.vault.join("backups").join(object);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let o = replvault(&[
        "verify",
        newer_id,
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
    ]);
    assert!(!o.status.success());
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!("FAILED  {newer_id}  shard 1:")),
        "{text}"
    );
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("restored");
    let e = fails(replvault(&[
        "restore",
        newer_id,
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
        "--out",
        dir.to_str().unwrap(),
    ]));
    assert!(e.contains("shard 1"), "{e}");
    let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(left.is_empty(), "restore left {left:?}");

    // Scan mode, every shard walked on its replica (READONLY), on this
    // version too.
    let w = Work::new();
    let (m, _) = w.backup_ok(&seed.url(), &["--mode", "scan"]);
    assert_shards(&c, &m, |i| 3 + i);
    assert!(
        shards(&m).iter().all(|s| s["source"]["mode"] == "scan"),
        "{m}"
    );
    assert_restores(&c, &w, &m);
}

#[test]
fn cluster_redis_7_backs_up_every_shard_from_a_replica_and_restores() {
    round_trip(&redis_server_bin());
}

#[test]
fn cluster_valkey_9_backs_up_every_shard_from_a_replica_and_restores() {
    round_trip(&server_bin("valkey-server-9.1.2"));
}

/// Redis 6.2 has no CLUSTER SHARDS: the shards come from CLUSTER NODES.
#[test]
fn cluster_redis_6_backs_up_every_shard_through_cluster_nodes() {
    let bin = server_bin("redis-server-6.2.14");
    let probe = RedisServer::start_bin_in(&bin, tempfile::tempdir().unwrap(), &[]);
    assert!(
        matches!(probe.cmd(&["CLUSTER", "SHARDS"]), Reply::Error(_)),
        "6.2 has no CLUSTER SHARDS"
    );
    drop(probe);
    round_trip(&bin);
}

#[test]
fn cluster_backup_fails_when_a_shard_has_no_reachable_node() {
    let mut c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    let seed = c.primary(0).url();
    let (failed_primary, failed_replica) = (c.ids[1].clone(), c.ids[4].clone());
    c.kill(1);
    c.kill(4);
    // At once: the others still count both as up.
    let e = w.backup_fails(&seed, &[]);
    assert!(e.contains("slots 5461-10922"), "{e}");
    // Once the others mark them failed, the same.
    wait_for("the survivors to mark the shard failed", SETTLE, || {
        let t = c.primary(0).cmd(&["CLUSTER", "NODES"]).text();
        [&failed_primary, &failed_replica].iter().all(|id| {
            t.lines().any(|l| {
                l.starts_with(id.as_str())
                    && l.split_whitespace()
                        .nth(2)
                        .is_some_and(|f| f.split(',').any(|x| x == "fail"))
            })
        })
    });
    let e = w.backup_fails(&seed, &[]);
    assert!(e.contains("slots 5461-10922"), "{e}");
    // Asking a dead node says so.
    let dead = format!("redis://127.0.0.1:{}", RefusedPort::new().port);
    let e = w.backup_fails(&dead, &[]);
    assert!(e.contains("cluster discovery"), "{e}");
}

#[test]
fn cluster_backup_fails_when_slots_are_unowned() {
    let c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    let p = c.primary(0);
    let mut args: Vec<String> = vec!["CLUSTER".into(), "DELSLOTS".into()];
    args.extend((100..200).map(|s: u16| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(p.cmd(&args), Reply::Status("OK".into()));
    let e = w.backup_fails(&p.url(), &[]);
    assert!(e.contains("no shard owns slots 100-199"), "{e}");
}

/// Starts a backup whose shard 0 comes slowly (its replica saves each key
/// 1 ms late: about ten seconds), and waits until that replica has sent
/// part of it.
fn slow_backup_under_way(c: &Cluster, w: &Work) -> std::process::Child {
    let r = c.replica(0);
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "1000"]),
        Reply::Status("OK".into())
    );
    let sent = |n: &RedisServer| -> u64 {
        info_field(n, "stats", "total_net_repl_output_bytes")
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let before = sent(r);
    let url = c.primary(0).url();
    let child = replvault_spawn(&[
        "backup",
        "--cluster",
        "--redis",
        &url,
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
    ]);
    wait_for("the replica to be sending the snapshot", SETTLE, || {
        info_field(r, "persistence", "rdb_bgsave_in_progress").as_deref() == Some("1")
            && sent(r) > before + 4096
    });
    child
}

/// A shard's link cut mid-transfer, by its node or by replvault's own
/// SIGTERM: the backup fails, naming the shard (or saying it was
/// interrupted), and leaves nothing.
#[test]
fn cluster_backup_cut_mid_transfer_leaves_nothing() {
    let mut c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    let forks = sync_full(c.replica(0));
    // The replica drops its own replicas (replvault), not its link.
    let child = slow_backup_under_way(&c, &w);
    let r = c.replica(0).cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(r, Reply::Int(1), "one replica link killed");
    let e = fails(child.wait_with_output().unwrap());
    eprintln!("the backup failed as it should: {e}");
    assert!(e.contains("shard 0 (slots 0-5460"), "{e}");
    assert_eq!(sync_full(c.replica(0)), forks + 1, "one snapshot, cut");
    w.assert_empty();
    // SIGTERM: the other shards are done, shard 0 is under way; all of it
    // goes, and the error says why rather than blaming a shard.
    let child = slow_backup_under_way(&c, &w);
    send_signal(child.id(), "TERM");
    let e = fails(child.wait_with_output().unwrap());
    assert!(
        e.contains("interrupted: the partial cluster backup was removed") && !e.contains("shard"),
        "{e}"
    );
    w.assert_empty();
    // The replica's process dies mid-transfer.
    let child = slow_backup_under_way(&c, &w);
    c.kill(3);
    let e = fails(child.wait_with_output().unwrap());
    eprintln!("the backup failed as it should: {e}");
    assert!(e.contains("shard 0 (slots 0-5460"), "{e}");
    w.assert_empty();
}

#[test]
fn cluster_from_primary_and_the_fallback_to_a_primary() {
    let mut c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();

    // Shard 1's replica refuses the snapshot (its ACL user lacks +sync and
    // +psync):
    // that shard comes from its primary, with a warning naming the
    // replica and why, the others from their replicas.
    for (i, n) in c.alive() {
        let mut set = vec![
            "ACL", "SETUSER", "fb", "on", ">fb-pw", "~*", "+info", "+ping",
        ];
        set.extend(["+cluster|shards", "+cluster|myid", "+replconf"]);
        if i != 4 {
            set.extend(["+sync", "+psync"]);
        }
        assert_eq!(n.cmd(&set), Reply::Status("OK".into()));
    }
    let url = format!("redis://fb:fb-pw@127.0.0.1:{}", c.primary(0).port);
    let forks: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    let (m, log) = w.backup_ok(&url, &[]);
    assert_shards(&c, &m, |i| if i == 1 { 1 } else { 3 + i });
    assert_eq!(sync_full(c.primary(1)), forks[1] + 1);
    assert_eq!(sync_full(c.primary(0)), forks[0]);
    let warn = log
        .lines()
        .find(|l| l.contains("the replica refused the snapshot"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(
        warn.contains("WARN") && warn.contains("5461-10922") && warn.contains(&c.announced(4)),
        "{warn}"
    );
    assert_restores(&c, &w, &m);

    let forks: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    let (m, _) = w.backup_ok(&c.replica(0).url(), &["--from", "primary"]);
    assert_shards(&c, &m, |i| i);
    for (i, before) in forks.iter().enumerate() {
        assert_eq!(sync_full(c.primary(i)), before + 1, "primary {i}");
    }
    assert_restores(&c, &w, &m);

    // Shard 2's replica is down: that shard comes from its primary, with a
    // warning, the others from their replicas.
    c.kill(5);
    let forks: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    let (m, log) = w.backup_ok(&c.primary(0).url(), &[]);
    assert_shards(&c, &m, |i| if i == 2 { 2 } else { 3 + i });
    assert_eq!(sync_full(c.primary(2)), forks[2] + 1);
    assert_eq!(sync_full(c.primary(0)), forks[0]);
    assert_eq!(sync_full(c.primary(1)), forks[1]);
    let warn = log
        .lines()
        .find(|l| l.contains("no healthy replica"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(
        warn.contains("WARN") && warn.contains("10923-16383") && warn.contains(&c.announced(2)),
        "{warn}"
    );
    assert_restores(&c, &w, &m);
}

#[test]
fn cluster_address_map_rewrites_where_replvault_connects() {
    let c = Cluster::start(&redis_server_bin());
    c.fill();
    let seed = c.primary(0).url();

    // The identity map of every node changes nothing.
    let w = Work::new();
    let identity: Vec<String> = (0..6).map(|i| format!("{0}={0}", c.announced(i))).collect();
    let (m, _) = w.backup_ok(&seed, &["--cluster-address-map", &identity.join(",")]);
    assert_shards(&c, &m, |i| 3 + i);

    // Shard 1's replica through a proxy: the map sends replvault there.
    let proxy = Proxy::start(c.replica(1).port, Fault::Throttle(64 << 20));
    let map = format!("{}=127.0.0.1:{}", c.announced(4), proxy.port);
    let (m, _) = w.backup_ok(&seed, &["--cluster-address-map", &map]);
    assert_shards(&c, &m, |i| 3 + i);
    let rdb = shards(&m)[1]["rdb"]["bytes"].as_u64().unwrap();
    assert!(
        proxy.forwarded() > rdb,
        "the proxy carried {} bytes, shard 1's RDB is {rdb}",
        proxy.forwarded()
    );
    assert!(
        shards(&m)[1]["source"]["address"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", proxy.port))
    );
    assert_restores(&c, &w, &m);

    // A replica mapped to a port nobody listens on: that shard falls back
    // to its primary, with a warning.
    let refused = RefusedPort::new();
    let map = format!("{}=127.0.0.1:{}", c.announced(3), refused.port);
    let (m, log) = w.backup_ok(&seed, &["--cluster-address-map", &map]);
    assert_shards(&c, &m, |i| if i == 0 { 0 } else { 3 + i });
    assert!(log.contains("no healthy replica"), "{log}");

    // A primary mapped there, read with --from primary: that shard fails.
    let w = Work::new();
    let map = format!("{}=127.0.0.1:{}", c.announced(0), refused.port);
    let e = w.backup_fails(&seed, &["--from", "primary", "--cluster-address-map", &map]);
    assert!(e.contains("shard 0 (slots 0-5460"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{}", refused.port)), "{e}");

    // A replica mapped to another node (shard 1's replica): what answers
    // there is not the node the cluster announced, and its data is
    // another shard's. The backup must not take it as shard 0.
    let map = format!("{}={}", c.announced(3), c.announced(4));
    let e = w.backup_fails(&seed, &["--cluster-address-map", &map]);
    assert!(
        e.contains("shard 0 (slots 0-5460)")
            && e.contains(&format!("answers as node {}", c.ids[4]))
            && e.contains("--cluster-address-map"),
        "{e}"
    );
    // The same for the stream archivers of `run --pitr --cluster`, which
    // attach to the primaries: a primary mapped to another primary.
    let map = format!("{}={}", c.announced(0), c.announced(1));
    let e = fails(replvault(&[
        "run",
        "--pitr",
        "--cluster",
        "--redis",
        &seed,
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
        "--cluster-address-map",
        &map,
    ]));
    assert!(
        e.contains("shard 0 (slots 0-5460)")
            && e.contains(&format!("answers as node {}", c.ids[1])),
        "{e}"
    );
}

/// Scan mode per shard (asked for, and as `--mode auto`'s fallback when
/// no node of a shard may replicate), and what a cluster backup asks of
/// the backup user.
#[test]
fn cluster_scan_mode_per_shard_and_what_the_user_lacks() {
    let c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    let seed = c.primary(0).url();
    let modes = |m: &serde_json::Value| -> Vec<String> {
        shards(m)
            .iter()
            .map(|s| s["source"]["mode"].as_str().unwrap().to_string())
            .collect()
    };
    let forks = |c: &Cluster| -> Vec<u64> { (0..6).map(|i| sync_full(c.node(i))).collect() };

    // --mode scan: every shard walked on its replica (READONLY), no node
    // forks, each shard restores to its primary's digest.
    let before = forks(&c);
    let (m, log) = w.backup_ok(&seed, &["--mode", "scan"]);
    assert_shards(&c, &m, |i| 3 + i);
    assert_eq!(modes(&m), ["scan"; 3], "{m}");
    assert_eq!(m["source"]["mode"], "scan", "{m}");
    assert_eq!(m["source"]["point_in_time"], false, "{m}");
    assert_eq!(forks(&c), before, "scan mode made a node fork");
    assert!(!log.contains("back up every master"), "{log}");
    assert_restores(&c, &w, &m);

    // Nor is a server outside cluster mode backed up as one (failures go
    // to a vault of their own, which must stay empty).
    let empty = Work::new();
    let standalone = RedisServer::start();
    let e = empty.backup_fails(&standalone.url(), &[]);
    assert!(
        e.contains("is not in cluster mode: back it up without --cluster"),
        "{e}"
    );
    // ACL users are per node.
    let discover = ["+cluster|shards", "+cluster|myid", "+ping"];
    for (_, n) in c.alive() {
        let mut nosync = vec![
            "ACL",
            "SETUSER",
            "nosync",
            "on",
            ">s3cret-cluster-pw",
            "~*",
            "+info",
        ];
        nosync.extend(discover);
        nosync.extend(["+scan", "+dump", "+pttl", "+select", "+function|dump"]);
        let mut noreadonly = nosync.clone();
        noreadonly[2] = "noreadonly";
        nosync.push("+readonly");
        assert_eq!(n.cmd(&nosync), Reply::Status("OK".into()));
        assert_eq!(n.cmd(&noreadonly), Reply::Status("OK".into()));
        let mut nothing = vec![
            "ACL",
            "SETUSER",
            "nothing",
            "on",
            ">s3cret-cluster-pw",
            "+info",
        ];
        nothing.extend(discover);
        assert_eq!(n.cmd(&nothing), Reply::Status("OK".into()));
        let mut noinfo = vec!["ACL", "SETUSER", "noinfo", "on", ">s3cret-cluster-pw", "~*"];
        noinfo.extend(discover);
        noinfo.extend(["+sync", "+psync", "+replconf"]);
        assert_eq!(n.cmd(&noinfo), Reply::Status("OK".into()));
    }
    let url = |user: &str| {
        format!(
            "redis://{user}:s3cret-cluster-pw@127.0.0.1:{}",
            c.primary(0).port
        )
    };
    // Without SYNC, --mode sync fails, naming the shard and the grant.
    let e = empty.backup_fails(&url("nosync"), &["--mode", "sync"]);
    assert!(
        e.contains("shard ") && e.contains("(slots ") && e.contains("+sync"),
        "{e}"
    );
    // Neither replication nor scan mode: the error gives both refusals.
    let e = empty.backup_fails(&url("nothing"), &[]);
    assert!(
        e.contains("shard ")
            && e.contains("+scan")
            && e.contains("scan mode was the fallback: replication was refused")
            && e.contains("+sync"),
        "{e}"
    );
    // --mode auto (the default) falls back to scan mode on the replicas,
    // saying so for each shard.
    let before = forks(&c);
    let (m, log) = w.backup_ok(&url("nosync"), &[]);
    assert_shards(&c, &m, |i| 3 + i);
    assert_eq!(modes(&m), ["scan"; 3], "{m}");
    assert_eq!(forks(&c), before, "scan mode made a node fork");
    assert_eq!(
        log.matches("every node of this shard refused replication")
            .count(),
        3,
        "{log}"
    );
    assert!(!log.contains("s3cret"), "{log}");
    assert_restores(&c, &w, &m);
    // A replica that refuses READONLY cannot be walked: the shard's
    // primary is, and the log names the grant.
    let (m, log) = w.backup_ok(&url("noreadonly"), &[]);
    assert_shards(&c, &m, |i| i);
    assert_eq!(modes(&m), ["scan"; 3], "{m}");
    assert!(
        log.contains("the replica refused scan mode") && log.contains("+readonly"),
        "{log}"
    );
    assert_restores(&c, &w, &m);
    assert_eq!(list_json(&w.vault).as_array().unwrap().len(), 3);

    // Without INFO no replica's link can be checked: every shard comes
    // from its primary, and the log says what to grant.
    let url = format!(
        "redis://noinfo:s3cret-cluster-pw@127.0.0.1:{}",
        c.primary(0).port
    );
    let (m, log) = w.backup_ok(&url, &[]);
    assert_shards(&c, &m, |i| i);
    assert!(
        log.contains("INFO replication refused") && log.contains("+info"),
        "{log}"
    );
    // The password is in no log line, error or manifest.
    assert!(!log.contains("s3cret") && !e.contains("s3cret"), "{log}");
    assert!(!list_json(&w.vault).to_string().contains("s3cret"));

    // The cluster users of deploy/redis/acl.conf, as written there, on
    // every node: backups from the replicas, over replication and by scan
    // mode.
    let acl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/redis/acl.conf"),
    )
    .unwrap();
    for (user, mode) in [
        ("replvault-cluster", "sync"),
        ("replvault-cluster-scan", "scan"),
    ] {
        let line = acl
            .lines()
            .find(|l| l.starts_with(&format!("user {user} ")))
            .unwrap_or_else(|| panic!("no {user} in acl.conf"));
        let mut setuser = vec!["ACL", "SETUSER"];
        setuser.extend(line["user ".len()..].split_whitespace());
        for (_, n) in c.alive() {
            assert_eq!(n.cmd(&setuser), Reply::Status("OK".into()), "{line}");
        }
        let password = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix('>'))
            .unwrap();
        let url = format!("redis://{user}:{password}@127.0.0.1:{}", c.primary(0).port);
        let (m, log) = w.backup_ok(&url, &["--mode", mode]);
        assert_shards(&c, &m, |i| 3 + i);
        assert_eq!(modes(&m), [mode; 3], "{m}");
        assert!(!log.contains("refused"), "{log}");
    }
}

/// A key outside the slots its shard owns (written while a slot is being
/// imported, as during a resharding) fails the backup, naming the key;
/// nothing is listed.
#[test]
fn cluster_backup_fails_on_a_key_outside_its_shards_slots() {
    let c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    // Slot 6000 is shard 1's; shard 0's primary imports it.
    let tags = tags_for_every_slot();
    let key = format!("stray:{{{}}}", tags[6000]);
    let p = c.primary(0);
    let r = p.cmd(&["CLUSTER", "SETSLOT", "6000", "IMPORTING", &c.ids[1]]);
    assert_eq!(r, Reply::Status("OK".into()));
    let cmd = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let before = p.cmd(&["DBSIZE"]);
    pipeline(p.port, &[cmd(&["ASKING"]), cmd(&["SET", &key, "x"])]);
    assert_ne!(p.cmd(&["DBSIZE"]), before, "the stray key was written");
    // Its replica, which the backup reads, has it too.
    c.wait_caught_up();
    let e = w.backup_fails(&p.url(), &[]);
    assert!(
        e.contains(&format!(
            "key \"{key}\" hashes to slot 6000, outside the expected slots"
        )) && e.contains("slots 0-5460"),
        "{e}"
    );
}

/// A standalone backup re-splits into shards when its keys are all in
/// database 0, and the error says why when they are not; nothing is left
/// at --out either way on failure.
#[test]
fn a_standalone_backup_splits_only_from_database_0() {
    let server = RedisServer::start();
    let cmd = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let cmds: Vec<Vec<String>> = (0..2000)
        .map(|i| cmd(&["SET", &format!("key:{i}"), &format!("v{i}")]))
        .collect();
    pipeline(server.port, &cmds);
    let w = Work::new();
    ok(backup_to(&server.url(), &w.vault, &w.key, &[]));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("split");
    let args = |to: &Path| {
        vec![
            "restore".to_string(),
            "latest".into(),
            "--vault".into(),
            w.vault().into(),
            "--key-file".into(),
            w.key().into(),
            "--shards".into(),
            "3".into(),
            "--out".into(),
            to.to_str().unwrap().into(),
        ]
    };
    let a = args(&dir);
    let text = ok(replvault(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(
        text.contains("2000 keys from 1 standalone backup"),
        "{text}"
    );
    let slots: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("slots.json")).unwrap()).unwrap();
    let counts: Vec<u64> = (0..3)
        .map(|i| slots["shards"][i]["keys"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 2000);
    assert!(counts.iter().all(|&k| k > 500), "{counts:?}");

    pipeline(
        server.port,
        &[cmd(&["SELECT", "1"]), cmd(&["SET", "elsewhere", "x"])],
    );
    ok(backup_to(&server.url(), &w.vault, &w.key, &[]));
    let dir2 = out.path().join("split2");
    let a = args(&dir2);
    let e = fails(replvault(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(
        e.contains("a key in database 1: a Redis Cluster has only database 0")
            && e.contains("nothing was written"),
        "{e}"
    );
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("split")], "{left:?}");
}

/// `run --pitr --cluster`: one archiver per shard beside the cluster
/// backups; `restore --at T --out DIR` gives each shard's file the DEBUG
/// DIGEST its primary had at T, for times between phases of writes to
/// every shard, and slots.json names each file's slots.
#[test]
fn cluster_pitr_restores_every_shard_as_it_was_at_a_time() {
    let c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    let _daemon = w.cluster_pitr(&c.primary(0).url(), &[]);
    let tags = tags_for_every_slot();
    let mut clients: Vec<Client> = (0..3).map(|i| c.primary(i).client()).collect();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let mut points: Vec<(u64, Vec<String>)> = Vec::new();
    for phase in 0..3u16 {
        for (i, cl) in clients.iter_mut().enumerate() {
            let (a, b) = RANGES[i];
            for j in 0..40u16 {
                let slot = usize::from(a + (j * 131 + phase * 17) % (b - a));
                let t = &tags[slot];
                cl.ok(&["SET", &format!("p{phase}:{{{t}}}"), &format!("{phase}-{j}")]);
                cl.ok(&["HSET", &format!("h:{{{t}}}"), "phase", &phase.to_string()]);
            }
            if phase == 2 {
                cl.ok(&["DEL", &format!("k:{{{}}}", tags[usize::from(a)])]);
            }
        }
        // The real replica and the archiver: WAIT counts the archiver once
        // the write is in the vault.
        for cl in clients.iter_mut() {
            assert_eq!(cl.cmd(&["WAIT", "2", "10000"]), Reply::Int(2));
        }
        let at = now_ms();
        let digests = (0..3).map(|i| c.primary(i).digest()).collect();
        while now_ms() <= at + 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        points.push((at, digests));
    }
    // A trailer on every shard: the last point is inside each window.
    for (i, cl) in clients.iter_mut().enumerate() {
        let t = &tags[usize::from(RANGES[i].0)];
        cl.ok(&["SET", &format!("trailer:{{{t}}}"), "1"]);
        assert_eq!(cl.cmd(&["WAIT", "2", "10000"]), Reply::Int(2));
    }
    for (k, (at, digests)) in points.iter().enumerate() {
        let when = chrono::DateTime::from_timestamp_millis(*at as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("at");
        let text = ok(replvault(&[
            "restore",
            "--vault",
            w.vault(),
            "--key-file",
            w.key(),
            "--at",
            &when,
            "--out",
            dir.to_str().unwrap(),
        ]));
        assert!(text.contains("3 shards"), "{text}");
        let slots: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("slots.json")).unwrap()).unwrap();
        for i in 0..3 {
            let (a, b) = RANGES[i];
            assert_eq!(slots["shards"][i]["slots"], serde_json::json!([[a, b]]));
            let file = slots["shards"][i]["file"].as_str().unwrap();
            let fresh = tempfile::tempdir().unwrap();
            std::fs::copy(dir.join(file), fresh.path().join("dump.rdb")).unwrap();
            let s = RedisServer::start_bin_in(&c.bin, fresh, &["--cluster-enabled", "no"]);
            assert_eq!(s.digest(), digests[i], "point {k}, shard {i}");
        }
    }
}

/// A failover in a shard while `run --pitr --cluster` archives it: the
/// shard's archiver finds the new primary, continues the same timeline
/// there (no gap), and `WAIT` on the new primary counts it; a time after
/// the failover restores that shard to the new primary's digest.
#[test]
fn cluster_pitr_follows_a_failover_to_the_new_primary() {
    let c = Cluster::start(&redis_server_bin());
    c.fill();
    let w = Work::new();
    let daemon = w.cluster_pitr(&c.primary(1).url(), &[]);
    let tags = tags_for_every_slot();
    let key = |n: u16| format!("f{n}:{{{}}}", tags[usize::from(n * 50)]);
    let mut old = c.primary(0).client();
    for n in 0..20 {
        old.ok(&["SET", &key(n), "before"]);
    }
    assert_eq!(old.cmd(&["WAIT", "2", "10000"]), Reply::Int(2));

    // Shard 0's replica (node 3) takes over.
    let r = c.node(3).cmd(&["CLUSTER", "FAILOVER"]);
    assert_eq!(r, Reply::Status("OK".into()));
    wait_for("node 3 to be shard 0's primary", SETTLE, || {
        info_field(c.node(3), "replication", "role").as_deref() == Some("master")
            && info_field(c.node(0), "replication", "master_link_status").as_deref() == Some("up")
    });
    let new = c.node(3);
    let mut w3 = new.client();
    wait_for("the archiver to attach to the new primary", SETTLE, || {
        w3.ok(&["SET", &key(100), "probe"]);
        w3.cmd(&["WAIT", "2", "500"]) == Reply::Int(2)
    });
    for n in 0..20 {
        w3.ok(&["SET", &key(n), "after"]);
    }
    assert_eq!(w3.cmd(&["WAIT", "2", "10000"]), Reply::Int(2));
    let at = chrono::Utc::now();
    let digest = new.digest();
    std::thread::sleep(Duration::from_millis(5));
    // A trailer on every shard: each window reaches past `at`.
    w3.ok(&["SET", &key(101), "trailer"]);
    assert_eq!(w3.cmd(&["WAIT", "2", "10000"]), Reply::Int(2));
    for i in 1..3 {
        let mut cl = c.primary(i).client();
        let t = &tags[usize::from(RANGES[i].0)];
        cl.ok(&["SET", &format!("trailer:{{{t}}}"), "1"]);
        assert_eq!(cl.cmd(&["WAIT", "2", "10000"]), Reply::Int(2));
    }

    let log = daemon.stderr();
    assert!(
        log.contains("the primary continues under a new replication id"),
        "{log}"
    );
    let l = list_json(&w.vault);
    assert_eq!(
        l["pitr"]["windows"].as_array().map(Vec::len),
        Some(3),
        "one window per shard, no gap: {l}"
    );
    assert_eq!(l["pitr"]["gaps"], serde_json::json!([]), "{l}");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("at");
    ok(replvault(&[
        "restore",
        "--vault",
        w.vault(),
        "--key-file",
        w.key(),
        "--at",
        &at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "--out",
        dir.to_str().unwrap(),
    ]));
    let slots: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("slots.json")).unwrap()).unwrap();
    let file = slots["shards"][0]["file"].as_str().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join(file), fresh.path().join("dump.rdb")).unwrap();
    let s = RedisServer::start_bin_in(&c.bin, fresh, &["--cluster-enabled", "no"]);
    assert_eq!(s.digest(), digest, "shard 0 after the failover");
}

/// A cluster whose nodes speak TLS (bus and replication too): the backup
/// reaches every shard's replica on its TLS port, verified against the
/// private CA, and each shard restores to its primary's digest; the
/// `--pitr` archivers attach to the primaries' TLS ports.
#[test]
fn cluster_over_tls_backs_up_every_shard_from_a_replica() {
    let tls = tls_files();
    let c = Cluster::start_with(&redis_server_bin(), Some(&tls));
    c.fill();
    let tls_port = |n: usize| c.node(n).extra_ports[1];
    let seed = format!("rediss://127.0.0.1:{}", tls_port(0));
    let forks: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    for mode in ["sync", "scan"] {
        let w = Work::new();
        let (m, _) = w.backup_ok(&seed, &["--tls-ca-file", &tls.ca, "--mode", mode]);
        for (i, s) in shards(&m).iter().enumerate() {
            assert_eq!(s["node"]["id"], c.ids[3 + i].as_str(), "shard {i}");
            assert_eq!(s["node"]["role"], "replica", "shard {i}");
            // Reached on its TLS port, not the plain one it also has.
            let at = format!("127.0.0.1:{}", tls_port(3 + i));
            assert_eq!(s["node"]["address"], at.as_str(), "shard {i}");
            assert_eq!(s["source"]["mode"], mode, "shard {i}");
        }
        assert_restores(&c, &w, &m);
    }
    let after: Vec<u64> = (0..3).map(|i| sync_full(c.primary(i))).collect();
    assert_eq!(after, forks, "a primary served a full sync");

    // The stream archivers attach to the primaries' TLS ports: each
    // write is acknowledged by the real replica and the archiver.
    let w = Work::new();
    let daemon = w.cluster_pitr(&seed, &["--tls-ca-file", &tls.ca]);
    let tags = tags_for_every_slot();
    for i in 0..3 {
        let mut cl = c.primary(i).client();
        let t = &tags[usize::from(RANGES[i].0)];
        cl.ok(&["SET", &format!("tls:{{{t}}}"), "1"]);
        assert_eq!(cl.cmd(&["WAIT", "2", "10000"]), Reply::Int(2), "shard {i}");
    }
    drop(daemon);

    // Without the private CA the first node's certificate is refused, and
    // nothing is listed.
    let w = Work::new();
    let e = w.backup_fails(&seed, &[]);
    assert!(e.contains("TLS") && e.contains("certificate"), "{e}");
}
