//! Scan mode, for servers that refuse SYNC/PSYNC: walk every database with
//! `SCAN`, fetch each key with `DUMP` and `PTTL` (pipelined per batch, with
//! the next `SCAN` in the same write), and
//! write a real RDB file from the payloads (`replvault_protocol::dump`),
//! streamed into the same [`RdbSource`] channel as the replication path.
//!
//! Not a point-in-time snapshot: keys are read at different moments. Keys
//! that vanish during the walk are skipped; keys `SCAN` reports twice (it may,
//! while the server resizes a table) are written once, which costs a 16-byte
//! digest per key of the largest database in a hash set reserved from `INFO
//! keyspace` (19 to 39 bytes per key: 17 per slot, a power of two of slots).

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use replvault_protocol::dump::{Dump, DumpError, RdbWriter};
use replvault_protocol::replica::HandshakeError;
use replvault_protocol::resp::Frame;
use tokio::sync::mpsc;

use super::SourceInfo;
use super::client::Client;
use super::conn::Connection;
use super::url::RedisTarget;
use super::{RdbSource, SourceError};

/// Keys of one database whose digest slots are reserved up front (from
/// `INFO keyspace`), so the set does not double while full: 2^27 slots of
/// 17 bytes at this count, touched only as keys arrive. A larger database
/// grows the set as it goes.
const RESERVE_KEYS: u64 = 1 << 26;

/// Hashes a key digest by its low 64 bits: the digest is already the output
/// of keyed hashes, so hashing it again would only cost time.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; this keeps other input well mixed.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// 128-bit digests of the keys written so far in one database.
type DigestSet = HashSet<u128, BuildHasherDefault<DigestHasher>>;

/// RDB bytes per chunk sent to the vault writer.
const FLUSH: usize = 256 * 1024;
/// Chunks buffered between the walk and the vault writer.
const DEPTH: usize = 16;

/// Options for scan mode.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Keys per `SCAN` call (and per pipelined batch).
    pub count: u32,
    /// At most this many keys per second (0 = unlimited).
    pub rate: u64,
    /// Fail when the server answers nothing for this long.
    pub idle_timeout: Duration,
}

/// Maps an error reply to a clear error.
fn refused(command: &str, msg: &str) -> SourceError {
    let upper = msg.to_ascii_uppercase();
    let e = if upper.starts_with("NOAUTH") {
        HandshakeError::AuthRequired
    } else if upper.starts_with("WRONGPASS") || command == "AUTH" {
        HandshakeError::AuthFailed(msg.to_string())
    } else if upper.starts_with("LOADING") {
        HandshakeError::Loading
    } else if upper.starts_with("NOPERM") {
        return SourceError::ScanRefused(format!(
            "the server denied `{command}` ({msg}): scan mode needs `+scan +dump +pttl +select +info +ping`, and `+function|dump` where functions exist"
        ));
    } else {
        HandshakeError::Server {
            command: command.to_string(),
            message: msg.to_string(),
        }
    };
    e.into()
}

fn expect_ok(command: &str, f: Frame) -> Result<Frame, SourceError> {
    match f {
        Frame::Error(msg) => Err(refused(command, &msg)),
        other => Ok(other),
    }
}

/// `INFO` sections as key/value pairs.
fn parse_info(f: &Frame) -> BTreeMap<String, String> {
    f.as_text()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Names of the loaded modules, from `INFO modules` (`module:name=...,`
/// lines); none when the server has no such section or refuses it.
fn module_names(f: &Frame) -> Vec<String> {
    f.as_text()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("module:name="))
        .map(|rest| rest.split(',').next().unwrap_or(rest).to_string())
        // Built into Redis 8, and all its data is in its keys (its RDB files
        // hold no aux record of it: fixtures/rdb/redis-8.2.3.rdb).
        .filter(|name| name != "vectorset")
        .collect()
}

/// Databases with keys, from `INFO keyspace`: (db, keys, expires).
fn keyspace(info: &BTreeMap<String, String>) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = info
        .iter()
        .filter_map(|(k, v)| {
            let db = k.strip_prefix("db")?.parse().ok()?;
            let mut keys = 0;
            let mut expires = 0;
            for kv in v.split(',') {
                match kv.split_once('=') {
                    Some(("keys", n)) => keys = n.parse().ok()?,
                    Some(("expires", n)) => expires = n.parse().ok()?,
                    _ => {}
                }
            }
            Some((db, keys, expires))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The RDB version a server of `redis_version` writes (and its DUMP uses).
pub fn rdb_version_for(redis_version: &str) -> u32 {
    let mut it = redis_version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    match (major, minor) {
        (8.., _) | (7, 4..) => 12,
        (7, 2..) => 11,
        (7, _) => 10,
        (5 | 6, _) => 9,
        (4, _) => 8,
        (3, 2..) => 7,
        _ => 6,
    }
}

/// Valkey 9 and later write their own RDB format (80); older Valkey
/// writes Redis's, which `rdb_version_for` of its `redis_version` gives.
pub fn valkey_rdb_version_for(valkey_version: &str) -> Option<u32> {
    let major: u32 = valkey_version.split('.').next()?.parse().ok()?;
    (major >= 9).then_some(80)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Authenticates, reads what the RDB header needs, and starts the walk.
pub async fn start(
    conn: Connection,
    target: &RedisTarget,
    opts: &ScanOptions,
) -> Result<RdbSource, SourceError> {
    let mut c = Client::new(conn, opts.idle_timeout);
    if let Some(pw) = &target.password {
        let f = match &target.username {
            Some(u) => c.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()]).await?,
            None => c.call(&[b"AUTH", pw.as_bytes()]).await?,
        };
        expect_ok("AUTH", f)?;
    }
    let server = parse_info(&expect_ok("INFO", c.call(&[b"INFO", b"server"]).await?)?);
    let memory = parse_info(&expect_ok("INFO", c.call(&[b"INFO", b"memory"]).await?)?);
    let dbs = keyspace(&parse_info(&expect_ok(
        "INFO",
        c.call(&[b"INFO", b"keyspace"]).await?,
    )?));
    let cluster = parse_info(&expect_ok("INFO", c.call(&[b"INFO", b"cluster"]).await?)?);
    if cluster.get("cluster_enabled").map(String::as_str) == Some("1") {
        tracing::warn!(
            "cluster mode: scan mode backs up only the keys of this node; back up every master"
        );
    }
    // Only a warning: a server that refuses this section has nothing to say.
    let modules = module_names(&c.call(&[b"INFO", b"modules"]).await?);
    if !modules.is_empty() {
        tracing::warn!(
            modules = %modules.join(","),
            "modules loaded: their values are backed up, but what a module keeps outside keys \
             (aux data, such as search index definitions) is in no DUMP reply, so a scan-mode \
             backup does not carry it; sync mode does"
        );
    }
    let redis_version = server.get("redis_version").cloned().unwrap_or_default();
    let name = server
        .get("server_name")
        .cloned()
        .unwrap_or_else(|| "redis".into());
    let info = SourceInfo {
        address: target.redacted(),
        mode: "scan".into(),
        server: Some(name.clone()),
        version: Some(
            server
                .get("valkey_version")
                .cloned()
                .unwrap_or_else(|| redis_version.clone()),
        ),
        replid: None,
        offset: None,
        point_in_time: false,
        wait_secs: None,
    };
    tracing::info!(
        address = %info.address,
        databases = dbs.len(),
        keys = dbs.iter().map(|d| d.1).sum::<u64>(),
        "scan mode: walking the keyspace with SCAN + DUMP (not a point-in-time snapshot)"
    );
    let valkey_version = server.get("valkey_version").cloned();
    let version = valkey_version
        .as_deref()
        .and_then(valkey_rdb_version_for)
        .unwrap_or_else(|| rdb_version_for(&redis_version));
    // The version field the server's own RDB files carry.
    let ver_aux = match valkey_version {
        Some(v) if version >= 80 => ("valkey-ver".to_string(), v),
        _ => ("redis-ver".to_string(), redis_version),
    };
    let aux = vec![
        ver_aux,
        ("redis-bits".to_string(), "64".to_string()),
        ("ctime".to_string(), (now_ms() / 1000).to_string()),
        (
            "used-mem".to_string(),
            memory.get("used_memory").cloned().unwrap_or_default(),
        ),
        ("replvault-mode".to_string(), "scan".to_string()),
    ];
    let (tx, rx) = mpsc::channel(DEPTH);
    let opts = opts.clone();
    tokio::spawn(async move {
        if let Err(e) = walk(c, version, aux, dbs, &opts, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(RdbSource {
        info,
        size_hint: None,
        chunks: rx,
    })
}

/// Sends the buffered RDB bytes; false when the consumer went away.
async fn send(out: &mut Vec<u8>, tx: &mpsc::Sender<Result<Bytes, SourceError>>) -> bool {
    let chunk = Bytes::from(std::mem::replace(out, Vec::with_capacity(FLUSH * 2)));
    tx.send(Ok(chunk)).await.is_ok()
}

fn bad_payload(what: &str, e: DumpError) -> SourceError {
    SourceError::ScanRefused(format!("{what}: {e}"))
}

/// A `SCAN` reply: the next cursor and the keys.
fn scan_reply(reply: Frame) -> Result<(Vec<u8>, Vec<Frame>), SourceError> {
    match expect_ok("SCAN", reply)? {
        Frame::Array(mut parts) if parts.len() == 2 => {
            let keys = parts.pop();
            let next = parts.pop();
            match (next, keys) {
                (Some(Frame::Bulk(n)), Some(Frame::Array(k))) => Ok((n, k)),
                (n, k) => Err(HandshakeError::Protocol {
                    command: "SCAN".into(),
                    reply: format!("{n:?} {k:?}"),
                }
                .into()),
            }
        }
        other => Err(HandshakeError::Protocol {
            command: "SCAN".into(),
            reply: format!("{other:?}"),
        }
        .into()),
    }
}

async fn walk(
    mut c: Client,
    version: u32,
    aux: Vec<(String, String)>,
    dbs: Vec<(u64, u64, u64)>,
    opts: &ScanOptions,
    tx: &mpsc::Sender<Result<Bytes, SourceError>>,
) -> Result<(), SourceError> {
    let mut out = Vec::with_capacity(FLUSH * 2);
    let mut w = RdbWriter::new(version, &mut out);
    for (k, v) in &aux {
        w.aux(&mut out, k, v);
    }
    // Functions first, as Redis writes them.
    match c.call(&[b"FUNCTION", b"DUMP"]).await? {
        Frame::Bulk(p) => {
            let d = Dump::parse(&p).map_err(|e| bad_payload("FUNCTION DUMP", e))?;
            w.functions(&mut out, &d)
                .map_err(|e| bad_payload("FUNCTION DUMP", e))?;
        }
        Frame::Null => {}
        Frame::Error(msg) if msg.to_ascii_uppercase().contains("UNKNOWN") => {
            // Before Redis 7 there are no functions to copy.
        }
        Frame::Error(msg) => return Err(refused("FUNCTION DUMP", &msg)),
        other => {
            return Err(HandshakeError::Protocol {
                command: "FUNCTION DUMP".into(),
                reply: format!("{other:?}"),
            }
            .into());
        }
    }
    let start = Instant::now();
    let mut done: u64 = 0;
    let mut vanished: u64 = 0;
    let mut repeated: u64 = 0;
    let hashers = (RandomState::new(), RandomState::new());
    for (db, keys, expires) in dbs {
        expect_ok(
            "SELECT",
            c.call(&[b"SELECT", db.to_string().as_bytes()]).await?,
        )?;
        w.select_db(&mut out, db, keys, expires);
        let mut seen = DigestSet::default();
        // Growing by doubling holds the old and the new table at once (870
        // MiB at 21 million keys); a reservation that fails just grows.
        let _ = seen.try_reserve(usize::try_from(keys.min(RESERVE_KEYS)).unwrap_or(0));
        let count = opts.count.max(1).to_string();
        let scan =
            |c: &mut Client, cursor: &[u8]| c.queue(&[b"SCAN", cursor, b"COUNT", count.as_bytes()]);
        scan(&mut c, b"0");
        c.flush().await?;
        let (mut next, mut found) = scan_reply(c.read("SCAN").await?)?;
        loop {
            let batch: Vec<Vec<u8>> = std::mem::take(&mut found)
                .into_iter()
                .filter_map(|f| match f {
                    Frame::Bulk(k) => Some(k),
                    _ => None,
                })
                .filter(|k| {
                    let h = (u128::from(hashers.0.hash_one(k)) << 64)
                        | u128::from(hashers.1.hash_one(k));
                    let new = seen.insert(h);
                    repeated += u64::from(!new);
                    new
                })
                .collect();
            for k in &batch {
                c.queue(&[b"DUMP", k]);
                c.queue(&[b"PTTL", k]);
            }
            // The next SCAN rides in the same write: one round trip per batch.
            let more = next != b"0";
            if more {
                scan(&mut c, &next);
            }
            c.flush().await?;
            for k in &batch {
                let dump = c.read("DUMP").await?;
                let ttl = c.read("PTTL").await?;
                let now = now_ms();
                let payload = match expect_ok("DUMP", dump)? {
                    Frame::Bulk(p) => p,
                    // Deleted since SCAN saw it.
                    _ => {
                        vanished += 1;
                        continue;
                    }
                };
                let expire_at = match expect_ok("PTTL", ttl)? {
                    Frame::Integer(-2) => {
                        vanished += 1;
                        continue;
                    }
                    Frame::Integer(ms) if ms >= 0 => Some(now + ms),
                    _ => None,
                };
                let key_name = || String::from_utf8_lossy(k).into_owned();
                let d = Dump::parse(&payload).map_err(|e| {
                    bad_payload(&format!("DUMP of key {:?} in db {db}", key_name()), e)
                })?;
                w.key(&mut out, k, &d, expire_at).map_err(|e| {
                    bad_payload(&format!("DUMP of key {:?} in db {db}", key_name()), e)
                })?;
                done += 1;
                if out.len() >= FLUSH && !send(&mut out, tx).await {
                    return Ok(());
                }
            }
            if opts.rate > 0 {
                let due = Duration::from_secs_f64(done as f64 / opts.rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if !more {
                break;
            }
            (next, found) = scan_reply(c.read("SCAN").await?)?;
        }
    }
    let bytes = w.finish(&mut out);
    if !send(&mut out, tx).await {
        return Ok(());
    }
    tracing::info!(
        keys = done,
        vanished,
        repeated,
        rdb_bytes = bytes,
        secs = start.elapsed().as_secs_f64(),
        "scan mode: walk complete"
    );
    c.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdb_versions_by_server_version() {
        assert_eq!(rdb_version_for("7.0.15"), 10);
        assert_eq!(rdb_version_for("7.2.4"), 11);
        assert_eq!(rdb_version_for("7.4.1"), 12);
        assert_eq!(rdb_version_for("8.2.3"), 12);
        assert_eq!(rdb_version_for("6.2.14"), 9);
        assert_eq!(rdb_version_for("3.2.6"), 7);
        assert_eq!(rdb_version_for(""), 6);
        assert_eq!(valkey_rdb_version_for("9.1.2"), Some(80));
        assert_eq!(valkey_rdb_version_for("8.1.8"), None);
    }

    #[test]
    fn keyspace_lines_parse() {
        let info: BTreeMap<String, String> = [
            ("db0", "keys=10,expires=2,avg_ttl=0"),
            ("db15", "keys=1,expires=0,avg_ttl=0,subexpiry=0"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(keyspace(&info), [(0, 10, 2), (15, 1, 0)]);
    }

    #[test]
    fn module_lines_parse() {
        let info = Frame::Bulk(
            b"# Modules\r\nmodule:name=search,ver=21005,api=1,filters=0\r\n\
              module:name=vectorset,ver=1,api=1\r\nmodule:name=ReJSON,ver=20609\r\n"
                .to_vec(),
        );
        assert_eq!(module_names(&info), ["search", "ReJSON"]);
        assert!(module_names(&Frame::Bulk(b"# Modules\r\n".to_vec())).is_empty());
        assert!(module_names(&Frame::Error("ERR unknown section".into())).is_empty());
    }
}
