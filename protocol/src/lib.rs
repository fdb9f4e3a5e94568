//! Deterministic, sans-IO pieces of the Redis replication protocol.
//!
//! Nothing in this crate touches a socket, a file, a clock or an async
//! runtime: bytes come in as `&[u8]`, time comes in as a `now` argument, and
//! output is polled. The `replvault` binary owns every socket and task and
//! drives these state machines (the quinn-proto / quinn split).
//!
//! # Layout
//!
//! - [`resp`]: RESP2/RESP3 frames, incremental `check`/`parse`, command encoding.
//! - [`replica`]: the replica handshake (AUTH, REPLCONF, PSYNC/SYNC) as a
//!   state machine that reports `+FULLRESYNC` and the payload framing.
//! - [`payload`]: RDB transfer framing (`$<len>` and `$EOF:<mark>`), and when
//!   to send `REPLCONF ACK`.
//! - [`rdb`]: streaming structural checker for RDB files (Redis and Valkey),
//!   with bounded memory, and the summary it produces.
//! - [`repl_stream`]: the command stream after the snapshot: command
//!   boundaries and what each command means to an archive.
//! - [`cluster`]: Redis Cluster hash slots ([`cluster::key_slot`],
//!   [`cluster::SlotSet`]; the checker's slot check is
//!   [`rdb::Checker::with_slots`]), and [`cluster::Resplit`], which splits
//!   one RDB into one per slot range, streaming.
//! - [`crc64`]: CRC-64/Jones, the checksum Redis puts in the RDB trailer.
//! - [`dump`]: `DUMP` payloads, and writing an RDB from them (scan mode).
//! - `fuzzing` (hidden): the fuzz target bodies, for `protocol/fuzz/` and
//!   the stable-Rust smoke test `tests/fuzz_smoke.rs`.
#![warn(missing_docs, unreachable_pub)]

pub mod cluster;
pub mod crc64;
pub mod dump;
#[doc(hidden)]
pub mod fuzzing;
pub mod payload;
pub mod rdb;
pub mod repl_stream;
pub mod replica;
pub mod resp;
