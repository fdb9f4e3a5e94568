//! Reading a backup back: stored object → SHA-256 → AEAD open → zstd →
//! CRC-64 + structure scan → (restore only) a temp file beside the target,
//! written with `O_DIRECT` where possible, fsynced and renamed into place.
//! One pass, bounded memory.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use replvault_protocol::rdb::{Checksum, ScanError, Scanner, Summary};
use ring::digest;
use tokio_util::io::SyncIoBridge;

use super::direct::{Mode, Sink};
use super::{Manifest, Vault, VaultError};
use crate::crypto::keys::random_bytes;
use crate::crypto::{Decryptor, MasterKey, StreamError};

/// What reading a backup found.
#[derive(Clone, Debug)]
pub struct ReadReport {
    /// The scan of the restored RDB.
    pub summary: Summary,
    /// RDB bytes produced.
    pub rdb_bytes: u64,
    /// Stored bytes read.
    pub stored_bytes: u64,
}

/// What the checking thread found.
struct Checked {
    scanner: Scanner,
    error: Option<ScanError>,
    /// The restored file, or why writing it failed (restore only).
    file: Option<std::io::Result<File>>,
}

/// The checking thread: scans each decompressed chunk, then hands it to
/// the file-writing thread. Writing (a copy into the page cache or the
/// aligned buffer, then the write itself) is a good share of the work, so
/// it runs beside the scan instead of after it.
fn check(chunks: Receiver<Vec<u8>>, sink: Option<Sink>) -> std::io::Result<Checked> {
    let (tx, writer) = match sink {
        Some(sink) => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
            let writer = std::thread::Builder::new()
                .name("replvault-write".into())
                .spawn(move || write_file(sink, rx))?;
            (Some(tx), Some(writer))
        }
        None => (None, None),
    };
    let mut scanner = Scanner::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(e) = scanner.feed(&chunk) {
            error = Some(e);
            break;
        }
        if let Some(tx) = &tx
            && tx.send(chunk).is_err()
        {
            // The writer failed: its error is reported.
            break;
        }
    }
    // The loop dropped `chunks`, which stops the zstd thread; closing the
    // queue lets the writer finish what it holds.
    drop(tx);
    let file = writer.map(|w| {
        w.join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the write thread panicked")))
    });
    Ok(Checked {
        scanner,
        error,
        file,
    })
}

/// The file-writing thread.
fn write_file(mut sink: Sink, chunks: Receiver<Vec<u8>>) -> std::io::Result<File> {
    match sink.mode() {
        Mode::Direct => tracing::debug!("writing the restored file with O_DIRECT"),
        Mode::Buffered => tracing::debug!("writing the restored file through the page cache"),
    }
    for chunk in chunks {
        sink.write(&chunk)?;
    }
    sink.finish()
}

/// Checks the key against the manifest before any download.
fn check_key(m: &Manifest, key: Option<&MasterKey>) -> Result<(), VaultError> {
    match (&m.encryption.key_id, key) {
        (Some(id), None) => Err(StreamError::NoKey(id.clone()).into()),
        (Some(id), Some(k)) if k.key_id() != *id => Err(StreamError::WrongKey {
            backup: id.clone(),
            yours: k.key_id(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Decompressed bytes are handed from the decoding thread to the checking
/// thread in chunks of about this size.
const CHUNK: usize = 1 << 20;
/// Chunks queued from the zstd thread to the checker, and from the
/// checker to the writer.
const DEPTH: usize = 4;
/// Plaintext buffers (about a stored read each) queued for the zstd thread;
/// zstd is the slow stage, so a short queue keeps it fed.
const PLAIN_DEPTH: usize = 2;

/// The zstd stage: decompresses straight into the chunk it hands to the
/// checker thread (no staging buffer between zstd and the chunk).
struct Inflate {
    z: zstd::stream::raw::Decoder<'static>,
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    /// zstd reported the end of a frame and has taken no input since.
    frame_done: bool,
}

impl Inflate {
    fn new(tx: SyncSender<Vec<u8>>) -> std::io::Result<Self> {
        Ok(Inflate {
            z: zstd::stream::raw::Decoder::new()?,
            tx,
            buf: Vec::with_capacity(CHUNK),
            frame_done: false,
        })
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "checker stopped"))
    }

    /// Decompresses all of `input`, sending each chunk once it is full.
    fn push(&mut self, input: &[u8]) -> std::io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut src = InBuffer::around(input);
        loop {
            if self.buf.len() == self.buf.capacity() {
                self.send()?;
            }
            let (len, taken) = (self.buf.len(), src.pos());
            let mut dst = OutBuffer::around_pos(&mut self.buf, len);
            let hint = self.z.run(&mut src, &mut dst)?;
            let full = dst.pos() == dst.capacity();
            // A call that moves nothing says nothing about frame ends.
            if dst.pos() > len || src.pos() > taken {
                self.frame_done = hint == 0;
            }
            // A full buffer may leave decoded bytes inside zstd: go round
            // again with room, even when all input is taken.
            if src.pos() == input.len() && !full {
                return Ok(());
            }
        }
    }

    /// Sends the last chunk; the stream must have ended on a frame boundary.
    fn finish(mut self) -> std::io::Result<()> {
        self.push(&[])?;
        if !self.frame_done {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the zstd stream ends inside a frame",
            ));
        }
        self.send()
    }
}

/// The zstd thread: inflates the plaintext it is sent. Only an explicit
/// end (`None`) finishes the stream; a closed queue means the stage before
/// failed and reports its own error.
fn inflate(
    plain: Receiver<Option<Vec<u8>>>,
    spent: SyncSender<Vec<u8>>,
    out: SyncSender<Vec<u8>>,
) -> std::io::Result<()> {
    let mut z = Inflate::new(out)?;
    for p in plain {
        match p {
            Some(p) => {
                z.push(&p)?;
                // Handed back for reuse; if the queue is full it is freed.
                let _ = spent.try_send(p);
            }
            None => return z.finish(),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the decrypting stage stopped",
    ))
}

/// Reads backup `m` through every check; writes the RDB to `sink` if given.
///
/// Four threads: one reads, hashes and decrypts; one decompresses; one
/// scans; one writes the file. None waits for another's CPU work, and
/// zstd, the largest share, has a core to itself when it can.
async fn read(
    vault: &Vault,
    m: &Manifest,
    key: Option<MasterKey>,
    sink: Option<Sink>,
) -> Result<ReadReport, VaultError> {
    check_key(m, key.as_ref())?;
    let stream = vault.store().get_stream(&m.stored.key).await?;
    let mut bridge = SyncIoBridge::new(stream);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let checker_thread = std::thread::Builder::new()
        .name("replvault-check".into())
        .spawn(move || check(rx, sink))
        .map_err(|e| VaultError::Pipeline(format!("cannot start the check thread: {e}")))?;
    let (plain_tx, plain_rx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(PLAIN_DEPTH);
    let (spent_tx, spent_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(PLAIN_DEPTH + 1);
    let inflate_thread = std::thread::Builder::new()
        .name("replvault-zstd".into())
        .spawn(move || inflate(plain_rx, spent_tx, tx))
        .map_err(|e| VaultError::Pipeline(format!("cannot start the zstd thread: {e}")))?;
    let m2 = m.clone();
    let decoded = tokio::task::spawn_blocking(move || -> Result<(u64, String), VaultError> {
        let mut dec = Decryptor::new(key);
        let mut sha = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut stored = 0u64;
        // The zstd thread stopped: its error (or the checker's) is reported.
        let send = |p: Option<Vec<u8>>| plain_tx.send(p).map_err(|_| VaultError::Aborted);
        loop {
            let n = match bridge.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(VaultError::Io {
                        op: "read",
                        path: m2.stored.key.clone(),
                        source: e,
                    });
                }
            };
            stored += n as u64;
            sha.update(&buf[..n]);
            let mut plain = spent_rx.try_recv().unwrap_or_default();
            plain.clear();
            dec.push(&buf[..n], &mut plain)?;
            send(Some(plain))?;
        }
        let mut plain = Vec::new();
        dec.finish(&mut plain)?;
        send(Some(plain))?;
        send(None)?;
        Ok((stored, hex::encode(sha.finish().as_ref())))
    })
    .await
    .map_err(|e| VaultError::Pipeline(e.to_string()));
    let inflated = inflate_thread
        .join()
        .map_err(|_| VaultError::Pipeline("the zstd thread panicked".into()))?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // A neighbour stopped: its own error is reported.
                return VaultError::Aborted;
            }
            VaultError::Mismatch {
                id: m.id.clone(),
                what: format!("the data does not decompress: {e}"),
            }
        });
    let checked = checker_thread
        .join()
        .map_err(|_| VaultError::Pipeline("the check thread panicked".into()))?
        .map_err(|e| VaultError::Pipeline(format!("cannot start the write thread: {e}")))?;
    // The checker's own failure explains a stopped decoder best.
    if let Some(se) = checked.error {
        return Err(VaultError::Corrupt(se));
    }
    let file = match checked.file {
        Some(Err(fe)) => return Err(disk_error(&fe, m.rdb.bytes)),
        Some(Ok(f)) => Some(f),
        None => None,
    };
    let (stored, sha) = match decoded? {
        Ok(v) => v,
        Err(VaultError::Aborted) => {
            inflated?;
            return Err(VaultError::Aborted);
        }
        Err(e) => return Err(e),
    };
    inflated?;
    let bytes = checked.scanner.offset();
    let summary = checked.scanner.finish()?;
    if let Some(f) = file {
        f.sync_all().map_err(|e| disk_error(&e, m.rdb.bytes))?;
    }
    let mismatch = |what: String| VaultError::Mismatch {
        id: m.id.clone(),
        what,
    };
    if sha != m.stored.sha256 {
        return Err(mismatch(format!(
            "stored object SHA-256 is {sha}, manifest says {}",
            m.stored.sha256
        )));
    }
    if bytes != m.rdb.bytes {
        return Err(mismatch(format!(
            "RDB has {bytes} bytes, manifest says {}",
            m.rdb.bytes
        )));
    }
    let crc = match summary.checksum {
        Checksum::Verified { crc64 } => Some(format!("{crc64:016x}")),
        _ => None,
    };
    if crc != m.rdb.crc64 {
        return Err(mismatch(format!(
            "RDB CRC-64 is {crc:?}, manifest says {:?}",
            m.rdb.crc64
        )));
    }
    Ok(ReadReport {
        summary,
        rdb_bytes: bytes,
        stored_bytes: stored,
    })
}

fn disk_error(e: &std::io::Error, need: u64) -> VaultError {
    let detail = if e.raw_os_error() == Some(28) {
        format!("no space left on device (the restored file needs {need} bytes)")
    } else {
        e.to_string()
    };
    VaultError::Io {
        op: "write",
        path: "the restored file".into(),
        source: std::io::Error::new(e.kind(), detail),
    }
}

/// Verifies backup `m` end to end without writing anything.
pub async fn verify(
    vault: &Vault,
    m: &Manifest,
    key: Option<MasterKey>,
) -> Result<ReadReport, VaultError> {
    read(vault, m, key, None).await
}

/// Refuses a target `restore` would fail on only after reading the whole
/// backup (a directory), or must not replace (an existing file without
/// `force`).
pub fn check_target(out: &Path, force: bool) -> Result<(), VaultError> {
    let shown = out.display().to_string();
    if out.is_dir() {
        let example = out.join("dump.rdb").display().to_string();
        return Err(VaultError::OutputIsDirectory(shown, example));
    }
    if !force && out.symlink_metadata().is_ok() {
        return Err(VaultError::OutputExists(shown));
    }
    Ok(())
}

/// How `restore` writes its file.
#[derive(Clone, Copy, Debug)]
pub struct RestoreOptions {
    /// Replace an existing file at the target.
    pub force: bool,
    /// Write with `O_DIRECT` where the filesystem takes it; otherwise
    /// through the page cache.
    pub direct_io: bool,
}

/// Restores backup `m` to `out`: a temp file beside it, fully checked,
/// fsynced, then renamed. Never leaves a partial file at `out`; refuses an
/// existing `out` unless `opts.force`.
pub async fn restore(
    vault: &Vault,
    m: &Manifest,
    key: Option<MasterKey>,
    out: &Path,
    opts: RestoreOptions,
) -> Result<ReadReport, VaultError> {
    let RestoreOptions { force, direct_io } = opts;
    let shown = out.display().to_string();
    check_target(out, force)?;
    check_key(m, key.as_ref())?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| VaultError::Io {
            op: "restore to",
            path: shown.clone(),
            source: std::io::Error::other("not a file path"),
        })?;
    let mut r = [0u8; 6];
    random_bytes(&mut r).map_err(|e| VaultError::Pipeline(e.to_string()))?;
    let tmp = dir.join(format!(".{name}.replvault-tmp-{}", hex::encode(r)));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| VaultError::Io {
            op: "create",
            path: tmp.display().to_string(),
            source: e,
        })?;
    let sink = if direct_io {
        Sink::new(file)
    } else {
        Sink::with_mode(file, Mode::Buffered)
    };
    let result = read(vault, m, key, Some(sink)).await.and_then(|report| {
        publish(&tmp, out, force).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                VaultError::OutputExists(shown.clone())
            } else {
                VaultError::Io {
                    op: "rename into place",
                    path: shown.clone(),
                    source: e,
                }
            }
        })?;
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn publish(tmp: &Path, out: &Path, force: bool) -> std::io::Result<()> {
    if force {
        std::fs::rename(tmp, out)?;
    } else {
        // link(2) refuses to replace a file that appeared meanwhile.
        std::fs::hard_link(tmp, out)?;
        std::fs::remove_file(tmp)?;
    }
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `pieces` through an `Inflate`, returning what came out.
    fn inflate(pieces: &[&[u8]]) -> (std::io::Result<()>, Vec<u8>) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let drain = std::thread::spawn(move || {
            let mut all = Vec::new();
            for chunk in rx {
                assert!(chunk.len() <= CHUNK, "chunk of {}", chunk.len());
                all.extend_from_slice(&chunk);
            }
            all
        });
        let result = (|| {
            let mut z = Inflate::new(tx)?;
            for p in pieces {
                z.push(p)?;
            }
            z.finish()
        })();
        (result, drain.join().expect("drain thread"))
    }

    fn sample() -> (Vec<u8>, Vec<u8>) {
        // Compressible but not trivial: several chunks of output from two
        // concatenated frames, as a multi-frame writer would produce.
        let data: Vec<u8> = (0u32..1_500_000)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .collect();
        let mut z = zstd::bulk::compress(&data[..data.len() / 3], 3).expect("compress");
        z.extend(zstd::bulk::compress(&data[data.len() / 3..], 3).expect("compress"));
        (data, z)
    }

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let (data, z) = sample();
        for step in [1usize, 7, 4096, 1 << 20, z.len()] {
            let pieces: Vec<&[u8]> = z.chunks(step).collect();
            let (result, out) = inflate(&pieces);
            result.expect("inflate");
            assert!(out == data, "step {step}: output differs");
        }
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_an_error() {
        let (_, z) = sample();
        let (result, _) = inflate(&[&z[..z.len() - 10]]);
        let e = result.expect_err("truncated stream accepted");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        let (result, _) = inflate(&[]);
        assert!(result.is_err(), "an empty stream is not a backup");
    }

    #[test]
    fn garbage_is_an_error() {
        let (_, mut z) = sample();
        z[..16].copy_from_slice(b"not a zstd frame");
        let (result, _) = inflate(&[&z]);
        assert!(result.is_err());
    }
}
