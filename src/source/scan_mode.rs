//! Scan mode, for servers that refuse SYNC/PSYNC: walk every database with
//! `SCAN`, fetch each key with `DUMP` and `PTTL` (pipelined per batch, with
//! the next `SCAN` in the same write), and
//! write a real RDB file from the payloads (`replvault_protocol::dump`),
//! streamed into the same [`RdbSource`] channel as the replication path.
//!
//! Not a point-in-time snapshot: keys are read at different moments. Keys
//! that vanish during the walk are skipped; keys `SCAN` reports twice (it may,
//! while the server resizes a table) are written once.
//!
//! Dropping repeats needs to know which keys were written, and a Redis
//! refuses an RDB that holds a key twice, so the check must be exact: a
//! [`SeenSet`] of 128-bit key digests, in at most
//! [`ScanOptions::memory`] bytes. A database with more keys than that
//! holds is walked in several passes ([`Pass`]), each a whole SCAN walk
//! that writes only the keys whose digest falls in its share of the hash
//! range, so each pass's set holds only its own keys. A key present for a
//! whole pass is returned by it at least once (SCAN's guarantee), and
//! belongs to exactly one pass, so it is written exactly once.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
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

/// Bytes of a [`SeenSet`] slot: one 128-bit digest.
const SLOT_BYTES: u64 = 16;
/// The smallest `--scan-memory`: 4,096 slots.
pub const MIN_MEMORY: u64 = 64 << 10;
/// The fewest slots a [`SeenSet`] starts with.
const MIN_SLOTS: usize = 1024;

/// Whether a digest was new to a [`SeenSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// Not seen before; now recorded.
    New,
    /// Seen before.
    Repeat,
    /// Not seen before, and the table is as full as it may be: grow it (or
    /// give up), then insert again.
    Full,
}

/// 128-bit digests of the keys written so far (in one pass of one
/// database): one table of 16-byte slots, open addressing with linear
/// probing, filled at most 3/4. Its memory is `slots × 16` bytes, fixed
/// until [`SeenSet::grown`] replaces it. The digest is the output of keyed
/// hashes, so its low 64 bits place it directly.
struct SeenSet {
    /// 0 marks an empty slot; a digest of 0 is stored as 1.
    slots: Vec<u128>,
    len: usize,
}

impl SeenSet {
    fn with_slots(slots: usize) -> Self {
        SeenSet {
            // Zeroed memory from the allocator: pages are touched only as
            // digests land in them.
            slots: vec![0; slots.max(MIN_SLOTS)],
            len: 0,
        }
    }

    /// Bytes the table takes.
    fn bytes(&self) -> u64 {
        self.slots.len() as u64 * SLOT_BYTES
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Digests the table takes before it is [`Seen::Full`].
    fn capacity(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    fn insert(&mut self, digest: u128) -> Seen {
        let d = digest.max(1);
        let n = self.slots.len();
        // `(low 64 bits × n) >> 64`: uniform over any table size.
        let mut i = ((u128::from(d as u64) * n as u128) >> 64) as usize;
        loop {
            match self.slots[i] {
                0 if self.len >= self.capacity() => return Seen::Full,
                0 => {
                    self.slots[i] = d;
                    self.len += 1;
                    return Seen::New;
                }
                x if x == d => return Seen::Repeat,
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    /// The same digests in a table of `slots` slots (more than now).
    fn grown(&self, slots: usize) -> SeenSet {
        let mut new = SeenSet::with_slots(slots);
        for &d in self.slots.iter().filter(|&&d| d != 0) {
            new.insert(d);
        }
        new
    }
}

/// One SCAN walk of a database: it writes the keys whose digest's high 64
/// bits are in `lo..hi` (`hi` up to 2^64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pass {
    lo: u128,
    hi: u128,
    /// Slots its [`SeenSet`] starts with.
    slots: usize,
}

/// The whole hash range, where passes end.
const RANGE_END: u128 = 1 << 64;

impl Pass {
    /// Keys a table of `budget_slots` is planned to take in one pass: 3/4
    /// full at most, less a fifth kept for keys added during the pass.
    fn planned_keys(budget_slots: u64) -> u64 {
        budget_slots / 5 * 3
    }

    /// The pass that starts at `lo` of a database of `keys` keys (its
    /// current count), with `budget_slots` slots of memory: as much of
    /// the rest of the range as `planned_keys` of them take, all of it
    /// when they fit. Its table starts at 5/3 of the keys it expects
    /// when that leaves room to double, and takes the whole budget when
    /// not.
    fn plan(lo: u128, keys: u64, budget_slots: u64) -> Pass {
        let planned = Self::planned_keys(budget_slots).max(1);
        let rest = RANGE_END - lo;
        let expected = (u128::from(keys) * rest / RANGE_END) as u64;
        let (hi, expected) = if expected <= planned {
            (RANGE_END, expected)
        } else {
            // The share of the range `planned` keys take, at least one
            // value, so every pass moves on.
            let width = (u128::from(planned) * RANGE_END / u128::from(keys.max(1))).max(1);
            ((lo + width).min(RANGE_END), planned)
        };
        let want = expected.saturating_mul(5) / 3;
        let slots = if want <= budget_slots / 3 {
            want
        } else {
            budget_slots
        };
        Pass {
            lo,
            hi,
            slots: usize::try_from(slots).unwrap_or(usize::MAX),
        }
    }

    fn holds(&self, digest: u128) -> bool {
        (self.lo..self.hi).contains(&(digest >> 64))
    }
}

/// Records `digest` in `seen`, growing it within `budget_slots` when full:
/// the old and the new table together never take more. `None` when the
/// table cannot grow.
fn record(seen: &mut SeenSet, digest: u128, budget_slots: u64) -> Option<bool> {
    loop {
        match seen.insert(digest) {
            Seen::New => return Some(true),
            Seen::Repeat => return Some(false),
            Seen::Full => {
                let now = seen.slots.len() as u64;
                let next = (2 * now).min(budget_slots.saturating_sub(now));
                if next <= now {
                    return None;
                }
                *seen = seen.grown(usize::try_from(next).ok()?);
            }
        }
    }
}

/// RDB bytes per chunk sent to the vault writer.
const FLUSH: usize = 256 * 1024;
/// Chunks buffered between the walk and the vault writer.
const DEPTH: usize = 16;

/// Options for scan mode.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Keys per `SCAN` call (and per pipelined batch).
    pub count: u32,
    /// At most this many keys per second (0 = unlimited), counting every
    /// key SCAN returns.
    pub rate: u64,
    /// Bytes for the digests of the keys already written: a database
    /// whose keys need more is walked in several passes.
    pub memory: u64,
    /// Fail when the server answers nothing for this long.
    pub idle_timeout: Duration,
    /// The walk is one shard of a `--cluster` backup (no warning that it
    /// covers only this node's keys).
    pub cluster_shard: bool,
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

/// Keys of database `db` now, from `INFO keyspace` (`None` when the
/// server lists it no more).
async fn db_keys(c: &mut Client, db: u64) -> Result<Option<u64>, SourceError> {
    let info = parse_info(&expect_ok("INFO", c.call(&[b"INFO", b"keyspace"]).await?)?);
    Ok(keyspace(&info)
        .into_iter()
        .find(|(d, _, _)| *d == db)
        .map(|(_, keys, _)| keys))
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
        if !opts.cluster_shard {
            tracing::warn!(
                "cluster mode: scan mode backs up only the keys of this node; back up every master, or the whole cluster with --cluster"
            );
        }
        // A cluster replica answers DUMP and PTTL with MOVED unless the
        // connection is READONLY (SCAN alone would walk it fine).
        let replication = parse_info(&expect_ok(
            "INFO",
            c.call(&[b"INFO", b"replication"]).await?,
        )?);
        if replication.get("role").map(String::as_str) == Some("slave") {
            match c.call(&[b"READONLY"]).await? {
                Frame::Error(msg) if msg.to_ascii_uppercase().starts_with("NOPERM") => {
                    return Err(SourceError::ScanRefused(format!(
                        "the cluster replica denied `READONLY` ({msg}): scan mode on a cluster replica also needs `+readonly`"
                    )));
                }
                f => {
                    expect_ok("READONLY", f)?;
                }
            }
        }
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
    // Keys SCAN returned, in every pass: what --scan-rate paces.
    let mut returned: u64 = 0;
    let mut passes: u64 = 0;
    let budget_slots = (opts.memory / SLOT_BYTES).max(MIN_SLOTS as u64);
    let hashers = (RandomState::new(), RandomState::new());
    let count = opts.count.max(1).to_string();
    let scan =
        |c: &mut Client, cursor: &[u8]| c.queue(&[b"SCAN", cursor, b"COUNT", count.as_bytes()]);
    for (db, keys, expires) in dbs {
        expect_ok(
            "SELECT",
            c.call(&[b"SELECT", db.to_string().as_bytes()]).await?,
        )?;
        w.select_db(&mut out, db, keys, expires);
        let mut pass = Pass::plan(0, keys, budget_slots);
        if pass.hi < RANGE_END {
            let planned = Pass::planned_keys(budget_slots).max(1);
            tracing::info!(
                keys,
                scan_memory = opts.memory,
                passes = keys.div_ceil(planned),
                "scan mode: db {db} has more keys than --scan-memory holds the digests of in one \
                 pass: walking it in passes, each a SCAN walk that writes its share of the keys"
            );
        }
        let mut pass_no = 0u64;
        loop {
            pass_no += 1;
            passes += 1;
            if pass.lo > 0 || pass.hi < RANGE_END {
                tracing::info!(
                    from = %format!("{:.1}%", pass.lo as f64 / RANGE_END as f64 * 100.0),
                    to = %format!("{:.1}%", pass.hi as f64 / RANGE_END as f64 * 100.0),
                    "scan mode: pass {pass_no} over db {db}"
                );
            }
            let mut seen = SeenSet::with_slots(pass.slots);
            scan(&mut c, b"0");
            c.flush().await?;
            let (mut next, mut found) = scan_reply(c.read("SCAN").await?)?;
            loop {
                let mut batch: Vec<Vec<u8>> = Vec::with_capacity(found.len());
                for f in std::mem::take(&mut found) {
                    let Frame::Bulk(k) = f else { continue };
                    returned += 1;
                    let digest = (u128::from(hashers.0.hash_one(&k)) << 64)
                        | u128::from(hashers.1.hash_one(&k));
                    if !pass.holds(digest) {
                        continue;
                    }
                    match record(&mut seen, digest, budget_slots) {
                        Some(true) => batch.push(k),
                        Some(false) => repeated += 1,
                        None => {
                            return Err(SourceError::ScanMemory {
                                db,
                                keys: seen.len() as u64,
                                memory: opts.memory,
                            });
                        }
                    }
                }
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
                    let due = Duration::from_secs_f64(returned as f64 / opts.rate as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                if !more {
                    break;
                }
                (next, found) = scan_reply(c.read("SCAN").await?)?;
            }
            tracing::debug!(
                db,
                pass = pass_no,
                keys = seen.len(),
                table_bytes = seen.bytes(),
                "scan mode: pass done"
            );
            if pass.hi >= RANGE_END {
                break;
            }
            // Plan the next pass from the count now: the database may
            // have grown or shrunk since the walk began.
            let now = db_keys(&mut c, db).await?.unwrap_or(0);
            pass = Pass::plan(pass.hi, now, budget_slots);
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
        passes,
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

    /// Distinct pseudo-random digests (splitmix64 pairs).
    fn digests(n: usize, seed: u64) -> Vec<u128> {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..n)
            .map(|_| (u128::from(next()) << 64) | u128::from(next()))
            .collect()
    }

    #[test]
    fn the_seen_set_is_exact_and_says_when_it_is_full() {
        let mut s = SeenSet::with_slots(1024);
        assert_eq!(s.bytes(), 16 * 1024);
        assert_eq!(s.capacity(), 768);
        let ds = digests(769, 1);
        for &d in &ds[..768] {
            assert_eq!(s.insert(d), Seen::New);
        }
        for &d in &ds[..768] {
            assert_eq!(s.insert(d), Seen::Repeat);
        }
        // Full: a new digest is refused, a known one still recognised.
        assert_eq!(s.insert(ds[768]), Seen::Full);
        assert_eq!(s.insert(ds[5]), Seen::Repeat);
        assert_eq!(s.len(), 768);
        // The empty-slot marker is a digest like any other.
        let mut s = SeenSet::with_slots(1024);
        assert_eq!(s.insert(0), Seen::New);
        assert_eq!(s.insert(0), Seen::Repeat);
        // Growing keeps every digest.
        let mut s = SeenSet::with_slots(1024);
        for &d in &ds[..700] {
            s.insert(d);
        }
        let g = s.grown(4096);
        assert_eq!((g.len(), g.bytes()), (700, 4096 * 16));
        let mut g = g;
        assert!(ds[..700].iter().all(|&d| g.insert(d) == Seen::Repeat));
    }

    #[test]
    fn the_seen_set_grows_only_while_old_and_new_fit_the_budget() {
        // 4,096 slots of budget: 1,024 grows to 2,048 (3,072 held while
        // both exist), and no further (2,048 + 4,096 > 4,096).
        let budget = 4096;
        let mut s = SeenSet::with_slots(1024);
        let ds = digests(2000, 2);
        let mut written = 0;
        for &d in &ds {
            match record(&mut s, d, budget) {
                Some(true) => written += 1,
                Some(false) => panic!("a new digest taken for a repeat"),
                None => break,
            }
            assert!(s.bytes() <= budget * SLOT_BYTES);
        }
        assert_eq!(written, 2048 / 4 * 3);
        assert_eq!(s.bytes(), 2048 * SLOT_BYTES);
        assert_eq!(record(&mut s, ds[0], budget), Some(false));
    }

    #[test]
    fn passes_cover_the_hash_range_once_within_the_budget() {
        let budget = 4096u64;
        let planned = Pass::planned_keys(budget);
        assert_eq!(planned, 2457);
        // Fits: one pass over the whole range, its table sized to it.
        let p = Pass::plan(0, 500, budget);
        assert_eq!((p.lo, p.hi, p.slots), (0, RANGE_END, 833));
        let p = Pass::plan(0, 2000, budget);
        assert_eq!((p.hi, p.slots), (RANGE_END, 4096));
        assert_eq!(Pass::plan(0, 0, budget).hi, RANGE_END);
        // Ten times too many: about ten passes, back to back, none
        // expecting more keys than planned; every digest in exactly one.
        let keys = 10 * planned;
        let mut passes = vec![Pass::plan(0, keys, budget)];
        while passes.last().unwrap().hi < RANGE_END {
            let last = passes.last().unwrap();
            assert!(last.slots as u64 <= budget);
            passes.push(Pass::plan(last.hi, keys, budget));
        }
        assert!((10..=11).contains(&passes.len()), "{}", passes.len());
        assert_eq!(passes[0].lo, 0);
        for w in passes.windows(2) {
            assert_eq!(w[0].hi, w[1].lo);
        }
        let ds = digests(keys as usize, 3);
        let mut most = 0;
        for p in &passes {
            let n = ds.iter().filter(|&&d| p.holds(d)).count();
            most = most.max(n);
            // What a pass expects fits its table with room to spare.
            assert!(n < p.slots / 4 * 3, "{n} keys in {p:?}");
        }
        assert!(
            ds.iter()
                .all(|&d| passes.iter().filter(|p| p.holds(d)).count() == 1)
        );
        assert!(most <= planned as usize * 11 / 10, "{most}");
        // The extremes of the range belong to the first and last pass.
        assert!(passes[0].holds(0));
        assert!(passes.last().unwrap().holds(u128::MAX));
    }

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
