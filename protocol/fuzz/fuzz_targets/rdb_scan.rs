//! Arbitrary bytes into the streaming RDB scanner, in chunks whose sizes
//! come from the first input byte, then `finish`. Must never panic, hang or
//! allocate without bound; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replvault_protocol::rdb::Scanner;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut s = Scanner::new();
    for piece in rest.chunks(chunk) {
        if s.feed(piece).is_err() {
            return;
        }
    }
    let _ = s.finish();
});
