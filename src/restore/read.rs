//! The read pipeline's threads: stored object → SHA-256 → AEAD open →
//! zstd → CRC-64 + structure check → (restore only) the file writer.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use replvault_protocol::rdb::{CheckError, Checker, Checksum, Deferred};
use ring::digest;
use tokio_util::io::SyncIoBridge;

use super::decompress::{Decode, Decoded, Ticket};
use super::direct::{ALIGN, Mode, Sink};
use super::{ReadReport, disk_error};
use crate::crypto::{Decryptor, MasterKey, StreamError};
use crate::store::StoreError;
use crate::vault::{Manifest, Vault, VaultError};

/// Why the checking thread stopped before the end.
enum Stop {
    /// The RDB failed the check.
    Check(CheckError),
    /// The data did not decompress.
    Decode(std::io::Error),
    /// A thread of ours failed.
    Internal(&'static str),
}

/// What the checking thread found.
struct Checked {
    checker: Checker,
    stop: Option<Stop>,
    /// The restored file, or why writing it failed (restore only).
    file: Option<std::io::Result<File>>,
}

/// Decoded pieces (a 4 MiB zstd frame, or 1 MiB of a stream, each)
/// queued for the checker: two keep both decoders busy while the checker
/// waits for the oldest.
const TICKETS: usize = 2;
/// Pieces queued from the checker to the writer.
const WRITE_DEPTH: usize = 1;
/// Pieces queued from the checker to the content checker.
const CONTENT_DEPTH: usize = 1;

/// Decoded bytes, shared by the threads that check and write them.
type SharedDecoded = Arc<Decoded>;

/// The checking thread: checks each decoded piece, in stream order, then
/// hands it to the file-writing thread. Writing (the direct write, or a
/// copy into the page cache or the aligned buffer) is a good share of
/// the work, so it runs beside the check instead of after it. So does
/// checking what is inside LZF bodies and encoded blobs, which costs more
/// than walking the records on data with compressed values or small
/// collections: the checker leaves it to the content thread.
fn check(tickets: Receiver<Ticket>, sink: Option<Sink>) -> std::io::Result<Checked> {
    let (content_tx, content_rx) = std::sync::mpsc::sync_channel(CONTENT_DEPTH);
    let content = std::thread::Builder::new()
        .name("replvault-content".into())
        .spawn(move || check_content(content_rx))?;
    let (tx, writer) = match sink {
        Some(sink) => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<SharedDecoded>(WRITE_DEPTH);
            let writer = std::thread::Builder::new()
                .name("replvault-write".into())
                .spawn(move || write_file(sink, rx))?;
            (Some(tx), Some(writer))
        }
        None => (None, None),
    };
    let mut checker = Checker::new();
    let mut stop = None;
    for ticket in tickets {
        let chunk = match ticket.recv() {
            Ok(Ok(chunk)) => Arc::new(chunk),
            Ok(Err(e)) => {
                stop = Some(Stop::Decode(e));
                break;
            }
            // Its decoder went away with the stage: the caller has the cause.
            Err(_) => break,
        };
        let (deferred, fed) = checker.feed_deferring(&chunk);
        if !deferred.is_empty() && content_tx.send((Arc::clone(&chunk), deferred)).is_err() {
            // The content thread found a fault: its error is reported.
            break;
        }
        if let Err(e) = fed {
            stop = Some(Stop::Check(e));
            break;
        }
        if let Some(tx) = &tx
            && tx.send(chunk).is_err()
        {
            // The writer failed: its error is reported.
            break;
        }
    }
    // The loop dropped `tickets`, which stops the zstd stage; closing the
    // queues lets the content thread and the writer finish what they hold.
    drop(content_tx);
    drop(tx);
    match content.join() {
        // A content fault comes before anything the checker found after it.
        Ok(Err(e)) => stop = Some(Stop::Check(e)),
        Ok(Ok(())) => {}
        Err(_) => stop = Some(Stop::Internal("the content check thread panicked")),
    }
    let file = writer.map(|w| {
        w.join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the write thread panicked")))
    });
    Ok(Checked {
        checker,
        stop,
        file,
    })
}

/// The content-checking thread: runs the checks the checker deferred, piece
/// by piece in stream order, and stops at the first fault.
fn check_content(pieces: Receiver<(SharedDecoded, Deferred)>) -> Result<(), CheckError> {
    for (piece, deferred) in pieces {
        deferred.check(&piece)?;
    }
    Ok(())
}

/// The file-writing thread.
fn write_file(mut sink: Sink, chunks: Receiver<SharedDecoded>) -> std::io::Result<File> {
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
pub(super) fn check_key(m: &Manifest, key: Option<&MasterKey>) -> Result<(), VaultError> {
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

/// Checks, from the store's listing, that the data object has the size the
/// manifest records, before any of it is read: a cut or lengthened object
/// fails here, with both sizes, rather than somewhere in the stream.
async fn check_stored_size(vault: &Vault, m: &Manifest) -> Result<(), VaultError> {
    let store = vault.store();
    let listed = store.list(&m.stored.key).await?;
    let Some(object) = listed.iter().find(|o| o.key == m.stored.key) else {
        return Err(StoreError::NotFound {
            store: store.describe(),
            key: m.stored.key.clone(),
        }
        .into());
    };
    if object.size != m.stored.bytes {
        return Err(VaultError::Mismatch {
            id: m.id.clone(),
            what: format!(
                "its data object is {} bytes, the manifest says {} (size checked before reading): \
                 the object was cut short or added to",
                object.size, m.stored.bytes
            ),
        });
    }
    Ok(())
}

/// Reads backup `m` through every check; writes the RDB to `sink` if given.
///
/// One thread reads, hashes and decrypts; the zstd stage decodes (two
/// frames at a time, or one stream for older backups); one thread checks;
/// one writes the file. None waits for another's CPU work.
pub(super) async fn read(
    vault: &Vault,
    m: &Manifest,
    key: Option<MasterKey>,
    sink: Option<Sink>,
) -> Result<ReadReport, VaultError> {
    check_key(m, key.as_ref())?;
    check_stored_size(vault, m).await?;
    let stream = vault.store().get_reader(&m.stored.key).await?;
    let mut bridge = SyncIoBridge::new(stream);
    let (tickets, tickets_rx) = std::sync::mpsc::sync_channel::<Ticket>(TICKETS);
    let checker_thread = std::thread::Builder::new()
        .name("replvault-check".into())
        .spawn(move || check(tickets_rx, sink))
        .map_err(|e| VaultError::Pipeline(format!("cannot start the check thread: {e}")))?;
    let m2 = m.clone();
    let decoded = tokio::task::spawn_blocking(move || -> Result<(u64, String), VaultError> {
        let mut dec = Decryptor::new(key);
        let mut z = Decode::new(tickets, ALIGN);
        let mut sha = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut stored = 0u64;
        // A `BrokenPipe` from the zstd stage: the checker has the cause.
        let zstd = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                VaultError::Aborted
            } else {
                VaultError::Pipeline(e.to_string())
            }
        };
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
            dec.push(&buf[..n], z.input())?;
            z.pushed().map_err(zstd)?;
        }
        dec.finish(z.input())?;
        z.pushed().map_err(zstd)?;
        z.finish().map_err(zstd)?;
        Ok((stored, hex::encode(sha.finish().as_ref())))
    })
    .await
    .map_err(|e| VaultError::Pipeline(e.to_string()));
    let checked = checker_thread
        .join()
        .map_err(|_| VaultError::Pipeline("the check thread panicked".into()))?
        .map_err(|e| VaultError::Pipeline(format!("cannot start the write thread: {e}")))?;
    // The checker's stop, in stream order, explains a stopped stage best.
    match checked.stop {
        Some(Stop::Check(se)) => return Err(VaultError::Corrupt(se)),
        Some(Stop::Decode(e)) => {
            return Err(VaultError::Mismatch {
                id: m.id.clone(),
                what: format!("the data does not decompress: {e}"),
            });
        }
        Some(Stop::Internal(what)) => return Err(VaultError::Pipeline(what.into())),
        None => {}
    }
    let file = match checked.file {
        Some(Err(fe)) => return Err(disk_error(&fe, m.rdb.bytes)),
        Some(Ok(f)) => Some(f),
        None => None,
    };
    let (stored, sha) = match decoded? {
        Ok(v) => v,
        Err(VaultError::Aborted) => {
            return Err(VaultError::Pipeline(
                "the zstd stage stopped without saying why".into(),
            ));
        }
        Err(e) => return Err(e),
    };
    let bytes = checked.checker.offset();
    let summary = checked.checker.finish()?;
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use replvault_protocol::rdb::CheckErrorKind;

    use std::path::Path;

    use replvault_protocol::rdb::Summary;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/rdb")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The checker checking everything in place, fed the same pieces.
    fn inline(bytes: &[u8], size: usize) -> Result<Summary, CheckError> {
        let mut s = Checker::new();
        for p in bytes.chunks(size) {
            s.feed(p)?;
        }
        s.finish()
    }

    /// The checker's verdict on `bytes` handed over in pieces of `size`,
    /// as `read` takes it.
    fn checked(bytes: &[u8], size: usize) -> Result<Summary, CheckError> {
        let pieces: Vec<&[u8]> = bytes.chunks(size).collect();
        let (tx, rx) = sync_channel::<Ticket>(pieces.len());
        for p in pieces {
            let (ptx, prx) = sync_channel(1);
            ptx.send(Ok(p.to_vec().into())).unwrap();
            tx.send(prx).unwrap();
        }
        drop(tx);
        let c = check(rx, None).unwrap();
        match c.stop {
            Some(Stop::Check(e)) => Err(e),
            Some(Stop::Decode(e)) => panic!("decode error {e}"),
            Some(Stop::Internal(what)) => panic!("{what}"),
            None => c.checker.finish(),
        }
    }

    fn content_fault(e: &CheckError) -> bool {
        matches!(e.kind, CheckErrorKind::Lzf(_) | CheckErrorKind::Blob { .. })
    }

    #[test]
    fn the_content_thread_reports_what_the_inline_check_does() {
        let mut content = 0;
        for name in ["redis-7.0.15.rdb", "redis-7.0.15-nocompress.rdb"] {
            let bytes = fixture(name);
            assert_eq!(checked(&bytes, 4096), inline(&bytes, 4096), "{name}");
            for p in (0..bytes.len()).step_by(37) {
                let mut b = bytes.clone();
                b[p] ^= 0x5A;
                let want = inline(&b, 4096);
                assert_eq!(checked(&b, 4096), want, "{name}: flip at {p}");
                content += usize::from(want.as_ref().is_err_and(content_fault));
            }
        }
        eprintln!("{content} flips hit a string's content");
        assert!(content > 50, "only {content} flips hit a string's content");
    }

    #[test]
    fn a_content_fault_wins_over_a_later_check_error() {
        let bytes = fixture("redis-7.0.15.rdb");
        // A flip inside a compressed string or a blob.
        let (p, fault) = (0..bytes.len())
            .find_map(|p| {
                let mut b = bytes.clone();
                b[p] ^= 0x5A;
                inline(&b, b.len())
                    .err()
                    .filter(content_fault)
                    .filter(|e| e.offset < bytes.len() as u64 / 2)
                    .map(|e| (p, e))
            })
            .expect("no flip hits a string's content");
        let mut b = bytes.clone();
        b[p] ^= 0x5A;
        // The second half garbled too: the record walk fails there, after
        // it has handed the fault's check to the content thread.
        let half = b.len() / 2;
        b[half..].fill(0xF6);
        assert_eq!(checked(&b, b.len()).err(), Some(fault));
        // In smaller pieces too, where the fault's offset can move to the
        // piece a string's last part is in, as the inline check has it.
        for size in [4096, 1000] {
            let want = inline(&b, size).err();
            assert!(want.as_ref().is_some_and(content_fault), "{want:?}");
            assert_eq!(checked(&b, size).err(), want, "pieces of {size}");
        }
    }
}
