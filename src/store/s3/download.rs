//! Reading large objects as ranges fetched in parallel, handed on in order,
//! each retried on its own, into buffers that are reused.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use super::S3Store;

/// Bytes per ranged GET when reading a large object.
pub(super) const RANGE: u64 = 8 << 20;
/// Attempts per ranged GET whose body fails mid-way (the SDK retries
/// only until the response headers arrive).
const RANGE_ATTEMPTS: u32 = 4;

/// Range buffers the reader hands back once it has read them, for the next
/// ranges: a restore allocates about as many as it holds at once, not one
/// per range, and glibc keeps freed buffers of this size (BENCHMARKS.md,
/// "Decisions").
#[derive(Clone, Default)]
pub(super) struct Pool(Arc<std::sync::Mutex<Vec<BytesMut>>>);

impl Pool {
    /// An empty buffer with room for `len` bytes.
    fn take(&self, len: usize) -> BytesMut {
        let mut buf = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    /// Keeps a range's buffer if nothing else holds it.
    fn give(&self, range: Bytes) {
        if let (Ok(buf), Ok(mut pool)) = (range.try_into_mut(), self.0.lock()) {
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
    }
}

/// Range buffers kept for reuse: those in flight, queued and being read.
const POOL_MAX: usize = 16;

/// Fetches `size` bytes of `key` as ranges, `concurrency` at a time, and
/// sends them in order.
pub(super) async fn fetch_ranges(
    store: S3Store,
    key: String,
    size: u64,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    pool: Pool,
) {
    let mut pending = VecDeque::new();
    let mut next = 0u64;
    loop {
        while pending.len() < store.s.concurrency && next < size {
            let end = (next + RANGE).min(size);
            let (st, k, p) = (store.clone(), key.clone(), pool.clone());
            pending.push_back(tokio::spawn(async move {
                fetch_range(&st, &k, next, end, &p).await
            }));
            next = end;
        }
        let Some(h) = pending.pop_front() else { return };
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(format!(
                "range download task failed: {e}"
            ))),
        };
        let failed = r.is_err();
        if tx.send(r).await.is_err() || failed {
            // The reader went away or a range failed: stop the rest.
            for h in pending {
                h.abort();
            }
            return;
        }
    }
}

/// One range, copied into one buffer of its size as the body arrives. The
/// body's own chunks are views of the HTTP client's read buffers, and
/// holding them would keep more than the range alive.
async fn fetch_range(
    store: &S3Store,
    key: &str,
    start: u64,
    end: u64,
    pool: &Pool,
) -> Result<Bytes, std::io::Error> {
    let mut last = String::new();
    let mut buf = pool.take(usize::try_from(end - start).unwrap_or(0));
    for attempt in 0..RANGE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        // The SDK already retried what can be retried before the body.
        let r = store
            .get_object(key, Some(format!("bytes={start}-{}", end - 1)))
            .await
            .map_err(std::io::Error::other)?;
        let mut body = r.body;
        buf.clear();
        let read = loop {
            match body.next().await {
                // A store that ignores Range sends the whole object: stop
                // at the range's size rather than hold it all.
                Some(Ok(chunk)) if (buf.len() + chunk.len()) as u64 > end - start => {
                    break Ok(false);
                }
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => break Err(e),
                None => break Ok(true),
            }
        };
        match read {
            Ok(true) if buf.len() as u64 == end - start => return Ok(buf.freeze()),
            Ok(true) => last = format!("got {} bytes of range {start}-{end}", buf.len()),
            Ok(false) => last = format!("got more than the {} bytes asked for", end - start),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(key, start, attempt, error = %last, "range download failed, retrying");
    }
    Err(std::io::Error::other(format!(
        "{}: reading {key} at byte {start} failed {RANGE_ATTEMPTS} times: {last}",
        store.s.describe
    )))
}

/// An `AsyncRead` over a channel of ranges.
pub(super) struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    /// The range being read and how far.
    current: Option<(Bytes, usize)>,
    pool: Pool,
}

impl ChannelReader {
    /// Reads the ranges `rx` delivers, handing their buffers to `pool`.
    pub(super) fn new(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>, pool: Pool) -> Self {
        ChannelReader {
            rx,
            current: None,
            pool,
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.current {
                Some((range, pos)) if *pos < range.len() => {
                    let n = (range.len() - *pos).min(buf.remaining());
                    buf.put_slice(&range[*pos..*pos + n]);
                    *pos += n;
                    return Poll::Ready(Ok(()));
                }
                Some(_) => {
                    if let Some((range, _)) = this.current.take() {
                        this.pool.give(range);
                    }
                }
                None => match this.rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                    Poll::Ready(Some(Ok(range))) => this.current = Some((range, 0)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranges_read_in_order_and_their_buffers_come_back_for_reuse() {
        use tokio::io::AsyncReadExt;
        let pool = Pool::default();
        let (tx, rx) = mpsc::channel(4);
        let mut want = Vec::new();
        for i in 0..3u8 {
            let mut buf = pool.take(1000);
            buf.extend(std::iter::repeat_n(i, 1000));
            want.extend_from_slice(&buf);
            tx.send(Ok(buf.freeze())).await.expect("sent");
        }
        // A range still held elsewhere is read but not taken back.
        let held = Bytes::from(vec![9u8; 10]);
        want.extend_from_slice(&held);
        tx.send(Ok(held.clone())).await.expect("sent");
        drop(tx);
        let mut r = ChannelReader {
            rx,
            current: None,
            pool: pool.clone(),
        };
        let mut got = Vec::new();
        let mut small = [0u8; 300];
        loop {
            let n = r.read(&mut small).await.expect("reads");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, want);
        assert_eq!(pool.0.lock().expect("lock").len(), 3);
        let again = pool.take(1000);
        assert!(again.is_empty() && again.capacity() >= 1000);
        assert_eq!(pool.0.lock().expect("lock").len(), 2);
    }
}
