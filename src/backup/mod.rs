//! The write pipeline: taking one backup from a source into a vault, with
//! cancellation. Shared by `replvault backup` and the daemon.
//!
//! - [`writer`]: [`BackupWriter`], the pipeline's stages and the manifest.
//! - [`compress`]: the zstd stage (independent frames).
//! - [`seal`]: the sealing stage (AES-256-GCM STREAM).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use replvault_protocol::cluster::SlotSet;
use replvault_protocol::rdb::Limits;

use crate::crypto::MasterKey;
use crate::source::{self, SourceError, SourceOptions};
use crate::vault::{Manifest, Vault, VaultError};

pub mod compress;
mod seal;
pub mod writer;

pub use writer::BackupWriter;

/// Options for a new backup's data object.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// zstd level.
    pub compression_level: i32,
    /// Expected RDB size, if known (sizes S3 parts).
    pub size_hint: Option<u64>,
    /// Bounds on the lengths the RDB declares.
    pub limits: Limits,
    /// A cluster shard's slots: every key must hash into them (and be in
    /// database 0), or the backup fails naming the key.
    pub slots: Option<SlotSet>,
}

impl WriteOptions {
    /// Options for the snapshot `size_hint` long (when the server said)
    /// from `source`.
    pub fn new(compression_level: i32, size_hint: Option<u64>, source: &SourceOptions) -> Self {
        WriteOptions {
            compression_level,
            size_hint,
            limits: Limits {
                payload_len: size_hint,
                max_value: source.max_value_size,
            },
            slots: None,
        }
    }
}

/// Why a backup failed. Whatever the cause, nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Getting the RDB from the server failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Checking, compressing, encrypting or storing failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A cluster backup failed (the message names the shard).
    #[error("{0}")]
    Cluster(String),
    /// A signal or shutdown stopped the backup.
    #[error("interrupted: the partial backup was removed")]
    Interrupted,
}

/// Takes one backup; `cancel` resolving aborts it and removes what was
/// written. `progress` counts RDB bytes as they arrive.
pub async fn take_backup(
    source: &SourceOptions,
    compression_level: i32,
    vault: &Vault,
    key: Option<&MasterKey>,
    progress: Arc<AtomicU64>,
    cancel: impl Future<Output = ()>,
) -> Result<Manifest, BackupError> {
    tokio::pin!(cancel);
    let mut src = tokio::select! {
        s = source::open(source) => s?,
        () = &mut cancel => return Err(BackupError::Interrupted),
    };
    let mut writer = BackupWriter::start(
        vault,
        key,
        WriteOptions::new(compression_level, src.size_hint, source),
    )
    .await?;
    tracing::info!(id = writer.id(), "backup started");
    let pumped: Result<(), BackupError> = async {
        loop {
            let next = tokio::select! {
                n = src.chunks.recv() => n,
                // The checker's verdict on what was sent does not wait for
                // the next chunk of a slow source.
                e = writer.failed() => return Err(e.into()),
                () = &mut cancel => return Err(BackupError::Interrupted),
            };
            match next {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(chunk)) => {
                    progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    tokio::select! {
                        r = writer.write(chunk) => r?,
                        () = &mut cancel => return Err(BackupError::Interrupted),
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = pumped {
        let id = writer.id().to_string();
        if let Err(ae) = writer.abort().await {
            tracing::warn!(%id, error = %ae, "cleaning up the failed backup failed");
        }
        return Err(e);
    }
    let finish = writer.finish(src.info.clone());
    tokio::pin!(finish);
    tokio::select! {
        m = &mut finish => Ok(m?),
        // finish cleans up after itself when dropped mid-way only partly;
        // let it complete: committing takes moments once the data is in.
        () = &mut cancel => Ok((&mut finish).await?),
    }
}
