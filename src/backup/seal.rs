//! The sealing stage of a backup: zstd's output is encrypted as it comes
//! (AES-256-GCM STREAM, [`crate::crypto::aead_stream`]) and handed to the
//! uploader in chunks of about [`OUT_CHUNK`] bytes.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::crypto::Encryptor;
use crate::crypto::aead_stream::SEGMENT;

/// Sealed output is handed to the uploader in chunks of about this size.
pub(super) const OUT_CHUNK: usize = 1 << 20;

/// Output side of the zstd thread: encrypts and forwards to the uploader.
pub(super) struct Sealer {
    enc: Option<Encryptor>,
    buf: Vec<u8>,
    out: mpsc::Sender<Bytes>,
}

impl Sealer {
    /// A sealer that encrypts with `enc` and sends to `out`.
    pub(super) fn new(enc: Encryptor, out: mpsc::Sender<Bytes>) -> Self {
        Sealer {
            enc: Some(enc),
            buf: Vec::with_capacity(OUT_CHUNK + SEGMENT),
            out,
        }
    }

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

    pub(super) fn finish(mut self) -> std::io::Result<()> {
        if let Some(enc) = self.enc.take() {
            enc.finish(&mut self.buf);
        }
        self.send()
    }
}

impl std::io::Write for Sealer {
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
