//! The vault: backups stored as `backups/<id>/data` plus
//! `backups/<id>/manifest.json`, the manifest written last as the commit
//! point. See `docs/FORMAT.md` for the layout and its invariants.
//!
//! Write path: [`Vault::begin_backup`] gives a [`BackupWriter`] that takes
//! raw RDB bytes, runs them through the streaming scanner (CRC-64 and
//! structure), zstd and the AEAD stream, and uploads; [`BackupWriter::finish`]
//! refuses to commit unless the scan passed, then writes the manifest.
//! Read path: [`Vault::list`], [`Vault::resolve`], restore and verify.
// SKELETON: helper B implements this module. The public names below are the
// contract the rest of the binary codes against; extend, do not rename.

use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::MasterKey;
use crate::store::{Store, StoreError};

pub mod manifest;

pub use manifest::{Manifest, SourceInfo};

/// Vault errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Placeholder until implemented.
    #[error("{0}")]
    Other(String),
}

/// Options for a new backup.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// zstd level.
    pub compression_level: i32,
    /// Expected RDB size, if known (sizes S3 parts).
    pub size_hint: Option<u64>,
}

/// A vault on some store.
#[derive(Clone, Debug)]
pub struct Vault {
    store: Arc<dyn Store>,
}

impl Vault {
    /// A vault on `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Vault { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Complete backups (those with a manifest), oldest first.
    pub async fn list(&self) -> Result<Vec<Manifest>, VaultError> {
        Err(VaultError::Other("not implemented".into()))
    }

    /// The manifest for an id or `latest`.
    pub async fn resolve(&self, selector: &str) -> Result<Manifest, VaultError> {
        let _ = selector;
        Err(VaultError::Other("not implemented".into()))
    }

    /// Starts a backup; `key` is `None` only for a deliberate plaintext
    /// backup (`--no-encryption`).
    pub async fn begin_backup(
        &self,
        key: Option<&MasterKey>,
        opts: WriteOptions,
    ) -> Result<BackupWriter, VaultError> {
        let _ = (key, opts);
        Err(VaultError::Other("not implemented".into()))
    }
}

/// A backup being written. Drop without `finish` or `abort` leaves an
/// incomplete backup that `list` never shows and `prune` removes; call
/// [`BackupWriter::abort`] to clean up at once.
pub struct BackupWriter {
    _private: (),
}

impl BackupWriter {
    /// The new backup's id.
    pub fn id(&self) -> &str {
        ""
    }

    /// Feeds the next raw RDB bytes (back-pressure: waits when the pipeline
    /// is full). Fails at once if the scanner rejects the bytes.
    pub async fn write(&mut self, rdb: Bytes) -> Result<(), VaultError> {
        let _ = rdb;
        Err(VaultError::Other("not implemented".into()))
    }

    /// Checks the scan, completes the data upload, writes the manifest.
    pub async fn finish(self, source: SourceInfo) -> Result<Manifest, VaultError> {
        let _ = source;
        Err(VaultError::Other("not implemented".into()))
    }

    /// Discards the backup: aborts the upload, removes what was written.
    pub async fn abort(self) -> Result<(), VaultError> {
        Ok(())
    }
}
