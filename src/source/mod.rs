//! Where RDB bytes come from: the replication socket (TCP or TLS), SCAN +
//! DUMP for servers that refuse replication, or a local file.
//!
//! Every source ends as an [`RdbSource`]: what we know about the server,
//! and a channel of raw RDB chunks that the vault writer consumes.
// SKELETON: helper C implements `url`, `conn` (TCP/TLS + AUTH-free connect),
// `replica` and `open`; helper M implements `scan`.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::catalog::SourceInfo;

/// Errors while getting the RDB from the server. Messages say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Placeholder until implemented.
    #[error("{0}")]
    Other(String),
}

/// A running source of RDB bytes.
#[derive(Debug)]
pub struct RdbSource {
    /// What we know about the server and the snapshot; completed (e.g. the
    /// replid) by the time the first chunk arrives.
    pub info: SourceInfo,
    /// Expected RDB size, when the framing or the server says.
    pub size_hint: Option<u64>,
    /// Raw RDB bytes in order; an `Err` ends the stream; a closed channel
    /// without error means the whole payload was delivered.
    pub chunks: mpsc::Receiver<Result<Bytes, SourceError>>,
}
