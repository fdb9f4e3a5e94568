//! RDB transfer framing: `$<len>\r\n` + exactly len bytes (disk-based sync),
//! or `$EOF:<40-byte mark>\r\n` ... payload ... mark (diskless sync), and
//! when the driver must send `REPLCONF ACK`.
// SKELETON: helper P implements this file. The public names below are the
// contract the binary codes against; extend them, do not rename them.

use std::time::Instant;

/// How the server delimits the RDB payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `$<len>\r\n`: exactly this many payload bytes follow, no CRLF after.
    Length(u64),
    /// `$EOF:<mark>\r\n`: the payload ends with these 40 bytes.
    Eof([u8; 40]),
}

/// Errors in the payload stream.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PayloadError {
    /// Placeholder until implemented.
    #[error("payload framing error: {0}")]
    Invalid(String),
}

/// Strips the framing off the payload bytes that follow the header.
#[derive(Debug)]
pub struct PayloadReader {
    framing: Framing,
    delivered: u64,
    complete: bool,
}

impl PayloadReader {
    /// A reader for a payload announced with `framing`.
    pub fn new(framing: Framing) -> Self {
        PayloadReader {
            framing,
            delivered: 0,
            complete: false,
        }
    }

    /// Feeds bytes read from the socket after the payload header. Payload
    /// bytes are passed to `out` (possibly in several calls, never the EOF
    /// mark). Returns how many input bytes were consumed; once the payload is
    /// complete nothing more is consumed (what follows is the replication
    /// stream, which a backup ignores).
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, PayloadError> {
        let _ = (input, out, &self.framing);
        Err(PayloadError::Invalid("not implemented".into()))
    }

    /// True once the whole payload has been delivered.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Payload bytes delivered to `out` so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// `REPLCONF ACK <offset>` bytes to send now, if one is due (EOF framing:
    /// at once after the payload, then about every second).
    pub fn poll_ack(&mut self, now: Instant, offset: i64) -> Option<Vec<u8>> {
        let _ = (now, offset);
        None
    }
}
