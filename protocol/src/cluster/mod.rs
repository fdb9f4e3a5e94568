//! Redis Cluster support: hash slots.
//!
//! A cluster backup takes one RDB per shard, each of which must hold only
//! keys of the slots its shard owns: [`key_slot`] says which slot a key is
//! in, a [`SlotSet`] which slots a shard owns.
//!
//! # Layout
//!
//! - `slot`: [`key_slot`] and [`SlotHasher`] (CRC16 with the hash-tag
//!   rule), [`SlotSet`], and [`create_ranges`] (the ranges
//!   `redis-cli --cluster create` gives N primaries).

mod slot;

pub use slot::{SLOTS, SlotError, SlotHasher, SlotSet, create_ranges, key_slot};
