//! The manifest: the JSON object whose presence makes a backup exist.

use chrono::{DateTime, Utc};
use replvault_protocol::rdb::Summary;
use serde::{Deserialize, Serialize};

pub use crate::source::SourceInfo;

/// Current manifest format.
pub const FORMAT: u32 = 1;

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
}

impl Manifest {
    /// True when the data object is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encryption.algorithm != "none"
    }

    /// The whole backup's wall time: the server's wait, then the transfer.
    pub fn wall_secs(&self) -> f64 {
        self.source.wait_secs.unwrap_or(0.0) + self.duration_secs
    }
}
