//! replvault: back up Redis and Valkey by joining them as a replica.
//!
//! # Layout
//!
//! `docs/ARCHITECTURE.md` draws the data paths and says what each module
//! owns and may import. In short:
//!
//! - [`cmd`]: the edge. Flags, the `--config` file, resolving them into the
//!   plain option types below, one module per subcommand. The only place
//!   that knows clap or uses `anyhow`.
//! - [`source`]: where RDB bytes come from: the replication socket
//!   (TCP/TLS around `replvault_protocol::replica`), or scan mode
//!   (SCAN + DUMP written as an RDB).
//! - [`backup`]: the write pipeline: check (CRC-64 and structure) → zstd →
//!   seal (AEAD) → store, then the manifest.
//! - [`restore`]: the read pipeline: fetch → open (AEAD) → decompress →
//!   check → write the file (`O_DIRECT`, write-back), and `verify`.
//! - [`vault`]: backups in a store: ids, manifests (the commit point),
//!   listing, retention and pruning.
//! - [`crypto`]: keys and the STREAM construction over AES-256-GCM.
//! - [`store`]: object stores behind one trait: local directory and S3.
//! - [`daemon`]: scheduled backups, metrics and health endpoints.
//! - [`error_line`]: an error and its causes as one line, each cause once.
//! - [`thread_policy`]: replvault's threads under `SCHED_BATCH`, so they
//!   never preempt Redis when they wake.

pub mod backup;
pub mod cluster;
pub mod cmd;
pub mod crypto;
pub mod daemon;
pub mod error_line;
pub mod heap;
pub mod pitr;
pub mod restore;
pub mod source;
pub mod store;
pub mod thread_policy;
pub mod vault;
