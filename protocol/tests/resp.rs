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

/// Seeded xorshift64: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An input near RESP: tokens (type bytes, lengths, text, CRLF) that often
/// form frames, sometimes cut or with a byte changed; or plain random bytes.
fn input(rng: &mut Rng) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"+",
        b"-",
        b":",
        b"$",
        b"*",
        b"%",
        b"_",
        b"#",
        b",",
        b"=",
        b"!",
        b"(",
        b"|",
        b">",
        b"~",
        b"\r\n",
        b"\r\n",
        b"\r\n",
        b"0",
        b"1",
        b"2",
        b"3",
        b"-1",
        b"-2",
        b"t",
        b"f",
        b"1.5",
        b"inf",
        b"OK",
        b"ab",
        b"9223372036854775807",
        b"\n",
        b"\r",
    ];
    let mut buf = Vec::new();
    if rng.below(4) == 0 {
        buf.extend((0..rng.below(40)).map(|_| rng.next() as u8));
        return buf;
    }
    for _ in 0..1 + rng.below(20) {
        buf.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
    }
    match rng.below(4) {
        0 if !buf.is_empty() => {
            let at = rng.below(buf.len());
            buf[at] ^= 1 << rng.below(8);
        }
        1 => buf.truncate(rng.below(buf.len() + 1)),
        _ => {}
    }
    buf
}

#[test]
fn pseudo_random_bytes_never_panic() {
    const N: usize = 20_000;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = std::collections::HashSet::new();
    let (mut frames, mut incomplete, mut invalid) = (0, 0, 0);
    for _ in 0..N {
        let buf = input(&mut rng);
        seen.insert(buf.clone());
        // Frame after frame, as a client reading replies does.
        let mut rest = &buf[..];
        loop {
            match decode(rest) {
                Ok(Some((frame, used))) => {
                    frames += 1;
                    assert!(used > 0 && used <= rest.len(), "{rest:?}: used {used}");
                    // A frame is self-delimiting: the same on its own, and
                    // every proper prefix of it is incomplete.
                    assert_eq!(decode(&rest[..used]), Ok(Some((frame, used))), "{rest:?}");
                    for cut in 0..used {
                        assert_eq!(decode(&rest[..cut]), Ok(None), "{rest:?} cut {cut}");
                    }
                    rest = &rest[used..];
                }
                Ok(None) => {
                    incomplete += 1;
                    break;
                }
                Err(Error::Invalid { offset, reason }) => {
                    invalid += 1;
                    assert!(offset <= rest.len(), "{rest:?}: offset {offset}");
                    assert!(!reason.is_empty(), "{rest:?}");
                    break;
                }
                // `decode` turns Incomplete into Ok(None).
                Err(e) => panic!("{rest:?}: {e:?}"),
            }
        }
    }
    // The inputs really vary, and every outcome is exercised.
    assert!(
        seen.len() > N * 9 / 10,
        "{} distinct inputs of {N}",
        seen.len()
    );
    for (what, n) in [
        ("frames", frames),
        ("incomplete", incomplete),
        ("invalid", invalid),
    ] {
        assert!(n > 1000, "{what}: {n}");
    }
}

#[test]
fn commands_encode_as_bulk_arrays() {
    let mut out = Vec::new();
    encode_command(&[b"SET", b"k\r\n", b""], &mut out);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
}
