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

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::{Bytes, BytesMut};
use chrono::DateTime;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{ObjectMeta, ObjectReader, PendingUpload, Store, StoreError, Upload, UploadOptions};
use crate::cli::VaultArgs;

/// S3's smallest allowed part (all but the last).
pub const MIN_PART: u64 = 5 << 20;
/// S3's largest allowed part.
pub const MAX_PART: u64 = 5 << 30;
/// S3's part-count limit.
pub const MAX_PARTS: u32 = 10_000;
/// First part size when neither the flag nor a size hint says otherwise.
pub const DEFAULT_PART: u64 = 8 << 20;
/// Parts per step of part-size doubling.
const PARTS_PER_STEP: u32 = 1_000;
/// Bytes per ranged GET when reading a large object.
const RANGE: u64 = 8 << 20;
/// Attempts per ranged GET whose body fails mid-way (the SDK retries
/// only until the response headers arrive).
const RANGE_ATTEMPTS: u32 = 4;

/// Part size for part `n` (1-based): doubles every 1,000 parts unless
/// `equal`, so 10,000 parts of an 8 MiB start hold about 8 TiB.
pub fn part_size(initial: u64, equal: bool, n: u32) -> u64 {
    if equal {
        return initial;
    }
    let step = (n.saturating_sub(1) / PARTS_PER_STEP).min(20);
    initial.saturating_mul(1 << step).min(MAX_PART)
}

/// The first part size: the flag (or 8 MiB), raised so that an object of
/// `hint` bytes (plus a margin) fits in 10,000 parts even with equal parts.
pub fn initial_part_size(flag: Option<u64>, hint: Option<u64>, equal: bool) -> u64 {
    let mut size = flag.unwrap_or(DEFAULT_PART).max(MIN_PART);
    if equal && let Some(h) = hint {
        let need = (h + h / 4).div_ceil(u64::from(MAX_PARTS));
        size = size.max(need.next_multiple_of(1 << 20));
    }
    size.min(MAX_PART)
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
    pub async fn open(spec: &str, args: &VaultArgs) -> Result<Self, StoreError> {
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
            .force_path_style(args.s3_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(args.s3_max_attempts)
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
        let storage_class = args.s3_storage_class.as_deref().map(StorageClass::from);
        let sse = args.s3_sse.as_deref().map(ServerSideEncryption::from);
        if args.s3_sse_kms_key_id.is_some() && sse != Some(ServerSideEncryption::AwsKms) {
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
                sse_kms_key_id: args.s3_sse_kms_key_id.clone(),
                part_size: args.s3_part_size,
                equal_parts: args.s3_equal_parts,
                concurrency: usize::from(args.s3_concurrency.max(1)),
                page_size: args.s3_list_page_size,
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

fn no_bucket(s: &Settings) -> StoreError {
    StoreError::Backend {
        store: s.describe.clone(),
        message: format!(
            "bucket {:?} does not exist: check the --vault name, AWS_REGION and AWS_ENDPOINT_URL",
            s.bucket
        ),
        source: None,
    }
}

fn map_error<E>(
    s: &Settings,
    op: &'static str,
    key: &str,
    e: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let said = e.message().unwrap_or("").to_string();
    let store = s.describe.clone();
    let key = key.to_string();
    // For matching only, never shown whole (see `error_chain`).
    let detail = DisplayErrorContext(&e).to_string();
    let denied = |message: String| StoreError::AccessDenied {
        store: store.clone(),
        key: key.clone(),
        message,
    };
    match (code.as_deref(), status) {
        (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => {
            StoreError::NotFound { store, key }
        }
        (Some("PreconditionFailed"), _) | (_, Some(412)) => {
            StoreError::AlreadyExists { store, key }
        }
        (Some("NoSuchBucket"), _) => no_bucket(s),
        (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => denied(format!(
            "the S3 server refuses the credentials ({}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
            code.as_deref().unwrap_or_default()
        )),
        (Some("ExpiredToken" | "TokenRefreshRequired" | "RequestExpired"), _) => denied(
            "the AWS credentials have expired: refresh them (aws sso login, or the role's session)"
                .into(),
        ),
        // A HEAD has no body to say why: it may be either.
        (None, Some(403)) => denied(format!(
            "{op} was refused (HTTP 403): the credentials are wrong, or lack permission for this bucket and prefix: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the IAM policy (see deploy/iam/policy.json)"
        )),
        (Some("AccessDenied" | "AllAccessDisabled"), _) => denied(format!(
            "{op} was refused: check that the IAM policy allows it on this bucket and prefix (see deploy/iam/policy.json){}",
            if said.is_empty() {
                String::new()
            } else {
                format!("; the server says: {said}")
            }
        )),
        (
            Some(
                "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException",
            ),
            _,
        )
        | (None, Some(301)) => StoreError::Backend {
            store,
            message: format!(
                "the bucket is not in region {}: set AWS_REGION to the bucket's region (or AWS_ENDPOINT_URL for another S3 server){}",
                s.region,
                if said.is_empty() {
                    String::new()
                } else {
                    format!("; the server says: {said}")
                }
            ),
            source: None,
        },
        _ => {
            let hint = if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
                if detail.contains("credential") {
                    ": no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use a pod/instance role)"
                } else {
                    ": cannot reach the S3 endpoint (check AWS_ENDPOINT_URL / network)"
                }
            } else {
                ""
            };
            let hint = match status {
                Some(ok @ 200..=299) if hint.is_empty() && code.is_none() => format!(
                    ": the server answered HTTP {ok} with a reply the S3 client cannot read (is it fully S3-compatible for this request?)"
                ),
                _ => hint.to_string(),
            };
            // The chain's messages only: the SDK's Debug form carries the
            // whole raw response, which is no error line.
            StoreError::Backend {
                store,
                message: format!("{op} {key} failed{hint}: {}", error_chain(&e)),
                source: None,
            }
        }
    }
}

/// Longest error text shown; the SDK's messages can embed whole replies.
const MAX_DETAIL: usize = 400;

/// [`crate::chain::one_line`], cut at [`MAX_DETAIL`] bytes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = crate::chain::one_line(e);
    if out.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(" [...]");
    }
    out
}

async fn abort_upload(
    client: &Client,
    s: &Settings,
    full_key: &str,
    upload_id: &str,
) -> Result<(), StoreError> {
    match client
        .abort_multipart_upload()
        .bucket(&s.bucket)
        .key(full_key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match map_error(s, "abort multipart upload", full_key, e) {
            // Already gone (aborted or completed elsewhere).
            StoreError::NotFound { .. } => Ok(()),
            StoreError::Backend { message, .. } if message.contains("NoSuchUpload") => Ok(()),
            other => Err(other),
        },
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
        self.client
            .put_object()
            .bucket(&self.s.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .set_server_side_encryption(self.s.sse.clone())
            .set_ssekms_key_id(self.s.sse_kms_key_id.clone())
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.err("put", key, e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StoreError> {
        let initial = initial_part_size(self.s.part_size, opts.size_hint, self.s.equal_parts);
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            s: self.s.clone(),
            key: key.to_string(),
            full_key: self.full_key(key),
            upload_id: None,
            buf: BytesMut::new(),
            initial,
            next_part: 1,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            total: 0,
            done: false,
        }))
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let r = self.get_object(key, None).await?;
        let body = r.body.collect().await.map_err(|e| StoreError::Backend {
            store: self.describe(),
            message: format!("reading {key} failed: {e}"),
            source: Some(Box::new(e)),
        })?;
        Ok(body.into_bytes())
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectReader, StoreError> {
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
        Ok(Box::pin(ChannelReader {
            rx,
            current: None,
            pool,
        }))
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
            let r = self
                .client
                .list_multipart_uploads()
                .bucket(&self.s.bucket)
                .prefix(self.full_key(""))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.err("list multipart uploads", "", e))?;
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

/// Range buffers the reader hands back once it has read them, for the next
/// ranges: a restore allocates about as many as it holds at once, not one
/// per range, and glibc keeps freed buffers of this size (S3 restore peaked
/// at 121 to 161 MiB with a fresh buffer per range, BENCHMARKS.md).
#[derive(Clone, Default)]
struct Pool(Arc<std::sync::Mutex<Vec<BytesMut>>>);

impl Pool {
    /// An empty buffer with room for `len` bytes.
    fn take(&self, len: usize) -> BytesMut {
        let mut buf = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    /// Keeps a range's buffer if nothing else holds it.
    fn give(&self, range: Bytes) {
        if let (Ok(buf), Ok(mut pool)) = (range.try_into_mut(), self.0.lock()) {
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
    }
}

/// Range buffers kept for reuse: those in flight, queued and being read.
const POOL_MAX: usize = 16;

/// Fetches `size` bytes of `key` as ranges, `concurrency` at a time, and
/// sends them in order.
async fn fetch_ranges(
    store: S3Store,
    key: String,
    size: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    pool: Pool,
) {
    let mut pending = VecDeque::new();
    let mut next = 0u64;
    loop {
        while pending.len() < store.s.concurrency && next < size {
            let end = (next + RANGE).min(size);
            let (st, k, p) = (store.clone(), key.clone(), pool.clone());
            pending.push_back(tokio::spawn(async move {
                fetch_range(&st, &k, next, end, &p).await
            }));
            next = end;
        }
        let Some(h) = pending.pop_front() else { return };
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(format!(
                "range download task failed: {e}"
            ))),
        };
        let failed = r.is_err();
        if tx.send(r).await.is_err() || failed {
            // The reader went away or a range failed: stop the rest.
            for h in pending {
                h.abort();
            }
            return;
        }
    }
}

/// One range, copied into one buffer of its size as the body arrives. The
/// body's own chunks are views of the HTTP client's read buffers, so
/// holding them (as this did) kept more than the range alive: restoring a
/// 190 MB object peaked at 139 to 144 MiB that way, 116 to 130 with the
/// copy, in the same time (BENCHMARKS.md).
async fn fetch_range(
    store: &S3Store,
    key: &str,
    start: u64,
    end: u64,
    pool: &Pool,
) -> Result<Bytes, std::io::Error> {
    let mut last = String::new();
    let mut buf = pool.take(usize::try_from(end - start).unwrap_or(0));
    for attempt in 0..RANGE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        // The SDK already retried what can be retried before the body.
        let r = store
            .get_object(key, Some(format!("bytes={start}-{}", end - 1)))
            .await
            .map_err(std::io::Error::other)?;
        let mut body = r.body;
        buf.clear();
        let read = loop {
            match body.next().await {
                // A store that ignores Range sends the whole object: stop
                // at the range's size rather than hold it all.
                Some(Ok(chunk)) if (buf.len() + chunk.len()) as u64 > end - start => {
                    break Ok(false);
                }
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => break Err(e),
                None => break Ok(true),
            }
        };
        match read {
            Ok(true) if buf.len() as u64 == end - start => return Ok(buf.freeze()),
            Ok(true) => last = format!("got {} bytes of range {start}-{end}", buf.len()),
            Ok(false) => last = format!("got more than the {} bytes asked for", end - start),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(key, start, attempt, error = %last, "range download failed, retrying");
    }
    Err(std::io::Error::other(format!(
        "{}: reading {key} at byte {start} failed {RANGE_ATTEMPTS} times: {last}",
        store.s.describe
    )))
}

/// An `AsyncRead` over a channel of ranges.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    /// The range being read and how far.
    current: Option<(Bytes, usize)>,
    pool: Pool,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.current {
                Some((range, pos)) if *pos < range.len() => {
                    let n = (range.len() - *pos).min(buf.remaining());
                    buf.put_slice(&range[*pos..*pos + n]);
                    *pos += n;
                    return Poll::Ready(Ok(()));
                }
                Some(_) => {
                    if let Some((range, _)) = this.current.take() {
                        this.pool.give(range);
                    }
                }
                None => match this.rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                    Poll::Ready(Some(Ok(range))) => this.current = Some((range, 0)),
                },
            }
        }
    }
}

/// A streaming upload: a single PUT if it stays under one part, else a
/// multipart upload.
struct S3Upload {
    client: Client,
    s: Arc<Settings>,
    key: String,
    full_key: String,
    upload_id: Option<String>,
    buf: BytesMut,
    initial: u64,
    next_part: u32,
    in_flight: JoinSet<Result<CompletedPart, StoreError>>,
    parts: Vec<CompletedPart>,
    total: u64,
    done: bool,
}

impl S3Upload {
    fn current_part_size(&self) -> u64 {
        part_size(self.initial, self.s.equal_parts, self.next_part)
    }

    async fn create(&mut self) -> Result<String, StoreError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let r = self
            .client
            .create_multipart_upload()
            .bucket(&self.s.bucket)
            .key(&self.full_key)
            .set_storage_class(self.s.storage_class.clone())
            .set_server_side_encryption(self.s.sse.clone())
            .set_ssekms_key_id(self.s.sse_kms_key_id.clone())
            .send()
            .await
            .map_err(|e| map_error(&self.s, "start multipart upload", &self.key, e))?;
        let id = r.upload_id().ok_or_else(|| StoreError::Backend {
            store: self.s.describe.clone(),
            message: format!(
                "the server started an upload of {} without an upload id",
                self.key
            ),
            source: None,
        })?;
        self.upload_id = Some(id.to_string());
        tracing::debug!(key = %self.key, part_size = self.initial, "multipart upload started");
        Ok(id.to_string())
    }

    /// Waits for one part in flight.
    async fn reap_one(&mut self) -> Result<(), StoreError> {
        match self.in_flight.join_next().await {
            None => Ok(()),
            Some(Ok(Ok(p))) => {
                self.parts.push(p);
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(StoreError::Backend {
                store: self.s.describe.clone(),
                message: format!("part upload task failed: {e}"),
                source: None,
            }),
        }
    }

    /// Starts uploading the next `len` buffered bytes as a part.
    async fn send_part(&mut self, len: usize) -> Result<(), StoreError> {
        if self.next_part > MAX_PARTS {
            return Err(StoreError::Backend {
                store: self.s.describe.clone(),
                message: format!(
                    "{} needs more than {MAX_PARTS} parts of {} bytes: raise --s3-part-size",
                    self.key, self.initial
                ),
                source: None,
            });
        }
        let upload_id = self.create().await?;
        while self.in_flight.len() >= self.s.concurrency {
            self.reap_one().await?;
        }
        let body = self.buf.split_to(len).freeze();
        let n = self.next_part;
        self.next_part += 1;
        let (client, s, full_key, key) = (
            self.client.clone(),
            self.s.clone(),
            self.full_key.clone(),
            self.key.clone(),
        );
        self.in_flight.spawn(async move {
            let r = client
                .upload_part()
                .bucket(&s.bucket)
                .key(&full_key)
                .upload_id(upload_id)
                .part_number(n as i32)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| map_error(&s, "upload part", &key, e))?;
            Ok(CompletedPart::builder()
                .set_e_tag(r.e_tag().map(str::to_string))
                .part_number(n as i32)
                .build())
        });
        Ok(())
    }

    async fn try_complete(&mut self) -> Result<u64, StoreError> {
        let Some(upload_id) = self.upload_id.clone() else {
            // Small object: one PUT.
            let body = std::mem::take(&mut self.buf).freeze();
            self.client
                .put_object()
                .bucket(&self.s.bucket)
                .key(&self.full_key)
                .set_storage_class(self.s.storage_class.clone())
                .set_server_side_encryption(self.s.sse.clone())
                .set_ssekms_key_id(self.s.sse_kms_key_id.clone())
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| map_error(&self.s, "put", &self.key, e))?;
            return Ok(self.total);
        };
        if !self.buf.is_empty() {
            self.send_part(self.buf.len()).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        self.parts.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.s.bucket)
            .key(&self.full_key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_error(&self.s, "complete multipart upload", &self.key, e))?;
        tracing::debug!(key = %self.key, parts = self.next_part - 1, bytes = self.total, "multipart upload complete");
        Ok(self.total)
    }

    async fn abort_inner(&mut self) -> Result<(), StoreError> {
        self.done = true;
        // Stop parts in flight first: a part that lands after the abort
        // would be stored (and billed) again.
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        match self.upload_id.take() {
            Some(id) => abort_upload(&self.client, &self.s, &self.full_key, &id).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.total += data.len() as u64;
        self.buf.extend_from_slice(&data);
        loop {
            let size = self.current_part_size();
            if (self.buf.len() as u64) < size {
                return Ok(());
            }
            if let Err(e) = self.send_part(size as usize).await {
                if let Err(ae) = self.abort_inner().await {
                    tracing::warn!(key = %self.key, error = %ae, "aborting the multipart upload failed");
                }
                return Err(e);
            }
        }
    }

    async fn complete(mut self: Box<Self>) -> Result<u64, StoreError> {
        match self.try_complete().await {
            Ok(n) => {
                self.done = true;
                Ok(n)
            }
            Err(e) => {
                if let Err(ae) = self.abort_inner().await {
                    tracing::warn!(key = %self.key, error = %ae, "aborting the multipart upload failed");
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.abort_inner().await
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // Dropped mid-way (a cancelled task): abort in the background so no
        // parts are left billing; `prune` catches what this misses.
        if self.done {
            return;
        }
        if let (Some(id), Ok(rt)) = (self.upload_id.take(), tokio::runtime::Handle::try_current()) {
            let (client, s, key) = (self.client.clone(), self.s.clone(), self.full_key.clone());
            rt.spawn(async move {
                if let Err(e) = abort_upload(&client, &s, &key, &id).await {
                    tracing::warn!(%key, error = %e, "aborting an abandoned multipart upload failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranges_read_in_order_and_their_buffers_come_back_for_reuse() {
        use tokio::io::AsyncReadExt;
        let pool = Pool::default();
        let (tx, rx) = mpsc::channel(4);
        let mut want = Vec::new();
        for i in 0..3u8 {
            let mut buf = pool.take(1000);
            buf.extend(std::iter::repeat_n(i, 1000));
            want.extend_from_slice(&buf);
            tx.send(Ok(buf.freeze())).await.expect("sent");
        }
        // A range still held elsewhere is read but not taken back.
        let held = Bytes::from(vec![9u8; 10]);
        want.extend_from_slice(&held);
        tx.send(Ok(held.clone())).await.expect("sent");
        drop(tx);
        let mut r = ChannelReader {
            rx,
            current: None,
            pool: pool.clone(),
        };
        let mut got = Vec::new();
        let mut small = [0u8; 300];
        loop {
            let n = r.read(&mut small).await.expect("reads");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, want);
        assert_eq!(pool.0.lock().expect("lock").len(), 3);
        let again = pool.take(1000);
        assert!(again.is_empty() && again.capacity() >= 1000);
        assert_eq!(pool.0.lock().expect("lock").len(), 2);
    }

    #[test]
    fn growing_parts_hold_five_tib() {
        let mut total = 0u64;
        for n in 1..=MAX_PARTS {
            let p = part_size(DEFAULT_PART, false, n);
            assert!((MIN_PART..=MAX_PART).contains(&p));
            total += p;
        }
        assert!(total >= 5 << 40, "{total}");
        assert_eq!(part_size(DEFAULT_PART, false, 1000), DEFAULT_PART);
        assert_eq!(part_size(DEFAULT_PART, false, 1001), 2 * DEFAULT_PART);
    }

    #[test]
    fn equal_parts_are_sized_from_the_hint() {
        assert_eq!(initial_part_size(None, None, true), DEFAULT_PART);
        assert_eq!(initial_part_size(Some(1), None, false), MIN_PART);
        let hint = 200u64 << 30;
        let p = initial_part_size(None, Some(hint), true);
        assert!(p * u64::from(MAX_PARTS) >= hint + hint / 4);
        assert_eq!(part_size(p, true, 9999), p);
        assert_eq!(initial_part_size(Some(u64::MAX), None, false), MAX_PART);
    }

    #[test]
    fn error_chain_is_cut_at_a_char_boundary() {
        let long = std::io::Error::other("é".repeat(MAX_DETAIL));
        let shown = error_chain(&long);
        assert!(shown.ends_with(" [...]"), "{shown}");
        assert!(shown.len() <= MAX_DETAIL + " [...]".len());
    }
}
