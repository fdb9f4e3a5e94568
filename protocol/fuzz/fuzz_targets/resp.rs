//! Arbitrary bytes into the RESP decoder, whole and split in two.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replvault_protocol::resp::decode;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    // Decode frames one after another, as a client reading replies does.
    while let Ok(Some((_, used))) = decode(buf) {
        assert!(used > 0 && used <= buf.len());
        buf = &buf[used..];
    }
    // A prefix is either incomplete, an error, or a complete frame.
    if let Some(&b) = data.first() {
        let cut = usize::from(b) % (data.len() + 1);
        let _ = decode(&data[..cut]);
    }
});
