//! Point-in-time recovery: the replication stream after the snapshot,
//! archived in the vault beside the base backups, and replayed to rebuild
//! the dataset as it was at any moment (`docs/FORMAT.md`, "The stream
//! archive").
//!
//! - [`segment`]: one segment's key and its sealed contents.
//! - [`archive`]: timelines and segments as stored; restorable windows.
//! - [`archiver`]: the replica that writes the archive (`run --pitr`).
//! - [`replay`]: what to replay for a time: base, segments, commands.
//! - [`restore_at`]: `restore --at` in its three output formats.

pub mod archive;
pub mod archiver;
pub mod replay;
pub mod restore_at;
pub mod segment;

pub use archive::{Archive, Window};
pub use archiver::{ArchiverStatus, PitrOptions, SharedStatus};
