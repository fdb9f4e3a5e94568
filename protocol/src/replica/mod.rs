//! The replica side of the replication handshake, as a state machine.
//!
//! Sequence: optional `AUTH`, `REPLCONF listening-port`, `REPLCONF capa eof
//! capa psync2`, `REPLCONF rdb-only 1` (where accepted), then `PSYNC ? -1`,
//! falling back to `SYNC` when PSYNC is refused. Lone `\n` keepalives are
//! skipped. Ends when the payload header (`$<len>` or `$EOF:<mark>`) is read.
//!
//! Driver loop: write what [`Handshake::poll_transmit`] returns, feed what
//! the socket reads to [`Handshake::handle_input`], drain
//! [`Handshake::poll_event`], until [`Handshake::is_complete`]; then hand the
//! unconsumed bytes and the [`crate::payload::Framing`] to a
//! [`crate::payload::PayloadReader`].
// SKELETON: helper P implements this module. The public names below are the
// contract the binary codes against; extend them, do not rename them.

use crate::payload::Framing;

/// What the handshake sends.
#[derive(Clone, Debug, Default)]
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
    /// Placeholder until implemented.
    #[error("handshake failed: {0}")]
    Other(String),
}

/// The handshake state machine.
#[derive(Debug)]
pub struct Handshake {
    config: Config,
}

impl Handshake {
    /// A handshake that will send what `config` asks for.
    pub fn new(config: Config) -> Self {
        Handshake { config }
    }

    /// Bytes to write to the server now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let _ = &self.config;
        None
    }

    /// Feeds bytes read from the server; returns how many were consumed.
    /// Bytes after the payload header are not consumed: they are payload.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        let _ = input;
        Err(HandshakeError::Other("not implemented".into()))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }

    /// True once the payload header has been read.
    pub fn is_complete(&self) -> bool {
        false
    }
}
