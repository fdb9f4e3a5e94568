//! The RESP frame type and its check/parse/encode functions.

use std::io::Cursor;

/// Deepest nesting of aggregates we accept; real replies nest a few levels.
const MAX_DEPTH: usize = 64;
/// Largest bulk string we accept in a reply (Redis's own proto-max-bulk-len).
const MAX_BULK: i64 = 512 * 1024 * 1024;

/// One RESP value (RESP2, plus the RESP3 types a server may send).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// `+OK`
    Simple(String),
    /// `-ERR ...` (or RESP3 `!` blob error): the whole message after `-`.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo\r\n` (also RESP3 `=` verbatim strings, `(` big numbers).
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Null,
    /// `*N` followed by N frames (also RESP3 `~` sets and `>` pushes).
    Array(Vec<Frame>),
    /// RESP3 `%N`: N key/value pairs.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `,1.5`.
    Double(f64),
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
}

/// Why a buffer does not (yet) hold a valid frame.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// More bytes are needed; not a failure.
    #[error("incomplete frame")]
    Incomplete,
    /// The bytes are not valid RESP.
    #[error("invalid RESP at byte {offset}: {reason}")]
    Invalid {
        /// Offset into the buffer where the problem was seen.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
}

fn invalid(src: &Cursor<&[u8]>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        offset: src.position() as usize,
        reason: reason.into(),
    }
}

impl Frame {
    /// Checks that `src` starts with one whole frame, without allocating.
    pub fn check(src: &mut Cursor<&[u8]>) -> Result<(), Error> {
        check_depth(src, 0)
    }

    /// Parses one frame; call after [`Frame::check`] succeeded.
    pub fn parse(src: &mut Cursor<&[u8]>) -> Result<Frame, Error> {
        parse_depth(src, 0)
    }

    /// The text of a simple string, error or bulk reply, lossily decoded.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Frame::Simple(s) | Frame::Error(s) => Some(s.clone()),
            Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

fn check_depth(src: &mut Cursor<&[u8]>, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(invalid(src, "nesting too deep"));
    }
    match get_u8(src)? {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => {
            line(src)?;
        }
        b'$' | b'=' | b'!' => {
            let start = src.position();
            let l = line(src)?;
            let n = parse_int(l).ok_or_else(|| invalid(src, "bad bulk length"))?;
            if n == -1 {
                return Ok(());
            }
            if !(0..=MAX_BULK).contains(&n) {
                src.set_position(start);
                return Err(invalid(src, format!("bulk length {n} out of range")));
            }
            skip(src, n as usize + 2)?;
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let kind = src.get_ref()[src.position() as usize - 1];
            let n = parse_int(line(src)?).ok_or_else(|| invalid(src, "bad aggregate length"))?;
            if n == -1 {
                return Ok(());
            }
            if n < 0 {
                return Err(invalid(src, "negative aggregate length"));
            }
            let items = if kind == b'%' || kind == b'|' {
                n.checked_mul(2)
                    .ok_or_else(|| invalid(src, "bad aggregate length"))?
            } else {
                n
            };
            for _ in 0..items {
                check_depth(src, depth + 1)?;
            }
            if kind == b'|' {
                // An attribute precedes the real reply.
                check_depth(src, depth + 1)?;
            }
        }
        other => {
            return Err(invalid(
                src,
                format!("unknown frame type byte {other:#04x}"),
            ));
        }
    }
    Ok(())
}

fn parse_depth(src: &mut Cursor<&[u8]>, depth: usize) -> Result<Frame, Error> {
    if depth > MAX_DEPTH {
        return Err(invalid(src, "nesting too deep"));
    }
    let kind = get_u8(src)?;
    let frame = match kind {
        b'+' => Frame::Simple(String::from_utf8_lossy(line(src)?).into_owned()),
        b'-' => Frame::Error(String::from_utf8_lossy(line(src)?).into_owned()),
        b':' => Frame::Integer(parse_int(line(src)?).ok_or_else(|| invalid(src, "bad integer"))?),
        b',' => {
            let l = String::from_utf8_lossy(line(src)?).into_owned();
            let v = match l.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                s => s.parse().map_err(|_| invalid(src, "bad double"))?,
            };
            Frame::Double(v)
        }
        b'#' => match line(src)? {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(invalid(src, "bad boolean")),
        },
        b'_' => {
            line(src)?;
            Frame::Null
        }
        b'(' => Frame::Bulk(line(src)?.to_vec()),
        b'$' | b'=' | b'!' => {
            let n = parse_int(line(src)?).ok_or_else(|| invalid(src, "bad bulk length"))?;
            if n == -1 {
                return Ok(Frame::Null);
            }
            if !(0..=MAX_BULK).contains(&n) {
                return Err(invalid(src, format!("bulk length {n} out of range")));
            }
            let n = n as usize;
            let start = src.position() as usize;
            skip(src, n + 2)?;
            let body = &src.get_ref()[start..start + n];
            if &src.get_ref()[start + n..start + n + 2] != b"\r\n" {
                return Err(invalid(src, "bulk string not followed by CRLF"));
            }
            if kind == b'!' {
                Frame::Error(String::from_utf8_lossy(body).into_owned())
            } else {
                Frame::Bulk(body.to_vec())
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(line(src)?).ok_or_else(|| invalid(src, "bad aggregate length"))?;
            if n == -1 {
                return Ok(Frame::Null);
            }
            if n < 0 {
                return Err(invalid(src, "negative aggregate length"));
            }
            // Never trust a declared count for allocation: grow as items parse.
            let cap = (n as usize).min(1024);
            if kind == b'%' || kind == b'|' {
                let mut pairs = Vec::with_capacity(cap);
                for _ in 0..n {
                    let k = parse_depth(src, depth + 1)?;
                    let v = parse_depth(src, depth + 1)?;
                    pairs.push((k, v));
                }
                if kind == b'|' {
                    return parse_depth(src, depth + 1);
                }
                Frame::Map(pairs)
            } else {
                let mut items = Vec::with_capacity(cap);
                for _ in 0..n {
                    items.push(parse_depth(src, depth + 1)?);
                }
                Frame::Array(items)
            }
        }
        other => {
            return Err(invalid(
                src,
                format!("unknown frame type byte {other:#04x}"),
            ));
        }
    };
    Ok(frame)
}

fn get_u8(src: &mut Cursor<&[u8]>) -> Result<u8, Error> {
    let pos = src.position() as usize;
    let b = *src.get_ref().get(pos).ok_or(Error::Incomplete)?;
    src.set_position(pos as u64 + 1);
    Ok(b)
}

fn skip(src: &mut Cursor<&[u8]>, n: usize) -> Result<(), Error> {
    let pos = src.position() as usize;
    if src.get_ref().len() - pos < n {
        return Err(Error::Incomplete);
    }
    src.set_position((pos + n) as u64);
    Ok(())
}

/// A line up to CRLF (not included); the cursor moves past the CRLF.
fn line<'a>(src: &mut Cursor<&'a [u8]>) -> Result<&'a [u8], Error> {
    let buf: &'a [u8] = src.get_ref();
    let start = src.position() as usize;
    let rest = &buf[start..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            src.set_position((start + i + 2) as u64);
            Ok(&rest[..i])
        }
        None => {
            // A header line is never long; a missing CRLF after 64 KiB is garbage.
            if rest.len() > 64 * 1024 {
                Err(invalid(src, "line too long"))
            } else {
                Err(Error::Incomplete)
            }
        }
    }
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Decodes one frame from the start of `buf`: `Ok(None)` when incomplete,
/// otherwise the frame and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
    let mut cur = Cursor::new(buf);
    match Frame::check(&mut cur) {
        Ok(()) => {}
        Err(Error::Incomplete) => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = cur.position() as usize;
    cur.set_position(0);
    let frame = Frame::parse(&mut cur)?;
    Ok(Some((frame, len)))
}

/// Appends `args` encoded as a RESP array of bulk strings to `out`.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
