//! `restore --at`: the dataset as it was at a time, as a verified RDB file
//! (the base and the commands after it loaded by a private server as an
//! AOF, then saved), as a Redis 7+ multi-part AOF directory, or as one AOF
//! file with an RDB preamble.
//!
//! The commands are applied the way a server loads an AOF, never sent to
//! a running server: a running primary expires keys by its own clock, so
//! a key of the base whose TTL has passed since, but which the archived
//! stream extended or made permanent before it passed (a sliding session,
//! a counter made permanent), would be dropped before the command that
//! keeps it, and later commands would act on its absence. A server
//! loading an AOF expires nothing until it is done.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use replvault_protocol::rdb::Summary;
use replvault_protocol::resp::{Frame, decode};

use super::archive::Archive;
use super::replay::{self, Plan, ReplayError, ReplayStats};
use crate::crypto::MasterKey;
use crate::restore::{self, RestoreOptions};
use crate::vault::{Vault, VaultError};

/// What `restore --at` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A verified `dump.rdb`, built by a private server.
    Rdb,
    /// A Redis 7+ `appendonlydir`: manifest, base RDB, incr AOF.
    AofDir,
    /// One AOF file with an RDB preamble (Redis 4 to 6.2).
    Aof,
}

/// How to restore to a time.
#[derive(Clone, Debug)]
pub struct AtOptions {
    /// The output format.
    pub format: Format,
    /// The server binary that replays for [`Format::Rdb`].
    pub server_bin: PathBuf,
    /// Replace an existing target.
    pub force: bool,
    /// Write with `O_DIRECT` where possible (the base RDB).
    pub direct_io: bool,
}

/// What was restored.
#[derive(Clone, Debug)]
pub struct AtReport {
    /// The plan that was followed.
    pub plan: Plan,
    /// What the replay did.
    pub stats: ReplayStats,
    /// The check of the RDB written ([`Format::Rdb`] only).
    pub summary: Option<Summary>,
}

/// Why a restore to a time failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AtError {
    /// The time cannot be restored, or the archive cannot be read.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Reading the base failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The replay server failed.
    #[error("replaying with {bin}: {reason}")]
    Server {
        /// The server binary.
        bin: String,
        /// What went wrong.
        reason: String,
    },
    /// Local I/O failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AtError + use<> {
    let path = path.display().to_string();
    move |source| AtError::Io { op, path, source }
}

/// Restores the dataset as it was at `at` (`None`: the latest archived)
/// to `out`. Nothing is left at `out` on failure.
pub async fn restore_at(
    vault: &Vault,
    key: Option<MasterKey>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    out: &Path,
    opts: &AtOptions,
) -> Result<AtReport, AtError> {
    let archive = Archive::load(vault).await?;
    let backups = vault.list().await?;
    let plan = replay::plan(&archive, &backups, at)?;
    restore_plan(vault, key, plan, out, opts).await
}

/// Restores what `plan` says to `out`.
pub async fn restore_plan(
    vault: &Vault,
    key: Option<MasterKey>,
    plan: Plan,
    out: &Path,
    opts: &AtOptions,
) -> Result<AtReport, AtError> {
    tracing::info!(
        at = %plan.at, base = %plan.base.id, base_offset = plan.base_offset,
        segments = plan.segments.len(), "restoring to a time"
    );
    if opts.format != Format::AofDir {
        restore::check_target(out, opts.force)?;
    } else if out.exists() && !opts.force {
        return Err(VaultError::OutputExists(out.display().to_string()).into());
    }
    let work = work_dir(out)?;
    let result = build(vault, key, &plan, &work, out, opts).await;
    let _ = std::fs::remove_dir_all(&work);
    let (stats, summary) = result?;
    Ok(AtReport {
        plan,
        stats,
        summary,
    })
}

/// True when the vault's backups are of a Redis Cluster: `restore --at`
/// then rebuilds every shard.
pub fn is_cluster(backups: &[crate::vault::Manifest]) -> bool {
    backups.iter().any(|m| m.cluster.is_some())
}

/// A cluster's shards as they were at `at` (`None`: each shard's latest),
/// from the newest cluster backup every shard's archive can replay from:
/// `dir` gets one file per shard (`shard-<i>.rdb`, `.aof`, or a directory
/// `shard-<i>` for aof-dir) and `slots.json`. Each shard is cut by its own
/// archive's arrival times.
pub async fn restore_cluster_at(
    vault: &Vault,
    key: Option<MasterKey>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    dir: &Path,
    opts: &AtOptions,
) -> Result<Vec<(String, AtReport)>, AtError> {
    let archive = Archive::load(vault).await?;
    let backups = vault.list().await?;
    if dir.exists() && !opts.force {
        return Err(VaultError::OutputExists(dir.display().to_string()).into());
    }
    let mut last_err = None;
    let mut chosen = None;
    for c in backups.iter().rev().filter(|m| m.cluster.is_some()) {
        let plans: Result<Vec<Plan>, ReplayError> = (0..c.shard_count())
            .map(|i| {
                let shard = c.shard(i).ok_or_else(|| {
                    ReplayError::Vault(VaultError::Pipeline("a shard is missing".into()))
                })?;
                replay::plan(&archive, std::slice::from_ref(&shard), at)
            })
            .collect();
        match plans {
            Ok(p) => {
                chosen = Some((c.clone(), p));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some((cluster, plans)) = chosen else {
        return Err(last_err.unwrap_or(ReplayError::NoArchive).into());
    };
    let work = work_dir(dir)?;
    let result = async {
        let mut reports = Vec::new();
        let mut entries = Vec::new();
        let shards = cluster
            .cluster
            .as_ref()
            .map(|c| &c.shards[..])
            .unwrap_or_default();
        for (i, (plan, shard)) in plans.into_iter().zip(shards).enumerate() {
            let name = match opts.format {
                Format::Rdb => format!("shard-{i}.rdb"),
                Format::Aof => format!("shard-{i}.aof"),
                Format::AofDir => format!("shard-{i}"),
            };
            let report = restore_plan(vault, key.clone(), plan, &work.join(&name), opts).await?;
            entries.push(serde_json::json!({
                "file": name,
                "slots": shard.slots,
                "node": shard.node,
                "at": report.plan.at,
                "last_command": report.stats.last_ms.map(super::archive::ms_time),
            }));
            reports.push((name, report));
        }
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "backup": cluster.id,
            "shards": entries,
        }))
        .map_err(|e| VaultError::Pipeline(e.to_string()))?;
        let slots = work.join("slots.json");
        std::fs::write(&slots, json).map_err(io("write", &slots))?;
        if opts.force && dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io("replace", dir))?;
        }
        std::fs::rename(&work, dir).map_err(io("rename into place", dir))?;
        Ok::<_, AtError>(reports)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

/// A private directory beside `out` (same filesystem, so the result can
/// be renamed into place).
fn work_dir(out: &Path) -> Result<PathBuf, AtError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let mut r = [0u8; 6];
    crate::crypto::keys::random_bytes(&mut r).map_err(|e| VaultError::Pipeline(e.to_string()))?;
    let dir = parent.join(format!(".{name}.replvault-at-{}", hex::encode(r)));
    std::fs::create_dir(&dir).map_err(io("create", &dir))?;
    // The replay server changes into it: every path it is given must be
    // absolute.
    let dir = dir.canonicalize().map_err(io("resolve", &dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", &dir))?;
    }
    Ok(dir)
}

async fn build(
    vault: &Vault,
    key: Option<MasterKey>,
    plan: &Plan,
    work: &Path,
    out: &Path,
    opts: &AtOptions,
) -> Result<(ReplayStats, Option<Summary>), AtError> {
    let base = work.join("base.rdb");
    restore::restore(
        vault,
        &plan.base,
        key.clone(),
        &base,
        RestoreOptions {
            force: false,
            direct_io: opts.direct_io,
        },
    )
    .await?;
    match opts.format {
        Format::Rdb => {
            // The AOF the private server loads: the base, then the
            // commands.
            let aof = work.join(REPLAY_AOF);
            std::fs::rename(&base, &aof).map_err(io("move", &base))?;
            let stats = append_commands(vault, key.as_ref(), plan, &aof).await?;
            let summary = load_and_save(work, opts)?;
            // SAVE wrote the server's dump to base.rdb.
            publish(&base, out, opts.force)?;
            Ok((stats, Some(summary)))
        }
        Format::Aof => {
            let stats = append_commands(vault, key.as_ref(), plan, &base).await?;
            publish(&base, out, opts.force)?;
            Ok((stats, None))
        }
        Format::AofDir => {
            let dir = work.join("appendonlydir");
            std::fs::create_dir(&dir).map_err(io("create", &dir))?;
            let base_name = "appendonly.aof.1.base.rdb";
            let incr_name = "appendonly.aof.1.incr.aof";
            std::fs::rename(&base, dir.join(base_name)).map_err(io("move", &base))?;
            let incr = dir.join(incr_name);
            let file = std::fs::File::create(&incr).map_err(io("create", &incr))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let mut last_ts = None;
            let stats = replay::replay(vault, plan, key.as_ref(), |r| {
                // Redis 7's own annotation, one per second that has commands.
                let ts = r.at_ms / 1000;
                if last_ts != Some(ts) {
                    write!(w, "#TS:{ts}\r\n")?;
                    last_ts = Some(ts);
                }
                w.write_all(&r.bytes)
            })
            .await?;
            let file = w
                .into_inner()
                .map_err(|e| e.into_error())
                .map_err(io("write", &incr))?;
            file.sync_all().map_err(io("fsync", &incr))?;
            let manifest = dir.join("appendonly.aof.manifest");
            std::fs::write(
                &manifest,
                format!("file {base_name} seq 1 type b\nfile {incr_name} seq 1 type i\n"),
            )
            .map_err(io("write", &manifest))?;
            if opts.force && out.exists() {
                std::fs::remove_dir_all(out).map_err(io("replace", out))?;
            }
            std::fs::rename(&dir, out).map_err(io("rename into place", out))?;
            Ok((stats, None))
        }
    }
}

/// Name of the AOF the private server loads for [`Format::Rdb`], in the
/// work directory.
const REPLAY_AOF: &str = "replay.aof";

/// Appends the plan's commands to `file` (an RDB, which becomes an AOF
/// with an RDB preamble), and makes it durable.
async fn append_commands(
    vault: &Vault,
    key: Option<&MasterKey>,
    plan: &Plan,
    file: &Path,
) -> Result<ReplayStats, AtError> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .map_err(io("open", file))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let stats = replay::replay(vault, plan, key, |r| w.write_all(&r.bytes)).await?;
    let f = w
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io("write", file))?;
    f.sync_all().map_err(io("fsync", file))?;
    Ok(stats)
}

fn publish(tmp: &Path, out: &Path, force: bool) -> Result<(), AtError> {
    let f = std::fs::File::open(tmp).map_err(io("open", tmp))?;
    f.sync_all().map_err(io("fsync", tmp))?;
    if force {
        std::fs::rename(tmp, out).map_err(io("rename into place", out))?;
    } else {
        std::fs::hard_link(tmp, out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                AtError::Vault(VaultError::OutputExists(out.display().to_string()))
            } else {
                io("link into place", out)(e)
            }
        })?;
    }
    Ok(())
}

/// A private server on a unix socket, no port: it loads the work
/// directory's [`REPLAY_AOF`] at start (Redis 7+ moves it into an
/// appendonlydir of its own first) and saves to `base.rdb` when told.
struct Server {
    child: Child,
    socket: PathBuf,
    bin: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &Path, dir: &Path) -> Result<Server, AtError> {
        let socket = dir.join("replay.sock");
        let log = dir.join("replay.log");
        let shown = bin.display().to_string();
        let child = Command::new(bin)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(dir)
            .args([
                "--dbfilename",
                "base.rdb",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfilename",
                REPLAY_AOF,
                "--appendfsync",
                "no",
                // No rewrite of what it loaded while it saves.
                "--auto-aof-rewrite-percentage",
                "0",
                "--daemonize",
                "no",
                "--logfile",
            ])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| AtError::Server {
                bin: shown.clone(),
                reason: format!(
                    "cannot start it ({e}): install redis-server or valkey-server, or name one with --server-bin"
                ),
            })?;
        let mut server = Server {
            child,
            socket,
            bin: shown,
            log,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn fail(&self, reason: impl Into<String>) -> AtError {
        let mut reason = reason.into();
        if let Ok(log) = std::fs::read_to_string(&self.log) {
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| l.contains('#') || l.contains("RDB") || l.contains("rror"))
                .rev()
                .take(3)
                .collect();
            if !tail.is_empty() {
                reason.push_str(": ");
                reason.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
            }
        }
        AtError::Server {
            bin: self.bin.clone(),
            reason,
        }
    }

    /// Waits until the server has loaded the AOF and answers PING.
    fn wait_ready(&mut self) -> Result<(), AtError> {
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.fail(format!(
                    "it exited ({status}) before it was ready; can it load this RDB version and the commands after it?"
                )));
            }
            if let Ok(mut c) = std::os::unix::net::UnixStream::connect(&self.socket)
                && let Ok(Frame::Simple(s)) = call(&mut c, &[b"PING"])
                && s == "PONG"
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.fail("it did not become ready"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends one command and reads its reply.
fn call(c: &mut std::os::unix::net::UnixStream, args: &[&[u8]]) -> std::io::Result<Frame> {
    let mut out = Vec::new();
    replvault_protocol::resp::encode_command(args, &mut out);
    c.write_all(&out)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match decode(&buf) {
            Ok(Some((f, _))) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Starts the private server on the work directory's AOF, and has it
/// save what it loaded to `base.rdb`, which is then checked.
fn load_and_save(work: &Path, opts: &AtOptions) -> Result<Summary, AtError> {
    let server = tokio::task::block_in_place(|| Server::start(&opts.server_bin, work))?;
    let mut conn = std::os::unix::net::UnixStream::connect(&server.socket)
        .map_err(|e| server.fail(format!("cannot connect: {e}")))?;
    match tokio::task::block_in_place(|| call(&mut conn, &[b"SAVE"])) {
        Ok(Frame::Simple(s)) if s == "OK" => {}
        other => return Err(server.fail(format!("SAVE failed: {other:?}"))),
    }
    drop(server);
    let base = work.join("base.rdb");
    Ok(restore::check_file(&base)?)
}
