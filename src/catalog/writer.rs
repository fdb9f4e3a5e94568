//! Writing a backup: raw RDB → scan (CRC-64 + structure) → zstd → AEAD →
//! upload, in one pass with bounded memory, the manifest written last.
//!
//! Four stages run concurrently: the caller's task sends RDB chunks; a
//! worker thread scans them and cuts them into frames; a zstd thread
//! compresses each frame and encrypts it; an upload task hashes and
//! writes to the store.
//! Bounded channels between them hold memory at a few MiB and let the
//! slowest stage set the pace.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use replvault_protocol::rdb::{Checker, Checksum, Summary};
use ring::digest;
use tokio::sync::mpsc;

use super::frames::FrameWriter;
use super::manifest::{CompressionInfo, EncryptionInfo, Manifest, RdbInfo, SourceInfo, StoredInfo};
use super::{VaultError, WriteOptions, data_key, manifest_key};
use crate::crypto::stream::SEGMENT;
use crate::crypto::{Encryptor, MasterKey};
use crate::store::{Store, Upload, UploadOptions};

/// Encrypted output is handed to the uploader in chunks of about this size.
const OUT_CHUNK: usize = 1 << 20;
/// Chunks in flight between stages.
const DEPTH: usize = 8;

enum Msg {
    Data(Bytes),
    End,
}

struct WorkerOut {
    summary: Summary,
    rdb_bytes: u64,
}

type UploadResult = Result<(Box<dyn Upload>, String, u64), VaultError>;

/// A backup being written. Dropping it without `finish` or `abort` leaves
/// no visible backup (no manifest); call [`BackupWriter::abort`] to remove
/// the partial data at once.
pub struct BackupWriter {
    id: String,
    store: Arc<dyn Store>,
    started: chrono::DateTime<Utc>,
    clock: Instant,
    opts: WriteOptions,
    key_id: Option<String>,
    tx: Option<mpsc::Sender<Msg>>,
    worker: Option<std::thread::JoinHandle<Result<WorkerOut, VaultError>>>,
    uploader: Option<tokio::task::JoinHandle<UploadResult>>,
    rdb_sent: u64,
}

/// Output side of the zstd thread: encrypts and forwards to the uploader.
struct Sealer {
    enc: Option<Encryptor>,
    buf: Vec<u8>,
    out: mpsc::Sender<Bytes>,
}

impl Sealer {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(OUT_CHUNK + SEGMENT),
        ));
        self.out
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload stopped"))
    }

    fn finish(mut self) -> std::io::Result<()> {
        if let Some(enc) = self.enc.take() {
            enc.finish(&mut self.buf);
        }
        self.send()
    }
}

impl Write for Sealer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(enc) = self.enc.as_mut() {
            enc.push(data, &mut self.buf);
        }
        if self.buf.len() >= OUT_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn worker(
    mut rx: mpsc::Receiver<Msg>,
    sealer: Sealer,
    level: i32,
) -> Result<WorkerOut, VaultError> {
    let io = |e: std::io::Error| VaultError::Pipeline(e.to_string());
    let mut checker = Checker::new();
    // Frames compress (and encrypt) on a thread of their own, so the
    // scan overlaps with them instead of serialising with them.
    let mut z = FrameWriter::start(sealer, level).map_err(io)?;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => {
                checker.feed(&chunk)?;
                z.write(&chunk).map_err(io)?;
            }
            Some(Msg::End) => break,
            None => return Err(VaultError::Aborted),
        }
    }
    let rdb_bytes = checker.offset();
    let summary = checker.finish()?;
    let sealer = z.finish().map_err(io)?;
    sealer.finish().map_err(io)?;
    Ok(WorkerOut { summary, rdb_bytes })
}

async fn uploader(mut rx: mpsc::Receiver<Bytes>, mut upload: Box<dyn Upload>) -> UploadResult {
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut n = 0u64;
    while let Some(chunk) = rx.recv().await {
        sha.update(&chunk);
        n += chunk.len() as u64;
        if let Err(e) = upload.write(chunk).await {
            let _ = upload.abort().await;
            return Err(e.into());
        }
    }
    Ok((upload, hex::encode(sha.finish().as_ref()), n))
}

impl BackupWriter {
    pub(super) async fn start(
        store: Arc<dyn Store>,
        id: String,
        key: Option<&MasterKey>,
        opts: WriteOptions,
    ) -> Result<Self, VaultError> {
        let enc = Encryptor::new(key)?;
        let upload = store
            .put_multipart(
                &data_key(&id),
                UploadOptions {
                    size_hint: opts.size_hint,
                },
            )
            .await?;
        let (tx, rx) = mpsc::channel(DEPTH);
        let (out_tx, out_rx) = mpsc::channel(DEPTH);
        let sealer = Sealer {
            enc: Some(enc),
            buf: Vec::with_capacity(OUT_CHUNK + SEGMENT),
            out: out_tx,
        };
        let level = opts.compression_level;
        let worker = std::thread::Builder::new()
            .name("replvault-pipeline".into())
            .spawn(move || worker(rx, sealer, level))
            .map_err(|e| VaultError::Pipeline(format!("cannot start the pipeline thread: {e}")))?;
        let uploader = tokio::spawn(uploader(out_rx, upload));
        Ok(BackupWriter {
            id,
            store,
            started: Utc::now(),
            clock: Instant::now(),
            opts,
            key_id: key.map(MasterKey::key_id),
            tx: Some(tx),
            worker: Some(worker),
            uploader: Some(uploader),
            rdb_sent: 0,
        })
    }

    /// The new backup's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// RDB bytes accepted so far.
    pub fn rdb_bytes(&self) -> u64 {
        self.rdb_sent
    }

    /// Feeds the next raw RDB bytes (waits when the pipeline is full).
    /// Fails as soon as the checker rejects the data or the upload fails.
    pub async fn write(&mut self, rdb: Bytes) -> Result<(), VaultError> {
        let n = rdb.len() as u64;
        let sent = match &self.tx {
            Some(tx) => tx.send(Msg::Data(rdb)).await.is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.failure().await);
        }
        self.rdb_sent += n;
        Ok(())
    }

    /// The error that stopped the pipeline.
    async fn failure(&mut self) -> VaultError {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            match join_worker(w).await {
                Err(VaultError::Aborted) | Ok(_) => {}
                Err(e) => return e,
            }
        }
        if let Some(u) = self.uploader.take() {
            match u.await {
                Ok(Err(e)) => return e,
                Ok(Ok((upload, _, _))) => {
                    let _ = upload.abort().await;
                }
                Err(e) => return VaultError::Pipeline(e.to_string()),
            }
        }
        VaultError::Pipeline("the backup pipeline stopped".into())
    }

    /// Checks the scan, completes the data upload, writes the manifest.
    pub async fn finish(mut self, source: SourceInfo) -> Result<Manifest, VaultError> {
        let res = self.finish_inner(source).await;
        if res.is_err() {
            self.cleanup().await;
        }
        res
    }

    async fn finish_inner(&mut self, mut source: SourceInfo) -> Result<Manifest, VaultError> {
        let tail = Instant::now();
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::End).await;
        }
        let worker = self.worker.take().ok_or(VaultError::Aborted)?;
        let out = match join_worker(worker).await {
            Ok(out) => out,
            Err(e) => {
                // The uploader may hold the real cause (e.g. a store error).
                if let Some(u) = self.uploader.take()
                    && let Ok(Err(ue)) = u.await
                {
                    return Err(ue);
                }
                return Err(e);
            }
        };
        let uploader = self.uploader.take().ok_or(VaultError::Aborted)?;
        let (upload, sha256, stored) = uploader
            .await
            .map_err(|e| VaultError::Pipeline(e.to_string()))??;
        let drained = tail.elapsed();
        upload.complete().await?;
        let stored_in = tail.elapsed();

        let summary = out.summary;
        if source.version.is_none() {
            source.version = summary
                .aux
                .get("valkey-ver")
                .or(summary.aux.get("redis-ver"))
                .cloned();
        }
        if source.server.is_none() {
            source.server = Some(
                if summary.aux.contains_key("valkey-ver") || summary.magic == "VALKEY" {
                    "valkey".into()
                } else {
                    "redis".into()
                },
            );
        }
        let finished = Utc::now();
        let manifest = Manifest {
            format: super::manifest::FORMAT,
            id: self.id.clone(),
            started_at: self.started,
            finished_at: finished,
            duration_secs: self.clock.elapsed().as_secs_f64(),
            source,
            rdb: RdbInfo {
                bytes: out.rdb_bytes,
                crc64: match summary.checksum {
                    Checksum::Verified { crc64 } => Some(format!("{crc64:016x}")),
                    _ => None,
                },
            },
            summary,
            stored: StoredInfo {
                key: data_key(&self.id),
                bytes: stored,
                sha256,
            },
            compression: CompressionInfo {
                algorithm: "zstd".into(),
                level: self.opts.compression_level,
            },
            encryption: EncryptionInfo {
                algorithm: if self.key_id.is_some() {
                    "aes-256-gcm-stream"
                } else {
                    "none"
                }
                .into(),
                key_id: self.key_id.clone(),
                segment_size: SEGMENT as u32,
            },
            tool: format!("replvault {}", env!("CARGO_PKG_VERSION")),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| VaultError::Pipeline(e.to_string()))?;
        // The commit point: only now does the backup exist.
        self.store
            .put(&manifest_key(&self.id), Bytes::from(json))
            .await?;
        // The time after the last RDB byte, where a backup trails the
        // server: what is left to compress, then the store's commits.
        tracing::debug!(
            drained = ?drained,
            data_committed = ?stored_in,
            manifest_committed = ?tail.elapsed(),
            "backup committed"
        );
        Ok(manifest)
    }

    /// Discards the backup: stops the pipeline, aborts the upload, removes
    /// anything written.
    pub async fn abort(mut self) -> Result<(), VaultError> {
        self.cleanup().await;
        Ok(())
    }

    async fn cleanup(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = join_worker(w).await;
        }
        if let Some(u) = self.uploader.take()
            && let Ok(Ok((upload, _, _))) = u.await
        {
            let _ = upload.abort().await;
        }
        let _ = self.store.delete(&data_key(&self.id)).await;
    }
}

async fn join_worker(
    w: std::thread::JoinHandle<Result<WorkerOut, VaultError>>,
) -> Result<WorkerOut, VaultError> {
    tokio::task::spawn_blocking(move || w.join())
        .await
        .map_err(|e| VaultError::Pipeline(e.to_string()))?
        .map_err(|_| VaultError::Pipeline("the pipeline thread panicked".into()))?
}
