//! The replica handshake fed arbitrary server replies, in chunks.
//!
//! Body and assertions: `replvault_protocol::fuzzing::handshake`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::handshake(data));
