//! The errors of a check: what was wrong, and at which byte.

/// A structural or checksum failure, with the byte offset where it was seen.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid RDB at byte {offset}: {kind}")]
pub struct CheckError {
    /// Offset from the start of the payload.
    pub offset: u64,
    /// What was wrong.
    pub kind: CheckErrorKind,
}

/// The kinds of [`CheckError`].
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CheckErrorKind {
    /// The file does not start with `REDIS` or `VALKEY` and a version
    /// (the bytes found, with anything but printable ASCII escaped).
    #[error("not an RDB file (bad magic \"{0}\")")]
    BadMagic(String),
    /// The version is newer than this checker knows.
    #[error("unsupported {magic} RDB version {version}")]
    UnsupportedVersion {
        /// `REDIS` or `VALKEY`.
        magic: String,
        /// The version number.
        version: u32,
    },
    /// An opcode or value type this checker does not know.
    #[error("unknown opcode or value type {0}")]
    UnknownType(u8),
    /// A value type that cannot appear in a valid file.
    #[error("unsupported value type {code} ({what})")]
    UnsupportedType {
        /// The type code.
        code: u8,
        /// Why.
        what: &'static str,
    },
    /// The payload ended before the structure did.
    #[error("the file ends inside {0} (truncated)")]
    Truncated(&'static str),
    /// A length or field that cannot be right.
    #[error("{0}")]
    Invalid(String),
    /// An encoded blob is corrupt.
    #[error("corrupt {kind}: {reason}")]
    Blob {
        /// listpack, ziplist, intset or zipmap.
        kind: &'static str,
        /// What is wrong inside it.
        reason: String,
    },
    /// LZF-compressed data is corrupt.
    #[error("corrupt LZF string: {0}")]
    Lzf(String),
    /// The trailer does not match the data.
    #[error("CRC-64 mismatch: trailer says {expected:#018x}, data gives {computed:#018x}")]
    ChecksumMismatch {
        /// What the trailer says.
        expected: u64,
        /// What the data gives.
        computed: u64,
    },
    /// Bytes after the end of the file.
    #[error("unexpected data after the end of the RDB file")]
    TrailingData,
    /// A declared length reaches past the end of the payload, whose length
    /// the server sent.
    #[error("{what} declares {declared} bytes, but only {left} bytes of the payload are left")]
    BeyondPayload {
        /// `a string`, `a compressed string` or `an element count`.
        what: &'static str,
        /// The declared length.
        declared: u64,
        /// Payload bytes left after the length.
        left: u64,
    },
    /// A string longer than the value size limit, in a payload of unknown
    /// length.
    #[error(
        "{what} declares {declared} bytes, more than the largest value taken ({max} bytes): raise --max-value-size if the server allows values this large"
    )]
    ValueTooLarge {
        /// `a string` or `a compressed string`.
        what: &'static str,
        /// The declared length.
        declared: u64,
        /// The limit.
        max: u64,
    },
    /// More databases hold keys than a summary (and a manifest) keeps.
    #[error(
        "keys in more than {max} databases: more than a backup's manifest can list (a hostile or corrupt RDB)"
    )]
    TooManyDatabases {
        /// [`MAX_DATABASES`](super::checker::MAX_DATABASES).
        max: usize,
    },
    /// A key hashes to a slot outside those the check was given
    /// ([`Checker::with_slots`](super::Checker::with_slots)): the shard
    /// holds a key it does not own.
    #[error("key \"{key}\" hashes to slot {slot}, outside the expected slots")]
    KeyOutsideSlots {
        /// The key, lossily decoded, its first 64 bytes at most (a longer
        /// key is shown with "…" and its length).
        key: String,
        /// Its hash slot.
        slot: u16,
    },
    /// A key in a database other than 0, in a check for a cluster (which
    /// has only database 0).
    #[error("a key in database {db}: a Redis Cluster has only database 0")]
    ClusterDb {
        /// The database number.
        db: u64,
    },
}

pub(super) fn err(offset: u64, kind: CheckErrorKind) -> CheckError {
    CheckError { offset, kind }
}
