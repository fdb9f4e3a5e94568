//! Writing the restored file, with `O_DIRECT` where the filesystem takes it.
//!
//! A restore writes gigabytes once and fsyncs them; through the page cache
//! that costs the kernel a copy, dirty-page accounting and writeback for
//! every page, and evicts what the Redis host had cached (BENCHMARKS.md,
//! "Decisions"). Direct I/O needs block-aligned buffers,
//! offsets and lengths: decoded zstd frames are made to start at a block
//! boundary and their whole blocks are written from where they are; other
//! data is staged in an aligned buffer. The last partial block is written
//! after clearing `O_DIRECT`. Where the filesystem
//! refuses direct I/O the file is written through the page cache, with
//! early writeback bounding the dirty pages.

use std::fs::File;
use std::io::Write;

use super::writeback::Writeback;

/// Alignment for direct I/O: covers 512-byte and 4 KiB logical blocks.
pub(super) const ALIGN: usize = 4096;
/// Bytes per direct write.
const STAGE: usize = 4 << 20;

/// How the file is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// `O_DIRECT`, through the aligned stage.
    Direct,
    /// Through the page cache.
    Buffered,
}

/// Sequential writer for the restored file.
pub(super) struct Sink {
    file: File,
    mode: Mode,
    /// Backing store of the stage; `start` is its first aligned byte.
    raw: Vec<u8>,
    start: usize,
    fill: usize,
    written: u64,
    /// Bytes written straight from the caller's buffers, not staged.
    unstaged: u64,
    writeback: Writeback,
}

impl Sink {
    /// A sink writing `file` from its start, directly where possible.
    pub(super) fn new(file: File) -> Self {
        match set_direct(&file, true) {
            Ok(()) => Self::with_mode(file, Mode::Direct),
            Err(e) => {
                tracing::debug!(error = %e, "the filesystem refuses O_DIRECT");
                Self::with_mode(file, Mode::Buffered)
            }
        }
    }

    /// A sink in the given mode (`Direct` only once `O_DIRECT` is set).
    pub(super) fn with_mode(file: File, mode: Mode) -> Self {
        let (raw, start) = match mode {
            Mode::Direct => {
                let raw = vec![0u8; STAGE + ALIGN];
                let start = raw.as_ptr().align_offset(ALIGN);
                (raw, start)
            }
            Mode::Buffered => (Vec::new(), 0),
        };
        let mut sink = Sink {
            file,
            mode,
            raw,
            start,
            fill: 0,
            written: 0,
            unstaged: 0,
            writeback: Writeback::default(),
        };
        if mode == Mode::Direct && start >= ALIGN {
            sink.go_buffered();
        }
        sink
    }

    /// How the file is being written now.
    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// Appends `data` to the file. Whole blocks of an aligned `data` (a
    /// decoded frame) are written straight from it when nothing is staged.
    pub(super) fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            if self.mode == Mode::Buffered {
                self.file.write_all(data)?;
                self.written += data.len() as u64;
                self.writeback.advance(&self.file, self.written);
                return Ok(());
            }
            let whole = data.len() - data.len() % ALIGN;
            if self.fill == 0 && whole > 0 && data.as_ptr().align_offset(ALIGN) == 0 {
                let done = write_direct(&mut self.file, &data[..whole], &mut self.written)?;
                self.unstaged += done as u64;
                if done < whole {
                    self.go_buffered();
                }
                data = &data[done..];
                continue;
            }
            let take = (STAGE - self.fill).min(data.len());
            let at = self.start + self.fill;
            self.raw[at..at + take].copy_from_slice(&data[..take]);
            self.fill += take;
            data = &data[take..];
            if self.fill == STAGE {
                self.flush_stage(STAGE)?;
            }
        }
        Ok(())
    }

    /// Writes what is staged and returns the file, ready for its fsync.
    pub(super) fn finish(mut self) -> std::io::Result<File> {
        if self.mode == Mode::Direct {
            // Whole blocks directly, then the partial one through the cache.
            let whole = self.fill - self.fill % ALIGN;
            self.flush_stage(whole)?;
            if self.fill > 0 {
                self.rest_buffered(0)?;
            }
        }
        tracing::debug!(
            bytes = self.written,
            unstaged = self.unstaged,
            "restored file written (unstaged: straight from the decoded frames)"
        );
        Ok(self.file)
    }

    /// Writes the first `len` staged bytes (a multiple of `ALIGN`) and
    /// moves the rest to the front of the stage.
    fn flush_stage(&mut self, len: usize) -> std::io::Result<()> {
        let staged = &self.raw[self.start..self.start + len];
        let done = write_direct(&mut self.file, staged, &mut self.written)?;
        if done < len {
            return self.rest_buffered(done);
        }
        let left = self.fill - len;
        let from = self.start + len;
        self.raw.copy_within(from..from + left, self.start);
        self.fill = left;
        Ok(())
    }

    /// Goes on through the page cache, from staged byte `from` on.
    fn rest_buffered(&mut self, from: usize) -> std::io::Result<()> {
        self.go_buffered();
        let rest = self.raw[self.start + from..self.start + self.fill].to_vec();
        self.fill = 0;
        self.write(&rest)
    }

    /// Clears `O_DIRECT`; staged bytes stay where they are.
    fn go_buffered(&mut self) {
        if self.mode == Mode::Direct {
            // If clearing fails, later unaligned writes fail and say so.
            let _ = set_direct(&self.file, false);
        }
        self.mode = Mode::Buffered;
    }
}

/// Writes `bytes` (aligned, whole blocks) to a file in `O_DIRECT` mode;
/// how many were written before direct I/O had to stop (a short write to
/// an unaligned offset, or a refusal), which is all of them when it did
/// not.
fn write_direct(file: &mut File, bytes: &[u8], written: &mut u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                *written += n as u64;
                // A short write to an unaligned offset: direct I/O
                // cannot go on from there.
                if done < bytes.len() && done % ALIGN != 0 {
                    tracing::debug!("a short direct write; going on through the page cache");
                    return Ok(done);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A device with blocks larger than ALIGN, or a filesystem
            // that took the flag but not the write.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("a direct write was refused; going on through the page cache");
                return Ok(done);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: plain fcntl calls on an fd `file` keeps open; no memory is
    // passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_: &File, on: bool) -> std::io::Result<()> {
    if on {
        Err(std::io::ErrorKind::Unsupported.into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    /// Writes `total` bytes in pieces of `piece` bytes and reads them back.
    fn round_trip(dir: &std::path::Path, mode: Option<Mode>, total: usize, piece: usize) {
        let path = dir.join(format!("out-{total}-{piece}"));
        let file = File::create(&path).expect("create");
        let mut sink = match mode {
            None => Sink::new(file),
            Some(m) => Sink::with_mode(file, m),
        };
        let want = data(total);
        for p in want.chunks(piece.max(1)) {
            sink.write(p).expect("write");
        }
        sink.finish().expect("finish").sync_all().expect("fsync");
        let got = std::fs::read(&path).expect("read back");
        assert!(
            got == want,
            "{total} bytes in pieces of {piece}: content differs"
        );
        std::fs::remove_file(&path).expect("remove");
    }

    const SIZES: [usize; 9] = [
        0,
        1,
        ALIGN - 1,
        ALIGN,
        ALIGN + 1,
        STAGE - 1,
        STAGE,
        STAGE + 1,
        3 * STAGE + 12_345,
    ];

    #[test]
    fn direct_writes_come_back_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = Sink::new(File::create(dir.path().join("probe")).expect("create"));
        // /tmp takes O_DIRECT on the CI machines (ext4; tmpfs since 6.6):
        // if not, this test would not test the direct path.
        assert_eq!(probe.mode(), Mode::Direct, "O_DIRECT refused here");
        for total in SIZES {
            for piece in [1 << 20, 4097, total] {
                round_trip(dir.path(), None, total, piece);
            }
        }
    }

    /// `bytes` copied to the first block boundary of a new buffer, as a
    /// decoded frame sits in its own: the buffer and where they start.
    fn aligned_copy(bytes: &[u8]) -> (Vec<u8>, usize) {
        let mut buf = Vec::<u8>::with_capacity(bytes.len() + ALIGN);
        let start = buf.as_ptr().align_offset(ALIGN);
        assert!(start < ALIGN, "cannot align here");
        buf.resize(start, 0);
        buf.extend_from_slice(bytes);
        (buf, start)
    }

    #[test]
    fn aligned_pieces_are_written_without_staging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let want = data(3 * STAGE + 12_345);
        // Whole blocks of aligned pieces go straight to the file (all but
        // the last 57 bytes); a piece after a partial one goes through the
        // stage.
        for (lead, expect_unstaged) in [(0, 3 * STAGE + 12_288), (100, 0)] {
            let path = dir.path().join(format!("out-{lead}"));
            let mut sink = Sink::new(File::create(&path).expect("create"));
            assert_eq!(sink.mode(), Mode::Direct, "O_DIRECT refused here");
            sink.write(&want[..lead]).expect("write");
            for piece in want[lead..].chunks(STAGE) {
                let (buf, start) = aligned_copy(piece);
                sink.write(&buf[start..]).expect("write");
            }
            assert_eq!(sink.unstaged, expect_unstaged as u64, "lead {lead}");
            sink.finish().expect("finish").sync_all().expect("fsync");
            assert!(
                std::fs::read(&path).expect("read back") == want,
                "lead {lead}"
            );
        }
    }

    #[test]
    fn buffered_writes_come_back_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        for total in SIZES {
            round_trip(dir.path(), Some(Mode::Buffered), total, 4097);
        }
    }

    #[test]
    fn a_refused_direct_write_goes_on_through_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        let mut sink = Sink::new(File::create(&path).expect("create"));
        assert_eq!(sink.mode(), Mode::Direct, "O_DIRECT refused here");
        // A stage one byte off alignment: the kernel refuses the direct
        // write with EINVAL, as a device with larger blocks would.
        sink.start += 1;
        let want = data(2 * STAGE + 7);
        for p in want.chunks(1 << 20) {
            sink.write(p).expect("write");
        }
        assert_eq!(sink.mode(), Mode::Buffered);
        sink.finish().expect("finish").sync_all().expect("fsync");
        assert!(std::fs::read(&path).expect("read back") == want);
    }
}
