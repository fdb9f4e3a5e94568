//! The replication stream after the snapshot: the commands a primary sends
//! its replicas, as RESP arrays of bulk strings, every byte counted in the
//! replication offset.
//!
//! [`Splitter`] finds command boundaries incrementally, whatever the read
//! sizes, without holding a command (a 512 MiB `SET` costs it nothing), and
//! classifies each command by what it means to an archive: keepalives
//! (`PING`, `REPLCONF`), database changes (`SELECT`), transaction edges
//! (`MULTI`, `EXEC`), `PUBLISH` (no effect on data), and data.
//! [`command_args`] splits one whole command into its arguments.

use std::ops::Range;

/// Most arguments a command may have (Redis's own limit for a client is
/// 1024 × 1024; a primary's stream can carry a larger `MSET`).
pub const MAX_ARGS: u64 = 1 << 24;
/// Largest argument accepted: Redis's default `proto-max-bulk-len`.
pub const MAX_ARG: u64 = 512 * 1024 * 1024;
/// Longest `*N` / `$N` header line (digits and sign).
const MAX_HEADER: usize = 24;
/// Bytes of the command name and first argument kept to classify it.
const KEEP: usize = 32;

/// What a command means to an archive of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `PING` (the primary's keepalive).
    Ping,
    /// `REPLCONF GETACK`: the primary asks for an acknowledgement.
    GetAck,
    /// Any other `REPLCONF`.
    Replconf,
    /// `SELECT db`.
    Select(u32),
    /// `MULTI`: a transaction starts.
    Multi,
    /// `EXEC`: a transaction ends.
    Exec,
    /// `PUBLISH`/`SPUBLISH` (Sentinel's hellos, applications' messages):
    /// no effect on the dataset.
    Publish,
    /// A command that changes the dataset.
    Data,
}

impl Kind {
    /// True for commands that change or frame the dataset (data, `SELECT`,
    /// `MULTI`, `EXEC`), false for keepalives, acknowledgements and
    /// messages.
    pub fn is_data(self) -> bool {
        matches!(
            self,
            Kind::Data | Kind::Select(_) | Kind::Multi | Kind::Exec
        )
    }
}

/// One whole command found in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundary {
    /// Bytes of the command, from its `*` to its last CRLF.
    pub len: u64,
    /// What it means.
    pub kind: Kind,
}

/// Why the bytes are not a replication stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// Something other than the RESP the primary sends.
    #[error("invalid replication stream at stream byte {at}: {reason}")]
    Invalid {
        /// Bytes of the stream before the fault (since the splitter began).
        at: u64,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading `*N\r\n`.
    ArrayHeader,
    /// Reading `$L\r\n` of the next argument.
    BulkHeader,
    /// Inside an argument's bytes (and its CRLF): this many left.
    Bulk,
}

/// Finds command boundaries in the replication stream, fed in any pieces.
#[derive(Debug)]
pub struct Splitter {
    state: State,
    /// Bytes fed so far.
    pos: u64,
    /// Bytes of the current command so far.
    cur: u64,
    /// The header line being read.
    line: Vec<u8>,
    /// Arguments of the current command still to come.
    args_left: u64,
    /// Index of the argument being read.
    arg: u64,
    /// Bytes left of the current argument, its CRLF included.
    bulk_left: u64,
    /// The current argument's length (to know where its CRLF is).
    bulk_len: u64,
    /// Start of the command name and first argument (up to [`KEEP`] bytes).
    name: Vec<u8>,
    first: Vec<u8>,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// A splitter at the start of a command.
    pub fn new() -> Self {
        Splitter {
            state: State::ArrayHeader,
            pos: 0,
            cur: 0,
            line: Vec::with_capacity(MAX_HEADER),
            args_left: 0,
            arg: 0,
            bulk_left: 0,
            bulk_len: 0,
            name: Vec::with_capacity(KEEP),
            first: Vec::with_capacity(KEEP),
        }
    }

    /// Bytes of an unfinished command held back (0 at a boundary).
    pub fn partial(&self) -> u64 {
        self.cur
    }

    fn invalid(&self, reason: impl Into<String>) -> StreamError {
        StreamError::Invalid {
            at: self.pos,
            reason: reason.into(),
        }
    }

    /// Feeds the next bytes; calls `found` for each command that ends in
    /// them, in order. Never holds more than a header line.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        found: &mut impl FnMut(Boundary),
    ) -> Result<(), StreamError> {
        while !input.is_empty() {
            match self.state {
                State::ArrayHeader | State::BulkHeader => {
                    let Some(nl) = memchr::memchr(b'\n', input) else {
                        if self.line.len() + input.len() > MAX_HEADER {
                            return Err(self.invalid("a header line is too long"));
                        }
                        self.line.extend_from_slice(input);
                        self.advance(input.len() as u64);
                        return Ok(());
                    };
                    if self.line.len() + nl + 1 > MAX_HEADER + 2 {
                        return Err(self.invalid("a header line is too long"));
                    }
                    self.line.extend_from_slice(&input[..=nl]);
                    self.advance(nl as u64 + 1);
                    input = &input[nl + 1..];
                    self.header_done()?;
                }
                State::Bulk => {
                    let take = self.bulk_left.min(input.len() as u64) as usize;
                    let done = self.bulk_len + 2 - self.bulk_left;
                    self.keep(&input[..take], done);
                    // Bytes at or past the argument's length are its CRLF.
                    let crlf_from = self.bulk_len.saturating_sub(done) as usize;
                    for (i, &b) in input[..take].iter().enumerate().skip(crlf_from) {
                        let at = done + i as u64 - self.bulk_len;
                        let want = if at == 0 { b'\r' } else { b'\n' };
                        if b != want {
                            return Err(self.invalid("an argument does not end with CRLF"));
                        }
                    }
                    self.bulk_left -= take as u64;
                    self.advance(take as u64);
                    input = &input[take..];
                    if self.bulk_left == 0 {
                        self.arg += 1;
                        self.args_left -= 1;
                        if self.args_left == 0 {
                            self.end_command(found);
                        } else {
                            self.state = State::BulkHeader;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, n: u64) {
        self.pos += n;
        self.cur += n;
    }

    /// Keeps the start of the name and the first argument.
    fn keep(&mut self, bytes: &[u8], done: u64) {
        let store = match self.arg {
            0 => &mut self.name,
            1 => &mut self.first,
            _ => return,
        };
        let end = self.bulk_len.min(KEEP as u64);
        if done >= end {
            return;
        }
        let n = ((end - done) as usize).min(bytes.len());
        store.extend_from_slice(&bytes[..n]);
    }

    fn header_done(&mut self) -> Result<(), StreamError> {
        let line = std::mem::take(&mut self.line);
        let result = self.header(&line);
        self.line = line;
        self.line.clear();
        result
    }

    fn header(&mut self, line: &[u8]) -> Result<(), StreamError> {
        let Some(body) = line.strip_suffix(b"\r\n") else {
            return Err(self.invalid("a header line does not end with CRLF"));
        };
        let (want, rest) = match self.state {
            State::ArrayHeader => (b'*', body.strip_prefix(b"*")),
            _ => (b'$', body.strip_prefix(b"$")),
        };
        let Some(digits) = rest else {
            return Err(self.invalid(format!(
                "expected {:?}, found {:?}",
                want as char,
                String::from_utf8_lossy(&body[..body.len().min(16)])
            )));
        };
        let n = parse_len(digits).ok_or_else(|| self.invalid("a length is not a number"))?;
        match self.state {
            State::ArrayHeader => {
                if n == 0 || n > MAX_ARGS {
                    return Err(self.invalid(format!("a command of {n} arguments")));
                }
                self.args_left = n;
                self.arg = 0;
                self.name.clear();
                self.first.clear();
                self.state = State::BulkHeader;
            }
            _ => {
                if n > MAX_ARG {
                    return Err(self.invalid(format!("an argument of {n} bytes")));
                }
                self.bulk_len = n;
                self.bulk_left = n + 2;
                self.state = State::Bulk;
            }
        }
        Ok(())
    }

    fn end_command(&mut self, found: &mut impl FnMut(Boundary)) {
        let kind = classify(&self.name, &self.first);
        found(Boundary {
            len: self.cur,
            kind,
        });
        self.cur = 0;
        self.state = State::ArrayHeader;
    }
}

fn parse_len(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn classify(name: &[u8], first: &[u8]) -> Kind {
    if name.eq_ignore_ascii_case(b"PING") {
        Kind::Ping
    } else if name.eq_ignore_ascii_case(b"REPLCONF") {
        if first.eq_ignore_ascii_case(b"GETACK") {
            Kind::GetAck
        } else {
            Kind::Replconf
        }
    } else if name.eq_ignore_ascii_case(b"SELECT") {
        match std::str::from_utf8(first).ok().and_then(|s| s.parse().ok()) {
            Some(db) => Kind::Select(db),
            // A SELECT the server would refuse: replay reports it.
            None => Kind::Data,
        }
    } else if name.eq_ignore_ascii_case(b"MULTI") {
        Kind::Multi
    } else if name.eq_ignore_ascii_case(b"EXEC") {
        Kind::Exec
    } else if name.eq_ignore_ascii_case(b"PUBLISH") || name.eq_ignore_ascii_case(b"SPUBLISH") {
        Kind::Publish
    } else {
        Kind::Data
    }
}

/// The arguments of one whole command (as [`Splitter`] delimited it), as
/// ranges of `cmd`. `None` if `cmd` is not exactly one command.
pub fn command_args(cmd: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut pos = 0usize;
    let (n, used) = header_at(cmd, pos, b'*')?;
    pos += used;
    let mut args = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let (len, used) = header_at(cmd, pos, b'$')?;
        pos += used;
        let len = usize::try_from(len).ok()?;
        let end = pos.checked_add(len)?;
        if cmd.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        args.push(pos..end);
        pos = end + 2;
    }
    (pos == cmd.len()).then_some(args)
}

/// A `<prefix><digits>\r\n` line at `pos`: its number and length.
fn header_at(buf: &[u8], pos: usize, prefix: u8) -> Option<(u64, usize)> {
    let rest = buf.get(pos..)?;
    if rest.first() != Some(&prefix) {
        return None;
    }
    let end = memchr::memmem::find(&rest[..rest.len().min(MAX_HEADER + 2)], b"\r\n")?;
    let n = parse_len(&rest[1..end])?;
    Some((n, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode_command;

    fn cmd(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        out
    }

    fn split_in(stream: &[u8], piece: usize) -> Result<Vec<Boundary>, StreamError> {
        let mut s = Splitter::new();
        let mut got = Vec::new();
        for p in stream.chunks(piece) {
            s.feed(p, &mut |b| got.push(b))?;
        }
        assert_eq!(s.partial(), 0, "stream ends between commands");
        Ok(got)
    }

    #[test]
    fn commands_are_found_and_classified_in_any_pieces() {
        let big = vec![b'x'; 100_000];
        let parts = [
            cmd(&[b"SELECT", b"2"]),
            cmd(&[b"set", b"k", b"v"]),
            cmd(&[b"PING"]),
            cmd(&[b"REPLCONF", b"GETACK", b"*"]),
            cmd(&[b"MULTI"]),
            cmd(&[b"SET", b"big", &big]),
            cmd(&[b"EXEC"]),
            cmd(&[b"PUBLISH", b"__sentinel__:hello", b"x"]),
            cmd(&[b"SELECT", b"notanumber"]),
        ];
        let kinds = [
            Kind::Select(2),
            Kind::Data,
            Kind::Ping,
            Kind::GetAck,
            Kind::Multi,
            Kind::Data,
            Kind::Exec,
            Kind::Publish,
            Kind::Data,
        ];
        let stream = parts.concat();
        for piece in [1, 2, 3, 7, 64, 4096, stream.len()] {
            let got = split_in(&stream, piece).expect("valid stream");
            let want: Vec<Boundary> = parts
                .iter()
                .zip(kinds)
                .map(|(p, kind)| Boundary {
                    len: p.len() as u64,
                    kind,
                })
                .collect();
            assert_eq!(got, want, "pieces of {piece}");
        }
    }

    #[test]
    fn a_partial_command_is_held_as_a_count_only() {
        let c = cmd(&[b"SET", b"k", &[7u8; 5000]]);
        let mut s = Splitter::new();
        let mut n = 0;
        s.feed(&c[..4000], &mut |_| n += 1).expect("valid");
        assert_eq!((n, s.partial()), (0, 4000));
        s.feed(&c[4000..], &mut |_| n += 1).expect("valid");
        assert_eq!((n, s.partial()), (1, 0));
    }

    #[test]
    fn what_a_primary_never_sends_is_refused() {
        for bad in [
            &b"+OK\r\n"[..],
            b"*0\r\n",
            b"*1\r\n:1\r\n",
            b"*1\r\n$3\r\nabcde\r\n",
            b"*-1\r\n",
            b"*1\r\n$99999999999999999999\r\n",
            b"*1\r\n$600000000\r\n",
            b"*99999999999\r\n",
            b"*1\r\n$1\r\nab",
            b"*123456789012345678901234567890",
        ] {
            assert!(split_in(bad, bad.len()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arguments_of_a_whole_command() {
        let c = cmd(&[b"SET", b"k\r\n", b""]);
        let args = command_args(&c).expect("one command");
        let got: Vec<&[u8]> = args.iter().map(|r| &c[r.clone()]).collect();
        assert_eq!(got, [&b"SET"[..], b"k\r\n", b""]);
        assert_eq!(command_args(&c[..c.len() - 1]), None);
        let mut two = c.clone();
        two.extend_from_slice(&c);
        assert_eq!(command_args(&two), None);
    }

    #[test]
    fn only_dataset_commands_are_data() {
        assert!(Kind::Data.is_data() && Kind::Select(0).is_data());
        assert!(Kind::Multi.is_data() && Kind::Exec.is_data());
        assert!(!Kind::Ping.is_data() && !Kind::GetAck.is_data());
        assert!(!Kind::Replconf.is_data() && !Kind::Publish.is_data());
    }
}
