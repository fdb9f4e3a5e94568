//! DUMP payloads: footer checks, and records built from them pass the
//! checker or fail cleanly.
//!
//! Body and assertions: `replvault_protocol::fuzzing::dump`, which
//! `protocol/tests/fuzz_smoke.rs` also runs on stable Rust.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| replvault_protocol::fuzzing::dump(data));
