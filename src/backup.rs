//! Taking one backup: source → vault writer, with cancellation. Shared by
//! `replvault backup` and the daemon.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::catalog::{Manifest, Vault, VaultError, WriteOptions};
use crate::cli::{SourceArgs, WriteArgs};
use crate::crypto::MasterKey;
use crate::source::{self, SourceError};

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
    /// A signal or shutdown stopped the backup.
    #[error("interrupted: the partial backup was removed")]
    Interrupted,
}

/// Takes one backup; `cancel` resolving aborts it and removes what was
/// written. `progress` counts RDB bytes as they arrive.
pub async fn take_backup(
    source_args: &SourceArgs,
    write: &WriteArgs,
    vault: &Vault,
    key: Option<&MasterKey>,
    progress: Arc<AtomicU64>,
    cancel: impl Future<Output = ()>,
) -> Result<Manifest, BackupError> {
    tokio::pin!(cancel);
    let mut src = tokio::select! {
        s = source::open(source_args) => s?,
        () = &mut cancel => return Err(BackupError::Interrupted),
    };
    let mut writer = vault
        .begin_backup(
            key,
            WriteOptions {
                compression_level: write.compression_level,
                size_hint: src.size_hint,
            },
        )
        .await?;
    tracing::info!(id = writer.id(), "backup started");
    let pumped: Result<(), BackupError> = async {
        loop {
            let next = tokio::select! {
                n = src.chunks.recv() => n,
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
