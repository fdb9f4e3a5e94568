//! The replica side of the replication handshake, as a state machine.
//!
//! Sequence: optional `AUTH`, `REPLCONF listening-port`, `REPLCONF capa eof
//! capa psync2`, optional `REPLCONF version` (Valkey; Redis refuses it, which
//! is tolerated), `REPLCONF rdb-only 1` (where accepted), then `PSYNC ? -1`,
//! falling back to `SYNC` when PSYNC is refused. Lone `\n` keepalives are
//! skipped. Ends when the payload header (`$<len>` or `$EOF:<mark>`) is read.
//!
//! With [`Config::resume`] it asks `PSYNC <replid> <offset+1>` instead, and a
//! `+CONTINUE` ends the handshake without a payload: the stream follows.
//!
//! Driver loop: write what [`Handshake::poll_transmit`] returns, feed what
//! the socket reads to [`Handshake::handle_input`], drain
//! [`Handshake::poll_event`], until [`Handshake::is_complete`]; then hand the
//! unconsumed bytes and the [`crate::payload::Framing`] to a
//! [`crate::payload::PayloadReader`].

use std::collections::VecDeque;
use std::fmt;

use crate::payload::Framing;
use crate::resp::encode_command;

/// The version to announce with `REPLCONF version`. A Valkey 9+ primary
/// sends the newest RDB format the replica's version reads (Valkey's
/// `RDB_VERSION_MAP`), and without one RDB 11, in which it cannot store hash
/// fields with TTLs: it fails the sync ("Can't store key in RDB version
/// 11"). 9.0.0 is the version whose format (RDB 80) is the newest
/// [`crate::rdb::MAX_VALKEY_RDB_VERSION`] reads; announcing a newer one
/// would let a 9.2 primary send RDB 81.
pub const ANNOUNCED_VALKEY_VERSION: &str = "9.0.0";

/// What the handshake sends.
#[derive(Clone, Default)]
pub struct Config {
    /// ACL user name for `AUTH user password`; `None` means `AUTH password`.
    pub username: Option<String>,
    /// Password; `None` means no AUTH.
    pub password: Option<String>,
    /// Port announced with `REPLCONF listening-port` (informational).
    pub listening_port: u16,
    /// Ask for `REPLCONF rdb-only 1` (server drops us after the snapshot).
    pub rdb_only: bool,
    /// Start with `SYNC` instead of `PSYNC ? -1`.
    pub force_sync: bool,
    /// Send `REPLCONF version <this>` (see [`ANNOUNCED_VALKEY_VERSION`]).
    pub announce_version: Option<String>,
    /// Ask to continue from here (`PSYNC <replid> <offset + 1>`): the
    /// replication id and the offset of the last byte already held. The
    /// server answers `+CONTINUE` (the stream follows, no snapshot) or
    /// `+FULLRESYNC`.
    pub resume: Option<(String, i64)>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password never appears in logs.
        f.debug_struct("Config")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("listening_port", &self.listening_port)
            .field("rdb_only", &self.rdb_only)
            .field("force_sync", &self.force_sync)
            .field("announce_version", &self.announce_version)
            .field("resume", &self.resume)
            .finish()
    }
}

/// Something the driver should know about.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `+FULLRESYNC <replid> <offset>`.
    FullResync {
        /// Replication id of the master.
        replid: String,
        /// Replication offset the snapshot corresponds to.
        offset: i64,
    },
    /// `+CONTINUE [<replid>]`: the server continues the stream from the
    /// offset asked for; no snapshot follows. A new replid means the server
    /// is a new primary that knows the old one's history (its replid2).
    Continue {
        /// The replication id from now on, if the server changed it.
        replid: Option<String>,
    },
    /// PSYNC was refused and SYNC is used instead (no replid/offset).
    FellBackToSync,
    /// The server did not accept an optional REPLCONF (e.g. rdb-only).
    OptionRefused {
        /// The option, e.g. `rdb-only`.
        option: String,
        /// The server's error line.
        message: String,
    },
    /// The payload header was read; payload bytes follow.
    Payload(Framing),
}

/// Why the handshake failed. Each variant's message says what to do.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server requires a password and none was given.
    #[error(
        "the server requires authentication (NOAUTH): put the password in the URL or REPLVAULT_REDIS_PASSWORD"
    )]
    AuthRequired,
    /// The password (or user) was rejected.
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    /// The ACL user lacks a permission.
    #[error(
        "the server denied `{command}` ({message}): the backup user needs `+sync +psync +replconf`; managed services often block replication entirely, try --mode scan"
    )]
    NoPermission {
        /// The command that was refused.
        command: String,
        /// The server's error line.
        message: String,
    },
    /// Neither PSYNC nor SYNC is available.
    #[error(
        "the server refuses SYNC/PSYNC ({0}): managed services often block it or rename the commands; try --mode scan"
    )]
    SyncRefused(String),
    /// The server is loading its dataset.
    #[error("the server is loading its dataset into memory (LOADING): try again when it is done")]
    Loading,
    /// The server is a replica whose master link is down.
    #[error(
        "the server is a replica with its master link down (MASTERDOWN): back up the master, or wait for the link"
    )]
    MasterDown,
    /// Another error reply.
    #[error("the server refused `{command}`: {message}")]
    Server {
        /// The command that was refused.
        command: String,
        /// The server's error line.
        message: String,
    },
    /// The server sent something that is not part of the protocol.
    #[error("unexpected reply to `{command}`: {reply:?}")]
    Protocol {
        /// The command the reply was for.
        command: String,
        /// The start of what the server sent.
        reply: String,
    },
    /// The connection ended during the handshake.
    #[error("the server closed the connection while waiting for the reply to `{0}`")]
    Closed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Auth,
    ListeningPort,
    Capa,
    Version,
    RdbOnly,
    Psync,
    Sync,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Auth => "AUTH",
            Step::ListeningPort => "REPLCONF listening-port",
            Step::Capa => "REPLCONF capa",
            Step::Version => "REPLCONF version",
            Step::RdbOnly => "REPLCONF rdb-only",
            Step::Psync => "PSYNC",
            Step::Sync => "SYNC",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Next step's command must be sent.
    Send,
    /// Waiting for the reply to the current step.
    Reply,
    /// After +FULLRESYNC or SYNC: waiting for `$...`.
    PayloadHeader,
    Done,
    Failed,
}

/// The handshake state machine.
#[derive(Debug)]
pub struct Handshake {
    config: Config,
    steps: VecDeque<Step>,
    current: Option<Step>,
    state: State,
    events: VecDeque<Event>,
}

/// Longest status line we wait for before calling the reply garbage.
const MAX_LINE: usize = 64 * 1024;

impl Handshake {
    /// A handshake that will send what `config` asks for.
    pub fn new(config: Config) -> Self {
        let mut steps = VecDeque::new();
        if config.password.is_some() {
            steps.push_back(Step::Auth);
        }
        steps.push_back(Step::ListeningPort);
        steps.push_back(Step::Capa);
        if config.announce_version.is_some() {
            steps.push_back(Step::Version);
        }
        if config.rdb_only {
            steps.push_back(Step::RdbOnly);
        }
        steps.push_back(if config.force_sync {
            Step::Sync
        } else {
            Step::Psync
        });
        Handshake {
            config,
            steps,
            current: None,
            state: State::Send,
            events: VecDeque::new(),
        }
    }

    /// Bytes to write to the server now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.state != State::Send {
            return None;
        }
        let step = self.steps.pop_front()?;
        self.current = Some(step);
        self.state = State::Reply;
        let mut out = Vec::new();
        match step {
            Step::Auth => {
                let pw = self.config.password.as_deref().unwrap_or_default();
                match &self.config.username {
                    Some(user) => {
                        encode_command(&[b"AUTH", user.as_bytes(), pw.as_bytes()], &mut out)
                    }
                    None => encode_command(&[b"AUTH", pw.as_bytes()], &mut out),
                }
            }
            Step::ListeningPort => {
                let port = self.config.listening_port.to_string();
                encode_command(&[b"REPLCONF", b"listening-port", port.as_bytes()], &mut out)
            }
            Step::Capa => encode_command(
                &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
                &mut out,
            ),
            Step::Version => {
                let v = self.config.announce_version.as_deref().unwrap_or_default();
                encode_command(&[b"REPLCONF", b"version", v.as_bytes()], &mut out)
            }
            Step::RdbOnly => encode_command(&[b"REPLCONF", b"rdb-only", b"1"], &mut out),
            Step::Psync => match &self.config.resume {
                Some((replid, offset)) => {
                    let next = offset.saturating_add(1).to_string();
                    encode_command(&[b"PSYNC", replid.as_bytes(), next.as_bytes()], &mut out)
                }
                None => encode_command(&[b"PSYNC", b"?", b"-1"], &mut out),
            },
            Step::Sync => encode_command(&[b"SYNC"], &mut out),
        }
        Some(out)
    }

    /// Feeds bytes read from the server; returns how many were consumed.
    /// Bytes after the payload header are not consumed: they are payload.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let mut pos = 0;
        loop {
            if !matches!(self.state, State::Reply | State::PayloadHeader) {
                return Ok(pos);
            }
            // Keepalives: lone newlines while the server prepares the RDB.
            while pos < input.len() && input[pos] == b'\n' {
                pos += 1;
            }
            let rest = &input[pos..];
            let Some(end) = memchr::memmem::find(rest, b"\r\n") else {
                if rest.len() > MAX_LINE {
                    self.state = State::Failed;
                    return Err(self.protocol_error(rest));
                }
                return Ok(pos);
            };
            let line = &rest[..end];
            pos += end + 2;
            if let Err(e) = self.handle_line(line) {
                self.state = State::Failed;
                return Err(e);
            }
        }
    }

    fn protocol_error(&self, reply: &[u8]) -> HandshakeError {
        let shown: Vec<u8> = reply.iter().take(80).copied().collect();
        HandshakeError::Protocol {
            command: self.current.map(Step::name).unwrap_or("?").to_string(),
            reply: String::from_utf8_lossy(&shown).into_owned(),
        }
    }

    fn handle_line(&mut self, line: &[u8]) -> Result<(), HandshakeError> {
        let Some(step) = self.current else {
            return Err(self.protocol_error(line));
        };
        if self.state == State::PayloadHeader {
            return match Framing::from_header(line) {
                Some(framing) => {
                    self.events.push_back(Event::Payload(framing));
                    self.state = State::Done;
                    Ok(())
                }
                None if line.first() == Some(&b'-') => Err(self.error_reply(step, line)),
                // Some servers send `+CONTINUE`-like status lines or pings
                // here only when they are not speaking the protocol we asked for.
                None => Err(self.protocol_error(line)),
            };
        }
        match line.first() {
            Some(b'+') => self.handle_ok(step, &line[1..]),
            Some(b'-') => {
                let msg = String::from_utf8_lossy(&line[1..]).into_owned();
                let upper = msg.to_ascii_uppercase();
                match step {
                    // Optional: Redis has no `version`, old servers no `rdb-only`.
                    Step::RdbOnly | Step::Version => {
                        let option = if step == Step::Version {
                            "version"
                        } else {
                            "rdb-only"
                        };
                        self.events.push_back(Event::OptionRefused {
                            option: option.into(),
                            message: msg,
                        });
                        self.state = State::Send;
                        Ok(())
                    }
                    Step::Psync
                        if upper.contains("UNKNOWN COMMAND") || upper.starts_with("NOPERM") =>
                    {
                        self.events.push_back(Event::FellBackToSync);
                        self.steps.push_front(Step::Sync);
                        self.state = State::Send;
                        Ok(())
                    }
                    _ => Err(self.error_reply(step, line)),
                }
            }
            Some(b'$') if step == Step::Sync => {
                // SYNC has no status line: the payload header comes at once.
                self.state = State::PayloadHeader;
                self.handle_line(line)
            }
            _ => Err(self.protocol_error(line)),
        }
    }

    fn handle_ok(&mut self, step: Step, status: &[u8]) -> Result<(), HandshakeError> {
        match step {
            Step::Psync => {
                let text = String::from_utf8_lossy(status);
                let mut parts = text.split_ascii_whitespace();
                match parts.next() {
                    Some("FULLRESYNC") => {}
                    Some("CONTINUE") if self.config.resume.is_some() => {
                        let replid = parts.next().map(str::to_string);
                        self.events.push_back(Event::Continue { replid });
                        self.state = State::Done;
                        return Ok(());
                    }
                    _ => return Err(self.protocol_error(status)),
                }
                let replid = parts.next().map(str::to_string);
                let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
                match (replid, offset) {
                    (Some(replid), Some(offset)) => {
                        self.events.push_back(Event::FullResync { replid, offset });
                        self.state = State::PayloadHeader;
                        Ok(())
                    }
                    _ => Err(self.protocol_error(status)),
                }
            }
            Step::Sync => Err(self.protocol_error(status)),
            _ => {
                self.state = State::Send;
                Ok(())
            }
        }
    }

    fn error_reply(&self, step: Step, line: &[u8]) -> HandshakeError {
        let msg = String::from_utf8_lossy(line.strip_prefix(b"-").unwrap_or(line)).into_owned();
        let upper = msg.to_ascii_uppercase();
        if upper.starts_with("NOAUTH") {
            HandshakeError::AuthRequired
        } else if step == Step::Auth
            || upper.starts_with("WRONGPASS")
            || upper.contains("INVALID PASSWORD")
            || upper.contains("INVALID USERNAME-PASSWORD")
        {
            HandshakeError::AuthFailed(msg)
        } else if upper.starts_with("LOADING") {
            HandshakeError::Loading
        } else if upper.starts_with("MASTERDOWN") {
            HandshakeError::MasterDown
        } else if step == Step::Sync && upper.contains("UNKNOWN COMMAND") {
            HandshakeError::SyncRefused(msg)
        } else if upper.starts_with("NOPERM") {
            HandshakeError::NoPermission {
                command: step.name().to_string(),
                message: msg,
            }
        } else {
            HandshakeError::Server {
                command: step.name().to_string(),
                message: msg,
            }
        }
    }

    /// Call when the connection ends before the handshake completed.
    pub fn handle_eof(&mut self) -> HandshakeError {
        self.state = State::Failed;
        HandshakeError::Closed(
            self.current
                .map(Step::name)
                .unwrap_or("connect")
                .to_string(),
        )
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True once the payload header (or `+CONTINUE`) has been read.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the handshake against `replies` (one per command sent, all
    /// `+OK` before PSYNC's); returns what was sent, the events and the
    /// bytes left for the stream.
    fn run(config: Config, psync_reply: &[u8]) -> (Vec<Vec<u8>>, Vec<Event>, usize) {
        let mut hs = Handshake::new(config);
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some(out) = hs.poll_transmit() {
            let is_psync = out.windows(5).any(|w| w == b"PSYNC");
            sent.push(out);
            let reply: &[u8] = if is_psync { psync_reply } else { b"+OK\r\n" };
            let used = hs.handle_input(reply).expect("a valid reply");
            while let Some(e) = hs.poll_event() {
                events.push(e);
            }
            if is_psync {
                assert!(hs.is_complete());
                return (sent, events, reply.len() - used);
            }
        }
        panic!("no PSYNC sent");
    }

    #[test]
    fn resume_asks_for_the_next_offset_and_takes_continue() {
        let config = Config {
            resume: Some(("a".repeat(40), 1234)),
            ..Config::default()
        };
        let stream = b"*1\r\n$4\r\nPING\r\n";
        let mut reply = format!("+CONTINUE {}\r\n", "b".repeat(40)).into_bytes();
        reply.extend_from_slice(stream);
        let (sent, events, left) = run(config.clone(), &reply);
        let psync = sent.last().expect("PSYNC");
        let want = format!(
            "*3\r\n$5\r\nPSYNC\r\n$40\r\n{}\r\n$4\r\n1235\r\n",
            "a".repeat(40)
        );
        assert_eq!(psync, want.as_bytes());
        assert_eq!(
            events,
            [Event::Continue {
                replid: Some("b".repeat(40))
            }]
        );
        // The stream after +CONTINUE is not the handshake's to consume.
        assert_eq!(left, stream.len());
        // An old server's bare +CONTINUE keeps the replid.
        let (_, events, _) = run(config.clone(), b"+CONTINUE\r\n");
        assert_eq!(events, [Event::Continue { replid: None }]);
        // The backlog no longer holds the offset: a full sync instead.
        let full = format!("+FULLRESYNC {} 99\r\n", "c".repeat(40));
        let mut hs = Handshake::new(config);
        while let Some(out) = hs.poll_transmit() {
            let is_psync = out.windows(5).any(|w| w == b"PSYNC");
            let reply: &[u8] = if is_psync {
                full.as_bytes()
            } else {
                b"+OK\r\n"
            };
            hs.handle_input(reply).expect("valid");
        }
        assert_eq!(
            hs.poll_event(),
            Some(Event::FullResync {
                replid: "c".repeat(40),
                offset: 99
            })
        );
        assert!(!hs.is_complete(), "a payload header comes next");
    }

    #[test]
    fn continue_without_asking_to_resume_is_a_protocol_error() {
        let mut hs = Handshake::new(Config::default());
        while let Some(out) = hs.poll_transmit() {
            let is_psync = out.windows(5).any(|w| w == b"PSYNC");
            let reply: &[u8] = if is_psync {
                b"+CONTINUE\r\n"
            } else {
                b"+OK\r\n"
            };
            let r = hs.handle_input(reply);
            if is_psync {
                assert!(matches!(r, Err(HandshakeError::Protocol { .. })), "{r:?}");
                return;
            }
        }
        panic!("no PSYNC sent");
    }
}
