//! The manifest: the JSON object whose presence makes a backup exist.

use chrono::{DateTime, Utc};
use replvault_protocol::rdb::Summary;
use serde::{Deserialize, Serialize};

pub use crate::source::SourceInfo;

/// Manifest format of a standalone backup (readers since the first).
pub const FORMAT: u32 = 1;
/// Manifest format of a cluster backup: older readers refuse it (they
/// would see one shard's totals as the whole backup).
pub const CLUSTER_FORMAT: u32 = 2;
/// The newest format this version reads.
pub const MAX_FORMAT: u32 = CLUSTER_FORMAT;

/// The RDB as received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RdbInfo {
    /// Bytes of the RDB file.
    pub bytes: u64,
    /// CRC-64/Jones from the trailer (hex), when the server computed one.
    pub crc64: Option<String>,
}

/// The stored data object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredInfo {
    /// Object key, relative to the vault.
    pub key: String,
    /// Bytes stored.
    pub bytes: u64,
    /// SHA-256 of the stored bytes (hex).
    pub sha256: String,
}

/// How the data is compressed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompressionInfo {
    /// Always `zstd`.
    pub algorithm: String,
    /// zstd level.
    pub level: i32,
}

/// How the data is encrypted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// `aes-256-gcm-stream` or `none`.
    pub algorithm: String,
    /// Fingerprint of the master key, when encrypted.
    pub key_id: Option<String>,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
}

/// A committed backup's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// Backup id (sortable by time).
    pub id: String,
    /// When the backup started.
    pub started_at: DateTime<Utc>,
    /// When the data was durable and the manifest written.
    pub finished_at: DateTime<Utc>,
    /// Wall time of the backup in seconds.
    pub duration_secs: f64,
    /// Where it came from.
    pub source: SourceInfo,
    /// The RDB file.
    pub rdb: RdbInfo,
    /// What the RDB check found: version, aux fields, per-db keys and expiries,
    /// types, functions, checksum status.
    pub summary: Summary,
    /// The stored object.
    pub stored: StoredInfo,
    /// Compression.
    pub compression: CompressionInfo,
    /// Encryption.
    pub encryption: EncryptionInfo,
    /// `replvault <version>`.
    pub tool: String,
    /// A cluster backup's shards; `rdb`, `stored` and `summary` above are
    /// then totals over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
}

/// The shards of a cluster backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// One entry per shard, in slot order.
    pub shards: Vec<ShardInfo>,
}

/// One shard of a cluster backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Inclusive slot ranges the shard owned.
    pub slots: Vec<(u16, u16)>,
    /// The node the snapshot came from.
    pub node: NodeInfo,
    /// Its source (address, server, replid, offset...).
    pub source: SourceInfo,
    /// Its RDB.
    pub rdb: RdbInfo,
    /// What the check found in it.
    pub summary: Summary,
    /// Its data object.
    pub stored: StoredInfo,
}

/// A cluster node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: String,
    /// Announced `host:port`.
    pub address: String,
    /// `primary` or `replica`.
    pub role: String,
}

impl Manifest {
    /// True when the data object is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encryption.algorithm != "none"
    }

    /// Shards of a cluster backup (0 for a standalone one).
    pub fn shard_count(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.shards.len())
    }

    /// The manifest of one shard as if it were a backup of its own, for
    /// the read pipeline: same id, keys and settings, its data object.
    pub fn shard(&self, i: usize) -> Option<Manifest> {
        let s = self.cluster.as_ref()?.shards.get(i)?;
        Some(Manifest {
            source: s.source.clone(),
            rdb: s.rdb.clone(),
            summary: s.summary.clone(),
            stored: s.stored.clone(),
            cluster: None,
            ..self.clone()
        })
    }

    /// The whole backup's wall time: the server's wait, then the transfer.
    pub fn wall_secs(&self) -> f64 {
        self.source.wait_secs.unwrap_or(0.0) + self.duration_secs
    }
}
