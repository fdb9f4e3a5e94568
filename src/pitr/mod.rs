//! Point-in-time recovery: the replication stream after the snapshot,
//! archived in the vault beside the base backups, and replayed to rebuild
//! the dataset as it was at any moment (`docs/FORMAT.md`, "The stream
//! archive").
//!
//! - [`segment`]: one segment's key and its sealed contents.
//! - [`archive`]: timelines and segments as stored; restorable windows.
//! - [`fetch`]: reading a timeline's segments with GETs in flight.
//! - [`archiver`]: the replica that writes the archive (`run --pitr`).
//! - [`prune`]: which bases `--keep-pitr` needs; deleting what none uses.
//! - [`replay`]: what to replay for a time: base, segments, commands.
//! - [`verify`]: checking every segment of a timeline.
//! - [`restore_at`]: `restore --at` in its three output formats.

pub mod archive;
pub mod archiver;
pub mod fetch;
pub mod prune;
pub mod replay;
pub mod restore_at;
pub mod segment;
pub mod verify;

pub use archive::{Archive, Gap, Window};
pub use archiver::{ArchiverStatus, PitrOptions, SharedStatus};
