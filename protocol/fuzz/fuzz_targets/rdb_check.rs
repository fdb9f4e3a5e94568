//! Arbitrary bytes into the streaming RDB checker, in chunks whose sizes
//! come from the first input byte, then `finish`. Must never panic, hang or
//! allocate without bound; errors are fine. A second checker leaves its
//! content checks deferred (as restore runs them, on another thread) and
//! must reach the same verdict, to the byte and the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replvault_protocol::rdb::{CheckError, Checker, Summary};

fn inline(rest: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    for piece in rest.chunks(chunk) {
        s.feed(piece)?;
    }
    s.finish()
}

fn deferring(rest: &[u8], chunk: usize) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    for piece in rest.chunks(chunk) {
        let (deferred, fed) = s.feed_deferring(piece);
        deferred.check(piece)?;
        fed?;
    }
    s.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // Up to 64 bytes, or (top bit set) the whole input in one chunk, where
    // most strings lie wholly inside it and are deferred.
    let chunk = if first & 0x80 != 0 {
        rest.len().max(1)
    } else {
        usize::from(first % 64) + 1
    };
    assert_eq!(inline(rest, chunk), deferring(rest, chunk));
});
