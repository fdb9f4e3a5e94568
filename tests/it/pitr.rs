//! Point-in-time recovery against real servers: `replvault run --pitr`
//! archives the replication stream of a real primary, and `restore --at`
//! rebuilds the dataset as it was at a time, checked with DEBUG DIGEST,
//! `INFO keyspace`, the absolute expiry of every key and the function
//! libraries on a fresh server that loads the result.
//!
//! - every data type, transactions, scripts, functions, databases 0-2,
//!   FLUSHDB, SWAPDB, long and short TTLs, written in phases; each phase's
//!   end restores in `rdb` on every server version available (Redis 7.0
//!   always; Redis 6.2 and 8.2, Valkey 8.1 and 9.1 from
//!   `REPLVAULT_TEST_SERVERS`, see scripts/test-servers.sh), in `aof-dir`
//!   on 7.0 and later and in `aof` on 6.2;
//! - kill -9 of the archiver while commands stream, and `CLIENT KILL TYPE
//!   replica`: the archive continues (+CONTINUE), one timeline, no gap;
//! - a backlog overrun while the archiver is down: a second timeline, a gap
//!   that `restore --at` refuses while naming the windows;
//! - `WAIT 1` on the primary returns once the write is in the vault, and
//!   not before;
//! - a real Sentinel failover promotes a real replica, never the archiver.
//!
//! Restore times: `restore --at T` replays the commands that arrived at or
//! before T by the archiver's clock. A checkpoint takes T right after
//! `WAIT` on the writing connection returned (so every write of the phase
//! had arrived and was written), then lets the clock pass T before the next
//! write, so that no later command arrives in T's millisecond.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::proxy::{Fault, Proxy};
use super::util::*;

// ---------------------------------------------------------------------------
// Time, polling, servers

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `ms` as RFC 3339 with milliseconds, as `restore --at` takes it.
fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A server binary under test.
#[derive(Clone, Debug)]
struct Bin {
    path: String,
    major: u32,
    valkey: bool,
}

impl Bin {
    fn new(path: String) -> Bin {
        let major = server_major_version(&path);
        let out = Command::new(&path).arg("--version").output().unwrap();
        let valkey = String::from_utf8_lossy(&out.stdout).contains("Valkey");
        Bin {
            path,
            major,
            valkey,
        }
    }

    /// Debian's redis-server (7.0).
    fn system() -> Bin {
        Bin::new(redis_server_bin())
    }

    /// A binary from scripts/test-servers.sh, if it is there.
    fn other(name: &str) -> Option<Bin> {
        let dir = std::env::var_os("REPLVAULT_TEST_SERVERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target/test-servers"));
        let p = dir.join(name);
        if !p.is_file() {
            eprintln!(
                "skipped: {} is missing (REPLVAULT_TEST_SERVERS=$(scripts/test-servers.sh) provides it)",
                p.display()
            );
            return None;
        }
        Some(Bin::new(p.to_string_lossy().into_owned()))
    }

    fn has_functions(&self) -> bool {
        self.major >= 7
    }

    /// Hash field TTLs: Redis 7.4+ (8 here), Valkey 9.0+.
    fn has_field_ttls(&self) -> bool {
        if self.valkey {
            self.major >= 9
        } else {
            self.major >= 8
        }
    }

    /// PEXPIRETIME (7.0+): expiries compare exactly.
    fn has_expiretime(&self) -> bool {
        self.major >= 7
    }

    fn start(&self, extra: &[&str]) -> RedisServer {
        RedisServer::start_bin_in(&self.path, tempfile::tempdir().unwrap(), extra)
    }
}

/// One field of `INFO <section>`.
fn info(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let text = server.cmd(&["INFO", section]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn info_u64(server: &RedisServer, section: &str, field: &str) -> u64 {
    info(server, section, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

// ---------------------------------------------------------------------------
// The archiver: `replvault run --pitr`

/// A `replvault run --pitr` daemon (util's [`Daemon`]: its own /metrics
/// port, its log in a file); killed on drop.
struct Archiver {
    daemon: Option<Daemon>,
    args: Vec<String>,
}

impl Archiver {
    /// Starts `run --pitr` on `url` into `vault`.
    fn start(url: &str, vault: &Path, key: &Path, extra: &[&str]) -> Archiver {
        let mut args: Vec<String> = [
            "run",
            "--pitr",
            "--redis",
            url,
            "--vault",
            vault.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut a = Archiver { daemon: None, args };
        a.restart();
        a
    }

    /// Starts it (again) with the same arguments.
    fn restart(&mut self) {
        assert!(self.daemon.is_none());
        let args = self.args.clone();
        self.daemon = Some(Daemon::start(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
    }

    /// Starts it again pointed at another server.
    fn restart_on(&mut self, url: &str) {
        let i = self.args.iter().position(|a| a == "--redis").unwrap();
        self.args[i + 1] = url.to_string();
        self.restart();
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the archiver is not running")
    }

    /// SIGKILL: no chance to write what it holds.
    fn kill9(&mut self) {
        // Dropping a Daemon kills it (SIGKILL) and reaps it.
        self.daemon.take().unwrap();
    }

    /// SIGTERM; it must exit cleanly.
    fn stop(&mut self) {
        let mut d = self.daemon.take().unwrap();
        let st = d.sigterm();
        assert!(st.success(), "run --pitr exited with {st}: {}", d.stderr());
    }

    /// The log of the process running now.
    fn log(&self) -> String {
        self.daemon().stderr()
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.daemon().port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        r.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until it streams (after its base, if it took one).
    fn wait_streaming(&mut self) {
        let start = Instant::now();
        while self.metric("replvault_pitr_streaming") != Some(1.0) {
            let d = self.daemon.as_mut().unwrap();
            if let Some(st) = d.try_wait() {
                panic!("run --pitr exited ({st}): {}", d.stderr());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the archiver is not streaming: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------
// The vault's archive, read from its files

/// A segment, as its object key names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seg {
    timeline: String,
    start: u64,
    end: u64,
    first_ms: u64,
    last_ms: u64,
}

fn segments(vault: &Path) -> Vec<Seg> {
    let mut out = Vec::new();
    let Ok(tls) = std::fs::read_dir(vault.join("pitr")) else {
        return out;
    };
    for tl in tls {
        let tl = tl.unwrap();
        let id = tl.file_name().to_string_lossy().into_owned();
        let Ok(segs) = std::fs::read_dir(tl.path().join("seg")) else {
            continue;
        };
        for s in segs {
            let name = s.unwrap().file_name().to_string_lossy().into_owned();
            let parts: Vec<&str> = name.split('-').collect();
            // Staged files of the local store have other names.
            let [a, b, c, d] = parts[..] else { continue };
            let (Ok(start), Ok(end), Ok(first_ms), Ok(last_ms)) =
                (a.parse(), b.parse(), c.parse(), d.parse())
            else {
                continue;
            };
            out.push(Seg {
                timeline: id.clone(),
                start,
                end,
                first_ms,
                last_ms,
            });
        }
    }
    out.sort();
    out
}

/// Every `timeline.json`, oldest first.
fn timelines(vault: &Path) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = match std::fs::read_dir(vault.join("pitr")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path().join("timeline.json"))
            .filter(|p| p.is_file())
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort_by_key(|t| t["started_at"].as_str().unwrap().to_string());
    out
}

/// Asserts the segments of timeline `t` are contiguous from its start.
fn assert_contiguous(vault: &Path, t: &serde_json::Value) {
    let id = t["id"].as_str().unwrap();
    let mut next = t["start_offset"].as_u64().unwrap();
    let segs: Vec<Seg> = segments(vault)
        .into_iter()
        .filter(|s| s.timeline == id)
        .collect();
    assert!(!segs.is_empty(), "timeline {id} has no segment");
    for s in &segs {
        assert_eq!(s.start, next, "a hole in timeline {id}: {segs:?}");
        assert!(s.end > s.start && s.first_ms <= s.last_ms, "{s:?}");
        next = s.end;
    }
}

/// `verify --all` passes, and checked each of the vault's timelines.
fn assert_verifies(vault: &Path, key: &Path) {
    let out = ok(replvault(&[
        "verify",
        "--all",
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]));
    for t in timelines(vault) {
        let id = t["id"].as_str().unwrap();
        assert!(
            out.lines()
                .any(|l| l.starts_with("OK") && l.contains(&format!("timeline {id}"))),
            "verify --all did not check timeline {id}: {out}"
        );
    }
}

/// The newest segment end, in any timeline.
fn archived_end(vault: &Path) -> u64 {
    segments(vault).iter().map(|s| s.end).max().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// What a server holds, beyond DEBUG DIGEST

/// The dataset as the checks compare it. DEBUG DIGEST covers keys, values
/// and whether a key has an expiry, not when it expires: `expiries` holds
/// that, and `functions` the libraries (not in the digest either).
#[derive(Clone, Debug)]
struct State {
    digest: String,
    keyspace: Vec<(u64, u64, u64)>,
    /// (db, key) → absolute expiry in Unix ms (PEXPIRETIME, or now + PTTL
    /// before 7.0).
    expiries: BTreeMap<(u64, Vec<u8>), i64>,
    /// HPEXPIRETIME of the hash field TTL key, where the server has them.
    field_expiries: Option<Reply>,
    functions: Vec<String>,
}

fn state(server: &RedisServer, bin: &Bin) -> State {
    let keyspace = server.keyspace();
    let mut c = server.client();
    let mut expiries = BTreeMap::new();
    for (db, _, n_expires) in &keyspace {
        if *n_expires == 0 {
            continue;
        }
        c.ok(&["SELECT", &db.to_string()]);
        let Reply::Array(keys) = c.ok(&["KEYS", "*"]) else {
            panic!("KEYS")
        };
        for k in keys {
            let Reply::Bulk(Some(k)) = k else {
                panic!("{k:?}")
            };
            let at = if bin.has_expiretime() {
                match c.cmd_bin(&[b"PEXPIRETIME", &k]) {
                    Reply::Int(t) => t,
                    r => panic!("PEXPIRETIME: {r:?}"),
                }
            } else {
                match c.cmd_bin(&[b"PTTL", &k]) {
                    Reply::Int(t) if t >= 0 => now_ms() as i64 + t,
                    Reply::Int(t) => t,
                    r => panic!("PTTL: {r:?}"),
                }
            };
            if at >= 0 {
                expiries.insert((*db, k), at);
            }
        }
    }
    c.ok(&["SELECT", "0"]);
    let field_expiries = bin
        .has_field_ttls()
        .then(|| c.ok(&["HPEXPIRETIME", "pa:hfe", "FIELDS", "3", "a", "b", "c"]));
    let mut functions = Vec::new();
    if bin.has_functions() {
        let Reply::Array(libs) = c.ok(&["FUNCTION", "LIST"]) else {
            panic!("FUNCTION LIST")
        };
        for lib in libs {
            let Reply::Array(fields) = lib else { panic!() };
            let name = fields
                .chunks(2)
                .find(|kv| kv[0].text() == "library_name")
                .map(|kv| kv[1].text())
                .unwrap();
            functions.push(name);
        }
        functions.sort();
    }
    State {
        digest: server.digest(),
        keyspace,
        expiries,
        field_expiries,
        functions,
    }
}

/// Asserts `got` (a restored server) holds `want` (the primary at a time).
fn assert_same(got: &State, want: &State, bin: &Bin, what: &str) {
    assert_eq!(got.keyspace, want.keyspace, "{what}: INFO keyspace differs");
    assert_eq!(got.digest, want.digest, "{what}: DEBUG DIGEST differs");
    assert_eq!(got.functions, want.functions, "{what}: function libraries");
    assert_eq!(
        got.field_expiries, want.field_expiries,
        "{what}: hash field expiries"
    );
    assert_eq!(
        got.expiries.keys().collect::<Vec<_>>(),
        want.expiries.keys().collect::<Vec<_>>(),
        "{what}: keys with an expiry"
    );
    for (k, w) in &want.expiries {
        let g = got.expiries[k];
        let k = (k.0, String::from_utf8_lossy(&k.1));
        if bin.has_expiretime() {
            // 7.0+ sends expiries absolute: the same millisecond.
            assert_eq!(g, *w, "{what}: expiry of {k:?}");
        } else {
            // 6.2 sends them relative; the replay makes them absolute at
            // their arrival, a few ms after the primary's clock, and PTTL
            // is read at two moments. A replay that kept them relative
            // would be off by the seconds between arrival and restore.
            assert!(
                (g - *w).abs() < 500,
                "{what}: expiry of {k:?} is {g}, the primary's {w}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Restoring to a time

fn restore_at(vault: &Path, key: &Path, at: &str, format: &str, bin: &Bin, out: &Path) -> Output {
    replvault(&[
        "restore",
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--at",
        at,
        "--format",
        format,
        "--server-bin",
        &bin.path,
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Restores `at` in `format` and starts `bin` on the result, as an
/// operator would: `rdb` as its dbfilename, `aof-dir` as its
/// appendonlydir, `aof` as its appendfilename.
fn restored(bin: &Bin, vault: &Path, key: &Path, at: &str, format: &str) -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    let (name, args): (&str, &[&str]) = match format {
        "rdb" => ("restored.rdb", &["--dbfilename", "restored.rdb"]),
        "aof-dir" => (
            "restoreddir",
            &["--appendonly", "yes", "--appenddirname", "restoreddir"],
        ),
        "aof" => (
            "restored.aof",
            &["--appendonly", "yes", "--appendfilename", "restored.aof"],
        ),
        f => panic!("{f}"),
    };
    let out = dir.path().join(name);
    let o = restore_at(vault, key, at, format, bin, &out);
    assert!(
        o.status.success(),
        "restore --at {at} --format {format} failed: {}{}",
        stderr(&o),
        stdout(&o)
    );
    bin.start_in_dir(dir, args)
}

impl Bin {
    fn start_in_dir(&self, dir: tempfile::TempDir, extra: &[&str]) -> RedisServer {
        RedisServer::start_bin_in(&self.path, dir, extra)
    }
}

/// `restore --at` that must fail; returns its error line.
fn restore_refused(vault: &Path, key: &Path, at: &str, bin: &Bin) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refused.rdb");
    let err = fails(restore_at(vault, key, at, "rdb", bin, &out));
    assert!(!out.exists(), "a refused restore left {}", out.display());
    err
}

// ---------------------------------------------------------------------------
// Checkpoints

/// The primary's state at a time.
struct Point {
    label: &'static str,
    at_ms: u64,
    state: State,
}

/// Waits until `replicas` replicas acknowledged every write of `w` (so each
/// of them is in the vault), takes the time and the primary's state, then
/// lets the clock pass that millisecond before anything else is written.
fn checkpoint(
    label: &'static str,
    w: &mut Client,
    replicas: i64,
    primary: &RedisServer,
    bin: &Bin,
) -> Point {
    let r = w.cmd(&["WAIT", &replicas.to_string(), "10000"]);
    assert_eq!(r, Reply::Int(replicas), "{label}: WAIT");
    let at_ms = now_ms();
    let state = state(primary, bin);
    while now_ms() <= at_ms + 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    Point {
        label,
        at_ms,
        state,
    }
}

// ---------------------------------------------------------------------------
// The writer

/// Runs commands on one connection, failing on any error reply.
struct Writer<'a> {
    c: Client,
    bin: &'a Bin,
}

impl Writer<'_> {
    fn run(&mut self, cmds: &[&[&str]]) {
        for args in cmds {
            self.c.ok(args);
        }
    }

    /// Every type, long TTLs of every kind (relative, absolute, on SET,
    /// SETEX, GETEX, RESTORE), a binary key, in db 0.
    fn phase_types(&mut self) {
        let far_s = (now_ms() / 1000 + 200_000).to_string();
        let far_ms = (now_ms() + 300_000_000).to_string();
        self.run(&[
            &["SELECT", "0"],
            // Strings.
            &["SET", "pa:s", "hello"],
            &["APPEND", "pa:s", " world"],
            &["SETRANGE", "pa:s", "0", "H"],
            &["INCR", "pa:n"],
            &["INCRBY", "pa:n", "41"],
            &["INCRBYFLOAT", "pa:f", "1.5"],
            &["MSET", "pa:m1", "a", "pa:m2", "b"],
            &["SETNX", "pa:m3", "c"],
            // Lists.
            &["RPUSH", "pa:l", "a", "b", "c", "d", "e"],
            &["LPUSH", "pa:l", "z"],
            &["LSET", "pa:l", "1", "y"],
            &["LTRIM", "pa:l", "0", "4"],
            &["LMOVE", "pa:l", "pa:l2", "LEFT", "RIGHT"],
            &["LREM", "pa:l", "1", "c"],
            // Hashes.
            &["HSET", "pa:h", "f1", "v1", "f2", "v2", "f3", "v3"],
            &["HINCRBY", "pa:h", "n", "5"],
            &["HINCRBYFLOAT", "pa:h", "x", "0.25"],
            &["HDEL", "pa:h", "f2"],
            // Sets.
            &["SADD", "pa:set", "a", "b", "c", "d", "e"],
            &["SREM", "pa:set", "b"],
            &["SMOVE", "pa:set", "pa:set2", "c"],
            // Replicated as SREM of the member it chose.
            &["SPOP", "pa:set"],
            &["SINTERSTORE", "pa:set3", "pa:set", "pa:set"],
            // Sorted sets.
            &["ZADD", "pa:z", "1", "a", "2", "b", "3", "c", "4", "d"],
            &["ZINCRBY", "pa:z", "10", "a"],
            &["ZREM", "pa:z", "b"],
            &["ZADD", "pa:z", "GT", "5", "c"],
            &["ZPOPMIN", "pa:z"],
            &["ZRANGESTORE", "pa:z2", "pa:z", "0", "-1"],
            // Streams: generated and explicit ids, a group, reads that
            // replicate as XCLAIM, acknowledgement, trimming, deletion.
            &["XADD", "pa:x", "*", "f", "1"],
            &["XADD", "pa:x", "*", "f", "2"],
            &["XADD", "pa:x", "*", "f", "3"],
            &["XADD", "pa:x", "9999999999999-5", "f", "4"],
            &["XGROUP", "CREATE", "pa:x", "g", "0"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c1",
                "COUNT",
                "2",
                "STREAMS",
                "pa:x",
                ">",
            ],
            &["XAUTOCLAIM", "pa:x", "g", "c2", "0", "0-0", "COUNT", "1"],
            &["XACK", "pa:x", "g", "9999999999999-5"],
            &["XDEL", "pa:x", "9999999999999-5"],
            &["XADD", "pa:x", "MAXLEN", "10", "*", "f", "5"],
            &["XTRIM", "pa:x", "MAXLEN", "3"],
            // Long TTLs, relative and absolute, on every command that sets
            // one.
            &["SET", "pa:t1", "v", "EX", "100000"],
            &["SETEX", "pa:t2", "100000", "v"],
            &["PSETEX", "pa:t3", "100000000", "v"],
            &["SET", "pa:t4", "v"],
            &["EXPIRE", "pa:t4", "100000"],
            &["RPUSH", "pa:t5", "x"],
            &["PEXPIRE", "pa:t5", "100000000"],
            &["SET", "pa:t6", "v", "PXAT", &far_ms],
            &["SET", "pa:t7", "v"],
            &["GETEX", "pa:t7", "EX", "100000"],
            &["SET", "pa:t8", "v"],
            &["EXPIREAT", "pa:t8", &far_s],
            &["SET", "pa:t9", "v", "PX", "100000000"],
            // Short TTLs made long or removed before they passed: by the
            // time of a restore the first expiry is over, the key lives.
            &["SET", "pa:r1", "v", "PX", "800"],
            &["PEXPIRE", "pa:r1", "100000000"],
            &["SET", "pa:r2", "v", "PX", "800"],
            &["PERSIST", "pa:r2"],
            &["SET", "pa:r3", "1", "PX", "800"],
            &["INCR", "pa:r3"],
            &["EXPIRE", "pa:r3", "100000"],
        ]);
        // RESTORE with a relative TTL, and binary keys and values.
        let Reply::Bulk(Some(payload)) = self.c.cmd(&["DUMP", "pa:h"]) else {
            panic!("DUMP")
        };
        assert_eq!(
            self.c
                .cmd_bin(&[b"RESTORE", b"pa:hcopy", b"100000000", &payload]),
            Reply::Status("OK".into())
        );
        assert_eq!(
            self.c
                .cmd_bin(&[b"SET", b"pa:\x00\xff\r\n", b"\r\n*1\r\n$4\r\nPING\r\n\x00"]),
            Reply::Status("OK".into())
        );
        if self.bin.has_field_ttls() {
            self.run(&[
                &["HSET", "pa:hfe", "a", "1", "b", "2", "c", "3", "d", "4"],
                &["HEXPIRE", "pa:hfe", "100000", "FIELDS", "2", "a", "b"],
            ]);
        }
    }

    /// MULTI/EXEC (with a SELECT inside), a transaction WATCH aborted,
    /// EVAL and EVALSHA that write (one SELECTs inside the script), and
    /// FUNCTION LOAD + FCALL on 7.0+.
    fn phase_scripts(&mut self) {
        self.run(&[
            &["MULTI"],
            &["SET", "pb:a", "1"],
            &["INCR", "pb:a"],
            &["RPUSH", "pb:l", "x", "y"],
            &["SELECT", "1"],
            &["SET", "pb:db1", "v"],
            &["HSET", "pb:h1", "f", "v"],
            &["SELECT", "0"],
            &["EXPIRE", "pb:l", "100000"],
        ]);
        let r = self.c.ok(&["EXEC"]);
        assert!(matches!(&r, Reply::Array(a) if a.len() == 8), "{r:?}");
        // An aborted transaction writes nothing.
        self.run(&[&["WATCH", "pb:a"]]);
        let mut other = Client::connect(self.port());
        other.ok(&["INCR", "pb:a"]);
        self.run(&[&["MULTI"], &["SET", "pb:a", "never"]]);
        // A null array, which the test client reads as an empty one.
        let r = self.c.cmd(&["EXEC"]);
        assert!(matches!(&r, Reply::Array(a) if a.is_empty()), "{r:?}");
        let script = "redis.call('set', KEYS[1], ARGV[1]); \
                      redis.call('hset', KEYS[2], 'f', ARGV[1]); \
                      redis.call('expire', KEYS[1], 100000); \
                      redis.call('rpush', KEYS[3], ARGV[1], ARGV[1]); \
                      return redis.call('incr', KEYS[4])";
        self.run(&[
            &[
                "EVAL", script, "4", "pb:e1", "pb:e2", "pb:e3", "pb:e4", "v1",
            ],
            &[
                "EVAL",
                "redis.call('select', 2); redis.call('set', KEYS[1], ARGV[1]); return 1",
                "1",
                "pb:sel",
                "in-db-2",
            ],
            &["SELECT", "0"],
        ]);
        let sha = self.c.ok(&["SCRIPT", "LOAD", script]).text();
        self.run(&[&[
            "EVALSHA", &sha, "4", "pb:s1", "pb:s2", "pb:s3", "pb:e4", "v2",
        ]]);
        if self.bin.has_functions() {
            self.run(&[
                &[
                    "FUNCTION",
                    "LOAD",
                    "#!lua name=pitr_lib\n\
                     redis.register_function('pitr_set', function(keys, args) \
                     redis.call('set', keys[1], args[1]); \
                     redis.call('pexpire', keys[1], 100000000); \
                     return redis.call('hincrby', keys[2], 'calls', 1) end)",
                ],
                &["FCALL", "pitr_set", "2", "pb:f1", "pb:f2", "one"],
                &["FCALL", "pitr_set", "2", "pb:f3", "pb:f2", "two"],
            ]);
        }
    }

    /// Databases 1 and 2, FLUSHDB, MOVE, COPY, SWAPDB.
    fn phase_databases(&mut self) {
        self.run(&[
            &["SELECT", "1"],
            &["SET", "pc:1", "a"],
            &["HSET", "pc:h1", "f", "v"],
            &["SET", "pc:1b", "v", "EX", "100000"],
            &["SELECT", "2"],
            &["RPUSH", "pc:l2", "a", "b"],
            &["SET", "pc:gone", "x"],
            &["SADD", "pc:s2", "q"],
            &["FLUSHDB"],
            &["SET", "pc:after", "v"],
            &["ZADD", "pc:z2", "1", "a"],
            &["SELECT", "1"],
            &["MOVE", "pc:1", "2"],
            &["SELECT", "0"],
            &["COPY", "pa:s", "pc:copy", "DB", "1"],
            &["SWAPDB", "1", "2"],
            &["SELECT", "2"],
            &["SET", "pc:after-swap", "v"],
            &["SELECT", "0"],
            &["SET", "pc:db0", "v"],
        ]);
    }

    /// Keys (and a hash field) with short TTLs, in dbs 0 and 1: waits
    /// until the primary expired them all (its DELs follow in the stream),
    /// then writes once more.
    fn phase_expiring(&mut self) {
        self.run(&[
            &["SELECT", "0"],
            &["SET", "pd:short1", "v", "PX", "300"],
            &["SETEX", "pd:short2", "1", "v"],
            &["RPUSH", "pd:short3", "a"],
            &["PEXPIRE", "pd:short3", "200"],
            // A key older phases hold.
            &["PEXPIRE", "pa:m1", "250"],
            &["SELECT", "1"],
            &["SET", "pd:short4", "v", "PX", "400"],
            &["SELECT", "0"],
        ]);
        if self.bin.has_field_ttls() {
            self.run(&[&["HPEXPIRE", "pa:hfe", "300", "FIELDS", "1", "c"]]);
        }
        let keys: [(&str, &str); 5] = [
            ("0", "pd:short1"),
            ("0", "pd:short2"),
            ("0", "pd:short3"),
            ("0", "pa:m1"),
            ("1", "pd:short4"),
        ];
        // Active expiry may take its time; an access expires at once.
        let port = self.port();
        wait_for("the short TTLs to expire", Duration::from_secs(10), || {
            let mut c = Client::connect(port);
            let keys_gone = keys.iter().all(|(db, k)| {
                c.ok(&["SELECT", db]);
                c.ok(&["EXISTS", k]) == Reply::Int(0)
            });
            c.ok(&["SELECT", "0"]);
            keys_gone
                && (!self.bin.has_field_ttls()
                    || c.ok(&["HEXISTS", "pa:hfe", "c"]) == Reply::Int(0))
        });
        // WAIT counts this connection's writes: one after the expiries
        // makes it cover their DELs too.
        self.run(&[&["SET", "pd:after", "v"]]);
    }

    /// Deletes, renames, type changes, PERSIST, KEEPTTL, and values large
    /// enough to cut segments by size.
    fn phase_overwrites(&mut self) {
        self.run(&[
            &["SELECT", "0"],
            &["DEL", "pa:l2"],
            &["UNLINK", "pa:set2"],
            &["RENAME", "pa:n", "pe:n"],
            &["DEL", "pa:l"],
            &["SET", "pa:l", "now a string"],
            &["PERSIST", "pa:t1"],
            &["SET", "pa:t2", "new", "KEEPTTL"],
            &["GETDEL", "pa:m2"],
            &["LPOP", "pb:l"],
        ]);
        for i in 0..5 {
            let v = format!("{i}").repeat(40_000);
            self.run(&[&["SET", &format!("pe:big{i}"), &v]]);
        }
    }

    fn port(&self) -> u16 {
        self.c.port()
    }
}

// ---------------------------------------------------------------------------
// 1. Every phase restores, on every version

fn every_phase_restores(bin: Bin) {
    let primary = bin.start(&[]);
    fill_every_type(&primary);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(
        &primary.url(),
        &vault,
        &key,
        &["--pitr-interval", "200ms", "--pitr-segment-size", "64KiB"],
    );
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    let mut points = vec![checkpoint("base", &mut w.c, 1, &primary, &bin)];
    w.phase_types();
    points.push(checkpoint("types", &mut w.c, 1, &primary, &bin));
    w.phase_scripts();
    points.push(checkpoint("scripts", &mut w.c, 1, &primary, &bin));
    w.phase_databases();
    points.push(checkpoint("databases", &mut w.c, 1, &primary, &bin));
    w.phase_expiring();
    points.push(checkpoint("expiring", &mut w.c, 1, &primary, &bin));
    w.phase_overwrites();
    points.push(checkpoint("overwrites", &mut w.c, 1, &primary, &bin));
    // The archive reaches a time once a later command arrived: one more
    // write, in a database no phase uses.
    w.run(&[&["SELECT", "3"], &["SET", "trailer", "1"], &["SELECT", "0"]]);
    let last = checkpoint("trailer", &mut w.c, 1, &primary, &bin);

    // One timeline, its segments contiguous, several cut by size.
    let tls = timelines(&vault);
    assert_eq!(tls.len(), 1, "{tls:?}");
    assert_eq!(tls[0]["reason"], "first");
    assert_contiguous(&vault, &tls[0]);
    assert!(
        segments(&vault)
            .iter()
            .any(|s| s.end - s.start >= 64 * 1024),
        "no segment was cut by size"
    );
    assert_verifies(&vault, &key);

    let aof = if bin.major >= 7 { "aof-dir" } else { "aof" };
    for p in &points {
        let at = rfc3339(p.at_ms);
        for format in ["rdb", aof] {
            let s = restored(&bin, &vault, &key, &at, format);
            let what = format!("{} at {at} ({}, {format})", p.label, bin.path);
            assert_same(&state(&s, &bin), &p.state, &bin, &what);
        }
    }
    let s = restored(&bin, &vault, &key, "latest", "rdb");
    assert_same(&state(&s, &bin), &last.state, &bin, "latest");
    // Nothing was lost to the phases' checks along the way.
    assert_eq!(timelines(&vault).len(), 1);
    drop(archiver);
}

#[test]
fn pitr_restores_every_phase_redis_7() {
    every_phase_restores(Bin::system());
}

#[test]
fn pitr_restores_every_phase_redis_6() {
    if let Some(b) = Bin::other("redis-server-6.2.14") {
        every_phase_restores(b);
    }
}

#[test]
fn pitr_restores_every_phase_redis_8() {
    if let Some(b) = Bin::other("redis-server-8.2.3") {
        every_phase_restores(b);
    }
}

#[test]
fn pitr_restores_every_phase_valkey_8() {
    if let Some(b) = Bin::other("valkey-server-8.1.8") {
        every_phase_restores(b);
    }
}

#[test]
fn pitr_restores_every_phase_valkey_9() {
    if let Some(b) = Bin::other("valkey-server-9.1.2") {
        every_phase_restores(b);
    }
}

// ---------------------------------------------------------------------------
// 1b. An expiry in the base that the stream extends

/// Keys in the base with a TTL that has passed by the time of the restore,
/// whose TTL the archived stream extended or removed before it passed (a
/// sliding session, a counter made permanent): at the time restored they
/// live, and so they must in what `restore --at` writes, whatever format.
fn extended_expiries_restore(bin: Bin) {
    let primary = bin.start(&[]);
    let ttl_ms = 3000;
    let set_at = now_ms();
    let ttl = ttl_ms.to_string();
    let mut c = primary.client();
    for args in [
        &["SET", "sess", "v", "PX", &ttl][..],
        &["SET", "cnt", "5", "PX", &ttl],
        &["HSET", "h", "f", "v"],
        &["PEXPIRE", "h", &ttl],
    ] {
        c.ok(args);
    }
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(&primary.url(), &vault, &key, &["--pitr-interval", "200ms"]);
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    // Each applies to a key the base holds, before its TTL passed.
    for (args, want) in [
        (&["PEXPIRE", "sess", "100000000"][..], Reply::Int(1)),
        (&["PERSIST", "cnt"], Reply::Int(1)),
        (&["INCR", "cnt"], Reply::Int(6)),
        (&["HSET", "h", "g", "w"], Reply::Int(1)),
        (&["EXPIRE", "h", "100000"], Reply::Int(1)),
    ] {
        assert_eq!(
            w.c.cmd(args),
            want,
            "{args:?}: the base's TTL passed too early"
        );
    }
    assert!(
        now_ms() < set_at + ttl_ms,
        "too slow to test the base's TTLs"
    );
    let point = checkpoint("extended", &mut w.c, 1, &primary, &bin);
    w.run(&[&["SET", "trailer", "1"]]);
    checkpoint("trailer", &mut w.c, 1, &primary, &bin);
    // Until the base's TTLs are over, a replay cannot tell.
    wait_for("the base's TTLs to pass", Duration::from_secs(10), || {
        now_ms() > set_at + ttl_ms + 100
    });
    let aof = if bin.major >= 7 { "aof-dir" } else { "aof" };
    for format in ["rdb", aof] {
        let s = restored(&bin, &vault, &key, &rfc3339(point.at_ms), format);
        let what = format!("{format} ({})", bin.path);
        assert_eq!(
            s.cmd(&["GET", "cnt"]),
            Reply::Bulk(Some(b"6".to_vec())),
            "{what}"
        );
        assert_eq!(s.cmd(&["EXISTS", "sess"]), Reply::Int(1), "{what}");
        assert_eq!(
            s.cmd(&["HGET", "h", "g"]),
            Reply::Bulk(Some(b"w".to_vec())),
            "{what}"
        );
        assert_same(&state(&s, &bin), &point.state, &bin, &what);
    }
}

#[test]
fn pitr_keeps_base_keys_whose_ttl_the_stream_extended_redis_7() {
    extended_expiries_restore(Bin::system());
}

#[test]
fn pitr_keeps_base_keys_whose_ttl_the_stream_extended_valkey_9() {
    if let Some(b) = Bin::other("valkey-server-9.1.2") {
        extended_expiries_restore(b);
    }
}

#[test]
fn pitr_keeps_base_keys_whose_ttl_the_stream_extended_redis_6() {
    if let Some(b) = Bin::other("redis-server-6.2.14") {
        extended_expiries_restore(b);
    }
}

// ---------------------------------------------------------------------------
// 2. kill -9 and CLIENT KILL: the archive continues, no gap

/// Writes from their own connection until stopped: the stream keeps
/// flowing while the archiver dies and comes back.
struct Streamer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Streamer {
    fn start(port: u16) -> Streamer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut n = 0u64;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                // Databases change in the stream, so a replay that starts
                // anywhere must know which one is selected.
                c.ok(&["SELECT", &(n % 3).to_string()]);
                c.ok(&["INCR", "streamed:n"]);
                c.ok(&["RPUSH", "streamed:l", &n.to_string()]);
                c.ok(&[
                    "HSET",
                    "streamed:h",
                    &format!("f{}", n % 100),
                    &n.to_string(),
                ]);
                n += 1;
            }
            n
        });
        Streamer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; returns how many rounds it wrote. Its writes are all
    /// answered, so a later write of another connection comes after them
    /// in the stream.
    fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn pitr_continues_without_a_gap_after_kill_9_and_client_kill() {
    let bin = Bin::system();
    let primary = bin.start(&[]);
    primary.cmd(&["SET", "before-the-archiver", "1"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(&primary.url(), &vault, &key, &["--pitr-interval", "200ms"]);
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    w.run(&[&["RPUSH", "l", "first"]]);
    let before = checkpoint("before the kill", &mut w.c, 1, &primary, &bin);
    let full = info_u64(&primary, "stats", "sync_full");
    let partial = info_u64(&primary, "stats", "sync_partial_ok");

    // kill -9 while commands stream in, with some of them received and not
    // yet written (they are lost with the process; the primary's backlog
    // still has them).
    let streamer = Streamer::start(primary.port);
    let segs = segments(&vault).len();
    wait_for(
        "segments of the streamed writes",
        Duration::from_secs(20),
        || segments(&vault).len() >= segs + 3,
    );
    wait_for(
        "commands received, not yet written",
        Duration::from_secs(10),
        || archiver.metric("replvault_pitr_lag_bytes").unwrap_or(0.0) > 0.0,
    );
    archiver.kill9();
    let killed_at = archived_end(&vault);
    // Writes go on while it is down: 20 KB of stream at least.
    wait_for(
        "writes while the archiver is down",
        Duration::from_secs(20),
        || info_u64(&primary, "replication", "master_repl_offset") > killed_at + 20_000,
    );
    archiver.restart();
    archiver.wait_streaming();
    let restarted_at = info_u64(&primary, "replication", "master_repl_offset");
    wait_for(
        "streamed writes after the restart",
        Duration::from_secs(20),
        || archived_end(&vault) > restarted_at + 5_000,
    );
    let rounds = streamer.stop();
    assert!(rounds > 100, "only {rounds} rounds streamed");
    w.run(&[&["RPUSH", "l", "after the kill"]]);
    let after_kill = checkpoint("after kill -9", &mut w.c, 1, &primary, &bin);
    assert_eq!(
        info_u64(&primary, "stats", "sync_full"),
        full,
        "the restarted archiver asked for a full resync"
    );
    assert_eq!(info_u64(&primary, "stats", "sync_partial_ok"), partial + 1);
    assert!(
        archiver
            .log()
            .contains("continuing the archive (+CONTINUE)"),
        "{}",
        archiver.log()
    );

    // The primary drops its replica: the archiver comes back by itself.
    let killed = primary.cmd(&["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed, Reply::Int(1));
    wait_for("the archiver to reconnect", Duration::from_secs(20), || {
        info_u64(&primary, "stats", "sync_partial_ok") == partial + 2
    });
    archiver.wait_streaming();
    w.run(&[&["RPUSH", "l", "after the client kill"], &["SET", "k", "v"]]);
    let after_client_kill = checkpoint("after CLIENT KILL", &mut w.c, 1, &primary, &bin);
    w.run(&[&["SET", "trailer", "1"]]);
    checkpoint("trailer", &mut w.c, 1, &primary, &bin);
    assert_eq!(info_u64(&primary, "stats", "sync_full"), full);

    let tls = timelines(&vault);
    assert_eq!(tls.len(), 1, "a gap: {tls:?}");
    assert_contiguous(&vault, &tls[0]);
    assert_verifies(&vault, &key);
    for p in [&before, &after_kill, &after_client_kill] {
        let at = rfc3339(p.at_ms);
        let s = restored(&bin, &vault, &key, &at, "rdb");
        assert_same(&state(&s, &bin), &p.state, &bin, p.label);
    }
}

// ---------------------------------------------------------------------------
// 3. A backlog overrun: a gap, refused, and a new timeline

#[test]
fn pitr_backlog_overrun_starts_a_timeline_and_the_gap_is_refused() {
    let bin = Bin::system();
    let primary = bin.start(&["--repl-backlog-size", "16kb"]);
    primary.cmd(&["SET", "before-the-archiver", "1"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(&primary.url(), &vault, &key, &["--pitr-interval", "200ms"]);
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    w.run(&[&["SET", "a", "1"], &["RPUSH", "l", "x"]]);
    let first = checkpoint("first timeline", &mut w.c, 1, &primary, &bin);
    // A timeline reaches up to its last archived command: one after the
    // checkpoint makes it reach the checkpoint.
    w.run(&[&["SET", "trailer", "0"]]);
    checkpoint("first trailer", &mut w.c, 1, &primary, &bin);
    archiver.kill9();
    // 1 MB while it is down: the 16 KB backlog cannot continue the stream.
    let v = "x".repeat(10_000);
    for i in 0..50 {
        w.run(&[&["SET", &format!("big{i}"), &v]]);
    }
    let in_gap = now_ms();
    std::thread::sleep(Duration::from_millis(2));
    for i in 50..100 {
        w.run(&[&["SET", &format!("big{i}"), &v]]);
    }
    archiver.restart();
    archiver.wait_streaming();
    w.run(&[&["SET", "after", "1"], &["DEL", "big7"]]);
    let second = checkpoint("second timeline", &mut w.c, 1, &primary, &bin);
    w.run(&[&["SET", "trailer", "1"]]);
    checkpoint("trailer", &mut w.c, 1, &primary, &bin);
    assert_eq!(info_u64(&primary, "stats", "sync_full"), 2);

    let tls = timelines(&vault);
    assert_eq!(tls.len(), 2, "{tls:?}");
    let (id1, id2) = (
        tls[0]["id"].as_str().unwrap(),
        tls[1]["id"].as_str().unwrap(),
    );
    assert_eq!(tls[0]["reason"], "first");
    assert_eq!(tls[1]["reason"], "full resync");
    assert_eq!(tls[1]["previous"], id1);
    assert_contiguous(&vault, &tls[0]);
    assert_contiguous(&vault, &tls[1]);
    assert_verifies(&vault, &key);
    let list = list_json(&vault);
    assert_eq!(list["pitr"]["gaps"].as_array().unwrap().len(), 1, "{list}");

    // Inside the gap: refused, naming both windows.
    let at = rfc3339(in_gap);
    let err = restore_refused(&vault, &key, &at, &bin);
    assert!(err.contains("falls in a gap"), "{err}");
    assert!(err.contains("restorable:"), "{err}");
    assert!(err.contains(id1) && err.contains(id2), "{err}");
    // Before the first base: refused.
    let started = chrono::DateTime::parse_from_rfc3339(tls[0]["started_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as u64;
    let err = restore_refused(&vault, &key, &rfc3339(started - 5_000), &bin);
    assert!(err.contains("before the first base backup"), "{err}");
    assert!(err.contains(id1), "{err}");
    // Both sides of the gap restore.
    for p in [&first, &second] {
        let s = restored(&bin, &vault, &key, &rfc3339(p.at_ms), "rdb");
        assert_same(&state(&s, &bin), &p.state, &bin, p.label);
    }
}

// ---------------------------------------------------------------------------
// 4. WAIT 1 returns once the write is in the vault, and not before

#[test]
fn pitr_wait_returns_once_the_write_is_in_the_vault() {
    let bin = Bin::system();
    // No keepalive PING in the stream between a write and its check.
    let primary = bin.start(&["--repl-ping-replica-period", "60"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(&primary.url(), &vault, &key, &["--pitr-interval", "3s"]);
    archiver.wait_streaming();
    let mut c = primary.client();
    // This WAIT returns right after a segment was written, at one of the
    // archiver's ticks: the next one is 3 s away.
    c.ok(&["SET", "align", "1"]);
    assert_eq!(c.cmd(&["WAIT", "1", "10000"]), Reply::Int(1));
    for round in 0..2 {
        c.ok(&["SET", &format!("k{round}"), "v"]);
        let written = Instant::now();
        let offset: u64 = c
            .ok(&["INFO", "replication"])
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            c.cmd(&["WAIT", "1", "500"]),
            Reply::Int(0),
            "round {round}: WAIT returned before the write's segment was due"
        );
        let end = archived_end(&vault);
        assert!(
            end < offset,
            "round {round}: the vault has {end} >= {offset} already"
        );
        assert_eq!(
            c.cmd(&["WAIT", "1", "10000"]),
            Reply::Int(1),
            "round {round}"
        );
        let end = archived_end(&vault);
        assert!(
            end >= offset,
            "round {round}: WAIT returned 1 but the vault ends at {end} < {offset}"
        );
        assert!(
            written.elapsed() >= Duration::from_millis(1500),
            "round {round}: acknowledged after {:?}, before the next tick",
            written.elapsed()
        );
    }
    // A command that changes no data is in the stream too: WAIT for it
    // returns once it is written, not after the idle commit a minute on.
    c.ok(&["PUBLISH", "ch", "m"]);
    let offset = info_u64(&primary, "replication", "master_repl_offset");
    assert_eq!(
        c.cmd(&["WAIT", "1", "10000"]),
        Reply::Int(1),
        "WAIT after PUBLISH timed out"
    );
    let end = archived_end(&vault);
    assert!(end >= offset, "the vault ends at {end} < {offset}");

    // A clean stop writes what arrived, not waiting for the next tick.
    c.ok(&["SET", "last", "v"]);
    wait_received(&archiver, &primary);
    let offset = info_u64(&primary, "replication", "master_repl_offset");
    assert!(archived_end(&vault) < offset);
    archiver.stop();
    let end = archived_end(&vault);
    assert!(end >= offset, "SIGTERM left {end} < {offset} unwritten");
}

// ---------------------------------------------------------------------------
// 5. Sentinel: a failover promotes a real replica, never the archiver

/// A Sentinel (`redis-server sentinel.conf --sentinel`) monitoring
/// `127.0.0.1:<primary>` as `m`, with a quorum of 2 and short timeouts.
fn start_sentinel(bin: &Bin, primary: u16) -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor m 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds m 1000\n\
             sentinel failover-timeout m 5000\n\
             sentinel parallel-syncs m 2\n"
        ),
    )
    .unwrap();
    RedisServer::start_bin_in(&bin.path, dir, &[conf.to_str().unwrap(), "--sentinel"])
}

/// `SENTINEL REPLICAS m`: one field map per replica.
fn sentinel_replicas(sentinel: &RedisServer) -> Vec<BTreeMap<String, String>> {
    let Reply::Array(replicas) = sentinel.cmd(&["SENTINEL", "REPLICAS", "m"]) else {
        panic!("SENTINEL REPLICAS")
    };
    replicas
        .into_iter()
        .map(|r| {
            let Reply::Array(fields) = r else {
                panic!("{r:?}")
            };
            fields
                .chunks(2)
                .map(|kv| (kv[0].text(), kv[1].text()))
                .collect()
        })
        .collect()
}

/// The primary's port as `sentinel` sees it.
fn sentinel_primary(sentinel: &RedisServer) -> u16 {
    let Reply::Array(addr) = sentinel.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"]) else {
        panic!("GET-MASTER-ADDR-BY-NAME")
    };
    addr[1].text().parse().unwrap()
}

#[test]
fn pitr_sentinel_failover_promotes_a_real_replica_and_the_archive_follows() {
    let bin = Bin::system();
    let primary = bin.start(&[]);
    let primary_addr = primary.port.to_string();
    let replicas: Vec<RedisServer> = (0..2)
        .map(|_| bin.start(&["--replicaof", "127.0.0.1", &primary_addr]))
        .collect();
    let run_id = |s: &RedisServer| info(s, "server", "run_id").unwrap();
    let replica_ids: BTreeMap<u16, String> = replicas.iter().map(|r| (r.port, run_id(r))).collect();
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(&primary.url(), &vault, &key, &["--pitr-interval", "200ms"]);
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    w.run(&[&["SET", "a", "1"], &["RPUSH", "l", "x", "y"]]);
    // Two replicas and the archiver have it all.
    let before = checkpoint("before the failover", &mut w.c, 3, &primary, &bin);

    let sentinels: Vec<RedisServer> = (0..3).map(|_| start_sentinel(&bin, primary.port)).collect();
    // Each one knows the other two and both real replicas, linked.
    for s in &sentinels {
        wait_for(
            "the sentinels to know each other",
            Duration::from_secs(30),
            || matches!(s.cmd(&["SENTINEL", "SENTINELS", "m"]), Reply::Array(a) if a.len() == 2),
        );
        wait_for(
            "the sentinels to see the replicas",
            Duration::from_secs(30),
            || {
                let reps = sentinel_replicas(s);
                replica_ids.iter().all(|(port, id)| {
                    reps.iter().any(|r| {
                        r["port"] == port.to_string() && r["flags"] == "slave" && r["runid"] == *id
                    })
                })
            },
        );
    }
    // The archiver is no candidate: listed (if at all) with no port to
    // reach it, down and disconnected, without a run id.
    let real: Vec<String> = replica_ids.keys().map(|p| p.to_string()).collect();
    for s in &sentinels {
        for r in sentinel_replicas(s) {
            if real.contains(&r["port"]) {
                continue;
            }
            assert_eq!(r["port"], "0", "an unknown replica: {r:?}");
            assert!(
                r["flags"].contains("disconnected") || r["flags"].contains("s_down"),
                "the archiver looks like a candidate: {r:?}"
            );
            assert_eq!(r["runid"], "", "{r:?}");
        }
    }

    assert_eq!(
        sentinels[0].cmd(&["SENTINEL", "FAILOVER", "m"]),
        Reply::Status("OK".into())
    );
    let mut promoted = 0;
    wait_for(
        "every sentinel to name the new primary",
        Duration::from_secs(30),
        || {
            let ports: Vec<u16> = sentinels.iter().map(sentinel_primary).collect();
            promoted = ports[0];
            promoted != primary.port && ports.iter().all(|p| *p == promoted)
        },
    );
    let new = replicas
        .iter()
        .find(|r| r.port == promoted)
        .unwrap_or_else(|| panic!("port {promoted} is not a real replica's"));
    assert_eq!(
        run_id(new),
        replica_ids[&promoted],
        "another server answers"
    );
    wait_for(
        "the promoted replica to be a primary",
        Duration::from_secs(10),
        || info(new, "replication", "role").as_deref() == Some("master"),
    );
    let new_replid = info(new, "replication", "master_replid").unwrap();

    // Pointed at the new primary (its --redis is one address), the
    // archiver continues the same timeline under the new replication id.
    // kill -9 leaves in the vault only what it had written: the old
    // primary's keepalives after the promotion are not there to make the
    // offsets disagree.
    archiver.kill9();
    archiver.restart_on(&new.url());
    archiver.wait_streaming();
    assert!(
        archiver
            .log()
            .contains("the primary continues under a new replication id"),
        "{}",
        archiver.log()
    );
    let tls = timelines(&vault);
    assert_eq!(tls.len(), 1, "a gap at the failover: {tls:?}");
    let markers: Vec<String> = std::fs::read_dir(
        vault
            .join("pitr")
            .join(tls[0]["id"].as_str().unwrap())
            .join("replid"),
    )
    .unwrap()
    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    .collect();
    assert!(
        markers.len() == 1 && markers[0].ends_with(&format!("-{new_replid}")),
        "{markers:?}"
    );

    let mut w = Writer {
        c: new.client(),
        bin: &bin,
    };
    w.run(&[
        &["SET", "a", "2"],
        &["RPUSH", "l", "z"],
        &["SELECT", "1"],
        &["SET", "b", "1"],
    ]);
    // WAIT on the new primary counts its other replicas too: wait for the
    // archiver's own acknowledgement.
    let offset = info_u64(new, "replication", "master_repl_offset");
    wait_for(
        "the archiver to write the new primary's writes",
        Duration::from_secs(20),
        || {
            archiver
                .metric("replvault_pitr_committed_offset")
                .unwrap_or(0.0)
                >= offset as f64
        },
    );
    let at_ms = now_ms();
    let after = Point {
        label: "after the failover",
        at_ms,
        state: state(new, &bin),
    };
    while now_ms() <= at_ms + 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    w.run(&[&["SET", "trailer", "1"]]);
    let offset = info_u64(new, "replication", "master_repl_offset");
    wait_for("the trailer in the vault", Duration::from_secs(20), || {
        archived_end(&vault) >= offset
    });
    assert_eq!(timelines(&vault).len(), 1);
    assert_contiguous(&vault, &timelines(&vault)[0]);
    for p in [&before, &after] {
        let s = restored(&bin, &vault, &key, &rfc3339(p.at_ms), "rdb");
        assert_same(&state(&s, &bin), &p.state, &bin, p.label);
    }
    archiver.stop();
}

// ---------------------------------------------------------------------------
// 6. Times inside one segment; a transaction across segments

/// Polls until the archiver has received the primary's stream up to its
/// current offset (received, not yet written: committed + lag).
fn wait_received(archiver: &Archiver, primary: &RedisServer) {
    let offset = info_u64(primary, "replication", "master_repl_offset") as f64;
    wait_for(
        "the archiver to receive the write",
        Duration::from_secs(10),
        || {
            let committed = archiver.metric("replvault_pitr_committed_offset");
            let lag = archiver.metric("replvault_pitr_lag_bytes");
            matches!((committed, lag), (Some(c), Some(l)) if c + l >= offset)
        },
    );
}

#[test]
fn pitr_restores_times_inside_a_segment_and_a_transaction_across_segments() {
    let bin = Bin::system();
    let primary = bin.start(&["--repl-ping-replica-period", "60"]);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(
        &primary.url(),
        &vault,
        &key,
        &["--pitr-interval", "2500ms", "--pitr-segment-size", "16KiB"],
    );
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    // Returns at a tick: the next one is 2.5 s away, and the steps below
    // take well under that, so they land in one segment.
    w.run(&[&["SET", "align", "1"]]);
    assert_eq!(w.c.cmd(&["WAIT", "1", "10000"]), Reply::Int(1));
    let mut points = Vec::new();
    for (i, label) in ["step 0", "step 1", "step 2", "step 3"]
        .into_iter()
        .enumerate()
    {
        let db = (i % 3).to_string();
        w.run(&[
            &["SELECT", &db],
            &["SET", &format!("k{i}"), "v"],
            &["RPUSH", "l", &i.to_string()],
            &["INCR", "n"],
        ]);
        // The time right after the step arrived, before the next one.
        wait_received(&archiver, &primary);
        let at_ms = now_ms();
        points.push(Point {
            label,
            at_ms,
            state: state(&primary, &bin),
        });
        while now_ms() <= at_ms + 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(w.c.cmd(&["WAIT", "1", "10000"]), Reply::Int(1));
    let segs = segments(&vault);
    let inside = |t: u64| segs.iter().any(|s| s.first_ms <= t && t < s.last_ms);
    for p in &points[..3] {
        assert!(
            inside(p.at_ms),
            "{} at {} is not inside a segment: {segs:?}",
            p.label,
            p.at_ms
        );
    }

    // A transaction of 1 MB, many times the segment size and more than
    // the archiver reads at once: cut between its commands, MULTI in one
    // segment and EXEC in another.
    w.run(&[&["SELECT", "1"]]);
    let tx_start = info_u64(&primary, "replication", "master_repl_offset");
    w.run(&[&["MULTI"]]);
    let v = "t".repeat(10_000);
    for j in 0..100 {
        w.run(&[&["SET", &format!("tx{j}"), &v]]);
    }
    let r = w.c.ok(&["EXEC"]);
    assert!(matches!(&r, Reply::Array(a) if a.len() == 100), "{r:?}");
    let tx_end = info_u64(&primary, "replication", "master_repl_offset");
    points.push(checkpoint("transaction", &mut w.c, 1, &primary, &bin));
    assert!(
        segments(&vault)
            .iter()
            .any(|s| tx_start < s.end && s.end < tx_end),
        "no segment ends inside the transaction ({tx_start} to {tx_end}): {:?}",
        segments(&vault)
    );
    w.run(&[&["SET", "trailer", "1"]]);
    checkpoint("trailer", &mut w.c, 1, &primary, &bin);
    for p in &points {
        let s = restored(&bin, &vault, &key, &rfc3339(p.at_ms), "rdb");
        assert_same(&state(&s, &bin), &p.state, &bin, p.label);
    }

    // A segment tampered with in the middle of the timeline: segments
    // are fetched ahead of the reader, yet verify and restore name that
    // one, and a time before it still restores.
    archiver.stop();
    assert_verifies(&vault, &key);
    let segs = segments(&vault);
    assert!(segs.len() >= 6, "{segs:?}");
    let bad = &segs[segs.len() / 2];
    let name = format!(
        "{:020}-{:020}-{:013}-{:013}",
        bad.start, bad.end, bad.first_ms, bad.last_ms
    );
    let path = vault
        .join("pitr")
        .join(&bad.timeline)
        .join("seg")
        .join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let o = replvault(&[
        "verify",
        "--all",
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "verify passed a tampered segment");
    let out = stdout(&o);
    assert!(
        out.contains(&format!("FAILED  timeline {}", bad.timeline)) && out.contains(&name),
        "verify does not name the tampered segment {name}: {out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = restore_at(
        &vault,
        &key,
        &rfc3339(bad.last_ms + 1),
        "rdb",
        &bin,
        &dir.path().join("after.rdb"),
    );
    let err = fails(o);
    assert!(err.contains(&name), "restore --at past it: {err}");
    assert!(!dir.path().join("after.rdb").exists());
    let before = points
        .iter()
        .rfind(|p| p.at_ms < bad.first_ms)
        .expect("a point before the tampered segment");
    let s = restored(&bin, &vault, &key, &rfc3339(before.at_ms), "rdb");
    assert_same(&state(&s, &bin), &before.state, &bin, before.label);
}

// ---------------------------------------------------------------------------
// 7. Scheduled backups as bases, their offsets inside segments

#[test]
fn pitr_restores_from_scheduled_bases_taken_mid_stream() {
    let bin = Bin::system();
    let primary = bin.start(&[]);
    fill_every_type(&primary);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(
        &primary.url(),
        &vault,
        &key,
        &["--pitr-interval", "200ms", "--every", "2s"],
    );
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    let backups = || list_json(&vault)["backups"].as_array().map_or(0, Vec::len);
    // Commands stream in, in several databases, while the daemon takes
    // its scheduled backups beside the archiver; after each one, a time
    // to restore.
    let mut points = Vec::new();
    for (k, label) in ["after base 2", "after base 3"].into_iter().enumerate() {
        let streamer = Streamer::start(primary.port);
        wait_for("a scheduled backup", Duration::from_secs(30), || {
            backups() >= k + 2
        });
        streamer.stop();
        w.run(&[&["SELECT", "1"], &["SET", "after", label]]);
        points.push(checkpoint(label, &mut w.c, 1, &primary, &bin));
    }
    w.run(&[&["SET", "trailer", "1"]]);
    checkpoint("trailer", &mut w.c, 1, &primary, &bin);

    let tls = timelines(&vault);
    assert_eq!(tls.len(), 1, "{tls:?}");
    let start_offset = tls[0]["start_offset"].as_u64().unwrap();
    // The scheduled bases' offsets are not segment ends: replay starts
    // inside a segment.
    let ends: Vec<u64> = segments(&vault).iter().map(|s| s.end).collect();
    let list = list_json(&vault);
    let base_offsets: Vec<u64> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["source"]["offset"].as_u64().unwrap())
        .collect();
    assert!(base_offsets.len() >= 3, "{list}");
    assert_eq!(points.len(), 2);
    let mut later_bases = 0;
    for p in &points {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("restored.rdb");
        let o = ok(restore_at(
            &vault,
            &key,
            &rfc3339(p.at_ms),
            "rdb",
            &bin,
            &out,
        ));
        // "base backup <id> (offset N)"
        let offset: u64 = o
            .split("(offset ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no base offset in: {o}"));
        if offset > start_offset {
            later_bases += 1;
        }
        let s = bin.start_in_dir(dir, &["--dbfilename", "restored.rdb"]);
        assert_same(&state(&s, &bin), &p.state, &bin, p.label);
    }
    assert!(
        later_bases >= 2,
        "restores used no scheduled base: bases at {base_offsets:?}"
    );
    assert!(
        base_offsets
            .iter()
            .any(|o| *o > start_offset && !ends.contains(o)),
        "no base inside a segment: bases at {base_offsets:?}, segment ends {ends:?}"
    );
}

// ---------------------------------------------------------------------------
// 8. A base cut short

#[test]
fn pitr_a_base_cut_short_leaves_no_timeline_without_a_base() {
    let bin = Bin::system();
    let primary = bin.start(&[]);
    // About 70 KB of snapshot; the first link is cut 20 KB into it.
    fill_every_type(&primary);
    let proxy = Proxy::start(primary.port, Fault::CutFirstAfter(20_000));
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let mut archiver = Archiver::start(&proxy.url(), &vault, &key, &["--pitr-interval", "200ms"]);
    archiver.wait_streaming();
    let mut w = Writer {
        c: primary.client(),
        bin: &bin,
    };
    w.run(&[&["SET", "after", "1"], &["RPUSH", "l", "x"]]);
    let point = checkpoint("after the cut", &mut w.c, 1, &primary, &bin);
    w.run(&[&["SET", "trailer", "1"]]);
    checkpoint("trailer", &mut w.c, 1, &primary, &bin);
    // The timeline the archive streams into has a base: the time after
    // the cut restores.
    // The cut snapshot's timeline is not continued: a full resync starts
    // another, with its base.
    let tls = timelines(&vault);
    assert_eq!(tls.len(), 2, "{tls:?}");
    assert_eq!(tls[1]["reason"], "full resync");
    assert_eq!(tls[1]["previous"], tls[0]["id"]);
    assert!(
        segments(&vault).iter().all(|s| s.timeline == tls[1]["id"]),
        "segments in the timeline without a base: {:?}",
        segments(&vault)
    );
    let list = list_json(&vault);
    let windows = list["pitr"]["windows"].as_array().unwrap();
    assert_eq!(windows.last().unwrap()["timeline"], tls[1]["id"], "{list}");
    let s = restored(&bin, &vault, &key, &rfc3339(point.at_ms), "rdb");
    assert_same(&state(&s, &bin), &point.state, &bin, point.label);
}
