//! A cluster backup: every shard's snapshot at once, each from a healthy
//! replica, into one backup that commits only when all shards succeeded
//! and their slots cover all 16,384.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use replvault_protocol::cluster::SlotSet;
use replvault_protocol::replica::HandshakeError;
use replvault_protocol::resp::Frame;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::topology::{self, AddressMap, Node, Role, Shard};
use crate::backup::{BackupError, BackupWriter, WriteOptions};
use crate::crypto::MasterKey;
use crate::source::client::Client;
use crate::source::replica;
use crate::source::{
    Mode, NodeRole, RdbSource, RedisTarget, SourceError, SourceOptions, connect, scan_mode,
};
use crate::vault::manifest::{self, ClusterInfo, NodeInfo, RdbInfo, ShardInfo, StoredInfo};
use crate::vault::{Manifest, Vault, VaultError, manifest_key, new_id};

/// How a cluster is backed up.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Replica (the default) or primary.
    pub from: NodeRole,
    /// Shards taken at once; `None` for all.
    pub concurrency: Option<usize>,
    /// Rewrites of announced addresses.
    pub address_map: AddressMap,
}

/// Why a cluster backup failed; nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The cluster could not be asked.
    #[error("cluster discovery: {0}")]
    Discovery(#[from] SourceError),
    /// The cluster's answer does not allow a whole backup.
    #[error("cluster: {0}")]
    Topology(String),
    /// One shard's backup failed.
    #[error(
        "shard {index} (slots {slots}, node {node}) failed: {source}{}",
        after_refusal(refused)
    )]
    Shard {
        /// Index in slot order.
        index: usize,
        /// Its slots.
        slots: String,
        /// The node it was read from.
        node: String,
        /// Why.
        #[source]
        source: Box<BackupError>,
        /// In `--mode auto`, why replication was refused before scan
        /// mode failed too.
        refused: Option<String>,
    },
    /// Committing the manifest failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Stopped by a signal.
    #[error("interrupted: the partial cluster backup was removed")]
    Interrupted,
}

fn after_refusal(refused: &Option<String>) -> String {
    refused
        .as_ref()
        .map(|r| format!(" (scan mode was the fallback: replication was refused: {r})"))
        .unwrap_or_default()
}

/// The seed node's target, with the URL's credentials.
fn seed(source: &SourceOptions) -> Result<RedisTarget, SourceError> {
    let mut t = RedisTarget::parse(&source.url)?;
    if t.password.is_none() {
        t.password = source.password.clone();
    }
    Ok(t)
}

fn node_target(seed: &RedisTarget, map: &AddressMap, n: &Node) -> RedisTarget {
    let (host, port) = map.apply(&n.host, n.port);
    RedisTarget {
        host,
        port,
        ..seed.clone()
    }
}

/// Asks the seed node for the shards.
pub async fn discover(source: &SourceOptions) -> Result<Vec<Shard>, ClusterError> {
    let t = seed(source)?;
    let conn = connect(&t, &source.connect).await?;
    let mut c = Client::new(conn, source.idle_timeout);
    if let Some(pw) = &t.password {
        let user = t.username.clone();
        let reply = match &user {
            Some(u) => c.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()]).await?,
            None => c.call(&[b"AUTH", pw.as_bytes()]).await?,
        };
        if let Frame::Error(e) = reply {
            return Err(ClusterError::Topology(format!("AUTH refused: {e}")));
        }
    }
    let shards = match c.call(&[b"CLUSTER", b"SHARDS"]).await? {
        Frame::Error(e) if e.to_ascii_uppercase().contains("CLUSTER SUPPORT DISABLED") => {
            return Err(ClusterError::Topology(format!(
                "{} is not in cluster mode: back it up without --cluster",
                t.redacted()
            )));
        }
        // Before 7.0: CLUSTER NODES.
        Frame::Error(_) => match c.call(&[b"CLUSTER", b"NODES"]).await? {
            Frame::Bulk(b) => topology::parse_nodes(&String::from_utf8_lossy(&b)),
            Frame::Error(e) => Err(format!("CLUSTER NODES: {e}")),
            other => Err(format!("CLUSTER NODES answered {other:?}")),
        },
        reply => topology::parse_shards(&reply),
    }
    .map_err(ClusterError::Topology)?;
    c.close().await;
    let mut shards: Vec<Shard> = shards.into_iter().filter(|s| !s.slots.is_empty()).collect();
    // Over TLS, every node is reached on the TLS port it announces.
    if t.tls {
        for n in shards.iter_mut().flat_map(|s| s.nodes.iter_mut()) {
            if let Some(p) = n.tls_port {
                n.port = p;
            }
        }
    }
    Ok(shards)
}

/// Where each shard's primary is, as the source to archive its stream
/// from, with the shard's first slot (which names the shard to
/// [`shard_primary`] after a failover).
pub async fn shard_primaries(
    source: &SourceOptions,
    opts: &ClusterOptions,
) -> Result<Vec<(u16, SourceOptions)>, ClusterError> {
    let mut shards = discover(source).await?;
    shards.sort_by_key(|s| s.slots.first().map_or(0, |r| r.0));
    let mut out = Vec::with_capacity(shards.len());
    for (i, s) in shards.iter().enumerate() {
        let first = s.slots.first().map_or(0, |r| r.0);
        out.push((first, primary_source(source, opts, i, s).await?));
    }
    Ok(out)
}

/// The primary of the shard that holds `slot` now, asking each of
/// `seeds` in turn until one answers (after a failover the old primary
/// may be the one that is down).
pub async fn shard_primary(
    source: &SourceOptions,
    seeds: &[SourceOptions],
    opts: &ClusterOptions,
    slot: u16,
) -> Result<SourceOptions, ClusterError> {
    let mut last = ClusterError::Topology("no node to ask".into());
    for seed in seeds {
        match discover(seed).await {
            Ok(shards) => {
                let Some((i, s)) = shards
                    .iter()
                    .enumerate()
                    .find(|(_, s)| s.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
                else {
                    return Err(ClusterError::Topology(format!("no shard owns slot {slot}")));
                };
                return primary_source(source, opts, i, s).await;
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Shard `s`'s primary as a source (credentials and TLS from `source`),
/// checked to answer with the id the cluster announces (as for a backup:
/// a wrong --cluster-address-map must not archive another shard's stream
/// under this shard's slots). A primary that cannot be reached now is
/// the archiver's to retry.
async fn primary_source(
    source: &SourceOptions,
    opts: &ClusterOptions,
    i: usize,
    s: &Shard,
) -> Result<SourceOptions, ClusterError> {
    let p = s.primary().ok_or_else(|| {
        ClusterError::Topology(format!(
            "the shard with slots {} has no primary",
            topology::ranges_text(&s.slots)
        ))
    })?;
    let target = node_target(&seed(source)?, &opts.address_map, p);
    if let Some(found) = probe(&target, source).await {
        check_identity(i, s, p, &target, &found).map_err(ClusterError::Topology)?;
    }
    Ok(SourceOptions {
        url: target.url_with_secrets(),
        password: None,
        ..source.clone()
    })
}

/// What the node at an address says of itself.
struct Probe {
    /// Its node id (`CLUSTER MYID`), unless the command was refused.
    id: Option<String>,
    /// Its replication offset when it is a replica whose link to its
    /// primary is up.
    link_up_at: Option<i64>,
}

/// Asks the node at `t` who it is and, for a replica, how its link is;
/// `None` when it cannot be reached.
async fn probe(t: &RedisTarget, source: &SourceOptions) -> Option<Probe> {
    let conn = connect(t, &source.connect).await.ok()?;
    let mut c = Client::new(conn, source.connect.connect_timeout);
    if let Some(pw) = &t.password {
        let _ = match &t.username {
            Some(u) => c.call(&[b"AUTH", u.as_bytes(), pw.as_bytes()]).await.ok()?,
            None => c.call(&[b"AUTH", pw.as_bytes()]).await.ok()?,
        };
    }
    let id = match c.call(&[b"CLUSTER", b"MYID"]).await.ok()? {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Frame::Simple(s) => Some(s),
        _ => None,
    };
    let info = match c.call(&[b"INFO", b"replication"]).await.ok()? {
        Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        Frame::Error(e) => {
            tracing::warn!(node = %t.redacted(), error = %e, "INFO replication refused: replvault cannot tell whether this node's link to its primary is up, and does not back up from it (grant the backup user +info)");
            String::new()
        }
        _ => String::new(),
    };
    c.close().await;
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    let link_up_at = (field("master_link_status:").as_deref() == Some("up")).then(|| {
        field("slave_repl_offset:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    Some(Probe { id, link_up_at })
}

/// An error when the node that answers at `n`'s (mapped) address is
/// another node: a wrong `--cluster-address-map` would otherwise back up
/// another shard's data under this shard's slots.
fn check_identity(
    index: usize,
    shard: &Shard,
    n: &Node,
    target: &RedisTarget,
    probe: &Probe,
) -> Result<(), String> {
    match &probe.id {
        Some(id) if *id != n.id => Err(format!(
            "shard {index} (slots {}): {} answers as node {id}, but the cluster announces {}:{} as node {}: check --cluster-address-map",
            topology::ranges_text(&shard.slots),
            target.redacted(),
            n.host,
            n.port,
            n.id
        )),
        _ => Ok(()),
    }
}

/// The node to read a shard from.
async fn choose(
    index: usize,
    shard: &Shard,
    seed: &RedisTarget,
    source: &SourceOptions,
    opts: &ClusterOptions,
) -> Result<Node, String> {
    let primary = shard.primary().cloned();
    if opts.from == NodeRole::Replica {
        let mut best: Option<(i64, &Node)> = None;
        for n in shard
            .nodes
            .iter()
            .filter(|n| n.role == Role::Replica && n.healthy)
        {
            let target = node_target(seed, &opts.address_map, n);
            let Some(p) = probe(&target, source).await else {
                continue;
            };
            check_identity(index, shard, n, &target, &p)?;
            if let Some(off) = p.link_up_at
                && best.is_none_or(|(o, _)| off > o)
            {
                best = Some((off, n));
            }
        }
        if let Some((_, n)) = best {
            return Ok(n.clone());
        }
        if let Some(p) = &primary {
            tracing::warn!(slots = %topology::ranges_text(&shard.slots), primary = %format!("{}:{}", p.host, p.port), "no healthy replica in this shard: backing up from its primary (it will fork)");
        }
    }
    let primary = primary.ok_or_else(|| {
        format!(
            "the shard with slots {} has no primary",
            topology::ranges_text(&shard.slots)
        )
    })?;
    // An unreachable primary fails in the backup itself, naming the shard.
    let target = node_target(seed, &opts.address_map, &primary);
    if let Some(p) = probe(&target, source).await {
        check_identity(index, shard, &primary, &target, &p)?;
    }
    Ok(primary)
}

/// Takes one backup of every shard; `cancel` aborts it and removes what
/// was written. `progress` counts RDB bytes over all shards.
#[allow(clippy::too_many_arguments)]
pub async fn take_cluster_backup(
    source: &SourceOptions,
    opts: &ClusterOptions,
    compression_level: i32,
    vault: &Vault,
    key: Option<&MasterKey>,
    progress: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Result<Manifest, ClusterError> {
    let started = Utc::now();
    let clock = std::time::Instant::now();
    let mut shards = discover(source).await?;
    shards.sort_by_key(|s| s.slots.first().map_or(0, |r| r.0));
    let missing = topology::coverage(&shards);
    if !missing.is_empty() {
        return Err(ClusterError::Topology(format!(
            "no shard owns slots {}: the cluster is not whole (a failed shard, or slots never assigned); nothing was backed up",
            topology::ranges_text(&missing)
        )));
    }
    let seed = seed(source)?;
    let mut chosen = Vec::with_capacity(shards.len());
    for (i, s) in shards.iter().enumerate() {
        let n = choose(i, s, &seed, source, opts)
            .await
            .map_err(ClusterError::Topology)?;
        chosen.push(n);
    }
    let id = new_id(started)?;
    tracing::info!(id = %id, shards = shards.len(), "cluster backup started");
    let limit = Arc::new(Semaphore::new(
        opts.concurrency.unwrap_or(shards.len()).max(1),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (shard, node)) in shards.iter().zip(&chosen).enumerate() {
        let target = node_target(&seed, &opts.address_map, node);
        let (source, vault, key) = (source.clone(), vault.clone(), key.cloned());
        let (id, limit, progress, cancel) =
            (id.clone(), limit.clone(), progress.clone(), cancel.clone());
        let slots = shard.slots.clone();
        // The primary to fall back to when the chosen replica refuses.
        let fallback = shard
            .primary()
            .filter(|_| node.role == Role::Replica && opts.from == NodeRole::Replica)
            .map(|p| (p.clone(), node_target(&seed, &opts.address_map, p)));
        let node = node.clone();
        let shard = shard.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let (node, target, opened, refused) =
                open_shard(i, &shard, (node, target), fallback, &source, &cancel).await;
            let r = match opened {
                Ok(src) => {
                    backup_shard(
                        i,
                        src,
                        &source,
                        &vault,
                        key.as_ref(),
                        compression_level,
                        &id,
                        slot_set(&slots),
                        progress,
                        cancel,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            (i, slots, node, target.redacted(), r, refused)
        });
    }
    let mut results: Vec<Option<ShardInfo>> = vec![None; shards.len()];
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, slots, node, address, r, refused)) = joined else {
            failure.get_or_insert(ClusterError::Topology("a shard's task panicked".into()));
            cancel.cancel();
            continue;
        };
        match r {
            Ok(m) => {
                results[i] = Some(ShardInfo {
                    slots,
                    node: NodeInfo {
                        id: node.id.clone(),
                        address: format!("{}:{}", node.host, node.port),
                        role: match node.role {
                            Role::Primary => "primary".into(),
                            Role::Replica => "replica".into(),
                        },
                    },
                    source: m.source,
                    rdb: m.rdb,
                    summary: m.summary,
                    stored: m.stored,
                })
            }
            Err(e) => {
                // The first failure names the shard; the others stop.
                // Shards stop as interrupted only once `cancel` fired: the
                // first of them, before any failure, was stopped by a
                // signal (or the daemon's shutdown), not by another shard.
                if failure.is_none() {
                    failure = Some(match e {
                        BackupError::Interrupted => ClusterError::Interrupted,
                        e => ClusterError::Shard {
                            index: i,
                            slots: topology::ranges_text(&slots),
                            node: address,
                            source: Box::new(e),
                            refused,
                        },
                    });
                }
                cancel.cancel();
            }
        }
    }
    let cleanup = || async {
        for o in vault
            .store()
            .list(&format!("backups/{id}/"))
            .await
            .unwrap_or_default()
        {
            let _ = vault.store().delete(&o.key).await;
        }
    };
    if let Some(e) = failure {
        cleanup().await;
        return Err(e);
    }
    let shards_info: Vec<ShardInfo> = results.into_iter().flatten().collect();
    let m = cluster_manifest(
        &id,
        started,
        clock.elapsed().as_secs_f64(),
        shards_info,
        key,
        compression_level,
    );
    let json = serde_json::to_vec_pretty(&m).map_err(|e| VaultError::Pipeline(e.to_string()))?;
    if let Err(e) = vault.store().put(&manifest_key(&id), json.into()).await {
        cleanup().await;
        return Err(VaultError::from(e).into());
    }
    tracing::info!(id = %id, shards = m.shard_count(), keys = m.summary.total_keys(), "cluster backup complete");
    Ok(m)
}

/// Opens shard `i`'s snapshot: on the chosen node, then on the shard's
/// primary (`fallback`) when the chosen replica will not serve it; over
/// replication, and in `--mode auto` by SCAN + DUMP on the same nodes
/// when every one refused replication. Returns the node that serves it
/// (or the last one tried, with its error), and, when scan mode is the
/// fallback, why replication was refused (for the error, should the walk
/// fail too).
async fn open_shard(
    i: usize,
    shard: &Shard,
    chosen: (Node, RedisTarget),
    fallback: Option<(Node, RedisTarget)>,
    source: &SourceOptions,
    cancel: &CancellationToken,
) -> (
    Node,
    RedisTarget,
    Result<RdbSource, BackupError>,
    Option<String>,
) {
    let slots = topology::ranges_text(&shard.slots);
    let modes: &[Mode] = match source.mode {
        Mode::Auto => &[Mode::Sync, Mode::Scan],
        Mode::Sync => &[Mode::Sync],
        Mode::Scan => &[Mode::Scan],
    };
    // The fallback primary is asked who it is once, when first needed.
    let mut fallback = fallback.map(|f| (f, None::<bool>));
    let (mut node, mut target) = chosen.clone();
    let mut last: Option<BackupError> = None;
    let mut replication_refused: Option<String> = None;
    // Set once scan mode is `--mode auto`'s fallback: the refusal that led
    // there, for the error should the walk fail too.
    let mut refused = None;
    for &mode in modes {
        if mode == Mode::Scan && source.mode == Mode::Auto {
            let Some(why) = replication_refused.take() else {
                break;
            };
            tracing::warn!(shard = i, slots = %slots, "every node of this shard refused replication: falling back to scan mode (SCAN + DUMP; not a point-in-time snapshot)");
            refused = Some(why);
        }
        let mut candidates = vec![chosen.clone()];
        if let Some(((p, pt), usable)) = &mut fallback {
            if usable.is_none() {
                *usable = Some(
                    probe(pt, source)
                        .await
                        .is_some_and(|found| check_identity(i, shard, p, pt, &found).is_ok()),
                );
            }
            if *usable == Some(true) {
                candidates.push((p.clone(), pt.clone()));
            }
        }
        for (k, (n, t)) in candidates.into_iter().enumerate() {
            if let Some(e) = &last
                && k > 0
            {
                if mode == Mode::Scan {
                    tracing::warn!(shard = i, slots = %slots, replica = %target.redacted(), error = %e, "the replica refused scan mode: scanning this shard's primary");
                } else {
                    tracing::warn!(shard = i, slots = %slots, replica = %target.redacted(), error = %e, "the replica refused the snapshot: backing up this shard from its primary (it will fork)");
                }
            }
            (node, target) = (n, t);
            let opened = tokio::select! {
                o = open_node(&target, source, mode) => o,
                () = cancel.cancelled() => Err(BackupError::Interrupted),
            };
            match opened {
                Ok(src) => return (node, target, Ok(src), refused),
                Err(e) if refused_before_data(&e) => {
                    if mode == Mode::Sync && replication_was_refused(&e) {
                        replication_refused.get_or_insert_with(|| e.to_string());
                    }
                    last = Some(e);
                }
                Err(e) => return (node, target, Err(e), refused),
            }
        }
    }
    let e = last.unwrap_or(BackupError::Interrupted);
    (node, target, Err(e), refused)
}

/// Starts the snapshot of the node at `target`, over replication or by
/// scan mode.
async fn open_node(
    target: &RedisTarget,
    source: &SourceOptions,
    mode: Mode,
) -> Result<RdbSource, BackupError> {
    let conn = connect(target, &source.connect).await?;
    Ok(match mode {
        Mode::Scan => scan_mode::start(conn, target, &source.scan_options(true)).await?,
        Mode::Sync | Mode::Auto => replica::start(conn, target, &source.replica_options()).await?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn backup_shard(
    i: usize,
    mut src: RdbSource,
    source: &SourceOptions,
    vault: &Vault,
    key: Option<&MasterKey>,
    compression_level: i32,
    id: &str,
    slots: SlotSet,
    progress: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Result<Manifest, BackupError> {
    let mut writer = BackupWriter::start_part(
        vault,
        key,
        WriteOptions {
            slots: Some(slots),
            ..WriteOptions::new(compression_level, src.size_hint, source)
        },
        id.to_string(),
        format!("backups/{id}/shard-{i}"),
    )
    .await?;
    let pumped: Result<(), BackupError> = async {
        loop {
            let next = tokio::select! {
                n = src.chunks.recv() => n,
                () = cancel.cancelled() => return Err(BackupError::Interrupted),
            };
            match next {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(chunk)) => {
                    progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    writer.write(chunk).await?;
                }
            }
        }
    }
    .await;
    if let Err(e) = pumped {
        let _ = writer.abort().await;
        return Err(e);
    }
    Ok(writer.finish(src.info.clone()).await?)
}

/// The manifest of a cluster backup: per-shard entries, and totals where a
/// standalone backup has its one RDB.
fn cluster_manifest(
    id: &str,
    started: chrono::DateTime<Utc>,
    duration_secs: f64,
    shards: Vec<ShardInfo>,
    key: Option<&MasterKey>,
    level: i32,
) -> Manifest {
    let mut summary = shards
        .first()
        .map(|s| s.summary.clone())
        .unwrap_or_default();
    for s in shards.iter().skip(1) {
        for (db, d) in &s.summary.databases {
            let e = summary.databases.entry(*db).or_default();
            e.keys += d.keys;
            e.expires += d.expires;
        }
        for (t, n) in &s.summary.types {
            *summary.types.entry(t.clone()).or_default() += n;
        }
        summary.payload_len += s.summary.payload_len;
    }
    let first = shards.first().map(|s| s.source.clone()).unwrap_or_default();
    // "sync" or "scan" when every shard was taken the same way.
    let modes: std::collections::BTreeSet<&str> =
        shards.iter().map(|s| s.source.mode.as_str()).collect();
    let mode = if modes.len() == 1 {
        first.mode.clone()
    } else {
        modes.into_iter().collect::<Vec<_>>().join(" + ")
    };
    let point_in_time = shards.iter().all(|s| s.source.point_in_time);
    Manifest {
        format: manifest::CLUSTER_FORMAT,
        id: id.to_string(),
        started_at: started,
        finished_at: Utc::now(),
        duration_secs,
        source: crate::source::SourceInfo {
            address: format!("cluster of {} shards", shards.len()),
            mode,
            point_in_time,
            replid: None,
            offset: None,
            wait_secs: None,
            ..first
        },
        rdb: RdbInfo {
            bytes: shards.iter().map(|s| s.rdb.bytes).sum(),
            crc64: None,
        },
        summary,
        stored: StoredInfo {
            key: format!("backups/{id}/"),
            bytes: shards.iter().map(|s| s.stored.bytes).sum(),
            sha256: String::new(),
        },
        compression: manifest::CompressionInfo {
            algorithm: "zstd".into(),
            level,
        },
        encryption: manifest::EncryptionInfo {
            algorithm: if key.is_some() {
                "aes-256-gcm-stream"
            } else {
                "none"
            }
            .into(),
            key_id: key.map(MasterKey::key_id),
            segment_size: crate::crypto::aead_stream::SEGMENT as u32,
        },
        tool: format!("replvault {}", env!("CARGO_PKG_VERSION")),
        cluster: Some(ClusterInfo { shards }),
    }
}

/// A shard's slot ranges as the checker takes them (ranges from the
/// topology are valid; one that is not leaves its slots out, so a key in
/// them fails the check rather than passing unchecked).
fn slot_set(ranges: &[(u16, u16)]) -> SlotSet {
    let mut set = SlotSet::new();
    for &(a, b) in ranges {
        if let Ok(r) = SlotSet::from_ranges([a..=b]) {
            set.union_with(&r);
        }
    }
    set
}

/// Whether opening a shard's snapshot failed because the node would not
/// serve it (refused SYNC, refused a command scan mode needs first, or no
/// connection), which another node of the shard, or scan mode, may do
/// instead.
fn refused_before_data(e: &BackupError) -> bool {
    matches!(
        e,
        BackupError::Source(
            SourceError::Handshake(_)
                | SourceError::ScanRefused(_)
                | SourceError::Connect { .. }
                | SourceError::ConnectTimeout { .. }
        )
    )
}

/// Whether the node refused replication itself (as `--mode auto` falls
/// back to scan mode for), rather than being out of reach.
fn replication_was_refused(e: &BackupError) -> bool {
    matches!(
        e,
        BackupError::Source(SourceError::Handshake(
            HandshakeError::SyncRefused(_) | HandshakeError::NoPermission { .. }
        ))
    )
}
