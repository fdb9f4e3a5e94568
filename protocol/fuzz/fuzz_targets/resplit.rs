//! Arbitrary bytes as an RDB re-split by hash slot into N.
//!
//! Body and assertions: `replvault_protocol::fuzzing::resplit`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::resplit(data));
