//! The S3 store (aws-sdk-s3), for AWS and S3-compatible servers.
//!
//! - Settings come from the SDK's default chain (env, profiles, web
//!   identity / IRSA, ECS, instance metadata) plus `--s3-*` flags.
//!   Checksums are computed and validated only "when required", which
//!   S3-compatible servers need; integrity is ours anyway (AEAD + SHA-256).
//! - Uploads stream in parts of a size that grows every 1,000 parts, so an
//!   upload of unknown length never hits the 10,000-part limit, with at most
//!   `--s3-concurrency` parts in flight. Objects smaller than one part go up
//!   in a single PUT. Any failure aborts the multipart upload.
//! - Reads of large objects fetch ranges in parallel, in order, each retried
//!   on its own, so memory stays at `concurrency × range size`.
//! - The SDK retries throttling, 5xx, timeouts and resets with backoff.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;
use chrono::DateTime;
use tokio::sync::mpsc;

use super::{ObjectMeta, ObjectReader, PendingUpload, Store, StoreError, Upload, UploadOptions};

mod download;
mod errors;
mod upload;

use download::{ChannelReader, Pool, RANGE, fetch_ranges};
use errors::{map_error, no_bucket};
pub use upload::{DEFAULT_PART, MAX_PART, MAX_PARTS, MIN_PART, initial_part_size, part_size};
use upload::{S3Upload, abort_upload};

/// How to use the bucket: the `--s3-*` flags.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Path-style addressing (`http://host/bucket/key`).
    pub path_style: bool,
    /// Storage class for data objects, e.g. `STANDARD_IA`.
    pub storage_class: Option<String>,
    /// Server-side encryption: `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// KMS key id for `aws:kms`.
    pub sse_kms_key_id: Option<String>,
    /// First multipart part size; `None` for the default.
    pub part_size: Option<u64>,
    /// Keep every part the same size.
    pub equal_parts: bool,
    /// Parts uploaded, and ranges downloaded, at once.
    pub concurrency: u16,
    /// Attempts per request before giving up.
    pub max_attempts: u32,
    /// Keys per ListObjectsV2 page; `None` for the store's maximum.
    pub list_page_size: Option<i32>,
}

struct Settings {
    bucket: String,
    prefix: String,
    describe: String,
    storage_class: Option<StorageClass>,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    part_size: Option<u64>,
    equal_parts: bool,
    concurrency: usize,
    page_size: Option<i32>,
    region: String,
}

/// A vault in an S3 bucket (or an S3-compatible server).
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    s: Arc<Settings>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s.describe)
    }
}

impl S3Store {
    /// Opens `bucket[/prefix]` with the standard AWS configuration chain.
    pub async fn open(spec: &str, opts: &S3Options) -> Result<Self, StoreError> {
        let (bucket, prefix) = spec.split_once('/').unwrap_or((spec, ""));
        let prefix = prefix.trim_matches('/').to_string();
        let backend = |message: String| StoreError::Backend {
            store: format!("s3://{spec}"),
            message,
            source: None,
        };
        if bucket.is_empty() {
            return Err(backend(
                "--vault s3:// needs a bucket name: s3://bucket[/prefix]".into(),
            ));
        }
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .load()
            .await;
        let endpoint = sdk.endpoint_url().map(str::to_string);
        // S3-compatible servers rarely care about the region, but SigV4
        // needs one; AWS itself must be told.
        let region = match (sdk.region(), &endpoint) {
            (Some(r), _) => r.clone(),
            (None, Some(_)) => Region::from_static("us-east-1"),
            (None, None) => {
                return Err(backend(
                    "no AWS region configured: set AWS_REGION (or a profile's region)".into(),
                ));
            }
        };
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .region(region.clone())
            .force_path_style(opts.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.max_attempts)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build();
        let describe = match (&endpoint, prefix.is_empty()) {
            (None, true) => format!("s3://{bucket}"),
            (None, false) => format!("s3://{bucket}/{prefix}"),
            (Some(e), true) => format!("s3://{bucket} at {e}"),
            (Some(e), false) => format!("s3://{bucket}/{prefix} at {e}"),
        };
        let storage_class = opts.storage_class.as_deref().map(StorageClass::from);
        let sse = opts.sse.as_deref().map(ServerSideEncryption::from);
        if opts.sse_kms_key_id.is_some() && sse != Some(ServerSideEncryption::AwsKms) {
            return Err(backend("--s3-sse-kms-key-id needs --s3-sse aws:kms".into()));
        }
        let store = S3Store {
            client: Client::from_conf(conf),
            s: Arc::new(Settings {
                bucket: bucket.to_string(),
                prefix,
                describe,
                storage_class,
                sse,
                sse_kms_key_id: opts.sse_kms_key_id.clone(),
                part_size: opts.part_size,
                equal_parts: opts.equal_parts,
                concurrency: usize::from(opts.concurrency.max(1)),
                page_size: opts.list_page_size,
                region: region.to_string(),
            }),
        };
        store.check_bucket().await?;
        Ok(store)
    }

    /// Fails early, with a clear message, when the bucket is missing, in
    /// another region, or out of reach.
    async fn check_bucket(&self) -> Result<(), StoreError> {
        match self
            .client
            .head_bucket()
            .bucket(&self.s.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(match self.err("open bucket", &self.s.bucket, e) {
                StoreError::NotFound { .. } => no_bucket(&self.s),
                other => other,
            }),
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.s.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.s.prefix)
        }
    }

    fn rel_key<'a>(&self, full: &'a str) -> &'a str {
        if self.s.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.s.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    fn err<E>(&self, op: &'static str, key: &str, e: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_error(&self.s, op, key, e)
    }

    /// GetObject of `key`, or of a byte range of it.
    async fn get_object(
        &self,
        key: &str,
        range: Option<String>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(&self.s.bucket)
            .key(self.full_key(key))
            .set_range(range)
            .send()
            .await
            .map_err(|e| self.err("get", key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.s.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(h) => Ok(Some(h.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) => match self.err("head", key, e) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }
}

#[async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        self.s.describe.clone()
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        // If-None-Match makes the write conditional on AWS; the HEAD covers
        // servers that ignore the header. Keys are unique per backup, so the
        // remaining race cannot occur in normal use.
        if self.head(key).await?.is_some() {
            return Err(StoreError::AlreadyExists {
                store: self.describe(),
                key: key.to_string(),
            });
        }
        let put = self
            .client
            .put_object()
            .bucket(&self.s.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .set_server_side_encryption(self.s.sse.clone())
            .set_ssekms_key_id(self.s.sse_kms_key_id.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .map_err(|e| self.err("put", key, e));
        match put {
            Ok(_) => Ok(()),
            // The object was absent a moment ago: this is most likely the
            // SDK's retry of our own PUT, whose first answer was lost after
            // the server stored it. The same bytes there mean it succeeded.
            // (Unreadable, the outcome is unknown: that error, not
            // "already exists", which says the object is someone else's.)
            Err(StoreError::AlreadyExists { .. }) => {
                // Larger than ours (the bounded read refuses it): not ours.
                let there = match self.get(key, data.len() as u64).await {
                    Err(StoreError::TooLarge { .. }) => Bytes::new(),
                    other => other?,
                };
                match there {
                    there if there == data => {
                        tracing::debug!(key, "a retried PUT found its own first attempt stored");
                        Ok(())
                    }
                    _ => Err(StoreError::AlreadyExists {
                        store: self.describe(),
                        key: key.to_string(),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn put_multipart(
        &self,
        key: &str,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StoreError> {
        let initial = initial_part_size(self.s.part_size, opts.size_hint, self.s.equal_parts);
        Ok(Box::new(S3Upload::new(
            self.client.clone(),
            self.s.clone(),
            key,
            self.full_key(key),
            initial,
        )))
    }

    async fn get(&self, key: &str, max: u64) -> Result<Bytes, StoreError> {
        let r = self.get_object(key, None).await?;
        let too_large = |size| StoreError::TooLarge {
            store: self.describe(),
            key: key.to_string(),
            size,
            max,
        };
        // The response's length says it before any of the body is read;
        // dropping the body unread closes the connection.
        let size = r.content_length().map(|n| n.max(0) as u64);
        if let Some(n) = size.filter(|n| *n > max) {
            return Err(too_large(Some(n)));
        }
        // Without a length (or with a wrong one), stop past `max` bytes.
        let mut body = r.body;
        let mut buf = Vec::with_capacity(usize::try_from(size.unwrap_or(0)).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Backend {
                store: self.describe(),
                message: format!("reading {key} failed: {e}"),
                source: Some(Box::new(e)),
            })?;
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(too_large(None));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    }

    async fn get_reader(&self, key: &str) -> Result<ObjectReader, StoreError> {
        let size = self.head(key).await?.ok_or_else(|| StoreError::NotFound {
            store: self.describe(),
            key: key.to_string(),
        })?;
        if size <= 2 * RANGE || self.s.concurrency == 1 {
            let r = self.get_object(key, None).await?;
            return Ok(Box::pin(r.body.into_async_read()));
        }
        let (tx, rx) = mpsc::channel(2);
        let pool = Pool::default();
        tokio::spawn(fetch_ranges(
            self.clone(),
            key.to_string(),
            size,
            tx,
            pool.clone(),
        ));
        Ok(Box::pin(ChannelReader::new(rx, pool)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.s.bucket)
                .prefix(self.full_key(prefix))
                .set_max_keys(self.s.page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.err("list", prefix, e))?;
            for o in r.contents() {
                if let Some(k) = o.key() {
                    out.push(ObjectMeta {
                        key: self.rel_key(k).to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        last_modified: o
                            .last_modified()
                            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    });
                }
            }
            match (r.is_truncated(), r.next_continuation_token()) {
                (Some(true), Some(t)) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.s.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.err("delete", key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Open multipart uploads under the vault prefix: failed or running
    /// uploads whose parts are stored (and billed) until aborted.
    async fn pending_uploads(&self) -> Result<Vec<PendingUpload>, StoreError> {
        let mut out = Vec::new();
        let mut key_marker = None;
        let mut id_marker = None;
        loop {
            let r = match self
                .client
                .list_multipart_uploads()
                .bucket(&self.s.bucket)
                .prefix(self.full_key(""))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
            {
                Ok(r) => r,
                // Some S3-compatible servers (s3s-fs) lack the API: prune
                // goes on without the sweep rather than failing whole.
                Err(e)
                    if e.code() == Some("NotImplemented")
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 501) =>
                {
                    tracing::warn!(
                        store = %self.s.describe,
                        "this S3 server does not implement ListMultipartUploads: uploads left open by a killed process cannot be found, nor aborted, here"
                    );
                    return Ok(out);
                }
                Err(e) => return Err(self.err("list multipart uploads", "", e)),
            };
            for u in r.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(PendingUpload {
                        key: self.rel_key(k).to_string(),
                        upload_id: id.to_string(),
                        initiated: u
                            .initiated()
                            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    });
                }
            }
            if r.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = r.next_key_marker().map(str::to_string);
            id_marker = r.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// Aborts an open multipart upload.
    async fn abort_pending_upload(&self, u: &PendingUpload) -> Result<(), StoreError> {
        abort_upload(&self.client, &self.s, &self.full_key(&u.key), &u.upload_id).await
    }
}
