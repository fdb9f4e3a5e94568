//! The RESP frame type and its check/parse/encode functions.
// SKELETON: helper P implements this file. The public names below are the
// contract the binary codes against; extend them, do not rename them.

use std::io::Cursor;

/// One RESP value (RESP2, plus the RESP3 types a server may send).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the whole line after `-`.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo\r\n`
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Null,
    /// `*N` followed by N frames.
    Array(Vec<Frame>),
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

impl Frame {
    /// Checks that `src` starts with one whole frame, without allocating.
    pub fn check(src: &mut Cursor<&[u8]>) -> Result<(), Error> {
        let _ = src;
        Err(Error::Incomplete)
    }

    /// Parses one frame; call after [`Frame::check`] succeeded.
    pub fn parse(src: &mut Cursor<&[u8]>) -> Result<Frame, Error> {
        let _ = src;
        Err(Error::Incomplete)
    }
}

/// Decodes one frame from the start of `buf`: `Ok(None)` when incomplete,
/// otherwise the frame and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
    let _ = buf;
    Ok(None)
}

/// Appends `args` encoded as a RESP array of bulk strings to `out`.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
