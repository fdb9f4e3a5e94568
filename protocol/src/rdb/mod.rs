//! Streaming structural scanner for RDB files (Redis and Valkey).
//!
//! Feed the payload in chunks of any size; memory stays bounded whatever
//! the value sizes. [`Scanner::finish`] checks the EOF opcode and the CRC-64
//! trailer and returns a [`Summary`].
// SKELETON: helper R implements this module. The public names below are the
// contract the binary codes against; extend them, do not rename them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crc64::Crc64;

/// What a scan learned about an RDB file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `REDIS` or `VALKEY`.
    pub magic: String,
    /// The version number after the magic.
    pub rdb_version: u32,
    /// AUX fields (redis-ver, ctime, used-mem, ...), lossily decoded.
    pub aux: BTreeMap<String, String>,
    /// Per-database key and expiry counts, by db number.
    pub databases: BTreeMap<u64, DbSummary>,
    /// Key counts per value type name (e.g. `string`, `hash-listpack`).
    pub types: BTreeMap<String, u64>,
    /// Names of function libraries.
    pub functions: Vec<String>,
    /// Total payload length in bytes, trailer included.
    pub payload_len: u64,
    /// Result of the trailer check.
    pub checksum: Checksum,
}

/// Counts for one database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSummary {
    /// Keys in the database.
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
}

/// The outcome of the CRC-64 trailer check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Checksum {
    /// The trailer matched the computed CRC-64/Jones.
    Verified {
        /// The CRC-64 value.
        crc64: u64,
    },
    /// The trailer was zero: the server had `rdbchecksum no`.
    #[default]
    Disabled,
}

/// A structural or checksum failure, with the byte offset where it was seen.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid RDB at byte {offset}: {kind}")]
pub struct ScanError {
    /// Offset from the start of the payload.
    pub offset: u64,
    /// What was wrong.
    pub kind: ScanErrorKind,
}

/// The kinds of [`ScanError`].
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ScanErrorKind {
    /// Placeholder until implemented.
    #[error("{0}")]
    Invalid(String),
}

/// The streaming scanner.
#[derive(Debug, Default)]
pub struct Scanner {
    crc: Crc64,
    offset: u64,
}

impl Scanner {
    /// A scanner at the start of a payload.
    pub fn new() -> Self {
        Scanner::default()
    }

    /// Feeds the next chunk of the payload.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        self.crc.update(chunk);
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Ends the scan: the payload must have ended exactly after the trailer.
    pub fn finish(self) -> Result<Summary, ScanError> {
        Ok(Summary {
            payload_len: self.offset,
            ..Summary::default()
        })
    }
}
