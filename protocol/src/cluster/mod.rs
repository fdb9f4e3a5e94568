//! Redis Cluster support: hash slots, and re-splitting an RDB by slot.
//!
//! A cluster backup takes one RDB per shard. Each must hold only keys of
//! the slots its shard owns, in database 0: check that with
//! [`Checker::with_slots`](crate::rdb::Checker::with_slots) and a
//! [`SlotSet`]. A restore into a cluster of another shape re-splits the
//! keys: [`Resplit`] turns one RDB into one per slot range, streaming.
//!
//! # Layout
//!
//! - `slot`: [`key_slot`] and [`SlotHasher`] (CRC16 with the hash-tag
//!   rule), [`SlotSet`], and [`create_ranges`] (the ranges
//!   `redis-cli --cluster create` gives N primaries).
//! - `resplit`: [`Resplit`], which routes the records of one RDB to N
//!   outputs by the checker's record events.

mod resplit;
mod slot;
#[cfg(test)]
mod tests;

pub use resplit::{OutputSummary, Resplit, ResplitSummary};
pub use slot::{SLOTS, SlotError, SlotHasher, SlotSet, create_ranges, key_slot};
