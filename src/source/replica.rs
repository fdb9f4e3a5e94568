//! The replica driver: runs `replvault_protocol::replica::Handshake` over a
//! connection, then streams the RDB payload through `PayloadReader` into the
//! [`RdbSource`] channel, sending `REPLCONF ACK` when due.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use replvault_protocol::payload::{Framing, PayloadReader};
use replvault_protocol::replica::{Config, Event, Handshake};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::SourceInfo;
use super::conn::Connection;
use super::url::RedisTarget;
use super::{RdbSource, SourceError};

/// Payload is handed on in chunks of up to this size, read from the
/// socket at most this much at a time. Servers write about 16 KiB at a
/// time, and each hand-off wakes the stages downstream; under 128 KiB
/// glibc serves the chunks from its heap and reuses them (BENCHMARKS.md,
/// "Decisions").
const CHUNK: usize = 120 * 1024;
/// Bytes per read from the socket.
const READ_SIZE: usize = CHUNK;
/// The longest received payload waits to be passed on (and checked) when
/// it arrives too slowly to fill a chunk.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Chunks buffered between the socket and the vault writer.
const DEPTH: usize = 16;

/// Options for the replication source.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Fail when the server sends nothing for this long.
    pub idle_timeout: Duration,
    /// Start with SYNC instead of PSYNC.
    pub force_sync: bool,
}

/// Reads what the server sends next into `buf`; 0 at end of stream.
pub async fn read_some(
    conn: &mut Connection,
    buf: &mut BytesMut,
    idle: Duration,
    got: u64,
) -> Result<usize, SourceError> {
    buf.reserve(READ_SIZE);
    match tokio::time::timeout(idle, conn.read_buf(buf)).await {
        Err(_) => Err(SourceError::IdleTimeout {
            after: idle,
            bytes: got,
        }),
        Ok(Err(source)) => Err(SourceError::Io { bytes: got, source }),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Runs the handshake on `conn` until the server says what follows (a
/// payload header, or `+CONTINUE`), handing each event to `on_event`.
/// Bytes read past the handshake stay in `buf`.
pub async fn handshake(
    conn: &mut Connection,
    hs: &mut Handshake,
    buf: &mut BytesMut,
    idle: Duration,
    mut on_event: impl FnMut(Event),
) -> Result<(), SourceError> {
    while !hs.is_complete() {
        while let Some(out) = hs.poll_transmit() {
            conn.write_all(&out)
                .await
                .map_err(|source| SourceError::Io { bytes: 0, source })?;
        }
        let used = hs.handle_input(buf)?;
        let _ = buf.split_to(used);
        let mut any = false;
        while let Some(ev) = hs.poll_event() {
            any = true;
            on_event(ev);
        }
        if hs.is_complete() || used > 0 || any {
            continue;
        }
        if read_some(conn, buf, idle, 0).await? == 0 {
            return Err(hs.handle_eof().into());
        }
    }
    Ok(())
}

/// The handshake configuration for `target`.
pub fn config(target: &RedisTarget, rdb_only: bool, force_sync: bool) -> Config {
    Config {
        username: target.username.clone(),
        password: target.password.clone(),
        listening_port: 0,
        rdb_only,
        force_sync,
        announce_version: Some(replvault_protocol::replica::ANNOUNCED_VALKEY_VERSION.into()),
        resume: None,
    }
}

/// Runs the handshake; on success the payload streams in a spawned task.
pub async fn start(
    mut conn: Connection,
    target: &RedisTarget,
    opts: &ReplicaOptions,
) -> Result<RdbSource, SourceError> {
    let mut hs = Handshake::new(config(target, true, opts.force_sync));
    let mut info = SourceInfo {
        address: target.redacted(),
        mode: "sync".into(),
        point_in_time: true,
        ..SourceInfo::default()
    };
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut framing = None;
    // The server answers PSYNC only when its fork starts: with diskless
    // sync that can be repl-diskless-sync-delay seconds later.
    tracing::info!(address = %info.address, "connected; asking for a snapshot");
    let asked = Instant::now();
    handshake(&mut conn, &mut hs, &mut buf, opts.idle_timeout, |ev| {
        note_event(ev, &mut info, &mut framing)
    })
    .await?;
    let framing = framing.ok_or(SourceError::Io {
        bytes: 0,
        source: std::io::Error::other("no payload header"),
    })?;
    let size_hint = match framing {
        Framing::Length(n) => Some(n),
        Framing::Eof(_) => None,
    };
    let waited = asked.elapsed().as_secs_f64();
    info.wait_secs = Some((waited * 1000.0).round() / 1000.0);
    let waited = format!("{waited:.1}s");
    tracing::info!(address = %info.address, mode = %info.mode, replid = ?info.replid, size = ?size_hint, waited, "receiving the RDB snapshot");
    let (tx, rx) = mpsc::channel(DEPTH);
    let offset = info.offset.unwrap_or(0);
    let idle = opts.idle_timeout;
    tokio::spawn(async move {
        match pump(conn, buf, framing, offset, idle, &tx).await {
            // Closing the link is how a backup replica says goodbye.
            Ok((mut conn, _)) => {
                let _ = conn.shutdown().await;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
            }
        }
    });
    Ok(RdbSource {
        info,
        size_hint,
        chunks: rx,
    })
}

/// Records what a handshake event says about the snapshot.
pub fn note_event(ev: Event, info: &mut SourceInfo, framing: &mut Option<Framing>) {
    match ev {
        Event::FullResync { replid, offset } => {
            info.replid = Some(replid);
            info.offset = Some(offset);
        }
        Event::FellBackToSync => {
            tracing::info!("the server refused PSYNC; using SYNC");
            info.mode = "sync (SYNC fallback)".into();
        }
        Event::OptionRefused { option, message } => {
            tracing::debug!(%option, %message, "server did not accept an optional REPLCONF");
        }
        Event::Payload(f) => *framing = Some(f),
        _ => {}
    }
}

/// Streams the payload into `tx` until complete; returns the connection
/// and what was read past the payload (the replication stream).
///
/// Payload is gathered into chunks of up to [`CHUNK`] bytes, and a chunk
/// goes on once full or once its first byte has waited [`MAX_WAIT`]: at
/// full speed chunks fill in well under a millisecond, while a slow or
/// trickling source still has every byte checked within about a second of
/// its arrival (a stream that breaks the checker fails then, instead of
/// when 120 KiB have gathered, and the idle timeout, which a trickle never
/// trips, is not what ends it).
pub async fn pump(
    mut conn: Connection,
    mut buf: BytesMut,
    framing: Framing,
    offset: i64,
    idle: Duration,
    tx: &mpsc::Sender<Result<Bytes, SourceError>>,
) -> Result<(Connection, BytesMut), SourceError> {
    let mut reader = PayloadReader::new(framing);
    let mut out = BytesMut::with_capacity(CHUNK);
    // When the oldest byte in `out` arrived; `None` while `out` is empty.
    let mut waiting_since: Option<tokio::time::Instant> = None;
    // When the server last sent anything: the idle timeout counts from it.
    let mut heard = tokio::time::Instant::now();
    let (mut reads, mut sends) = (0u64, 0u64);
    loop {
        if !buf.is_empty() {
            // Pass on what has gathered before it would outgrow its buffer.
            if !out.is_empty() && out.len() + buf.len() > CHUNK {
                sends += 1;
                waiting_since = None;
                if !pass_on(&mut out, tx).await {
                    return Err(SourceError::Aborted);
                }
            }
            let used = reader
                .feed(&buf, &mut |b| out.extend_from_slice(b))
                .map_err(SourceError::Payload)?;
            let _ = buf.split_to(used);
            if !out.is_empty() && waiting_since.is_none() {
                waiting_since = Some(heard);
            }
            let waited = waiting_since.is_some_and(|t| t.elapsed() >= MAX_WAIT);
            if (reader.is_complete() || waited) && !out.is_empty() {
                sends += 1;
                waiting_since = None;
                if !pass_on(&mut out, tx).await {
                    return Err(SourceError::Aborted);
                }
            }
        }
        if let Some(ack) = reader.poll_ack(Instant::now(), offset) {
            let _ = conn.write_all(&ack).await;
        }
        if reader.is_complete() {
            tracing::debug!(reads, sends, bytes = reader.delivered(), "payload received");
            return Ok((conn, buf));
        }
        reads += 1;
        buf.reserve(READ_SIZE);
        // Wake for the next bytes, for gathered bytes that have waited
        // long enough, or for the idle timeout, whichever comes first.
        let idle_at = heard + idle;
        let wake = waiting_since.map_or(idle_at, |t| (t + MAX_WAIT).min(idle_at));
        let got = reader.delivered();
        match tokio::time::timeout_at(wake, conn.read_buf(&mut buf)).await {
            Ok(Ok(0)) => {
                reader.handle_eof().map_err(SourceError::Payload)?;
                return Ok((conn, buf));
            }
            Ok(Ok(_)) => heard = tokio::time::Instant::now(),
            Ok(Err(source)) => return Err(SourceError::Io { bytes: got, source }),
            Err(_) if tokio::time::Instant::now() >= idle_at => {
                return Err(SourceError::IdleTimeout {
                    after: idle,
                    bytes: got,
                });
            }
            // Gathered bytes have waited long enough: check them now.
            // (Dropping `read_buf` unfinished loses nothing: it is cancel
            // safe.)
            Err(_) => {
                waiting_since = None;
                if !out.is_empty() {
                    sends += 1;
                    if !pass_on(&mut out, tx).await {
                        return Err(SourceError::Aborted);
                    }
                }
            }
        }
    }
}

/// Sends `out` on in a fresh buffer; false once the consumer has stopped
/// (the backup was aborted: just close).
async fn pass_on(out: &mut BytesMut, tx: &mpsc::Sender<Result<Bytes, SourceError>>) -> bool {
    let chunk = std::mem::replace(out, BytesMut::with_capacity(CHUNK)).freeze();
    tx.send(Ok(chunk)).await.is_ok()
}
