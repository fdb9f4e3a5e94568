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

use crate::catalog::SourceInfo;
use crate::cli::{Mode, SourceArgs};

pub mod conn;
pub mod replica;
pub mod scan;
pub mod url;

pub use conn::{ConnectOptions, Connection, connect};
pub use url::RedisTarget;

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
pub async fn open(args: &SourceArgs) -> Result<RdbSource, SourceError> {
    let mut target = RedisTarget::parse(&args.redis)?;
    if target.password.is_none() {
        target.password = args.redis_password.clone();
    }
    let opts = ConnectOptions {
        connect_timeout: args.connect_timeout,
        tls_ca_file: args.tls_ca_file.clone(),
        tls_server_name: args.tls_server_name.clone(),
        tls_cert_file: args.tls_cert_file.clone(),
        tls_key_file: args.tls_key_file.clone(),
    };
    let scan_opts = scan::ScanOptions {
        count: args.scan_count,
        rate: args.scan_rate,
        idle_timeout: args.idle_timeout,
    };
    if args.mode == Mode::Scan {
        return scan::start(connect(&target, &opts).await?, &target, &scan_opts).await;
    }
    let conn = connect(&target, &opts).await?;
    let replica = replica::start(
        conn,
        &target,
        &replica::ReplicaOptions {
            idle_timeout: args.idle_timeout,
            force_sync: false,
        },
    )
    .await;
    match replica {
        Err(SourceError::Handshake(
            e @ (HandshakeError::SyncRefused(_) | HandshakeError::NoPermission { .. }),
        )) if args.mode == Mode::Auto => {
            tracing::warn!(
                reason = %e,
                "replication refused: falling back to scan mode (SCAN + DUMP; not a point-in-time snapshot)"
            );
            scan::start(connect(&target, &opts).await?, &target, &scan_opts).await
        }
        other => other,
    }
}
