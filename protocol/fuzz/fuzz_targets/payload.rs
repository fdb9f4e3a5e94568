//! RDB transfer framing: a header line picks `$len` or `$EOF:` framing,
//! then arbitrary chunks are fed through the reader.
//!
//! Body and assertions: `replvault_protocol::fuzzing::payload`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::payload(data));
