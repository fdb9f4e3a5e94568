//! The zstd stage of a backup: the RDB cut into independent frames of
//! [`FRAME`] bytes, each compressed in one call with its content size in
//! the frame header, so a restore can decode several at once, each straight
//! into a buffer of the right size.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use zstd::zstd_safe;

use crate::vault::FRAME;

/// zstd's shortest match, for levels up to [`MIN_MATCH_UP_TO`]. Their own
/// minimum (5 or 6 bytes) finds the short repeats RDB files are full of
/// (length prefixes, LZF back-references, listpack headers); 7 bytes makes
/// bulk data smaller and faster to decode (BENCHMARKS.md, "Decisions").
const MIN_MATCH: u32 = 7;
/// The highest level [`MIN_MATCH`] applies to; above it zstd's slower
/// strategies are left as they are.
const MIN_MATCH_UP_TO: i32 = 9;
/// Compressed output is written on in slices of at most this size, so the
/// stages after this one keep their buffer sizes.
const OUT_SLICE: usize = 1 << 20;

fn stopped(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, format!("{what} stopped"))
}

fn join<T>(t: JoinHandle<io::Result<T>>, what: &str) -> io::Result<T> {
    t.join()
        .unwrap_or_else(|_| Err(io::Error::other(format!("the {what} thread panicked"))))
}

/// Cuts RDB bytes into frames and compresses them on a thread of their
/// own, which writes the frames, in order, to `W`. The caller's thread
/// fills the next frame while the last one is compressed.
pub struct FrameWriter<W> {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    spent: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> FrameWriter<W> {
    /// Starts the compressing thread, which writes to `out`.
    pub fn start(out: W, level: i32) -> io::Result<Self> {
        // A rendezvous: at most one frame compressing, one filling.
        let (tx, rx) = sync_channel::<Vec<u8>>(0);
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(1);
        let mut z = zstd::bulk::Compressor::new(level)?;
        if level <= MIN_MATCH_UP_TO {
            z.set_parameter(zstd_safe::CParameter::MinMatch(MIN_MATCH))?;
        }
        let thread = std::thread::Builder::new()
            .name("replvault-zstd".into())
            .spawn(move || compress(z, rx, spent_tx, out))?;
        Ok(FrameWriter {
            buf: Vec::with_capacity(FRAME),
            tx: Some(tx),
            spent,
            thread: Some(thread),
        })
    }

    /// Takes the next RDB bytes.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = (FRAME - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == FRAME {
                self.send()?;
            }
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let mut next = self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(FRAME));
        next.clear();
        let frame = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(frame).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.tx = None;
        match self.thread.take().map(|t| join(t, "zstd")) {
            Some(Err(e)) => Err(e),
            _ => Err(stopped("the zstd thread")),
        }
    }

    /// Compresses what is left; returns the output once all is written.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        match self.thread.take() {
            Some(t) => join(t, "zstd"),
            None => Err(stopped("the zstd thread")),
        }
    }
}

/// The compressing thread: one call per frame.
fn compress<W: Write>(
    mut z: zstd::bulk::Compressor<'static>,
    frames: Receiver<Vec<u8>>,
    spent: SyncSender<Vec<u8>>,
    mut out: W,
) -> io::Result<W> {
    let mut packed = Vec::with_capacity(zstd_safe::compress_bound(FRAME));
    for frame in frames {
        z.compress_to_buffer(&frame, &mut packed)?;
        for slice in packed.chunks(OUT_SLICE) {
            out.write_all(slice)?;
        }
        // Handed back for reuse; if the queue is full it is freed.
        let _ = spent.try_send(frame);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compressible but not trivial.
    fn rdb_like(len: usize) -> Vec<u8> {
        (0u32..)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .take(len)
            .collect()
    }

    /// `data` through a `FrameWriter`, written in uneven pieces.
    fn framed(data: &[u8]) -> Vec<u8> {
        let mut w = FrameWriter::start(Vec::new(), 3).expect("start");
        for piece in data.chunks(123_457) {
            w.write(piece).expect("write");
        }
        w.finish().expect("finish")
    }

    /// The content sizes of the frames in `z`.
    fn frame_sizes(mut z: &[u8]) -> Vec<Option<u64>> {
        let mut sizes = Vec::new();
        while !z.is_empty() {
            let n = zstd_safe::find_frame_compressed_size(z).expect("a whole frame");
            sizes.push(zstd_safe::get_frame_content_size(&z[..n]).expect("a header"));
            z = &z[n..];
        }
        sizes
    }

    #[test]
    fn the_writer_makes_frames_of_a_fixed_size_that_declare_it() {
        let data = rdb_like(2 * FRAME + FRAME / 2);
        let z = framed(&data);
        let f = FRAME as u64;
        assert_eq!(frame_sizes(&z), [Some(f), Some(f), Some(f / 2)]);
        assert!(zstd::decode_all(&z[..]).expect("plain zstd reads it") == data);
        assert!(z.len() < data.len() / 4, "{} bytes", z.len());
        // Levels above MIN_MATCH_UP_TO keep zstd's own settings.
        for level in [1, MIN_MATCH_UP_TO, MIN_MATCH_UP_TO + 1, 19] {
            let mut w = FrameWriter::start(Vec::new(), level).expect("start");
            w.write(&data[..100_000]).expect("write");
            let z = w.finish().expect("finish");
            assert!(zstd::decode_all(&z[..]).expect("decode") == data[..100_000]);
        }
    }
}
