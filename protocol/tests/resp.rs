//! RESP decoding: every frame type, incomplete input at every split, bad
//! input rejected without panics or huge allocations.

use replvault_protocol::resp::{Error, Frame, decode, encode_command};

#[test]
fn every_type_decodes_and_incomplete_is_not_an_error() {
    let cases: Vec<(&[u8], Frame)> = vec![
        (b"+OK\r\n", Frame::Simple("OK".into())),
        (b"-ERR bad\r\n", Frame::Error("ERR bad".into())),
        (b":-42\r\n", Frame::Integer(-42)),
        (b"$3\r\na\r\n\r\n", Frame::Bulk(b"a\r\n".to_vec())),
        (b"$-1\r\n", Frame::Null),
        (b"*-1\r\n", Frame::Null),
        (b"_\r\n", Frame::Null),
        (b"#t\r\n", Frame::Boolean(true)),
        (b",1.5\r\n", Frame::Double(1.5)),
        (
            b"*2\r\n:1\r\n$1\r\nx\r\n",
            Frame::Array(vec![Frame::Integer(1), Frame::Bulk(b"x".to_vec())]),
        ),
        (
            b"%1\r\n+k\r\n:2\r\n",
            Frame::Map(vec![(Frame::Simple("k".into()), Frame::Integer(2))]),
        ),
        (b"~1\r\n:1\r\n", Frame::Array(vec![Frame::Integer(1)])),
        (
            b">2\r\n+a\r\n+b\r\n",
            Frame::Array(vec![Frame::Simple("a".into()), Frame::Simple("b".into())]),
        ),
        (b"=7\r\ntxt:abc\r\n", Frame::Bulk(b"txt:abc".to_vec())),
        (b"!5\r\nERR x\r\n", Frame::Error("ERR x".into())),
        (
            b"(123456789012345678901234567890\r\n",
            Frame::Bulk(b"123456789012345678901234567890".to_vec()),
        ),
        (b"|1\r\n+a\r\n+b\r\n:5\r\n", Frame::Integer(5)),
    ];
    for (bytes, frame) in cases {
        let mut with_tail = bytes.to_vec();
        with_tail.extend_from_slice(b"+next\r\n");
        assert_eq!(
            decode(&with_tail).unwrap(),
            Some((frame.clone(), bytes.len())),
            "{bytes:?}"
        );
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]).unwrap(), None, "{bytes:?} cut {cut}");
        }
    }
}

#[test]
fn invalid_input_is_rejected() {
    for bad in [
        &b"?x\r\n"[..],
        b"$-2\r\n",
        b"*-5\r\n",
        b":abc\r\n",
        b"$3\r\nabcXY",
        b"#x\r\n",
        // A map or attribute count whose doubling overflows.
        b"%9223372036854775807\r\n",
        b"|9223372036854775807\r\n",
    ] {
        assert!(matches!(decode(bad), Err(Error::Invalid { .. })), "{bad:?}");
    }
    // A huge declared count allocates nothing up front: it is just incomplete.
    assert_eq!(decode(b"*2147483647\r\n").unwrap(), None);
    assert!(decode(b"$999999999999\r\n").is_err());
    let deep = "*1\r\n".repeat(100);
    assert!(decode(deep.as_bytes()).is_err());
}

#[test]
fn pseudo_random_bytes_never_panic() {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..20_000 {
        let len = (x % 24) as usize;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let alphabet = b"+-:$*%_#,=!(|>~\r\n0123-9ab";
            buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let _ = decode(&buf);
    }
}

#[test]
fn commands_encode_as_bulk_arrays() {
    let mut out = Vec::new();
    encode_command(&[b"SET", b"k\r\n", b""], &mut out);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
}
