//! Object stores behind one trait: a local directory and S3.
//!
//! The shape follows object_store: whole-object `put` is atomic, streaming
//! uploads go through [`Upload`] which must be `complete`d or `abort`ed
//! (S3 cannot clean up on drop), `get` streams, `list` returns every object
//! under a prefix (paginating as needed). Keys are `/`-separated relative
//! paths such as `backups/<id>/data`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

pub mod local;
pub mod s3;

pub use s3::S3Options;

/// Checks every store must pass; public so the S3 integration tests can run
/// them against a real server. Test support, not an API.
#[doc(hidden)]
pub mod conformance;

/// A readable object body.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, where the store knows it.
    pub last_modified: Option<DateTime<Utc>>,
}

/// Store errors, mapped from each backend's own errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist.
    #[error("{store}: object {key} not found")]
    NotFound {
        /// Store description (no secrets).
        store: String,
        /// Object key.
        key: String,
    },
    /// The object exists and would be overwritten.
    #[error("{store}: object {key} already exists")]
    AlreadyExists {
        /// Store description.
        store: String,
        /// Object key.
        key: String,
    },
    /// Credentials were refused or lack permission.
    #[error("{store}: access denied for {key}: {message}")]
    AccessDenied {
        /// Store description.
        store: String,
        /// Object key or bucket.
        key: String,
        /// What the store said, and what to check.
        message: String,
    },
    /// Local I/O failed.
    #[error("{store}: {op} {key}: {source}")]
    Io {
        /// Store description.
        store: String,
        /// What was being done (`write`, `read`, `rename`...).
        op: &'static str,
        /// Object key.
        key: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The object is larger than the caller reads (a bounded `get`).
    #[error("{store}: object {key} is larger than the {max} bytes read for it{}", size.map(|n| format!(" ({n} bytes)")).unwrap_or_default())]
    TooLarge {
        /// Store description.
        store: String,
        /// Object key.
        key: String,
        /// Its size, where the store said.
        size: Option<u64>,
        /// The most the caller reads.
        max: u64,
    },
    /// Anything else the backend reported.
    #[error("{store}: {message}")]
    Backend {
        /// Store description.
        store: String,
        /// What went wrong, with what to check.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Hints for a streaming upload.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// Expected total size, if known (helps choose the S3 part size).
    pub size_hint: Option<u64>,
}

/// An object store.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Where this store is, for messages: `file:///path`, `s3://bucket/prefix`.
    fn describe(&self) -> String;

    /// Writes a whole object atomically: readers see all of it or nothing.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError>;

    /// Starts a streaming upload of `key`, visible only once completed.
    async fn put_multipart(
        &self,
        key: &str,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StoreError>;

    /// Reads a whole small object of at most `max` bytes. A larger one is
    /// [`StoreError::TooLarge`], found from its size (or, where the store
    /// does not say it, after `max + 1` bytes), never read whole.
    async fn get(&self, key: &str, max: u64) -> Result<Bytes, StoreError>;

    /// A reader of an object, for objects too large to hold.
    async fn get_reader(&self, key: &str) -> Result<ObjectReader, StoreError>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Uploads started but neither completed nor aborted (S3 multipart
    /// uploads whose parts are stored, and billed, until aborted). Stores
    /// without such state have none.
    async fn pending_uploads(&self) -> Result<Vec<PendingUpload>, StoreError> {
        Ok(Vec::new())
    }

    /// Aborts a pending upload.
    async fn abort_pending_upload(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        let _ = upload;
        Ok(())
    }
}

/// An upload that was started and never completed or aborted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// Object key relative to the store root.
    pub key: String,
    /// The store's upload id.
    pub upload_id: String,
    /// When it was started.
    pub initiated: Option<DateTime<Utc>>,
}

/// A streaming upload in progress.
#[async_trait]
pub trait Upload: Send {
    /// Appends bytes; waits when too much is in flight (back-pressure).
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError>;

    /// Makes the object visible; returns its size.
    async fn complete(self: Box<Self>) -> Result<u64, StoreError>;

    /// Discards everything written (S3: AbortMultipartUpload).
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Where a vault is and how to reach it.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// A directory path, `file://PATH`, or `s3://bucket[/prefix]`.
    pub location: String,
    /// Settings for an `s3://` location.
    pub s3: s3::S3Options,
}

/// Opens the store `opts.location` names, creating a local root.
pub async fn open(opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    open_with(opts, false).await
}

/// Like [`open`], for commands that only read: a local root must exist.
/// (A missing S3 bucket fails on the first request anyway.)
pub async fn open_existing(opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    open_with(opts, true).await
}

async fn open_with(opts: &StoreOptions, must_exist: bool) -> Result<Arc<dyn Store>, StoreError> {
    let spec = opts.location.as_str();
    if let Some(rest) = spec.strip_prefix("s3://") {
        return Ok(Arc::new(s3::S3Store::open(rest, &opts.s3).await?));
    }
    let root = spec.strip_prefix("file://").unwrap_or(spec).into();
    Ok(Arc::new(if must_exist {
        local::LocalStore::open_existing(root)?
    } else {
        local::LocalStore::open(root)?
    }))
}
