//! Early writeback for the restored file, when it is written through the
//! page cache (the filesystem refused `O_DIRECT`, see `direct.rs`).
//!
//! On a host with plenty of RAM nothing of a freshly written file reaches
//! the disk until the final fsync, so restore would spend its compute time
//! and then its whole disk time one after the other. Starting writeback of
//! each window as soon as it is written overlaps the two, and waiting for
//! the window before keeps the dirty pages (memory the Redis host may need)
//! at two windows. Errors are left to the final fsync, which reports them.

use std::fs::File;

/// Bytes per writeback window.
const WINDOW: u64 = 32 << 20;

/// Tracks how far writeback has been started.
#[derive(Default)]
pub(super) struct Writeback {
    started: u64,
}

impl Writeback {
    /// Called with how many bytes of `file` the kernel has so far.
    pub(super) fn advance(&mut self, file: &File, written: u64) {
        while written.saturating_sub(self.started) >= WINDOW {
            let from = self.started;
            start(file, from, WINDOW);
            if let Some(before) = from.checked_sub(WINDOW) {
                wait(file, before, WINDOW);
            }
            self.started += WINDOW;
        }
    }
}

#[cfg(target_os = "linux")]
fn range(file: &File, from: u64, len: u64, flags: libc::c_uint) {
    use std::os::fd::AsRawFd;
    let (Ok(from), Ok(len)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(len)) else {
        return;
    };
    // SAFETY: the fd is open for the lifetime of `file`; the call reads no
    // memory of ours.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), from, len, flags) };
}

#[cfg(target_os = "linux")]
fn start(file: &File, from: u64, len: u64) {
    range(file, from, len, libc::SYNC_FILE_RANGE_WRITE);
}

#[cfg(target_os = "linux")]
fn wait(file: &File, from: u64, len: u64) {
    range(
        file,
        from,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
}

// Elsewhere the final fsync does it all.
#[cfg(not(target_os = "linux"))]
fn start(_: &File, _: u64, _: u64) {}
#[cfg(not(target_os = "linux"))]
fn wait(_: &File, _: u64, _: u64) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn windows_advance_only_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("f")).unwrap();
        let mut wb = Writeback::default();
        let block = vec![7u8; 1 << 20];
        let mut written = 0u64;
        for _ in 0..((WINDOW * 5 / 2) >> 20) {
            f.write_all(&block).unwrap();
            written += block.len() as u64;
            wb.advance(&f, written);
        }
        assert_eq!(wb.started, 2 * WINDOW);
        wb.advance(&f, written);
        assert_eq!(wb.started, 2 * WINDOW);
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), written);
    }
}
