//! Integration test modules.

pub mod backup_restore;
pub mod cluster;
pub mod daemon;
pub mod deploy;
pub mod failures;
pub mod harness;
pub mod hostile;
pub mod pitr;
pub mod proxy;
pub mod prune;
pub mod s3;
pub mod scan;
pub mod secrets;
pub mod sentinel;
pub mod util;
pub mod versions;
