//! Arbitrary bytes into the RESP decoder, frame after frame, and a prefix.
//!
//! Body and assertions: `replvault_protocol::fuzzing::resp`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::resp(data));
