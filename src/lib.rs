//! replvault: back up Redis and Valkey by joining them as a replica.
//!
//! # Layout
//!
//! - [`cli`]: every flag, defined once with its docs.
//! - [`cmd`]: one module per subcommand; the only place that uses `anyhow`.
//! - [`source`]: where RDB bytes come from: the replication socket
//!   (TCP/TLS around `replvault_protocol::replica`), SCAN+DUMP, a local file.
//! - [`catalog`]: the vault: backups as data object + manifest (the commit
//!   point), listing, writing (scan → zstd → AEAD → store) and reading back.
//! - [`crypto`]: keys and the STREAM construction over AES-256-GCM.
//! - [`store`]: object stores behind one trait: local directory and S3.
//! - [`daemon`]: scheduled backups, metrics and health endpoints.
//! - [`retention`]: which backups to keep, and pruning a vault.
//! - [`chain`]: an error and its causes as one line, each cause once.
//! - [`sched`]: replvault's threads under `SCHED_BATCH`, so they never
//!   preempt Redis when they wake.

pub mod backup;
pub mod catalog;
pub mod chain;
pub mod cli;
pub mod cmd;
pub mod crypto;
pub mod daemon;
pub mod retention;
pub mod sched;
pub mod source;
pub mod store;
