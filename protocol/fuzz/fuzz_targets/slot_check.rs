//! Arbitrary bytes as an RDB checked against a set of hash slots.
//!
//! Body and assertions: `replvault_protocol::fuzzing::slot_check`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::slot_check(data));
