//! Arbitrary bytes into the streaming RDB checker, in chunks chosen by the
//! first byte; a second checker with its content checks deferred must reach
//! the same verdict.
//!
//! Body and assertions: `replvault_protocol::fuzzing::rdb_check`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::rdb_check(data));
