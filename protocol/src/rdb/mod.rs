//! Streaming structural checker for RDB files (Redis and Valkey).
//!
//! Feed the payload in chunks of any size; memory stays bounded whatever
//! the value sizes. [`Checker::finish`] checks the EOF opcode and the CRC-64
//! trailer and returns a [`Summary`].
//!
//! The checker is a small interpreter over a stack of `Task`s: each value
//! type expands into the sequence of lengths, strings and fixed fields that
//! `rdbLoadObject` reads, with counts taken from the data. Every task either
//! completes from the bytes at hand or leaves them for the next chunk, so the
//! only bytes ever carried between chunks are the few of an unfinished length
//! or field. String bodies are skipped (or LZF-decoded) as they stream;
//! encoded blobs (listpack, ziplist, intset, zipmap) are collected up to
//! [`BLOB_CHECK_LIMIT`] and validated entry by entry. With
//! [`Checker::feed_deferring`], those content checks for strings that lie
//! wholly inside a chunk are handed back as a [`Deferred`] to run on
//! another thread, while this one walks on.
//!
//! # Layout
//!
//! - `checker`: [`Checker`], feeding chunks, the task loop, `finish`.
//! - `tasks`: the task set, and the tasks each value type expands into.
//! - `records`: the header, opcodes and value types (what a record pushes),
//!   and the in-place walk over runs of string records.
//! - `strings`: lengths and strings (raw, integer, LZF), what each string
//!   is for, and the in-place check of plain strings.
//! - `dialect`: where Redis and Valkey files part.
//! - `blob`, `lzf`: encoded blobs and LZF, checked inside strings.
//! - `deferred`: content checks left to another thread.
//! - `keys`: per-key work done only when asked: each key's hash slot
//!   ([`Checker::with_slots`]), and record events for the re-splitter
//!   ([`Resplit`](crate::cluster::Resplit)).
//! - `summary`, `error`: what a check returns.

mod blob;
mod checker;
mod deferred;
mod dialect;
mod error;
pub(crate) mod keys;
mod lzf;
mod records;
mod strings;
mod summary;
mod tasks;
#[cfg(test)]
mod test_support;

pub use checker::{Checker, DEFAULT_MAX_VALUE, Limits, MAX_DATABASES};
pub use deferred::Deferred;
pub use dialect::{MAX_REDIS_RDB_VERSION, MAX_VALKEY_RDB_VERSION};
pub use error::{CheckError, CheckErrorKind};
pub use summary::{Checksum, DbSummary, ModuleCounts, OTHER_MODULES, Summary, module_type_name};

/// Encoded blobs up to this size are collected and checked entry by entry;
/// larger ones (far beyond any listpack Redis writes with sane configs) are
/// skipped with only their outer length checked, keeping memory bounded.
pub const BLOB_CHECK_LIMIT: u64 = 64 * 1024 * 1024;
