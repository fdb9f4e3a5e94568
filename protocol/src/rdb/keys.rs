//! Per-key work the check does only when asked for it: the hash slot of
//! every key (a cluster shard's backup, [`Checker::with_slots`]), and the
//! record events the re-splitter routes bytes by
//! ([`Resplit`](crate::cluster::Resplit)).
//!
//! A plain check has no [`KeyTrack`] and never reaches this file: the only
//! cost of the option is a null test per record on the task path. With
//! one, runs of whole string records take an in-place path of their own
//! that hashes each key where it lies ([`KeyTrack::whole_key`]); every
//! other key record takes the task path, its key read as [`StrUse::Key`]:
//! the key's bytes (raw, integer text or LZF output) stream through a
//! [`SlotHasher`], so a key of any length, cut anywhere, is hashed without
//! being held.
//!
//! [`Checker::with_slots`]: super::Checker::with_slots
//! [`StrUse::Key`]: super::tasks::StrUse::Key

use super::error::CheckErrorKind;
use crate::cluster::{SlotHasher, SlotSet, key_slot};

/// Bytes of a key shown in an error message.
const KEY_SHOWN: usize = 64;

/// What the check tells the re-splitter, in payload order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A record with opcode (or value type) `op` starts at offset `at`.
    Record { at: u64, op: u8 },
    /// The current key record's slot is known. Everything from the
    /// record's first opcode to the next record goes with it.
    Slot(u16),
    /// The current aux record is kept, or left out (`false`), by its field
    /// name.
    Aux(bool),
}

/// Aux fields a re-split output does not inherit: the source's
/// replication identity. A server that loads a file with them offers
/// partial resynchronization from that history, which a file holding only
/// some of the keys is not.
pub(crate) const REPLICATION_AUX: [&str; 3] = ["repl-id", "repl-offset", "repl-stream-db"];

/// The per-key state of a check that looks at keys.
#[derive(Debug, Default)]
pub(crate) struct KeyTrack {
    /// Every key must hash to one of these (`None`: any slot).
    pub(crate) slots: Option<SlotSet>,
    /// Events for the re-splitter, taken after each feed (`None`: none kept).
    pub(crate) events: Option<Vec<Event>>,
    hasher: SlotHasher,
    /// The key's first [`KEY_SHOWN`] bytes.
    shown: Vec<u8>,
    len: u64,
    /// Offset of the key record's type byte.
    record_at: u64,
    /// The key's slot event is sent.
    settled: bool,
    /// Every key, whole (tests).
    #[cfg(test)]
    pub(crate) keys: Option<Vec<Vec<u8>>>,
}

impl KeyTrack {
    /// Tracking that checks keys against `slots` (if any) and keeps
    /// re-split `events` (if asked).
    pub(crate) fn new(slots: Option<SlotSet>, events: bool) -> Self {
        KeyTrack {
            slots,
            events: events.then(Vec::new),
            ..KeyTrack::default()
        }
    }

    /// A record (opcode `op`) starts at `at`.
    #[inline]
    pub(crate) fn record(&mut self, at: u64, op: u8) {
        if let Some(events) = self.events.as_mut() {
            events.push(Event::Record { at, op });
        }
    }

    /// A key record (its type byte at `at`) in database `db`; its key is
    /// next.
    pub(crate) fn key_record(&mut self, at: u64, db: u64) -> Result<(), CheckErrorKind> {
        self.hasher = SlotHasher::new();
        self.shown.clear();
        self.len = 0;
        self.record_at = at;
        self.settled = false;
        if db != 0 {
            return Err(CheckErrorKind::ClusterDb { db });
        }
        #[cfg(test)]
        if let Some(keys) = self.keys.as_mut() {
            keys.push(Vec::new());
        }
        Ok(())
    }

    /// The next bytes of the key.
    pub(crate) fn key_bytes(&mut self, bytes: &[u8]) {
        if self.shown.len() < KEY_SHOWN {
            let take = bytes.len().min(KEY_SHOWN - self.shown.len());
            self.shown.extend_from_slice(&bytes[..take]);
        }
        self.len += bytes.len() as u64;
        self.hasher.update(bytes);
        #[cfg(test)]
        if let Some(key) = self.keys.as_mut().and_then(|k| k.last_mut()) {
            key.extend_from_slice(bytes);
        }
        // A closed hash tag fixes the slot before the key ends, so the
        // re-splitter need not hold the rest of a long key. A slot outside
        // the set waits for the key's end, which fails the check.
        if !self.settled
            && self.events.is_some()
            && let Some(slot) = self.hasher.decided()
            && self.slots.as_ref().is_none_or(|s| s.contains(slot))
        {
            self.settle(Event::Slot(slot));
        }
    }

    /// The key ended: its slot must be in the set. On failure, the offset
    /// of the key record and what is wrong.
    pub(crate) fn key_done(&mut self) -> Result<(), (u64, CheckErrorKind)> {
        let slot = self.hasher.slot();
        if let Some(slots) = &self.slots
            && !slots.contains(slot)
        {
            let key = shown(&self.shown, self.len);
            return Err((
                self.record_at,
                CheckErrorKind::KeyOutsideSlots { key, slot },
            ));
        }
        if !self.settled {
            self.settle(Event::Slot(slot));
        }
        Ok(())
    }

    /// The whole key at once (the in-place path): `key_bytes` then
    /// `key_done`, without keeping any of it.
    #[inline]
    pub(crate) fn whole_key(&mut self, key: &[u8]) -> Result<(), (u64, CheckErrorKind)> {
        #[cfg(test)]
        if let Some(keys) = self.keys.as_mut()
            && let Some(last) = keys.last_mut()
        {
            last.extend_from_slice(key);
        }
        let slot = key_slot(key);
        if let Some(slots) = &self.slots
            && !slots.contains(slot)
        {
            let key = shown(&key[..key.len().min(KEY_SHOWN)], key.len() as u64);
            return Err((
                self.record_at,
                CheckErrorKind::KeyOutsideSlots { key, slot },
            ));
        }
        self.settle(Event::Slot(slot));
        Ok(())
    }

    /// An aux record's field name is read.
    pub(crate) fn aux_key(&mut self, name: &str) {
        if let Some(events) = self.events.as_mut() {
            events.push(Event::Aux(!REPLICATION_AUX.contains(&name)));
        }
    }

    #[inline]
    fn settle(&mut self, event: Event) {
        self.settled = true;
        if let Some(events) = self.events.as_mut() {
            events.push(event);
        }
    }
}

/// A key for a message: its first bytes (`prefix`) lossily decoded, and
/// its length when that is more.
fn shown(prefix: &[u8], len: u64) -> String {
    let mut key = String::from_utf8_lossy(prefix).into_owned();
    if len > prefix.len() as u64 {
        key.push_str(&format!("… ({len} bytes)"));
    }
    key
}
