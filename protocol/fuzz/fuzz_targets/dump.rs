//! DUMP payloads: footer checks, and records built from them pass the
//! checker or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replvault_protocol::dump::{Dump, RdbWriter, make_payload};
use replvault_protocol::rdb::Checker;

fuzz_target!(|data: &[u8]| {
    let _ = Dump::parse(data);
    // The same bytes as a value with a valid footer: the writer embeds it,
    // and the checker must judge the result without panicking.
    let p = make_payload(data, 10);
    let Ok(d) = Dump::parse(&p) else { return };
    let mut out = Vec::new();
    let mut w = RdbWriter::new(10, &mut out);
    w.select_db(&mut out, 0, 1, 0);
    if w.key(&mut out, b"k", &d, Some(1)).is_err() {
        return;
    }
    w.finish(&mut out);
    let mut s = Checker::new();
    if s.feed(&out).is_ok() {
        let _ = s.finish();
    }
});
