//! Where RDB bytes come from: the replication socket (TCP or TLS), or, for
//! servers that refuse replication, a SCAN + DUMP walk written as an RDB.
//!
//! Every source ends as an [`RdbSource`]: what we know about the server,
//! and a channel of raw RDB chunks that the vault writer consumes.

use std::time::Duration;

use bytes::Bytes;
use replvault_protocol::payload::PayloadError;
use replvault_protocol::replica::HandshakeError;
use tokio::sync::mpsc;

pub(crate) mod client;
pub mod conn;
pub mod info;
pub mod replica;
pub mod scan_mode;
pub mod sentinel;
pub mod url;

pub use conn::{ConnectOptions, Connection, connect};
pub use info::SourceInfo;
pub use sentinel::{NodeRole, SentinelUrl};
pub use url::RedisTarget;

/// How the backup is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Replication, falling back to scan mode when the server refuses it.
    Auto,
    /// Replication only (PSYNC, then SYNC).
    Sync,
    /// Scan mode only (SCAN + DUMP).
    Scan,
}

/// Which server to back up, and how.
#[derive(Clone)]
pub struct SourceOptions {
    /// `redis://[user[:password]@]host[:port]` or `rediss://`.
    pub url: String,
    /// Password when the URL has none.
    pub password: Option<String>,
    /// Replication, scan mode, or replication falling back to scan mode.
    pub mode: Mode,
    /// TCP and TLS settings.
    pub connect: ConnectOptions,
    /// Fail when the server sends nothing, not even a keepalive, this long.
    pub idle_timeout: Duration,
    /// Scan mode: keys per `SCAN` call.
    pub scan_count: u32,
    /// Scan mode: at most this many keys per second (0 = unlimited).
    pub scan_rate: u64,
    /// With a `sentinel://` URL: back up from a replica or the primary.
    pub from: NodeRole,
    /// With a `sentinel://` URL: the sentinels' password.
    pub sentinel_password: Option<String>,
    /// Scan mode: bytes for the digests of keys already written (see
    /// [`scan_mode::ScanOptions::memory`]).
    pub scan_memory: u64,
    /// The longest string a snapshot of unknown length may declare.
    pub max_value_size: u64,
}

// By hand, so a `{:?}` never prints the password.
impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address = if SentinelUrl::is_sentinel(&self.url) {
            SentinelUrl::parse(&self.url)
                .map(|u| format!("{u:?}"))
                .unwrap_or_else(|_| "(invalid URL)".into())
        } else {
            RedisTarget::parse(&self.url)
                .map(|t| t.redacted())
                .unwrap_or_else(|_| "(invalid URL)".into())
        };
        f.debug_struct("SourceOptions")
            .field("address", &address)
            .field("mode", &self.mode)
            .field("connect", &self.connect)
            .field("idle_timeout", &self.idle_timeout)
            .field("scan_count", &self.scan_count)
            .field("scan_rate", &self.scan_rate)
            .field("from", &self.from)
            .field("scan_memory", &self.scan_memory)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl SourceOptions {
    /// The replication source's options.
    pub fn replica_options(&self) -> replica::ReplicaOptions {
        replica::ReplicaOptions {
            idle_timeout: self.idle_timeout,
            force_sync: false,
        }
    }

    /// Scan mode's options; `cluster_shard` for one shard of a `--cluster`
    /// backup.
    pub fn scan_options(&self, cluster_shard: bool) -> scan_mode::ScanOptions {
        scan_mode::ScanOptions {
            count: self.scan_count,
            rate: self.scan_rate,
            memory: self.scan_memory,
            idle_timeout: self.idle_timeout,
            cluster_shard,
        }
    }
}

/// Errors while getting the RDB from the server. Messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The `--redis` URL is malformed.
    #[error("invalid --redis URL: {0}")]
    InvalidUrl(String),
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Redacted address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TCP/TLS connect took too long.
    #[error(
        "connecting to {addr} timed out after {after:?}: check the address and firewall, or raise --connect-timeout"
    )]
    ConnectTimeout {
        /// Redacted address.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the replication handshake.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// Nothing arrived for too long.
    #[error(
        "no data from the server for {after:?} (after {bytes} payload bytes): is it forking a large dataset? raise --idle-timeout"
    )]
    IdleTimeout {
        /// The idle timeout.
        after: Duration,
        /// Payload bytes received before.
        bytes: u64,
    },
    /// The connection failed.
    #[error("connection to the server failed after {bytes} payload bytes: {source}")]
    Io {
        /// Payload bytes received before.
        bytes: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The payload ended early.
    #[error("the RDB transfer was cut: {0}")]
    Payload(PayloadError),
    /// Scan mode could not read the keyspace.
    #[error("scan mode: {0}")]
    ScanRefused(String),
    /// Sentinel discovery failed.
    #[error("sentinel: {0}")]
    Sentinel(String),
    /// The consumer stopped taking the payload (the backup was aborted).
    #[error("the backup stopped taking the snapshot")]
    Aborted,
    /// Scan mode's seen-key digests outgrew their memory.
    #[error(
        "scan mode: db {db} grew during the walk past what --scan-memory ({memory} bytes) holds in one pass ({keys} keys): raise --scan-memory"
    )]
    ScanMemory {
        /// The database.
        db: u64,
        /// Keys of the pass when the table was full.
        keys: u64,
        /// `--scan-memory`.
        memory: u64,
    },
}

/// A running source of RDB bytes.
#[derive(Debug)]
pub struct RdbSource {
    /// What we know about the server and the snapshot.
    pub info: SourceInfo,
    /// Expected RDB size, when the framing or the server says.
    pub size_hint: Option<u64>,
    /// Raw RDB bytes in order; an `Err` ends the stream; a closed channel
    /// without error means the whole payload was delivered.
    pub chunks: mpsc::Receiver<Result<Bytes, SourceError>>,
}

/// Connects to the server `args` names and starts the transfer.
pub async fn open(args: &SourceOptions) -> Result<RdbSource, SourceError> {
    let target = resolve(args, args.from).await?;
    let opts = &args.connect;
    let scan_opts = args.scan_options(false);
    if args.mode == Mode::Scan {
        return scan_mode::start(connect(&target, opts).await?, &target, &scan_opts).await;
    }
    let conn = connect(&target, opts).await?;
    let replica = replica::start(conn, &target, &args.replica_options()).await;
    match replica {
        Err(SourceError::Handshake(
            e @ (HandshakeError::SyncRefused(_) | HandshakeError::NoPermission { .. }),
        )) if args.mode == Mode::Auto => {
            tracing::warn!(
                reason = %e,
                "replication refused: falling back to scan mode (SCAN + DUMP; not a point-in-time snapshot)"
            );
            scan_mode::start(connect(&target, opts).await?, &target, &scan_opts).await
        }
        other => other,
    }
}

/// Where to connect: the `--redis` URL's server, or the node a sentinel
/// names for `role`. The password of `--redis-password` applies when the
/// URL has none.
pub async fn resolve(args: &SourceOptions, role: NodeRole) -> Result<RedisTarget, SourceError> {
    let mut target = if SentinelUrl::is_sentinel(&args.url) {
        let url = SentinelUrl::parse(&args.url)?;
        let t = sentinel::discover(&url, args, role).await?;
        tracing::info!(master = %url.master, node = %t.redacted(), ?role, "sentinel discovery");
        t
    } else {
        RedisTarget::parse(&args.url)?
    };
    if target.password.is_none() {
        target.password = args.password.clone();
    }
    Ok(target)
}
