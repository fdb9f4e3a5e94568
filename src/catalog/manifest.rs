//! The manifest: the JSON object whose presence makes a backup exist.
// SKELETON: helper B implements this file (fields per ../shared/DESIGN.md).

use serde::{Deserialize, Serialize};

/// Where a backup came from (never contains secrets).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `redis://host:port` without user or password.
    pub address: String,
    /// `sync`, `sync-fallback-sync` or `scan`.
    pub mode: String,
    /// `redis` or `valkey`, from INFO/aux, if known.
    pub server: Option<String>,
    /// Server version, if known.
    pub version: Option<String>,
    /// Replication id from `+FULLRESYNC`.
    pub replid: Option<String>,
    /// Replication offset from `+FULLRESYNC`.
    pub offset: Option<i64>,
}

/// A committed backup's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Backup id (sortable by time).
    pub id: String,
    /// Where it came from.
    pub source: SourceInfo,
}
