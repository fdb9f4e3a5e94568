//! Re-splitting restored RDB files by hash slot (`restore --shards N`):
//! verified inputs (a cluster backup's shards, or one standalone backup)
//! in, N RDB files over N equal contiguous slot ranges out, records copied
//! without re-encoding (`replvault_protocol::cluster::Resplit`).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use replvault_protocol::cluster::{Resplit, SlotSet};
use replvault_protocol::rdb::Checker;

use super::RESTORED_FILE_MODE;
use crate::vault::VaultError;

/// Input read this much at a time.
const READ: usize = 1 << 20;
/// Each output's write buffer (the splitter gathers up to 64 KiB a piece).
const WRITE_BUF: usize = 256 << 10;

/// One output file, complete.
#[derive(Debug)]
pub struct SplitFile {
    /// Where it was written.
    pub path: PathBuf,
    /// The slots it holds.
    pub slots: SlotSet,
    /// Keys in it.
    pub keys: u64,
    /// Its size.
    pub bytes: u64,
}

/// N output files filled from whole RDB inputs given one after another.
/// Blocking: run it off the async runtime. Dropping it without
/// [`SplitWriter::finish`] leaves incomplete files, which the caller
/// removes (they are in its temp directory).
pub struct SplitWriter {
    split: Resplit,
    files: Vec<BufWriter<File>>,
    paths: Vec<PathBuf>,
    inputs: usize,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VaultError + 'a {
    move |source| VaultError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

impl SplitWriter {
    /// Creates one new file (mode 0600) per path; output `i` holds the
    /// `i`-th of `paths.len()` equal slot ranges.
    pub fn create(paths: Vec<PathBuf>) -> Result<Self, VaultError> {
        let split = Resplit::new(paths.len())
            .map_err(|e| VaultError::Pipeline(format!("cannot split into {}: {e}", paths.len())))?;
        let mut files = Vec::with_capacity(paths.len());
        for p in &paths {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, RESTORED_FILE_MODE);
            let f = opts.open(p).map_err(io_err("create", p))?;
            files.push(BufWriter::with_capacity(WRITE_BUF, f));
        }
        Ok(SplitWriter {
            split,
            files,
            paths,
            inputs: 0,
        })
    }

    /// Routes every key of the RDB file at `input` to its output. The
    /// input is checked again on the way (structure, CRC-64, database 0
    /// only).
    pub fn add_input(&mut self, input: &Path) -> Result<(), VaultError> {
        if self.inputs > 0 {
            self.split.next_input()?;
        }
        self.inputs += 1;
        let mut f = File::open(input).map_err(io_err("open", input))?;
        let mut buf = vec![0u8; READ];
        let mut failed: Option<(usize, std::io::Error)> = None;
        loop {
            let n = f.read(&mut buf).map_err(io_err("read", input))?;
            if n == 0 {
                break;
            }
            let files = &mut self.files;
            self.split.feed(&buf[..n], &mut |i, bytes| {
                if failed.is_none()
                    && let Err(e) = files[i].write_all(bytes)
                {
                    failed = Some((i, e));
                }
            })?;
            if let Some((i, e)) = failed.take() {
                return Err(io_err("write", &self.paths[i])(e));
            }
        }
        Ok(())
    }

    /// Ends the outputs (EOF and CRC-64 each), makes them durable, and
    /// checks each again as a loader would, with its slots.
    pub fn finish(self) -> Result<Vec<SplitFile>, VaultError> {
        let SplitWriter {
            split,
            mut files,
            paths,
            ..
        } = self;
        let mut failed: Option<(usize, std::io::Error)> = None;
        let summary = split.finish(&mut |i, bytes| {
            if failed.is_none()
                && let Err(e) = files[i].write_all(bytes)
            {
                failed = Some((i, e));
            }
        })?;
        if let Some((i, e)) = failed {
            return Err(io_err("write", &paths[i])(e));
        }
        let mut out = Vec::with_capacity(paths.len());
        for ((w, path), o) in files.into_iter().zip(paths).zip(summary.outputs) {
            let f = w
                .into_inner()
                .map_err(|e| io_err("write", &path)(e.into_error()))?;
            f.sync_all().map_err(io_err("fsync", &path))?;
            drop(f);
            let checked = check_with_slots(&path, &o.slots)?;
            out.push(SplitFile {
                path,
                slots: o.slots,
                keys: checked,
                bytes: o.bytes,
            });
        }
        Ok(out)
    }
}

/// Checks the RDB at `path` with every key in `slots` and database 0;
/// returns its key count.
fn check_with_slots(path: &Path, slots: &SlotSet) -> Result<u64, VaultError> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut checker = Checker::with_slots(slots.clone());
    let mut buf = vec![0u8; READ];
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        checker.feed(&buf[..n])?;
    }
    Ok(checker.finish()?.total_keys())
}
