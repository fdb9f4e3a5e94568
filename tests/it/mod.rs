//! Integration test modules.

pub mod util;
