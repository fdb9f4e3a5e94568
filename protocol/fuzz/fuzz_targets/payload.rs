//! RDB transfer framing: a header line picks `$len` or `$EOF:` framing,
//! then arbitrary chunks are fed through the reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replvault_protocol::payload::{Framing, PayloadReader};

fuzz_target!(|data: &[u8]| {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Some(framing) = Framing::from_header(&data[..nl]) else {
        return;
    };
    let rest = &data[nl + 1..];
    let chunk = rest.first().map_or(1, |&b| usize::from(b % 50) + 1);
    let mut r = PayloadReader::new(framing);
    let mut out = 0usize;
    let mut buf: Vec<u8> = Vec::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        match r.feed(&buf, &mut |b| out += b.len()) {
            Ok(n) => {
                assert!(n <= buf.len());
                buf.drain(..n);
            }
            Err(_) => return,
        }
        assert!(out as u64 == r.delivered());
        if r.is_complete() {
            return;
        }
    }
    let _ = r.handle_eof();
});
