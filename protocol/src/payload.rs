//! RDB transfer framing: `$<len>\r\n` + exactly len bytes (disk-based sync),
//! or `$EOF:<40-byte mark>\r\n` ... payload ... mark (diskless sync), and
//! when the driver must send `REPLCONF ACK`.

use std::time::{Duration, Instant};

use crate::resp::encode_command;

/// Length of the random end mark of diskless transfers.
pub const EOF_MARK_LEN: usize = 40;

/// How the server delimits the RDB payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `$<len>\r\n`: exactly this many payload bytes follow, no CRLF after.
    Length(u64),
    /// `$EOF:<mark>\r\n`: the payload ends with these 40 bytes.
    Eof([u8; EOF_MARK_LEN]),
}

impl Framing {
    /// Parses a payload header line (without its CRLF): `$123` or `$EOF:<mark>`.
    pub fn from_header(line: &[u8]) -> Option<Framing> {
        let rest = line.strip_prefix(b"$")?;
        if let Some(mark) = rest.strip_prefix(b"EOF:") {
            let mark: [u8; EOF_MARK_LEN] = mark.try_into().ok()?;
            return Some(Framing::Eof(mark));
        }
        let n: u64 = std::str::from_utf8(rest).ok()?.parse().ok()?;
        Some(Framing::Length(n))
    }
}

/// Errors in the payload stream.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The connection ended before the payload was complete.
    #[error("the server closed the connection after {delivered} payload bytes{expected}")]
    Truncated {
        /// Bytes delivered before the end.
        delivered: u64,
        /// ", expected N" when the length was announced.
        expected: String,
    },
}

/// Strips the framing off the payload bytes that follow the header.
#[derive(Debug)]
pub struct PayloadReader {
    framing: Framing,
    delivered: u64,
    complete: bool,
    /// EOF framing: the last bytes seen, which may be (part of) the mark.
    tail: Vec<u8>,
    /// EOF framing: a searcher for the mark, built once rather than on
    /// every read, which is the hot path of a transfer.
    finder: Option<memchr::memmem::Finder<'static>>,
    last_ack: Option<Instant>,
}

impl PayloadReader {
    /// A reader for a payload announced with `framing`.
    pub fn new(framing: Framing) -> Self {
        let finder = match &framing {
            Framing::Eof(mark) => Some(memchr::memmem::Finder::new(mark).into_owned()),
            Framing::Length(_) => None,
        };
        PayloadReader {
            finder,
            framing,
            delivered: 0,
            complete: false,
            tail: Vec::with_capacity(2 * EOF_MARK_LEN),
            last_ack: None,
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
        if self.complete {
            return Ok(0);
        }
        match &self.framing {
            Framing::Length(total) => {
                let want = (total - self.delivered).min(input.len() as u64) as usize;
                if want > 0 {
                    out(&input[..want]);
                }
                self.delivered += want as u64;
                self.complete = self.delivered == *total;
                Ok(want)
            }
            Framing::Eof(_) => {
                // The mark can only end inside tail+input; look for it in the
                // last 40 bytes of what we have. The server sends nothing
                // after the mark until we ACK, but be exact anyway: consume
                // only up to the mark.
                let joined_len = self.tail.len() + input.len();
                if joined_len < EOF_MARK_LEN {
                    self.tail.extend_from_slice(input);
                    return Ok(input.len());
                }
                // Find the earliest position where the mark ends within input.
                // The mark is random, so a match is the end of the payload.
                let mut window = Vec::with_capacity(2 * EOF_MARK_LEN);
                window.extend_from_slice(&self.tail);
                let head = input.len().min(EOF_MARK_LEN);
                window.extend_from_slice(&input[..head]);
                if let Some(p) = self.find_mark(&window) {
                    // Mark ends at window index p+40, i.e. input index p+40-tail.
                    let payload_in_window = p;
                    self.emit_window(&window[..payload_in_window], out);
                    self.complete = true;
                    return Ok(p + EOF_MARK_LEN - self.tail.len());
                }
                if let Some(p) = self.find_mark(input) {
                    self.emit_window(&self.tail.clone(), out);
                    out(&input[..p]);
                    self.delivered += p as u64;
                    self.tail.clear();
                    self.complete = true;
                    return Ok(p + EOF_MARK_LEN);
                }
                // No mark yet: everything but the last 40 bytes is payload.
                let keep = EOF_MARK_LEN;
                if input.len() >= keep {
                    let tail = std::mem::take(&mut self.tail);
                    self.emit_window(&tail, out);
                    let cut = input.len() - keep;
                    if cut > 0 {
                        out(&input[..cut]);
                        self.delivered += cut as u64;
                    }
                    self.tail.extend_from_slice(&input[cut..]);
                } else {
                    let mut all = std::mem::take(&mut self.tail);
                    all.extend_from_slice(input);
                    let cut = all.len() - keep;
                    self.emit_window(&all[..cut], out);
                    self.tail.extend_from_slice(&all[cut..]);
                }
                Ok(input.len())
            }
        }
    }

    fn find_mark(&self, hay: &[u8]) -> Option<usize> {
        self.finder.as_ref()?.find(hay)
    }

    fn emit_window(&mut self, bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
        if !bytes.is_empty() {
            out(bytes);
            self.delivered += bytes.len() as u64;
        }
    }

    /// Call when the connection ends: an error unless the payload is complete.
    pub fn handle_eof(&self) -> Result<(), PayloadError> {
        if self.complete {
            return Ok(());
        }
        let expected = match self.framing {
            Framing::Length(n) => format!(", expected {n}"),
            Framing::Eof(_) => String::new(),
        };
        Err(PayloadError::Truncated {
            delivered: self.delivered,
            expected,
        })
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
        if !matches!(self.framing, Framing::Eof(_)) || !self.complete {
            return None;
        }
        let due = match self.last_ack {
            None => true,
            Some(t) => now.duration_since(t) >= Duration::from_secs(1),
        };
        if !due {
            return None;
        }
        self.last_ack = Some(now);
        let mut out = Vec::new();
        let off = offset.to_string();
        encode_command(&[b"REPLCONF", b"ACK", off.as_bytes()], &mut out);
        Some(out)
    }
}
