//! The read pipeline: a backup read back through every check, for
//! `verify`, or written as a verified RDB file, for `restore`.
//!
//! Stored object → SHA-256 → AEAD open → zstd ([`decompress`]) → CRC-64 +
//! structure check ([`read`]) → (restore only) a temp file beside the
//! target, written with `O_DIRECT` where possible ([`direct`], with
//! [`writeback`] where not), fsynced and renamed into place. One pass,
//! bounded memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use replvault_protocol::rdb::Summary;

use crate::crypto::MasterKey;
use crate::crypto::keys::random_bytes;
use crate::vault::{Manifest, Vault, VaultError};

mod decompress;
mod direct;
mod read;
pub mod resplit;
mod writeback;

use direct::{Mode, Sink};
use read::{check_key, read};

/// The mode of a restored file (and of its temp file): owner only,
/// whatever the umask.
pub const RESTORED_FILE_MODE: u32 = 0o600;

/// What reading a backup found.
#[derive(Clone, Debug)]
pub struct ReadReport {
    /// What the check found in the RDB.
    pub summary: Summary,
    /// RDB bytes produced.
    pub rdb_bytes: u64,
    /// Stored bytes read.
    pub stored_bytes: u64,
}

pub(super) fn disk_error(e: &std::io::Error, need: u64) -> VaultError {
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
    // The owner's only: a dump holds the whole dataset. The operator gives
    // it to Redis's user (`chown`, as the printed steps say).
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, RESTORED_FILE_MODE);
    let file = opts.open(&tmp).map_err(|e| VaultError::Io {
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

/// Checks a local RDB file (CRC-64 and structure), as `inspect` does.
pub fn check_file(path: &Path) -> Result<Summary, VaultError> {
    use std::io::Read;
    let io = |op: &'static str, source: std::io::Error| VaultError::Io {
        op,
        path: path.display().to_string(),
        source,
    };
    let mut f = File::open(path).map_err(|e| io("open", e))?;
    let mut checker = replvault_protocol::rdb::Checker::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| io("read", e))?;
        if n == 0 {
            break;
        }
        checker.feed(&buf[..n])?;
    }
    Ok(checker.finish()?)
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
