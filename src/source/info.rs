//! What a backup records about its source: the manifest's `source` object.

use serde::{Deserialize, Serialize};

/// Where a backup came from (never contains secrets).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `redis://host:port` without user or password.
    pub address: String,
    /// `sync` (PSYNC), `sync (SYNC fallback)`, or `scan`.
    pub mode: String,
    /// `redis` or `valkey`, if known.
    pub server: Option<String>,
    /// Server version, if known.
    pub version: Option<String>,
    /// Replication id from `+FULLRESYNC`.
    pub replid: Option<String>,
    /// Replication offset from `+FULLRESYNC`.
    pub offset: Option<i64>,
    /// False for scan backups: keys were read at different moments.
    #[serde(default = "yes")]
    pub point_in_time: bool,
    /// Seconds from asking for the snapshot until the server began to send
    /// it (its fork, and with diskless sync `repl-diskless-sync-delay`);
    /// sync mode only. Not part of `duration_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<f64>,
}

fn yes() -> bool {
    true
}
