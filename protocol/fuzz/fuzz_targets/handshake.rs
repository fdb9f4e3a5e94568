//! The replica handshake fed arbitrary server replies, in chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replvault_protocol::replica::{Config, Handshake};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut hs = Handshake::new(Config {
        username: (first & 1 == 1).then(|| "u".to_string()),
        password: (first & 2 == 2).then(|| "p".to_string()),
        rdb_only: first & 4 == 4,
        force_sync: first & 8 == 8,
        announce_version: (first & 16 == 16).then(|| "9.0.0".to_string()),
        ..Config::default()
    });
    let chunk = usize::from(first >> 5) * 7 + 1;
    let mut buf: Vec<u8> = Vec::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            while hs.poll_transmit().is_some() {}
            match hs.handle_input(&buf) {
                Ok(0) => break,
                Ok(n) => {
                    assert!(n <= buf.len());
                    buf.drain(..n);
                }
                Err(_) => return,
            }
            while hs.poll_event().is_some() {}
            if hs.is_complete() {
                return;
            }
        }
    }
    let _ = hs.handle_eof();
});
