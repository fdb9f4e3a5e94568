//! Helpers shared by the checker's unit tests.

use super::{CheckError, Checker, Summary};

/// A raw string in RDB form.
pub(super) fn raw(s: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(s.len()).expect("short")];
    v.extend_from_slice(s);
    v
}

/// Checks `bytes` fed in chunks of `chunk`, the content checks in place
/// or (`defer`) deferred and run after each chunk.
pub(super) fn check(bytes: &[u8], chunk: usize, defer: bool) -> Result<Summary, CheckError> {
    let mut s = Checker::new();
    for c in bytes.chunks(chunk) {
        if defer {
            let (d, fed) = s.feed_deferring(c);
            d.check(c)?;
            fed?;
        } else {
            s.feed(c)?;
        }
    }
    s.finish()
}
