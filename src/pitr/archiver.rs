//! The stream archiver: stays connected as a replica after the snapshot
//! and writes the command stream into the vault in segments, acknowledging
//! to the primary only what is written.
//!
//! ```text
//! socket ─► payload (full resync only) ─► base backup (backup::BackupWriter)
//!        └► stream ─► Splitter ─► pending segment ─(every interval or size)─►
//!                      committer task: seal, PUT ─► committed offset ─► REPLCONF ACK
//! ```
//!
//! One connection per [`run_once`]; [`run`] reconnects with backoff and
//! resumes from what the vault holds (`PSYNC <replid> <end+1>`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use replvault_protocol::repl_stream::{Kind, Splitter, StreamError};
use replvault_protocol::replica::{Event, Handshake};
use replvault_protocol::resp::encode_command;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::archive::{Archive, TimelineInfo, TimelineSource, replid_object, write_info};
use super::segment::{FORMAT, Segment, SegmentError, SegmentHeader, SegmentKey};
use crate::backup::{BackupWriter, WriteOptions};
use crate::crypto::MasterKey;
use crate::source::conn::Connection;
use crate::source::replica::{self, pump};
use crate::source::{SourceError, SourceInfo, SourceOptions, connect};
use crate::vault::{Manifest, Vault, VaultError, new_id};

/// An idle primary (keepalives only) gets a segment at most this often.
pub const IDLE_COMMIT: Duration = Duration::from_secs(60);
/// `REPLCONF ACK` at least this often (a primary drops a replica that is
/// silent for `repl-timeout`, 60 s by default).
const ACK_EVERY: Duration = Duration::from_secs(1);
/// Bytes read from the socket at a time.
const READ_SIZE: usize = 64 * 1024;
/// Snapshot chunks buffered between the socket and the base backup.
const DEPTH: usize = 16;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the archive is cut and stored.
#[derive(Clone, Debug)]
pub struct PitrOptions {
    /// Commit what arrived at least this often.
    pub interval: Duration,
    /// Commit when this many stream bytes are pending.
    pub segment_size: u64,
    /// zstd level of segments and of the base backup.
    pub compression_level: i32,
    /// Store the snapshot of a full resync as a base backup. A cluster's
    /// shard archivers do not: the cluster backups are their bases.
    pub store_base: bool,
    /// The cluster shard archived (its first slot), when several
    /// archivers share the vault: its timelines carry it, and a
    /// reconnection continues the shard's own newest timeline.
    pub shard: Option<u16>,
}

/// What the archiver has done, for logs and metrics.
#[derive(Clone, Debug, Default)]
pub struct ArchiverStatus {
    /// The timeline being written.
    pub timeline: Option<String>,
    /// Offset of the last byte received.
    pub received_offset: u64,
    /// Offset of the last byte written to the vault (and acknowledged).
    pub committed_offset: u64,
    /// Arrival (Unix ms) of the oldest command not yet written, if any.
    pub oldest_pending_ms: Option<u64>,
    /// Segments written since start.
    pub segments: u64,
    /// Timelines started after a gap since start.
    pub gaps: u64,
    /// Base backups this archiver took (its full resyncs).
    pub bases: u64,
    /// Connected and streaming.
    pub streaming: bool,
}

/// Shared view of the archiver's status.
pub type SharedStatus = Arc<Mutex<ArchiverStatus>>;

fn status(s: &SharedStatus) -> std::sync::MutexGuard<'_, ArchiverStatus> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why the archiver stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The connection or handshake failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A segment could not be built or read.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// The primary sent something that is not a replication stream.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The primary closed the connection.
    #[error("the primary closed the replication link at offset {0}")]
    Closed(u64),
    /// Writing segments failed.
    #[error("writing a segment failed: {0}")]
    Commit(String),
    /// Finding the primary to attach to failed.
    #[error("finding the primary: {0}")]
    Discovery(String),
}

/// Where the archive stands: what a reconnection asks for.
#[derive(Clone, Debug)]
struct Resume {
    timeline: String,
    replid: String,
    offset: u64,
    db: u32,
    /// A base backup of the timeline exists. Without one (its snapshot was
    /// cut short, or its base failed) nothing in it can be restored until
    /// a scheduled backup, maybe a day on: a reconnection starts a new
    /// timeline from a full resync instead of continuing it.
    has_base: bool,
}

/// Runs the archiver until `cancel`, reconnecting after failures;
/// `source` says where to connect each time (a cluster shard's primary
/// moves with a failover).
pub async fn run<F, Fut>(
    source: F,
    vault: &Vault,
    key: Option<&MasterKey>,
    opts: &PitrOptions,
    shared: SharedStatus,
    on_base: impl Fn(Result<Manifest, String>) + Send + Sync,
    cancel: CancellationToken,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<SourceOptions, String>>,
{
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        let began = Instant::now();
        let segments = status(&shared).segments;
        let result = match source().await {
            Ok(s) => run_once(&s, vault, key, opts, &shared, &on_base, &cancel).await,
            Err(e) => Err(ArchiveError::Discovery(e)),
        };
        let progressed = {
            let mut s = status(&shared);
            s.streaming = false;
            s.segments > segments
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                // A link that wrote to the vault, or streamed for a while,
                // is a fresh start: the next attempt comes at once, before
                // the primary's backlog overruns. (Counting on across
                // such links made a few short faults in a row wait 8, 16,
                // then 30 s, and the backlog overran: a gap.)
                if progressed || began.elapsed() > MAX_BACKOFF {
                    failures = 0;
                }
                failures += 1;
                let wait = Duration::from_millis(250 * 2u64.pow(failures.min(7))).min(MAX_BACKOFF);
                tracing::warn!(error = %e, retry_in = ?wait, "stream archiver stopped; reconnecting");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => return,
                }
            }
        }
    }
}

/// Where the vault's archive ends, to resume from.
async fn resume_point(
    vault: &Vault,
    key: Option<&MasterKey>,
    shard: Option<u16>,
) -> Result<Option<Resume>, ArchiveError> {
    let archive = Archive::load(vault).await?;
    let Some(t) = archive
        .timelines
        .iter()
        .rev()
        .find(|t| t.info.shard == shard)
    else {
        return Ok(None);
    };
    let replid = t
        .replids
        .last()
        .map_or(t.info.replid.clone(), |(_, r)| r.clone());
    let db = match t.segments.last() {
        Some(last) => {
            let object = last.object(&t.info.id);
            let stored = vault
                .store()
                .get(&object, super::segment::MAX_STORED)
                .await
                .map_err(VaultError::from)?;
            Segment::open(&object, &stored, key.cloned(), last)?
                .header
                .db_end
        }
        None => 0,
    };
    // A cluster backup's shards are bases of their shards' timelines.
    let has_base = super::archive::bases(&vault.list().await?)
        .iter()
        .any(|m| t.is_base(m));
    if !has_base {
        tracing::warn!(timeline = %t.info.id, "the archive's last timeline has no base backup; starting a new timeline from a full resync");
    }
    Ok(Some(Resume {
        timeline: t.info.id.clone(),
        replid,
        offset: t.end_offset(),
        db,
        has_base,
    }))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One connection: handshake, snapshot if the primary sends one, then the
/// stream until it ends or `cancel`. `Ok` only when cancelled, after the
/// pending commands were written.
async fn run_once(
    source: &SourceOptions,
    vault: &Vault,
    key: Option<&MasterKey>,
    opts: &PitrOptions,
    shared: &SharedStatus,
    on_base: &(impl Fn(Result<Manifest, String>) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<(), ArchiveError> {
    let resume = resume_point(vault, key, opts.shard).await?;
    // The primary: WAIT counts only its direct replicas' acknowledgements.
    // Rediscovered on every connection, so the archiver follows a failover.
    let target = crate::source::resolve(source, crate::source::NodeRole::Primary).await?;
    let mut conn = connect(&target, &source.connect).await?;
    let mut config = replica::config(&target, false, false);
    config.resume = resume
        .as_ref()
        .filter(|r| r.has_base)
        .map(|r| (r.replid.clone(), r.offset as i64));
    let mut hs = Handshake::new(config);
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut info = SourceInfo {
        address: target.redacted(),
        mode: "sync".into(),
        point_in_time: true,
        ..SourceInfo::default()
    };
    let mut framing = None;
    let mut continued = None;
    let asked = Instant::now();
    replica::handshake(
        &mut conn,
        &mut hs,
        &mut buf,
        source.idle_timeout,
        |ev| match ev {
            Event::Continue { replid } => continued = Some(replid),
            ev => replica::note_event(ev, &mut info, &mut framing),
        },
    )
    .await?;
    let mut state = match (continued, resume) {
        (Some(new_replid), Some(r)) => {
            let replid = match new_replid {
                Some(n) if n != r.replid => {
                    tracing::info!(old = %r.replid, new = %n, offset = r.offset, "the primary continues under a new replication id (failover)");
                    let marker = replid_object(&r.timeline, r.offset, &n);
                    vault
                        .store()
                        .put(&marker, Bytes::new())
                        .await
                        .map_err(VaultError::from)?;
                    n
                }
                _ => r.replid,
            };
            tracing::info!(timeline = %r.timeline, offset = r.offset, "continuing the archive (+CONTINUE)");
            StreamState::new(r.timeline, replid, r.offset, r.db)
        }
        (_, previous) => {
            let (Some(replid), Some(offset), Some(framing)) =
                (info.replid.clone(), info.offset, framing)
            else {
                return Err(SourceError::Io {
                    bytes: 0,
                    source: std::io::Error::other("the primary sent no snapshot after PSYNC"),
                }
                .into());
            };
            let offset = u64::try_from(offset).unwrap_or(0);
            let id = new_id(Utc::now())?;
            let reason = if previous.is_some() {
                "full resync"
            } else {
                "first"
            };
            tracing::info!(timeline = %id, %replid, offset, reason, "starting a timeline from a full resync");
            write_info(
                vault,
                &TimelineInfo {
                    format: super::archive::FORMAT,
                    id: id.clone(),
                    started_at: Utc::now(),
                    replid: replid.clone(),
                    start_offset: offset,
                    source: TimelineSource {
                        address: info.address.clone(),
                        server: None,
                        version: None,
                    },
                    reason: reason.into(),
                    previous: previous.map(|p| p.timeline),
                    shard: opts.shard,
                },
            )
            .await?;
            if reason != "first" {
                status(shared).gaps += 1;
            }
            info.wait_secs = Some((asked.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
            let (c, rest) =
                take_base(conn, buf, framing, info, vault, key, opts, on_base, source).await?;
            conn = c;
            buf = rest;
            if opts.store_base {
                status(shared).bases += 1;
            }
            StreamState::new(id, replid, offset, 0)
        }
    };
    {
        let mut s = status(shared);
        s.timeline = Some(state.timeline.clone());
        s.received_offset = state.offset;
        s.committed_offset = state.offset;
        s.streaming = true;
    }
    state
        .stream(
            conn,
            buf,
            vault,
            key,
            opts,
            shared,
            source.idle_timeout,
            cancel,
        )
        .await
}

/// Receives the snapshot that follows a full resync into a base backup,
/// and returns the connection once the payload has been read (the base
/// finishes in the background; `on_base` hears how it ended).
#[allow(clippy::too_many_arguments)]
async fn take_base(
    conn: Connection,
    buf: BytesMut,
    framing: replvault_protocol::payload::Framing,
    info: SourceInfo,
    vault: &Vault,
    key: Option<&MasterKey>,
    opts: &PitrOptions,
    on_base: &(impl Fn(Result<Manifest, String>) + Send + Sync),
    source: &SourceOptions,
) -> Result<(Connection, BytesMut), ArchiveError> {
    let size_hint = match framing {
        replvault_protocol::payload::Framing::Length(n) => Some(n),
        replvault_protocol::payload::Framing::Eof(_) => None,
    };
    let mut writer = if opts.store_base {
        let w = BackupWriter::start(
            vault,
            key,
            WriteOptions::new(opts.compression_level, size_hint, source),
        )
        .await?;
        tracing::info!(
            id = w.id(),
            "base backup started from the archiver's snapshot"
        );
        Some(w)
    } else {
        // Read through, and let it go: the stream follows it.
        None
    };
    let (tx, mut rx) = mpsc::channel(DEPTH);
    let offset = info.offset.unwrap_or(0);
    let idle = source.idle_timeout;
    let pumping = async move {
        let r = pump(conn, buf, framing, offset, idle, &tx).await;
        // Closing the channel tells the feeder the payload is over.
        drop(tx);
        r
    };
    let feeding = async {
        while let Some(chunk) = rx.recv().await {
            match (chunk, writer.as_mut()) {
                (Ok(c), Some(w)) => w.write(c).await?,
                (Ok(_), None) => {}
                (Err(e), _) => return Err(ArchiveError::from(e)),
            }
        }
        Ok::<_, ArchiveError>(())
    };
    let (pumped, fed) = tokio::join!(pumping, feeding);
    let (conn, rest) = match (pumped, fed) {
        (Ok(c), Ok(())) => c,
        (Err(e), _) | (_, Err(ArchiveError::Source(e))) => {
            if let Some(w) = writer {
                let _ = w.abort().await;
                on_base(Err(e.to_string()));
            }
            return Err(e.into());
        }
        (_, Err(e)) => {
            if let Some(w) = writer {
                let _ = w.abort().await;
                on_base(Err(e.to_string()));
            }
            return Err(e);
        }
    };
    let Some(writer) = writer else {
        return Ok((conn, rest));
    };
    // Committing the base takes moments; the stream must be read meanwhile.
    let done = writer.finish(info).await;
    match done {
        Ok(m) => {
            tracing::info!(id = %m.id, keys = m.summary.total_keys(), "base backup complete");
            on_base(Ok(m));
        }
        Err(e) => {
            tracing::error!(error = %e, "base backup failed; the archive goes on, restorable from the next base");
            on_base(Err(e.to_string()));
        }
    }
    Ok((conn, rest))
}

/// The stream after the snapshot, cut into segments.
struct StreamState {
    timeline: String,
    replid: String,
    /// Offset of the last complete command received.
    offset: u64,
    /// Database selected after the last complete command.
    db: u32,
    splitter: Splitter,
    /// Stream bytes not yet in a segment: complete commands, then the
    /// start of an unfinished one.
    pending: Vec<u8>,
    /// Bytes of `pending` that are complete commands.
    complete: usize,
    times: Vec<u64>,
    /// The segment being gathered starts here, in this database.
    seg_start: u64,
    seg_db: u32,
    /// It holds commands that change data (not only keepalives).
    has_data: bool,
    /// The primary asked for an acknowledgement since the last cut: a
    /// client waits in `WAIT`, perhaps for a command that changes no data
    /// (`PUBLISH`), which must not wait for the idle commit.
    ack_asked: bool,
}

impl StreamState {
    fn new(timeline: String, replid: String, offset: u64, db: u32) -> Self {
        StreamState {
            timeline,
            replid,
            offset,
            db,
            splitter: Splitter::new(),
            pending: Vec::new(),
            complete: 0,
            times: Vec::new(),
            seg_start: offset,
            seg_db: db,
            has_data: false,
            ack_asked: false,
        }
    }

    /// Takes newly read stream bytes; true if the primary asked for an
    /// acknowledgement.
    fn take(&mut self, bytes: &[u8]) -> Result<bool, StreamError> {
        let now = now_ms();
        let mut getack = false;
        let (mut db, mut has_data) = (self.db, self.has_data);
        let times = &mut self.times;
        self.splitter.feed(bytes, &mut |b| {
            times.push(now);
            match b.kind {
                Kind::Select(n) => db = n,
                Kind::GetAck => getack = true,
                _ => {}
            }
            has_data |= b.kind.is_data();
        })?;
        self.pending.extend_from_slice(bytes);
        // Everything but the start of an unfinished command is complete.
        self.complete = self.pending.len() - self.splitter.partial() as usize;
        self.offset = self.seg_start + self.complete as u64;
        self.db = db;
        self.has_data = has_data;
        self.ack_asked |= getack;
        Ok(getack)
    }

    /// Cuts the complete commands into a segment, if it is time.
    fn cut(&mut self, force_size: u64, idle_due: bool, force: bool) -> Option<Segment> {
        if self.complete == 0 {
            return None;
        }
        let due = force
            || self.complete as u64 >= force_size
            || self.has_data
            || self.ack_asked
            || idle_due;
        if !due {
            return None;
        }
        let rest = self.pending.split_off(self.complete);
        let stream = std::mem::replace(&mut self.pending, rest);
        let times = std::mem::take(&mut self.times);
        let header = SegmentHeader {
            format: FORMAT,
            timeline: self.timeline.clone(),
            replid: self.replid.clone(),
            start: self.seg_start,
            end: self.seg_start + stream.len() as u64,
            db: self.seg_db,
            db_end: self.db,
            first_ms: times.first().copied().unwrap_or_else(now_ms),
            last_ms: times.last().copied().unwrap_or_else(now_ms),
            commands: times.len() as u64,
        };
        self.seg_start = header.end;
        self.seg_db = self.db;
        self.complete = 0;
        self.has_data = false;
        self.ack_asked = false;
        Some(Segment {
            header,
            times,
            stream,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &mut self,
        conn: Connection,
        mut buf: BytesMut,
        vault: &Vault,
        key: Option<&MasterKey>,
        opts: &PitrOptions,
        shared: &SharedStatus,
        idle: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), ArchiveError> {
        let (mut rd, mut wr) = tokio::io::split(conn);
        let (committed_tx, mut committed_rx) = watch::channel(self.offset);
        let (seg_tx, seg_rx) = mpsc::channel::<Segment>(1);
        let committer = tokio::spawn(commit_segments(
            seg_rx,
            vault.clone(),
            key.cloned(),
            opts.compression_level,
            committed_tx,
            shared.clone(),
        ));
        let mut ack = tokio::time::interval(ACK_EVERY);
        let mut tick = tokio::time::interval(opts.interval);
        ack.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_read = Instant::now();
        let mut last_commit = Instant::now();
        // A tick found a segment due while the one before was still being
        // written: cut once that one is in the vault.
        let mut due_after_write = false;
        // Stream bytes read with the handshake or the payload's last read.
        let early = std::mem::take(&mut buf);
        let result: Result<(), ArchiveError> = async {
            if !early.is_empty() && self.take(&early)? {
                let c = *committed_rx.borrow();
                send_ack(&mut wr, c).await?;
            }
            loop {
                buf.reserve(READ_SIZE);
                tokio::select! {
                    n = rd.read_buf(&mut buf) => {
                        let n = n.map_err(|source| SourceError::Io { bytes: self.offset, source })?;
                        if n == 0 {
                            return Err(ArchiveError::Closed(self.offset));
                        }
                        last_read = Instant::now();
                        let getack = self.take(&buf)?;
                        buf.clear();
                        {
                            let mut s = status(shared);
                            s.received_offset = self.offset;
                            if s.oldest_pending_ms.is_none() && self.complete > 0 {
                                s.oldest_pending_ms = self.times.first().copied();
                            }
                        }
                        if self.complete as u64 >= opts.segment_size {
                            // At most one segment is written while the next
                            // gathers (memory: two segments, not three):
                            // a full one waits for the one before.
                            let before = self.seg_start;
                            committed_rx
                                .wait_for(|c| *c >= before)
                                .await
                                .map_err(|_| ArchiveError::Commit("the segment writer stopped".into()))?;
                            let c = *committed_rx.borrow_and_update();
                            send_ack(&mut wr, c).await?;
                            self.commit(&seg_tx, opts.segment_size, false, false).await?;
                            last_commit = Instant::now();
                            due_after_write = false;
                        }
                        if getack {
                            let c = *committed_rx.borrow();
                            send_ack(&mut wr, c).await?;
                        }
                    }
                    _ = tick.tick() => {
                        let idle_due = last_commit.elapsed() >= IDLE_COMMIT;
                        if *committed_rx.borrow() < self.seg_start {
                            due_after_write = true;
                        } else if self.commit(&seg_tx, opts.segment_size, idle_due, false).await? {
                            last_commit = Instant::now();
                        }
                        if last_read.elapsed() > idle {
                            return Err(SourceError::IdleTimeout { after: idle, bytes: self.offset }.into());
                        }
                    }
                    _ = ack.tick() => {
                        let c = *committed_rx.borrow();
                        send_ack(&mut wr, c).await?;
                    }
                    changed = committed_rx.changed() => {
                        if changed.is_err() {
                            return Err(ArchiveError::Commit("the segment writer stopped".into()));
                        }
                        // Acknowledge at once, so WAIT returns as soon as
                        // the write is in the vault.
                        let c = *committed_rx.borrow_and_update();
                        send_ack(&mut wr, c).await?;
                        if due_after_write && c >= self.seg_start {
                            due_after_write = false;
                            let idle_due = last_commit.elapsed() >= IDLE_COMMIT;
                            if self.commit(&seg_tx, opts.segment_size, idle_due, false).await? {
                                last_commit = Instant::now();
                            }
                        }
                    }
                    () = cancel.cancelled() => {
                        // Nothing received is left behind on a clean stop.
                        self.commit(&seg_tx, opts.segment_size, false, true).await?;
                        return Ok(());
                    }
                }
            }
        }
        .await;
        drop(seg_tx);
        let committed = committer.await;
        let end = *committed_rx.borrow();
        let _ = send_ack(&mut wr, end).await;
        let _ = wr.shutdown().await;
        match committed {
            Ok(Ok(())) => result,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(ArchiveError::Commit(e.to_string())),
        }
    }

    /// Hands a segment to the writer if one is due; true if it did.
    async fn commit(
        &mut self,
        seg_tx: &mpsc::Sender<Segment>,
        size: u64,
        idle_due: bool,
        force: bool,
    ) -> Result<bool, ArchiveError> {
        let Some(seg) = self.cut(size, idle_due, force) else {
            return Ok(false);
        };
        seg_tx
            .send(seg)
            .await
            .map_err(|_| ArchiveError::Commit("the segment writer stopped".into()))?;
        Ok(true)
    }
}

async fn send_ack(wr: &mut WriteHalf<Connection>, offset: u64) -> Result<(), ArchiveError> {
    let mut out = Vec::new();
    encode_command(
        &[b"REPLCONF", b"ACK", offset.to_string().as_bytes()],
        &mut out,
    );
    wr.write_all(&out).await.map_err(|source| SourceError::Io {
        bytes: offset,
        source,
    })?;
    Ok(())
}

/// Writes segments in order, one at a time, and publishes the offset each
/// one ends at once it is stored.
async fn commit_segments(
    mut rx: mpsc::Receiver<Segment>,
    vault: Vault,
    key: Option<MasterKey>,
    level: i32,
    committed: watch::Sender<u64>,
    shared: SharedStatus,
) -> Result<(), ArchiveError> {
    while let Some(seg) = rx.recv().await {
        let k: SegmentKey = seg.key();
        let object = k.object(&seg.header.timeline);
        let key2 = key.clone();
        let sealed = tokio::task::spawn_blocking(move || seg.seal(key2.as_ref(), level))
            .await
            .map_err(|e| ArchiveError::Commit(e.to_string()))??;
        vault
            .store()
            .put(&object, Bytes::from(sealed))
            .await
            .map_err(VaultError::from)?;
        tracing::debug!(start = k.start, end = k.end, "segment written");
        {
            let mut s = status(&shared);
            s.committed_offset = k.end;
            s.segments += 1;
            s.oldest_pending_ms = None;
        }
        let _ = committed.send(k.end);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        out
    }

    #[test]
    fn keepalives_wait_for_the_idle_commit_unless_the_primary_asks() {
        let mut s = StreamState::new("t".into(), "r".into(), 100, 0);
        let ping = cmd(&[b"PING"]);
        let publish = cmd(&[b"PUBLISH", b"ch", b"m"]);
        assert!(!s.take(&ping).unwrap());
        assert!(!s.take(&publish).unwrap());
        assert!(s.cut(1 << 20, false, false).is_none(), "no data, not idle");
        // A client waits in WAIT: what it waits for is cut at the next tick.
        assert!(s.take(&cmd(&[b"REPLCONF", b"GETACK", b"*"])).unwrap());
        let seg = s.cut(1 << 20, false, false).expect("due once asked");
        assert_eq!(seg.header.start, 100);
        assert_eq!(seg.header.commands, 3);
        assert_eq!(s.offset, seg.header.end);
        // Asked once, cut once.
        assert!(!s.take(&ping).unwrap());
        assert!(s.cut(1 << 20, false, false).is_none());
        let seg = s.cut(1 << 20, true, false).expect("idle commit");
        assert_eq!(seg.header.commands, 1);
    }

    #[test]
    fn data_is_due_at_the_next_tick() {
        let mut s = StreamState::new("t".into(), "r".into(), 0, 0);
        s.take(&cmd(&[b"SELECT", b"2"])).unwrap();
        let set = cmd(&[b"SET", b"k", b"v"]);
        // A command split across reads is not cut in half.
        s.take(&set[..5]).unwrap();
        let seg = s.cut(1 << 20, false, false).unwrap();
        assert_eq!((seg.header.db, seg.header.db_end), (0, 2));
        assert_eq!(seg.header.commands, 1);
        s.take(&set[5..]).unwrap();
        let seg = s.cut(1 << 20, false, false).unwrap();
        assert_eq!(seg.stream, set);
        assert_eq!((seg.header.db, seg.header.db_end), (2, 2));
    }
}
