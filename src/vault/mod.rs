//! The vault: backups stored as `backups/<id>/data` plus
//! `backups/<id>/manifest.json`, the manifest written last as the commit
//! point. See `docs/FORMAT.md` for the layout and its invariants.
//!
//! This module owns what the format fixes (object keys, backup ids, the
//! data object's frame size), listing and resolving backups, and deleting
//! them; [`retention`] decides which to keep. Writing a backup is
//! [`crate::backup`]'s job, reading one back [`crate::restore`]'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use replvault_protocol::rdb::CheckError;

use crate::crypto::StreamError;
use crate::crypto::keys::random_bytes;
use crate::store::{Store, StoreError};

pub mod manifest;
pub mod retention;

pub use manifest::Manifest;
pub use retention::RetentionPolicy;

/// RDB bytes per zstd frame of a data object (the last frame may hold
/// fewer). Each frame starts with an empty window, so frames decode
/// independently, several at once.
pub const FRAME: usize = 4 << 20;
/// The largest content size a reader takes a frame of, so its memory
/// stays bounded whatever a data object claims.
pub const MAX_FRAME: usize = 8 << 20;

/// Vault errors. Messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The RDB failed the CRC or structure check.
    #[error("the RDB is corrupt: {0}")]
    Corrupt(#[from] CheckError),
    /// The encrypted container is wrong (key, tampering, truncation).
    #[error(transparent)]
    Crypto(#[from] StreamError),
    /// No backup matches.
    #[error("no backup {0:?} in {1}: run `replvault list` to see what there is")]
    NotFound(String, String),
    /// Not of the form backup ids have, nor `latest`.
    #[error(
        "{0:?} is not a backup id: ids look like 20261124T152116Z-9986 (`replvault list` shows them), or use `latest`"
    )]
    InvalidId(String),
    /// The vault has no backups.
    #[error("no complete backups in {0}")]
    Empty(String),
    /// A manifest could not be read.
    #[error("manifest of backup {id} is unreadable: {reason}")]
    BadManifest {
        /// Backup id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The restored data does not match what the manifest recorded.
    #[error("backup {id} does not match its manifest: {what}")]
    Mismatch {
        /// Backup id.
        id: String,
        /// What differs.
        what: String,
    },
    /// The output file exists.
    #[error("{0} already exists: pass --force to replace it")]
    OutputExists(String),
    /// The output path is a directory.
    #[error("{0} is a directory: --out takes the path of the file to write, e.g. {1}")]
    OutputIsDirectory(String, String),
    /// Local file I/O during restore failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The pipeline failed internally.
    #[error("backup pipeline failed: {0}")]
    Pipeline(String),
    /// The backup was interrupted.
    #[error("the backup was aborted")]
    Aborted,
}

/// The most read of a manifest. Real ones are about 2 KB (1,910 bytes for
/// `fixtures/vault`'s, 1,478 for a 500,000-key backup); with 1,024
/// function libraries they stay far below this. A larger object is
/// refused unread, so a planted one cannot make `list` hold it in
/// memory; a backup never writes one (`BackupWriter::finish`).
pub const MAX_MANIFEST: u64 = 1 << 20;

/// A backup whose data exists without a manifest (failed or in progress).
#[derive(Clone, Debug)]
pub struct Incomplete {
    /// The id.
    pub id: String,
    /// Its objects.
    pub keys: Vec<String>,
    /// Newest modification time among them.
    pub last_modified: Option<DateTime<Utc>>,
}

pub(crate) fn data_key(id: &str) -> String {
    format!("backups/{id}/data")
}

pub(crate) fn manifest_key(id: &str) -> String {
    format!("backups/{id}/manifest.json")
}

/// A new backup id: UTC time (sortable) and a random suffix.
pub fn new_id(now: DateTime<Utc>) -> Result<String, VaultError> {
    let mut r = [0u8; 2];
    random_bytes(&mut r).map_err(|e| VaultError::Pipeline(e.to_string()))?;
    Ok(format!(
        "{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        hex::encode(r)
    ))
}

/// Whether `id` has the form [`new_id`] gives, `YYYYMMDDTHHMMSSZ-xxxx`: a
/// real UTC time to the second, a dash and 4 lowercase hex digits. Only
/// such ids are read, so an id can never be a path (`a/b`, `../x`).
pub fn is_valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 21
        && digits(0..8)
        && b[8] == b'T'
        && digits(9..15)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && chrono::NaiveDateTime::parse_from_str(&id[..16], "%Y%m%dT%H%M%SZ").is_ok()
}

fn manifest_too_large(id: &str, size: Option<u64>) -> VaultError {
    let size = size.map(|n| format!(" ({n} bytes)")).unwrap_or_default();
    VaultError::BadManifest {
        id: id.to_string(),
        reason: format!(
            "it is larger than the {} MiB a manifest may be{size}; real ones are a few KiB, \
             so it was not written by replvault: delete backups/{id}/ or find out what wrote it",
            MAX_MANIFEST >> 20
        ),
    }
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

    /// Objects under `backups/`, grouped by backup id.
    async fn objects(&self) -> Result<BTreeMap<String, Vec<crate::store::ObjectMeta>>, VaultError> {
        let mut by_id: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for o in self.store.list("backups/").await? {
            if let Some(id) = o
                .key
                .strip_prefix("backups/")
                .and_then(|r| r.split('/').next())
            {
                by_id.entry(id.to_string()).or_default().push(o);
            }
        }
        Ok(by_id)
    }

    /// Complete backups (those with a readable manifest), oldest first.
    pub async fn list(&self) -> Result<Vec<Manifest>, VaultError> {
        let mut out = Vec::new();
        for (id, objs) in self.objects().await? {
            if let Some(meta) = objs.iter().find(|o| o.key == manifest_key(&id)) {
                // The listing gives the size: no need to ask for the object.
                let got = if meta.size > MAX_MANIFEST {
                    Err(manifest_too_large(&id, Some(meta.size)))
                } else {
                    self.manifest(&id).await
                };
                match got {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        tracing::warn!(backup = %id, error = %e, "skipping a backup whose manifest cannot be read")
                    }
                }
            }
        }
        // Ids sort by the second they started in; within one second the
        // random suffix would decide, so the manifest's start time does.
        out.sort_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Backups with objects but no manifest: failed or still being written.
    pub async fn list_incomplete(&self) -> Result<Vec<Incomplete>, VaultError> {
        Ok(self
            .objects()
            .await?
            .into_iter()
            .filter(|(id, objs)| !objs.iter().any(|o| o.key == manifest_key(id)))
            .map(|(id, objs)| Incomplete {
                id,
                last_modified: objs.iter().filter_map(|o| o.last_modified).max(),
                keys: objs.into_iter().map(|o| o.key).collect(),
            })
            .collect())
    }

    /// The manifest of backup `id`, which must be a valid id and the
    /// manifest's own.
    async fn manifest(&self, id: &str) -> Result<Manifest, VaultError> {
        if !is_valid_id(id) {
            return Err(VaultError::InvalidId(id.to_string()));
        }
        let bytes = match self.store.get(&manifest_key(id), MAX_MANIFEST).await {
            Err(StoreError::TooLarge { size, .. }) => return Err(manifest_too_large(id, size)),
            other => other?,
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| VaultError::BadManifest {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        if m.format > manifest::MAX_FORMAT {
            return Err(VaultError::BadManifest {
                id: id.to_string(),
                reason: format!("format {} is newer than this replvault: upgrade", m.format),
            });
        }
        // A manifest copied or moved under another id would be restored,
        // and pruned, as a backup it is not.
        if m.id != id {
            return Err(VaultError::BadManifest {
                id: id.to_string(),
                reason: format!(
                    "it is the manifest of backup {:?}, not of the backup it is stored under",
                    m.id
                ),
            });
        }
        // Its data must be its own: a manifest naming another backup's
        // object would restore that backup's data, and lose it to prune.
        let own = format!("backups/{id}/");
        let data: Vec<&str> = match &m.cluster {
            Some(c) => c.shards.iter().map(|s| s.stored.key.as_str()).collect(),
            None => vec![m.stored.key.as_str()],
        };
        if let Some(k) = data.iter().find(|k| {
            !k.strip_prefix(&own)
                .is_some_and(|rest| !rest.is_empty() && rest != "manifest.json")
        }) {
            return Err(VaultError::BadManifest {
                id: id.to_string(),
                reason: format!("its data object {k:?} is not under {own}"),
            });
        }
        Ok(m)
    }

    /// The manifest for an id or `latest`; anything else is
    /// [`VaultError::InvalidId`], before the store is asked.
    pub async fn resolve(&self, selector: &str) -> Result<Manifest, VaultError> {
        if selector == "latest" {
            return self
                .list()
                .await?
                .pop()
                .ok_or_else(|| VaultError::Empty(self.store.describe()));
        }
        match self.manifest(selector).await {
            Err(VaultError::Store(StoreError::NotFound { .. })) => Err(VaultError::NotFound(
                selector.to_string(),
                self.store.describe(),
            )),
            other => other,
        }
    }

    /// Deletes a backup: the manifest first, so a half-deleted backup is
    /// never listed as complete, then everything else under its prefix.
    pub async fn delete_backup(&self, id: &str) -> Result<(), VaultError> {
        self.store.delete(&manifest_key(id)).await?;
        for o in self.store.list(&format!("backups/{id}/")).await? {
            self.store.delete(&o.key).await?;
        }
        Ok(())
    }

    /// Writes a manifest directly (tests and tools that build backups).
    pub async fn put_manifest(&self, m: &Manifest) -> Result<(), VaultError> {
        let json = serde_json::to_vec_pretty(m).map_err(|e| VaultError::Pipeline(e.to_string()))?;
        Ok(self
            .store
            .put(&manifest_key(&m.id), Bytes::from(json))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_only_of_the_form_new_id_gives() {
        for _ in 0..100 {
            let id = new_id(Utc::now()).unwrap();
            assert!(is_valid_id(&id), "{id}");
        }
        assert!(is_valid_id("20261124T152116Z-9986"));
        assert!(is_valid_id("20240229T235959Z-00ff"));
        for bad in [
            "",
            "latest",
            "a/b",
            "../x",
            "20261124T152116Z-9986/../x",
            "20261124T152116Z-998",
            "20261124T152116Z-99866",
            "20261124T152116Z-99AB",
            "20261124T152116Z-99zz",
            "20261124T152116Z_9986",
            "20261124t152116z-9986",
            "2026112XT152116Z-9986",
            "20261324T152116Z-9986",
            "20230229T000000Z-9986",
            "20261124T256116Z-9986",
            "+2026124T152116Z-9986",
            "20261124T152116Z-99é",
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
