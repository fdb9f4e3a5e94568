//! Reading a timeline's segments in order with several GETs in flight.
//!
//! A day of 1 s segments is 86,400 objects; fetched one after another,
//! each pays the store's full round trip (tens of milliseconds on S3), so
//! `verify --all` and `restore --at` spent most of their time waiting.
//! Requests run ahead of the reader within a count and a byte budget, so
//! memory stays bounded whatever the timeline's length.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::task::AbortOnDropHandle;

use super::segment::{MAX_STORED, SegmentKey};
use crate::store::{Store, StoreError};

/// Requests in flight at most.
const MAX_REQUESTS: usize = 16;
/// Stream bytes (as the keys declare them) in flight or waiting, at most;
/// one segment larger than this is still fetched, alone.
const MAX_BYTES: u64 = 64 << 20;

/// A GET under way; dropping it cancels the request.
type Fetching = AbortOnDropHandle<Result<Bytes, StoreError>>;

/// Yields each segment's stored object in key order.
pub struct Prefetch {
    store: Arc<dyn Store>,
    todo: VecDeque<(SegmentKey, String)>,
    pending: VecDeque<(SegmentKey, String, Fetching)>,
    bytes: u64,
}

impl Prefetch {
    /// Starts fetching the segments `keys` of `timeline`.
    pub fn new(store: &Arc<dyn Store>, timeline: &str, keys: &[SegmentKey]) -> Prefetch {
        let todo = keys
            .iter()
            .map(|k| (k.clone(), k.object(timeline)))
            .collect();
        let mut p = Prefetch {
            store: Arc::clone(store),
            todo,
            pending: VecDeque::new(),
            bytes: 0,
        };
        p.fill();
        p
    }

    fn fill(&mut self) {
        while self.pending.len() < MAX_REQUESTS {
            let Some((k, _)) = self.todo.front() else {
                return;
            };
            let size = k.stream_len();
            if !self.pending.is_empty() && self.bytes.saturating_add(size) > MAX_BYTES {
                return;
            }
            let Some((k, object)) = self.todo.pop_front() else {
                return;
            };
            let store = Arc::clone(&self.store);
            let key = object.clone();
            let task = tokio::spawn(async move { store.get(&key, MAX_STORED).await });
            self.bytes = self.bytes.saturating_add(size);
            self.pending
                .push_back((k, object, AbortOnDropHandle::new(task)));
        }
    }

    /// The next segment's key, object name and stored bytes; `None` after
    /// the last.
    pub async fn next(&mut self) -> Option<(SegmentKey, String, Result<Bytes, StoreError>)> {
        let (k, object, task) = self.pending.pop_front()?;
        let got = match task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Backend {
                store: self.store.describe(),
                message: format!("fetching {object}: {e}"),
                source: None,
            }),
        };
        self.bytes = self.bytes.saturating_sub(k.stream_len());
        self.fill();
        Some((k, object, got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStore;

    fn key(i: u64, len: u64) -> SegmentKey {
        SegmentKey {
            start: i * len,
            end: (i + 1) * len,
            first_ms: 1_000 + i,
            last_ms: 1_000 + i,
        }
    }

    /// Objects come back in key order whatever order the GETs finish in,
    /// a missing one is reported at its own place, and the byte budget
    /// lets a segment larger than it through alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_arrive_in_order_with_errors_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::open(dir.path().to_path_buf()).unwrap());
        // Sizes from 1 byte to past the budget, so both limits bind.
        let lens = [1, MAX_BYTES / 3, MAX_BYTES + 1, 7, MAX_BYTES / 2, 3];
        let mut keys = Vec::new();
        for i in 0..40u64 {
            let k = key(i, lens[i as usize % lens.len()]);
            if i != 33 {
                let body = format!("segment {i}");
                store.put(&k.object("tl"), Bytes::from(body)).await.unwrap();
            }
            keys.push(k);
        }
        let mut fetch = Prefetch::new(&store, "tl", &keys);
        assert!(fetch.pending.len() <= MAX_REQUESTS);
        let mut seen = 0u64;
        while let Some((k, object, got)) = fetch.next().await {
            assert_eq!(k, keys[seen as usize]);
            assert_eq!(object, k.object("tl"));
            assert!(fetch.pending.len() <= MAX_REQUESTS);
            assert!(fetch.pending.len() <= 1 || fetch.bytes <= MAX_BYTES);
            if seen == 33 {
                let e = got.unwrap_err();
                assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
            } else {
                assert_eq!(&got.unwrap()[..], format!("segment {seen}").as_bytes());
            }
            seen += 1;
        }
        assert_eq!(seen, 40);
        assert_eq!(fetch.bytes, 0);
    }
}
