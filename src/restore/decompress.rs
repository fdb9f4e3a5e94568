//! The zstd stage of a restore: independent frames decoded on
//! [`DECODERS`] threads at once, each in one call straight into a buffer
//! of its size, starting at a boundary the caller chooses (so the file
//! writer can hand whole blocks to `O_DIRECT` without a copy).
//!
//! Backups written before frames hold one zstd stream of unknown size; the
//! first frame header says which, and such a stream goes through zstd's
//! streaming decoder on one thread.
//!
//! Decoded bytes reach the checker in order as tickets: one channel per
//! decoded buffer, queued in stream order before it is decoded, so frames
//! decoded on different threads need no reordering.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use zstd::zstd_safe;

use crate::vault::{FRAME, MAX_FRAME};

/// Room for plaintext waiting to be split into frames: a frame and a
/// stored read.
const PENDING: usize = FRAME + (1 << 20);
/// Frames decoded at once: one per core on the machines we target.
const DECODERS: usize = 2;
/// The longest zstd frame header (`ZSTD_FRAMEHEADERSIZE_MAX`): with this
/// many bytes the first header says whether the frame declares its size.
const HEADER_MAX: usize = 18;
/// Bytes the streaming decoder hands on at a time.
const STREAM_CHUNK: usize = 1 << 20;

/// Decoded RDB bytes, or why the data does not decompress.
pub type DecodeResult = io::Result<Decoded>;

/// Decoded RDB bytes: a buffer from `start` on. A frame is decoded at the
/// boundary [`Decode::new`] was given, so a restore writes it with
/// `O_DIRECT` as it is, not through a copy into an aligned buffer.
#[derive(Debug)]
pub struct Decoded {
    buf: Vec<u8>,
    start: usize,
}

impl From<Vec<u8>> for Decoded {
    fn from(buf: Vec<u8>) -> Self {
        Decoded { buf, start: 0 }
    }
}

impl std::ops::Deref for Decoded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Where the checker waits for the next piece of RDB.
pub type Ticket = Receiver<DecodeResult>;

fn stopped(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, format!("{what} stopped"))
}

fn join<T>(t: JoinHandle<io::Result<T>>, what: &str) -> io::Result<T> {
    t.join()
        .unwrap_or_else(|_| Err(io::Error::other(format!("the {what} thread panicked"))))
}

/// The zstd stage of a read. The decrypting thread appends plaintext to
/// [`Decode::input`] and calls [`Decode::pushed`]; decoded RDB goes to the
/// checker as tickets, errors included, in stream order.
///
/// An error of kind `BrokenPipe` means the cause is with the checker: this
/// stage queued it there in order, or the checker stopped on its own. Any
/// other error (a thread that cannot start) is this stage's to report.
/// Dropping a `Decode` without [`Decode::finish`] sends no error: the
/// checker sees the stream end, and the caller reports why it stopped.
pub struct Decode {
    tickets: SyncSender<Ticket>,
    /// Plaintext not yet handed on.
    pending: Vec<u8>,
    state: State,
    /// Where decoded frames start in their buffers: a power of two.
    align: usize,
}

enum State {
    /// Waiting for the first frame header.
    Start,
    Frames(Frames),
    OneStream(OneStream),
}

impl Decode {
    /// A decoder that hands its output to the checker through `tickets`,
    /// each decoded frame starting at an `align` boundary of its buffer
    /// (a power of two; 1 for no alignment).
    pub fn new(tickets: SyncSender<Ticket>, align: usize) -> Self {
        Decode {
            tickets,
            pending: Vec::with_capacity(PENDING),
            state: State::Start,
            align,
        }
    }

    /// The buffer to append the next plaintext to.
    pub fn input(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Decodes what was appended to [`Decode::input`], as far as it can.
    pub fn pushed(&mut self) -> io::Result<()> {
        if let State::Start = self.state {
            if self.pending.len() < HEADER_MAX {
                return Ok(());
            }
            self.choose()?;
        }
        match &mut self.state {
            State::Frames(f) => f.split(&mut self.pending, &self.tickets),
            State::OneStream(s) => s.push(&mut self.pending),
            State::Start => Ok(()),
        }
    }

    /// Decodes the rest; the stream must end at the end of a frame.
    pub fn finish(mut self) -> io::Result<()> {
        if let State::Start = self.state {
            self.choose()?;
        }
        match self.state {
            State::Frames(f) => f.finish(self.pending, &self.tickets),
            State::OneStream(s) => s.finish(self.pending),
            State::Start => Err(stopped("the zstd stage")),
        }
    }

    /// Picks frames or one stream from the first frame header.
    fn choose(&mut self) -> io::Result<()> {
        let sized = matches!(
            zstd_safe::get_frame_content_size(&self.pending),
            Ok(Some(n)) if n <= MAX_FRAME as u64
        );
        self.state = if sized {
            tracing::debug!("decoding independent zstd frames on {DECODERS} threads");
            State::Frames(Frames::start(self.align)?)
        } else {
            // A frame of unknown size (an older backup), or not zstd at
            // all: zstd's streaming decoder takes it or says what is wrong.
            tracing::debug!("decoding one zstd stream");
            State::OneStream(OneStream::start(self.tickets.clone())?)
        };
        Ok(())
    }
}

/// A frame to decode and where its output goes.
struct Job {
    frame: Vec<u8>,
    size: usize,
    done: SyncSender<DecodeResult>,
}

/// Independent frames, split off the plaintext and decoded on
/// [`DECODERS`] threads in turn.
struct Frames {
    jobs: Vec<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
    spent: Receiver<Vec<u8>>,
    next: usize,
    /// Plaintext offset of the pending bytes, for error messages.
    offset: u64,
}

impl Frames {
    fn start(align: usize) -> io::Result<Self> {
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(DECODERS);
        let mut jobs = Vec::with_capacity(DECODERS);
        let mut threads = Vec::with_capacity(DECODERS);
        for i in 0..DECODERS {
            // A rendezvous: a decoder holds one frame at a time.
            let (tx, rx) = sync_channel::<Job>(0);
            let z = zstd::bulk::Decompressor::new()?;
            let spent = spent_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("replvault-zstd-{i}"))
                    .spawn(move || decoder(z, rx, spent, align))?,
            );
            jobs.push(tx);
        }
        Ok(Frames {
            jobs,
            threads,
            spent,
            next: 0,
            offset: 0,
        })
    }

    fn corrupt(&self, tickets: &SyncSender<Ticket>, what: String) -> io::Error {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            format!("at plaintext offset {}: {what}", self.offset),
        );
        fail(tickets, e)
    }

    /// Sends every whole frame at the start of `pending` to a decoder.
    fn split(&mut self, pending: &mut Vec<u8>, tickets: &SyncSender<Ticket>) -> io::Result<()> {
        let incomplete =
            (zstd_safe::zstd_sys::ZSTD_ErrorCode::ZSTD_error_srcSize_wrong as usize).wrapping_neg();
        while !pending.is_empty() {
            let n = match zstd_safe::find_frame_compressed_size(pending) {
                Ok(n) => n,
                Err(code) if code == incomplete => {
                    if pending.len() > zstd_safe::compress_bound(MAX_FRAME) {
                        return Err(self.corrupt(
                            tickets,
                            format!("a zstd frame is longer than one of {MAX_FRAME} bytes can be"),
                        ));
                    }
                    return Ok(());
                }
                Err(code) => {
                    return Err(self.corrupt(tickets, zstd_safe::get_error_name(code).into()));
                }
            };
            let size = match zstd_safe::get_frame_content_size(&pending[..n]) {
                Ok(Some(s)) if s <= MAX_FRAME as u64 => s as usize,
                Ok(Some(s)) => {
                    return Err(self.corrupt(
                        tickets,
                        format!(
                            "a zstd frame claims {s} bytes, more than the {MAX_FRAME} a backup frame holds"
                        ),
                    ));
                }
                _ => {
                    return Err(
                        self.corrupt(tickets, "a zstd frame does not declare its size".into())
                    );
                }
            };
            let mut rest = self
                .spent
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(PENDING));
            rest.clear();
            rest.extend_from_slice(&pending[n..]);
            pending.truncate(n);
            let frame = std::mem::replace(pending, rest);
            self.offset += n as u64;
            self.dispatch(tickets, frame, size)?;
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        tickets: &SyncSender<Ticket>,
        frame: Vec<u8>,
        size: usize,
    ) -> io::Result<()> {
        let (done, ticket) = sync_channel(1);
        tickets.send(ticket).map_err(|_| stopped("the checker"))?;
        let job = Job { frame, size, done };
        let i = self.next;
        self.next = (self.next + 1) % DECODERS;
        // A decoder that stopped has sent its error in its last ticket.
        self.jobs[i]
            .send(job)
            .map_err(|_| stopped("a zstd decoder"))
    }

    fn finish(mut self, mut pending: Vec<u8>, tickets: &SyncSender<Ticket>) -> io::Result<()> {
        self.split(&mut pending, tickets)?;
        if !pending.is_empty() {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the zstd stream ends inside a frame (at plaintext offset {})",
                    self.offset
                ),
            );
            return Err(fail(tickets, e));
        }
        self.jobs.clear();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                return Err(fail(tickets, io::Error::other("a zstd decoder panicked")));
            }
        }
        Ok(())
    }
}

/// Queues a piece that is already at hand (decoded bytes, or an error)
/// for the checker, in order after the pieces before it.
fn queue(tickets: &SyncSender<Ticket>, piece: DecodeResult) -> io::Result<()> {
    let (tx, rx) = sync_channel(1);
    // Room for one and its receiver held here: this cannot fail.
    let _ = tx.send(piece);
    tickets.send(rx).map_err(|_| stopped("the checker"))
}

/// Queues `e` for the checker, in order after what was decoded before it,
/// and returns the `BrokenPipe` that says so.
fn fail(tickets: &SyncSender<Ticket>, e: io::Error) -> io::Error {
    let _ = queue(tickets, Err(e));
    stopped("the zstd stage (the checker has its error)")
}

/// A decoding thread: each frame in one call, into a buffer of its size.
fn decoder(
    mut z: zstd::bulk::Decompressor<'static>,
    jobs: Receiver<Job>,
    spent: SyncSender<Vec<u8>>,
    align: usize,
) {
    for Job { frame, size, done } in jobs {
        let result = decode_aligned(&mut z, &frame, size, align);
        let failed = result.is_err();
        if done.send(result).is_err() || failed {
            // The checker stopped, or now has this error.
            return;
        }
        if let Err(TrySendError::Disconnected(_)) = spent.try_send(frame) {
            return;
        }
    }
}

/// Decodes one frame of `size` bytes into a new buffer, starting at its
/// first `align` boundary.
fn decode_aligned(
    z: &mut zstd::bulk::Decompressor<'static>,
    frame: &[u8],
    size: usize,
    align: usize,
) -> io::Result<Decoded> {
    let mut buf = Vec::<u8>::with_capacity(size + align);
    // `align_offset` may decline; the piece is then unaligned, and the
    // writer copies it as it would any other.
    let start = Some(buf.as_ptr().align_offset(align))
        .filter(|&s| s < align)
        .unwrap_or(0);
    buf.resize(start, 0);
    // zstd writes from the cursor on, into the room after it.
    let mut out = io::Cursor::new(buf);
    out.set_position(start as u64);
    z.decompress_to_buffer(frame, &mut out)?;
    Ok(Decoded {
        buf: out.into_inner(),
        start,
    })
}

/// One zstd stream of any frames, through zstd's streaming decoder on a
/// thread of its own (backups written before independent frames).
struct OneStream {
    plain: Option<SyncSender<Option<Vec<u8>>>>,
    spent: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl OneStream {
    fn start(tickets: SyncSender<Ticket>) -> io::Result<Self> {
        // Short queues: zstd is the slow stage, and this keeps it fed.
        let (plain, rx) = sync_channel::<Option<Vec<u8>>>(2);
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(3);
        let z = Inflate::new(tickets)?;
        let thread = std::thread::Builder::new()
            .name("replvault-zstd".into())
            .spawn(move || inflate(z, rx, spent_tx))?;
        Ok(OneStream {
            plain: Some(plain),
            spent,
            thread: Some(thread),
        })
    }

    fn send(&mut self, p: Option<Vec<u8>>) -> io::Result<()> {
        let sent = self.plain.as_ref().is_some_and(|tx| tx.send(p).is_ok());
        if sent {
            Ok(())
        } else {
            // The zstd thread stopped and queued its error.
            Err(stopped("the zstd thread"))
        }
    }

    fn push(&mut self, pending: &mut Vec<u8>) -> io::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut next = self.spent.try_recv().unwrap_or_default();
        next.clear();
        let p = std::mem::replace(pending, next);
        self.send(Some(p))
    }

    fn finish(mut self, mut pending: Vec<u8>) -> io::Result<()> {
        self.push(&mut pending)?;
        self.send(None)?;
        self.plain = None;
        match self.thread.take() {
            Some(t) => join(t, "zstd"),
            None => Err(stopped("the zstd thread")),
        }
    }
}

/// The streaming decoder: decompresses straight into the piece it hands
/// to the checker (no staging buffer between zstd and the piece).
pub struct Inflate {
    z: zstd::stream::raw::Decoder<'static>,
    tickets: SyncSender<Ticket>,
    buf: Vec<u8>,
    /// zstd reported the end of a frame and has taken no input since.
    frame_done: bool,
}

impl Inflate {
    pub fn new(tickets: SyncSender<Ticket>) -> io::Result<Self> {
        Ok(Inflate {
            z: zstd::stream::raw::Decoder::new()?,
            tickets,
            buf: Vec::with_capacity(STREAM_CHUNK),
            frame_done: false,
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(STREAM_CHUNK));
        queue(&self.tickets, Ok(chunk.into()))
    }

    /// Decompresses all of `input`, sending each piece once it is full.
    pub fn push(&mut self, input: &[u8]) -> io::Result<()> {
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

    /// Sends the last piece; the stream must have ended on a frame boundary.
    pub fn finish(&mut self) -> io::Result<()> {
        self.push(&[])?;
        if !self.frame_done {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the zstd stream ends inside a frame",
            ));
        }
        self.send()
    }

    /// Queues `e` for the checker, unless the checker is what stopped.
    fn fail(&self, e: io::Error) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            fail(&self.tickets, e);
        }
    }
}

/// The streaming decoder's thread. Only an explicit end (`None`) finishes
/// the stream; a closed queue means the stage before failed and reports
/// its own error, so nothing is queued for the checker then. Fails (with
/// `BrokenPipe`: the checker has the cause) if the stream did not decode.
fn inflate(
    mut z: Inflate,
    plain: Receiver<Option<Vec<u8>>>,
    spent: SyncSender<Vec<u8>>,
) -> io::Result<()> {
    for p in plain {
        let done = match p {
            Some(p) => {
                let r = z.push(&p);
                // Handed back for reuse; if the queue is full it is freed.
                let _ = spent.try_send(p);
                r.map(|()| false)
            }
            None => z.finish().map(|()| true),
        };
        match done {
            Ok(false) => {}
            Ok(true) => return Ok(()),
            Err(e) => {
                z.fail(e);
                return Err(stopped("the zstd thread"));
            }
        }
    }
    Err(stopped("the decrypting stage"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::compress::FrameWriter;

    /// The alignment a restore asks for.
    const ALIGN: usize = 4096;

    /// What a checker would see: the decoded bytes, the largest piece,
    /// and the error queued for it, if any.
    struct Seen {
        data: Vec<u8>,
        largest: usize,
        /// Pieces that start at a block boundary.
        aligned: usize,
        error: Option<io::Error>,
    }

    /// Runs `pieces` of plaintext through a `Decode`.
    fn decode(pieces: &[&[u8]]) -> (io::Result<()>, Seen) {
        let (tx, rx) = sync_channel::<Ticket>(TICKETS_FOR_TESTS);
        let checker = std::thread::spawn(move || {
            let mut seen = Seen {
                data: Vec::new(),
                largest: 0,
                aligned: 0,
                error: None,
            };
            for ticket in rx {
                match ticket.recv() {
                    Ok(Ok(piece)) => {
                        seen.largest = seen.largest.max(piece.len());
                        seen.aligned += usize::from(piece.as_ptr().align_offset(ALIGN) == 0);
                        seen.data.extend_from_slice(&piece);
                    }
                    Ok(Err(e)) => {
                        seen.error = Some(e);
                        break;
                    }
                    Err(_) => break,
                }
            }
            seen
        });
        let result = (|| {
            let mut z = Decode::new(tx, ALIGN);
            for p in pieces {
                z.input().extend_from_slice(p);
                z.pushed()?;
            }
            z.finish()
        })();
        (result, checker.join().expect("checker thread"))
    }

    const TICKETS_FOR_TESTS: usize = 2;

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

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let data = rdb_like(2 * FRAME + 12_345);
        let z = framed(&data);
        for step in [1usize, 7, 4096, 1 << 20, z.len()] {
            // One byte at a time over the whole stream would take long:
            // feed the first frame header that way, then bigger steps.
            let (head, rest) = z.split_at(if step == 1 { 64 } else { 0 });
            let mut pieces: Vec<&[u8]> = head.chunks(1).collect();
            pieces.extend(rest.chunks(step.max(7)));
            let (result, seen) = decode(&pieces);
            result.expect("decode");
            assert!(seen.error.is_none(), "{:?}", seen.error);
            assert!(seen.data == data, "step {step}: output differs");
            assert_eq!(seen.largest, FRAME, "one piece per frame");
            // Each frame decoded where a restore can write it directly.
            assert_eq!(seen.aligned, 3, "step {step}");
        }
    }

    #[test]
    fn an_older_backup_of_one_stream_decodes() {
        // What backups held before frames: one frame of unknown size
        // (zstd's streaming encoder), here two of them back to back.
        let data = rdb_like(3 * (1 << 20) + 17);
        let mut z = zstd::encode_all(&data[..1 << 20], 3).expect("compress");
        assert!(matches!(zstd_safe::get_frame_content_size(&z), Ok(None)));
        z.extend(zstd::encode_all(&data[1 << 20..], 3).expect("compress"));
        for step in [7usize, 4096, 1 << 20, z.len()] {
            let pieces: Vec<&[u8]> = z.chunks(step).collect();
            let (result, seen) = decode(&pieces);
            result.expect("decode");
            assert!(seen.error.is_none(), "{:?}", seen.error);
            assert!(seen.data == data, "step {step}: output differs");
            assert!(seen.largest <= STREAM_CHUNK, "piece of {}", seen.largest);
        }
    }

    /// The error the checker got, by kind and text.
    fn checker_error(pieces: &[&[u8]]) -> (io::ErrorKind, String) {
        let (result, seen) = decode(pieces);
        let e = seen.error.expect("an error for the checker");
        let r = result.expect_err("the stage failed");
        assert_eq!(r.kind(), io::ErrorKind::BrokenPipe, "{r}");
        (e.kind(), e.to_string())
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_an_error() {
        let framed = framed(&rdb_like(FRAME + 1000));
        let streamed = zstd::encode_all(&rdb_like(1 << 20)[..], 3).expect("compress");
        for z in [&framed, &streamed] {
            let (kind, text) = checker_error(&[&z[..z.len() - 10]]);
            assert_eq!(kind, io::ErrorKind::UnexpectedEof, "{text}");
        }
        let (result, seen) = decode(&[]);
        assert!(
            result.is_err() && seen.error.is_some(),
            "an empty stream is not a backup"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut z = framed(&rdb_like(FRAME + 1000));
        // Not zstd at all.
        let mut bad = z.clone();
        bad[..16].copy_from_slice(b"not a zstd frame");
        let (_, text) = checker_error(&[&bad]);
        assert!(text.contains("Unknown frame descriptor"), "{text}");
        // The second frame's magic broken: found when it is split off.
        let first = zstd_safe::find_frame_compressed_size(&z).expect("a frame");
        z[first] ^= 0xff;
        let (kind, text) = checker_error(&[&z]);
        assert_eq!(kind, io::ErrorKind::InvalidData, "{text}");
        assert!(
            text.contains(&format!("at plaintext offset {first}")),
            "{text}"
        );
    }

    #[test]
    fn frames_must_declare_a_size_a_reader_can_hold() {
        let mut z = framed(&rdb_like(1000));
        let mut no_size = z.clone();
        let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
        c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
            .expect("parameter");
        no_size.extend(c.compress(b"more").expect("compress"));
        let (_, text) = checker_error(&[&no_size]);
        assert!(text.contains("does not declare its size"), "{text}");

        z.extend(zstd::bulk::compress(&rdb_like(MAX_FRAME + 1), 1).expect("compress"));
        let (_, text) = checker_error(&[&z]);
        assert!(text.contains("more than the"), "{text}");

        // An oversized first frame is decoded as a stream, with bounded
        // memory, so it is no error.
        let big = rdb_like(MAX_FRAME + 1);
        let z = zstd::bulk::compress(&big, 1).expect("compress");
        let (result, seen) = decode(&[&z]);
        result.expect("decode");
        assert!(seen.data == big && seen.largest <= STREAM_CHUNK);
    }

    #[test]
    fn a_checker_that_stops_stops_the_stage() {
        let z = framed(&rdb_like(6 * FRAME));
        let streamed = zstd::encode_all(&rdb_like(6 * FRAME)[..], 3).expect("compress");
        for z in [&z, &streamed] {
            let (tx, rx) = sync_channel::<Ticket>(TICKETS_FOR_TESTS);
            let checker = std::thread::spawn(move || {
                // Takes one piece, then goes away.
                let first = rx.recv().expect("a ticket");
                first.recv().expect("a piece").expect("data");
            });
            let mut d = Decode::new(tx, ALIGN);
            let mut failed = None;
            for piece in z.chunks(1 << 20) {
                d.input().extend_from_slice(piece);
                if let Err(e) = d.pushed() {
                    failed = Some(e);
                    break;
                }
            }
            let e = match failed {
                Some(e) => e,
                None => d.finish().expect_err("the checker went away"),
            };
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
            checker.join().expect("checker");
        }
    }
}
