//! Streaming uploads: one PUT below a part, else a multipart upload whose
//! parts grow so that an upload of unknown length never hits 10,000 parts;
//! any failure aborts it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::{Settings, map_error};
use crate::store::{StoreError, Upload};

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

pub(super) async fn abort_upload(
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

/// A streaming upload: a single PUT if it stays under one part, else a
/// multipart upload.
pub(super) struct S3Upload {
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
    /// An upload of `key` (`full_key` with the vault's prefix) whose
    /// first part holds `initial` bytes.
    pub(super) fn new(
        client: Client,
        s: Arc<Settings>,
        key: &str,
        full_key: String,
        initial: u64,
    ) -> Self {
        S3Upload {
            client,
            s,
            key: key.to_string(),
            full_key,
            upload_id: None,
            buf: BytesMut::new(),
            initial,
            next_part: 1,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            total: 0,
            done: false,
        }
    }

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
}
