//! Arbitrary bytes as the replication stream after the snapshot.
//!
//! Body and assertions: `replvault_protocol::fuzzing::repl_stream`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::repl_stream(data));
