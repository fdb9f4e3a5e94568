//! The local-directory store: staged writes, fsync, no-overwrite publish.
//!
//! Objects are files under the root; `a/b/c` is `root/a/b/c`. A write goes
//! to a hidden staged file in the same directory (`.c.partial-<random>`),
//! is fsynced, then published with `link(2)`, which fails if the target
//! exists, so an object is never overwritten and readers see all of it or
//! nothing. Names starting with `.` are never listed.
//!
//! What it creates is the owner's only, whatever the umask: files
//! [`FILE_MODE`] (0600), directories [`DIR_MODE`] (0700), the root too
//! when the first write creates it. A root that already exists keeps its
//! mode.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{ObjectMeta, ObjectReader, PendingUpload, Store, StoreError, Upload, UploadOptions};
use crate::crypto::keys::random_bytes;

/// The mode of the files a local vault creates (data objects, manifests,
/// and their staged copies): the owner reads and writes, nobody else.
pub const FILE_MODE: u32 = 0o600;
/// The mode of the directories a local vault creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents with [`DIR_MODE`].
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
    b.create(dir)
}

/// Options that create a new file with [`FILE_MODE`], never an existing one.
fn new_file() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, FILE_MODE);
    o
}

/// A vault in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens the directory `root` (created on first write if missing).
    /// Refuses a `root` that exists and is not a directory, so a backup
    /// fails before it asks the server for a snapshot.
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        let store = LocalStore { root };
        match std::fs::metadata(&store.root) {
            Ok(m) if !m.is_dir() => Err(store.io(
                "open",
                "the vault root",
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "it is a file, not a directory",
                ),
            )),
            _ => Ok(store),
        }
    }

    /// Like [`LocalStore::open`], for commands that read a vault: a root
    /// that does not exist is a wrong `--vault` or a volume not mounted,
    /// not an empty vault.
    pub fn open_existing(root: PathBuf) -> Result<Self, StoreError> {
        let store = LocalStore::open(root)?;
        if !store.root.exists() {
            return Err(store.io(
                "open",
                "the vault root",
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "it does not exist (check --vault; the first backup creates it)",
                ),
            ));
        }
        Ok(store)
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        // Keys are relative, `/`-separated, without `.`/`..` components.
        if key.is_empty()
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.'))
        {
            return Err(StoreError::Backend {
                store: self.describe(),
                message: format!("invalid object key {key:?}"),
                source: None,
            });
        }
        Ok(self.root.join(key))
    }

    /// Removes the file at `path` (already gone is fine), then its
    /// directory once empty (failure there is harmless).
    async fn remove(&self, path: &Path, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io("delete", key, e)),
        }
        if let Some(dir) = path.parent()
            && dir != self.root
        {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    fn io(&self, op: &'static str, key: &str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            op,
            key: key.to_string(),
            source,
        }
    }
}

fn staged_path(dest: &Path) -> PathBuf {
    let mut r = [0u8; 8];
    let _ = random_bytes(&mut r);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial-{}", hex::encode(r)))
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Publishes a staged, fsynced file at `dest` without overwriting.
fn publish(staged: &Path, dest: &Path) -> std::io::Result<()> {
    let r = std::fs::hard_link(staged, dest);
    let _ = std::fs::remove_file(staged);
    r?;
    if let Some(dir) = dest.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Files under `root` whose keys start with `prefix`, sorted: the objects,
/// or with `staged` only the staged files a killed writer left behind
/// (`.name.partial-*`, keyed by their own relative path).
fn walk(
    this: &LocalStore,
    root: &Path,
    prefix: &str,
    staged: bool,
) -> Result<Vec<ObjectMeta>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let shown = if rel.is_empty() {
            "the vault root"
        } else {
            &rel
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(this.io("list", shown, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| this.io("list", shown, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.metadata().map_err(|e| this.io("stat", &key, e))?;
            let hidden = name.starts_with('.');
            if !hidden && meta.is_dir() {
                // Only descend where the prefix can still match.
                if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                    stack.push((entry.path(), key));
                }
                continue;
            }
            let wanted = if hidden {
                staged && meta.is_file() && name.contains(".partial-")
            } else {
                !staged
            };
            if wanted && key.starts_with(prefix) {
                out.push(ObjectMeta {
                    key,
                    size: meta.len(),
                    last_modified: meta.modified().ok().map(DateTime::<Utc>::from),
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The key a staged file was meant for: `a/.data.partial-x` -> `a/data`.
fn staged_target(staged: &str) -> Option<String> {
    let (dir, name) = match staged.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, staged),
    };
    let target = name.strip_prefix('.')?.rsplit_once(".partial-")?.0;
    Some(match dir {
        Some(d) => format!("{d}/{target}"),
        None => target.to_string(),
    })
}

#[async_trait]
impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let dest = self.path(key)?;
        let this = self.clone();
        let key = key.to_string();
        let res = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            if let Some(dir) = dest.parent() {
                create_dirs(dir).map_err(|e| this.io("create directory for", &key, e))?;
            }
            let staged = staged_path(&dest);
            let write = || -> std::io::Result<()> {
                let mut f = new_file().open(&staged)?;
                f.write_all(&data)?;
                f.sync_all()
            };
            if let Err(e) = write() {
                let _ = std::fs::remove_file(&staged);
                return Err(this.io("write", &key, e));
            }
            publish(&staged, &dest).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    StoreError::AlreadyExists {
                        store: this.describe(),
                        key: key.clone(),
                    }
                } else {
                    this.io("publish", &key, e)
                }
            })
        })
        .await;
        res.map_err(|e| self.io("write", "(task)", std::io::Error::other(e)))?
    }

    async fn put_multipart(
        &self,
        key: &str,
        _opts: UploadOptions,
    ) -> Result<Box<dyn Upload>, StoreError> {
        let dest = self.path(key)?;
        if let Some(dir) = dest.parent() {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || create_dirs(&dir))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map_err(|e| self.io("create directory for", key, e))?;
        }
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Err(StoreError::AlreadyExists {
                store: self.describe(),
                key: key.to_string(),
            });
        }
        let staged = staged_path(&dest);
        let file = tokio::fs::OpenOptions::from(new_file())
            .open(&staged)
            .await
            .map_err(|e| self.io("create", key, e))?;
        Ok(Box::new(LocalUpload {
            store: self.clone(),
            key: key.to_string(),
            dest,
            staged,
            file: Some(file),
            written: 0,
        }))
    }

    async fn get(&self, key: &str, max: u64) -> Result<Bytes, StoreError> {
        use tokio::io::AsyncReadExt;
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    store: self.describe(),
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(self.io("read", key, e)),
        };
        let too_large = |size| StoreError::TooLarge {
            store: self.describe(),
            key: key.to_string(),
            size,
            max,
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| self.io("stat", key, e))?
            .len();
        if size > max {
            return Err(too_large(Some(size)));
        }
        // At most one byte past the limit, should the file have grown.
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .await
            .map_err(|e| self.io("read", key, e))?;
        if buf.len() as u64 > max {
            return Err(too_large(None));
        }
        Ok(Bytes::from(buf))
    }

    async fn get_reader(&self, key: &str) -> Result<ObjectReader, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Box::pin(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                store: self.describe(),
                key: key.to_string(),
            }),
            Err(e) => Err(self.io("open", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let (root, this, prefix) = (self.root.clone(), self.clone(), prefix.to_string());
        let res = tokio::task::spawn_blocking(move || walk(&this, &root, &prefix, false)).await;
        res.map_err(|e| self.io("list", "(task)", std::io::Error::other(e)))?
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        self.remove(&path, key).await
    }

    /// Staged files left by a writer that was killed (SIGKILL, a crash, a
    /// power cut): the local store's unfinished uploads.
    async fn pending_uploads(&self) -> Result<Vec<PendingUpload>, StoreError> {
        let (root, this) = (self.root.clone(), self.clone());
        let res = tokio::task::spawn_blocking(move || walk(&this, &root, "", true)).await;
        let staged = res.map_err(|e| self.io("list", "(task)", std::io::Error::other(e)))??;
        Ok(staged
            .into_iter()
            .filter_map(|o| {
                Some(PendingUpload {
                    key: staged_target(&o.key)?,
                    upload_id: o.key,
                    initiated: o.last_modified,
                })
            })
            .collect())
    }

    async fn abort_pending_upload(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        // Only ever a staged file under the root.
        // (`staged_target` also requires the name's leading dot.)
        let id = &upload.upload_id;
        if staged_target(id).is_none()
            || id.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(StoreError::Backend {
                store: self.describe(),
                message: format!("not a staged file: {id:?}"),
                source: None,
            });
        }
        self.remove(&self.root.join(id), id).await
    }
}

struct LocalUpload {
    store: LocalStore,
    key: String,
    dest: PathBuf,
    staged: PathBuf,
    file: Option<tokio::fs::File>,
    written: u64,
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        use tokio::io::AsyncWriteExt;
        let Some(f) = self.file.as_mut() else {
            return Err(self.store.io(
                "write",
                &self.key,
                std::io::Error::other("upload already closed"),
            ));
        };
        if let Err(e) = f.write_all(&data).await {
            return Err(self.store.io("write", &self.key, e));
        }
        self.written += data.len() as u64;
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<u64, StoreError> {
        use tokio::io::AsyncWriteExt;
        let Some(mut f) = self.file.take() else {
            return Err(self.store.io(
                "complete",
                &self.key,
                std::io::Error::other("upload already closed"),
            ));
        };
        let res = async {
            f.flush().await?;
            f.sync_all().await?;
            drop(f);
            let (staged, dest) = (self.staged.clone(), self.dest.clone());
            tokio::task::spawn_blocking(move || publish(&staged, &dest))
                .await
                .map_err(std::io::Error::other)?
        }
        .await;
        match res {
            Ok(()) => Ok(self.written),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists {
                    store: self.store.describe(),
                    key: self.key.clone(),
                })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&self.staged).await;
                Err(self.store.io("complete", &self.key, e))
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.file.take();
        match tokio::fs::remove_file(&self.staged).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.store.io("abort", &self.key, e)),
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // Neither completed nor aborted (e.g. the task was cancelled): the
        // staged file must not linger.
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.staged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn staged_files_are_pending_uploads_and_only_they_can_be_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().to_path_buf()).unwrap();
        store
            .put("backups/b1/manifest.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        std::fs::write(dir.path().join("backups/b1/.data.partial-00ff"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("backups/b2")).unwrap();
        std::fs::write(dir.path().join("backups/b2/.data.partial-1234"), b"x").unwrap();
        let pending = store.pending_uploads().await.unwrap();
        let keys: Vec<_> = pending
            .iter()
            .map(|u| (u.key.as_str(), u.upload_id.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("backups/b1/data", "backups/b1/.data.partial-00ff"),
                ("backups/b2/data", "backups/b2/.data.partial-1234")
            ]
        );
        assert!(pending.iter().all(|u| u.initiated.is_some()));
        // Staged files are not objects.
        assert_eq!(store.list("backups/").await.unwrap().len(), 1);
        for u in &pending {
            store.abort_pending_upload(u).await.unwrap();
        }
        assert!(store.pending_uploads().await.unwrap().is_empty());
        assert!(!dir.path().join("backups/b2").exists());
        assert!(dir.path().join("backups/b1/manifest.json").exists());
        // Anything but a staged file is refused.
        for id in [
            "backups/b1/manifest.json",
            "../.x.partial-1",
            "backups/../.x.partial-1",
        ] {
            let u = PendingUpload {
                key: "k".into(),
                upload_id: id.into(),
                initiated: None,
            };
            assert!(store.abort_pending_upload(&u).await.is_err(), "{id}");
        }
        assert!(dir.path().join("backups/b1/manifest.json").exists());
    }

    #[tokio::test]
    async fn local_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("vault")).unwrap();
        crate::store::conformance::run_all(&store).await;
        // Nothing staged is left behind.
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                assert!(
                    !e.file_name().to_string_lossy().contains(".partial-"),
                    "{:?}",
                    e.path()
                );
                if e.metadata().unwrap().is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
}
