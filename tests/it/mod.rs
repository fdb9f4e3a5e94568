//! Integration test modules.

pub mod backup_restore;
pub mod failures;
pub mod proxy;
pub mod util;
