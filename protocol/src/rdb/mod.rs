//! Streaming structural checker for RDB files (Redis and Valkey).
//!
//! Feed the payload in chunks of any size; memory stays bounded whatever
//! the value sizes. [`Checker::finish`] checks the EOF opcode and the CRC-64
//! trailer and returns a [`Summary`].
//!
//! The checker is a small interpreter over a stack of `Task`s: each value
//! type expands into the sequence of lengths, strings and fixed fields that
//! `rdbLoadObject` reads, with counts taken from the data. Every task either
//! completes from the bytes at hand or leaves them for the next chunk, so the
//! only bytes ever carried between chunks are the few of an unfinished length
//! or field. String bodies are skipped (or LZF-decoded) as they stream;
//! encoded blobs (listpack, ziplist, intset, zipmap) are collected up to
//! [`BLOB_CHECK_LIMIT`] and validated entry by entry. With
//! [`Checker::feed_deferring`], those content checks for strings that lie
//! wholly inside a chunk are handed back as a [`Deferred`] to run on
//! another thread, while this one walks on.

mod blob;
mod deferred;
mod dialect;
mod lzf;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crc64::Crc64;
use blob::BlobKind;
pub use deferred::Deferred;
use deferred::{Check, Job};
use dialect::Dialect;
pub use dialect::{MAX_REDIS_RDB_VERSION, MAX_VALKEY_RDB_VERSION};
use lzf::Lzf;

/// Encoded blobs up to this size are collected and checked entry by entry;
/// larger ones (far beyond any listpack Redis writes with sane configs) are
/// skipped with only their outer length checked, keeping memory bounded.
pub const BLOB_CHECK_LIMIT: u64 = 64 * 1024 * 1024;

/// Plain LZF strings shorter than this (compressed) are checked in place
/// even when deferring: queueing the check costs about what it saves.
const DEFER_LZF_MIN: usize = 32;

/// Aux values and function code kept for the summary are cut to this length.
const CAPTURE_LIMIT: usize = 4096;

/// Aux fields kept for the summary (a server writes about ten); further
/// distinct fields are only counted, so a corrupt or hostile file of
/// millions of aux records cannot grow the scan's memory.
const MAX_AUX_FIELDS: usize = 64;
/// Function library names kept for the summary; further ones are counted.
const MAX_FUNCTIONS: usize = 1024;

/// Module types counted by name; data of any further type (only a corrupt
/// file has so many) is counted under [`OTHER_MODULES`], so the scan's
/// memory stays bounded.
const MAX_MODULE_TYPES: usize = 256;
/// Where data of module types past [`MAX_MODULE_TYPES`] is counted (not a
/// valid type name, so it cannot collide with one).
pub const OTHER_MODULES: &str = "(other types)";

/// What a scan learned about an RDB file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `REDIS` or `VALKEY`.
    pub magic: String,
    /// The version number after the magic.
    pub rdb_version: u32,
    /// AUX fields (redis-ver, ctime, used-mem, ...), lossily decoded.
    pub aux: BTreeMap<String, String>,
    /// Aux records of further distinct fields, past the first
    /// [`MAX_AUX_FIELDS`]: counted, not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub aux_omitted: u64,
    /// Per-database key and expiry counts, by db number.
    pub databases: BTreeMap<u64, DbSummary>,
    /// Key counts per value type name (e.g. `string`, `hash-listpack`).
    pub types: BTreeMap<String, u64>,
    /// Names of function libraries.
    pub functions: Vec<String>,
    /// Function libraries past the first [`MAX_FUNCTIONS`]: counted, not
    /// named.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub functions_omitted: u64,
    /// Module data by module type name (such as `vectorset`): a server
    /// loads this file only with those modules loaded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, ModuleCounts>,
    /// Total payload length in bytes, trailer included.
    pub payload_len: u64,
    /// Result of the trailer check.
    pub checksum: Checksum,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// Keys over all databases.
    pub fn total_keys(&self) -> u64 {
        self.databases.values().map(|d| d.keys).sum()
    }

    /// Keys with an expiry over all databases.
    pub fn total_expires(&self) -> u64 {
        self.databases.values().map(|d| d.expires).sum()
    }
}

/// Counts for one database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSummary {
    /// Keys in the database.
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
}

/// Module data of one module type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCounts {
    /// Keys holding a value of this type.
    pub values: u64,
    /// Module aux records (opcode 0xF7): data the module keeps outside
    /// keys, such as index definitions.
    pub aux: u64,
}

/// The name of a module type from its 64-bit id: nine characters of six
/// bits each, then ten bits of encoding version (Redis's module.c).
pub fn module_type_name(id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9)
        .map(|j| char::from(CHARSET[((id >> (58 - 6 * j)) & 63) as usize]))
        .collect()
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
    /// RDB versions before 5 have no trailer.
    Absent,
}

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
}

/// What a length is for once read.
#[derive(Clone, Copy, Debug)]
enum LenUse {
    /// Read and dropped.
    Discard,
    /// Repeat the body this many times.
    Repeat(&'static [Task]),
    /// The database number of a SELECTDB.
    SelectDb,
    /// A quicklist node's container: plain (1) or packed (2).
    QuicklistContainer,
    /// A module type id: of a value, or of an aux record.
    ModuleId { aux: bool },
    /// A module aux field's "when" opcode (must be 2).
    ModuleWhenOpcode,
    /// The next opcode of a module value.
    ModuleOpcode,
}

/// What a string is for once read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrUse {
    Plain,
    AuxKey,
    AuxValue,
    Function,
    Blob(BlobKind),
    StreamId,
}

impl StrUse {
    fn wants_content(self) -> bool {
        !matches!(self, StrUse::Plain)
    }
}

/// One step of the interpreter.
#[derive(Clone, Copy, Debug)]
enum Task {
    Header,
    Record,
    Len(LenUse),
    Str(StrUse),
    Fixed(u8, &'static str),
    OldDouble,
    Repeat {
        left: u64,
        body: &'static [Task],
    },
    /// A string body being skipped or collected.
    Body {
        left: u64,
        usage: StrUse,
    },
    /// An LZF string being decoded (state in `Checker::lzf`).
    LzfBody {
        usage: StrUse,
    },
    ModuleOps,
    Trailer,
}

use Task::*;

const STR: Task = Str(StrUse::Plain);
const LIST_BODY: &[Task] = &[Len(LenUse::Repeat(&[STR]))];
const ZSET_BODY: &[Task] = &[Len(LenUse::Repeat(&[STR, OldDouble]))];
const HASH_BODY: &[Task] = &[Len(LenUse::Repeat(&[STR, STR]))];
const ZSET2_BODY: &[Task] = &[Len(LenUse::Repeat(&[STR, Fixed(8, "zset score")]))];
const MODULE_BODY: &[Task] = &[Len(LenUse::ModuleId { aux: false }), ModuleOps];
const ZIPMAP_BODY: &[Task] = &[Str(StrUse::Blob(BlobKind::Zipmap))];
const ZIPLIST_BODY: &[Task] = &[Str(StrUse::Blob(BlobKind::Ziplist))];
const INTSET_BODY: &[Task] = &[Str(StrUse::Blob(BlobKind::Intset))];
const LISTPACK_BODY: &[Task] = &[Str(StrUse::Blob(BlobKind::Listpack))];
const QUICKLIST_BODY: &[Task] = &[Len(LenUse::Repeat(ZIPLIST_BODY))];
const QUICKLIST2_BODY: &[Task] = &[Len(LenUse::Repeat(&[Len(LenUse::QuicklistContainer)]))];
const HASH_META_PRE_GA_BODY: &[Task] = &[Len(LenUse::Repeat(&[Len(LenUse::Discard), STR, STR]))];
const HASH_META_BODY: &[Task] = &[
    Fixed(8, "hash min expire"),
    Len(LenUse::Repeat(&[Len(LenUse::Discard), STR, STR])),
];
const HASH_LP_EX_BODY: &[Task] = &[
    Fixed(8, "hash min expire"),
    Str(StrUse::Blob(BlobKind::Listpack)),
];

const LEN: Task = Len(LenUse::Discard);
const STREAM_ID_RAW: Task = Fixed(16, "stream id");
const MS_TIME: Task = Fixed(8, "millisecond time");
const STREAM_NODES: Task = Len(LenUse::Repeat(&[
    Str(StrUse::StreamId),
    Str(StrUse::Blob(BlobKind::Listpack)),
]));
const GROUP_PEL: Task = Len(LenUse::Repeat(&[STREAM_ID_RAW, MS_TIME, LEN]));
const CONSUMER_PEL: Task = Len(LenUse::Repeat(&[STREAM_ID_RAW]));
const CONSUMERS_V1: Task = Len(LenUse::Repeat(&[STR, MS_TIME, CONSUMER_PEL]));
const CONSUMERS_V3: Task = Len(LenUse::Repeat(&[STR, MS_TIME, MS_TIME, CONSUMER_PEL]));
const STREAM1_BODY: &[Task] = &[
    STREAM_NODES,
    LEN,
    LEN,
    LEN,
    Len(LenUse::Repeat(&[STR, LEN, LEN, GROUP_PEL, CONSUMERS_V1])),
];
const STREAM2_BODY: &[Task] = &[
    STREAM_NODES,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    Len(LenUse::Repeat(&[
        STR,
        LEN,
        LEN,
        LEN,
        GROUP_PEL,
        CONSUMERS_V1,
    ])),
];
const STREAM3_BODY: &[Task] = &[
    STREAM_NODES,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    LEN,
    Len(LenUse::Repeat(&[
        STR,
        LEN,
        LEN,
        LEN,
        GROUP_PEL,
        CONSUMERS_V3,
    ])),
];

/// Name and body of each Redis value type (Valkey shares 0 to 21; see
/// [`dialect`] for where they part).
fn redis_type(code: u8) -> Option<(&'static str, &'static [Task])> {
    Some(match code {
        0 => ("string", &[STR]),
        1 => ("list-linked", LIST_BODY),
        2 => ("set-hashtable", LIST_BODY),
        3 => ("zset-skiplist-v1", ZSET_BODY),
        4 => ("hash-hashtable", HASH_BODY),
        5 => ("zset-skiplist", ZSET2_BODY),
        7 => ("module", MODULE_BODY),
        9 => ("hash-zipmap", ZIPMAP_BODY),
        10 => ("list-ziplist", ZIPLIST_BODY),
        11 => ("set-intset", INTSET_BODY),
        12 => ("zset-ziplist", ZIPLIST_BODY),
        13 => ("hash-ziplist", ZIPLIST_BODY),
        14 => ("list-quicklist", QUICKLIST_BODY),
        15 => ("stream", STREAM1_BODY),
        16 => ("hash-listpack", LISTPACK_BODY),
        17 => ("zset-listpack", LISTPACK_BODY),
        18 => ("list-quicklist", QUICKLIST2_BODY),
        19 => ("stream", STREAM2_BODY),
        20 => ("set-listpack", LISTPACK_BODY),
        21 => ("stream", STREAM3_BODY),
        22 => ("hash-ttl-hashtable", HASH_META_PRE_GA_BODY),
        23 => ("hash-ttl-listpack", LISTPACK_BODY),
        24 => ("hash-ttl-hashtable", HASH_META_BODY),
        25 => ("hash-ttl-listpack", HASH_LP_EX_BODY),
        _ => return None,
    })
}

/// Outcome of running one task.
enum Run {
    /// The task finished (or made progress) and consumed this many bytes.
    Done(usize),
    /// The buffered bytes are not enough for the task.
    NeedMore,
}

/// The streaming checker.
#[derive(Debug, Default)]
pub struct Checker {
    crc: Crc64,
    /// Payload bytes consumed so far.
    offset: u64,
    /// Unconsumed bytes carried to the next chunk (a few at most).
    pending: Vec<u8>,
    tasks: Vec<Task>,
    started: bool,
    finished: bool,
    failed: Option<(u64, String)>,
    summary: Summary,
    /// Type and opcode table, from the magic.
    dialect: Dialect,
    db: u64,
    /// Counts for `db`, added to the summary when the database changes or the
    /// scan ends: a map lookup per key was a tenth of a scan's CPU time.
    db_counts: DbSummary,
    /// Keys per value type code (a code's name is fixed once the header is
    /// read), turned into names at the end for the same reason.
    type_counts: TypeCounts,
    /// Module data by type id without its encoding version (`u64::MAX`:
    /// past [`MAX_MODULE_TYPES`]); named at the end.
    module_counts: BTreeMap<u64, ModuleCounts>,
    pending_expire: bool,
    /// String content being collected for a use that needs it.
    collect: Vec<u8>,
    lzf: Option<Lzf>,
    aux_key: Option<String>,
    /// The blob currently collected was too big to check entry by entry.
    blob_unchecked: bool,
    /// Content checks are being left to the caller (`feed_deferring`).
    defer: bool,
    /// The bytes being run are the caller's chunk (not carried bytes), so a
    /// span in them can be checked later from that chunk.
    in_chunk: bool,
    /// Payload offset of the bytes the current task starts at.
    at: u64,
    /// Checks left for the caller by the current `feed_deferring` call.
    jobs: Vec<Job>,
}

/// Keys per value type code.
#[derive(Debug)]
struct TypeCounts([u64; 256]);

impl Default for TypeCounts {
    fn default() -> Self {
        TypeCounts([0; 256])
    }
}

fn err(offset: u64, kind: CheckErrorKind) -> CheckError {
    CheckError { offset, kind }
}

impl Checker {
    /// A checker at the start of a payload.
    pub fn new() -> Self {
        Checker {
            tasks: vec![Record, Header],
            ..Checker::default()
        }
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// Feeds the next chunk of the payload.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), CheckError> {
        if let Some((offset, msg)) = &self.failed {
            return Err(err(
                *offset,
                CheckErrorKind::Invalid(format!("scan already failed: {msg}")),
            ));
        }
        self.started = true;
        let result = self.feed_inner(&mut chunk);
        if let Err(e) = &result {
            self.failed = Some((e.offset, e.kind.to_string()));
        }
        result
    }

    /// Feeds the next chunk like [`feed`](Self::feed), but leaves the
    /// content checks of LZF bodies and encoded blobs that lie wholly inside
    /// `chunk` to the returned [`Deferred`], which the caller runs (on any
    /// thread) against the same bytes. The record structure, lengths and
    /// CRC-64 are still checked here.
    ///
    /// The scan fails if any `Deferred` fails, and then with the first such
    /// failure in feed order, which comes before any error `feed_deferring`
    /// itself returns for that chunk or later ones.
    pub fn feed_deferring(&mut self, chunk: &[u8]) -> (Deferred, Result<(), CheckError>) {
        let base = self.offset();
        self.defer = true;
        let result = self.feed(chunk);
        self.defer = false;
        let jobs = std::mem::take(&mut self.jobs);
        (Deferred { base, jobs }, result)
    }

    /// True when a content check of the current task's bytes may be left
    /// to the caller.
    fn deferring(&self) -> bool {
        self.defer && self.in_chunk
    }

    fn feed_inner(&mut self, chunk: &mut &[u8]) -> Result<(), CheckError> {
        // Finish a unit that straddled the previous chunk boundary by topping
        // up the carried bytes a little at a time, then run on the chunk
        // itself without copying it.
        self.in_chunk = false;
        while !self.pending.is_empty() && !chunk.is_empty() {
            let old = self.pending.len();
            let take = chunk.len().min(64);
            self.pending.extend_from_slice(&chunk[..take]);
            let buf = std::mem::take(&mut self.pending);
            let used = self.run(&buf)?;
            if used >= old {
                *chunk = &chunk[used - old..];
                break;
            }
            self.pending = buf[used..].to_vec();
            *chunk = &chunk[take..];
        }
        if self.pending.is_empty() && !chunk.is_empty() {
            self.in_chunk = true;
            let used = self.run(chunk);
            self.in_chunk = false;
            let used = used?;
            self.pending.extend_from_slice(&chunk[used..]);
        }
        Ok(())
    }

    /// Runs tasks over `data`; returns bytes consumed.
    fn run(&mut self, data: &[u8]) -> Result<usize, CheckError> {
        let mut pos = 0;
        // Start of the bytes not yet in the CRC; `None` once the trailer is
        // reached (the CRC covers everything before it).
        let mut crc_from = Some(0);
        let res = self.run_tasks(data, &mut pos, &mut crc_from);
        if let Some(from) = crc_from {
            self.crc.update(&data[from..pos]);
        }
        self.offset += pos as u64;
        res.map(|()| pos)
    }

    fn run_tasks(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        crc_from: &mut Option<usize>,
    ) -> Result<(), CheckError> {
        loop {
            if self.finished {
                if *pos < data.len() {
                    return Err(err(self.offset + *pos as u64, CheckErrorKind::TrailingData));
                }
                return Ok(());
            }
            let Some(task) = self.tasks.pop() else {
                let at = self.offset + *pos as u64;
                return Err(err(at, CheckErrorKind::Invalid("internal: no task".into())));
            };
            if let (Trailer, Some(from)) = (task, *crc_from) {
                self.crc.update(&data[from..*pos]);
                *crc_from = None;
            }
            let at = self.offset + *pos as u64;
            self.at = at;
            match self.step(task, &data[*pos..]) {
                Ok(Run::Done(n)) => *pos += n,
                Ok(Run::NeedMore) => {
                    self.tasks.push(task);
                    return Ok(());
                }
                Err(kind) => return Err(err(at, kind)),
            }
        }
    }

    fn step(&mut self, task: Task, d: &[u8]) -> Result<Run, CheckErrorKind> {
        match task {
            Header => self.header(d),
            Record => self.record(d),
            Len(usage) => {
                let Some((len, n)) = read_len(d)? else {
                    return Ok(Run::NeedMore);
                };
                let LenValue::Len(len) = len else {
                    return Err(CheckErrorKind::Invalid(
                        "encoded string where a length was expected".into(),
                    ));
                };
                self.use_len(usage, len)?;
                Ok(Run::Done(n))
            }
            Str(usage) => self.string_header(d, usage),
            Fixed(n, _) => {
                if d.len() < n as usize {
                    return Ok(Run::NeedMore);
                }
                Ok(Run::Done(n as usize))
            }
            OldDouble => {
                let Some(&l) = d.first() else {
                    return Ok(Run::NeedMore);
                };
                let n = if l >= 253 { 1 } else { 1 + l as usize };
                if d.len() < n {
                    return Ok(Run::NeedMore);
                }
                Ok(Run::Done(n))
            }
            Repeat { mut left, body } => {
                // Fast path: elements made only of plain strings and fixed
                // fields (most collections) are checked in place while they
                // lie wholly in this chunk, without a task per field.
                let mut used = 0;
                if body
                    .iter()
                    .all(|t| matches!(t, Str(StrUse::Plain) | Fixed(..)))
                {
                    let defer = self.deferring();
                    while left > 0 {
                        let mark = self.jobs.len();
                        let jobs = defer.then_some(&mut self.jobs);
                        let Some(n) = plain_element(body, &d[used..], self.at + used as u64, jobs)
                        else {
                            self.jobs.truncate(mark);
                            break;
                        };
                        used += n;
                        left -= 1;
                    }
                }
                if left > 0 {
                    self.tasks.push(Repeat {
                        left: left - 1,
                        body,
                    });
                    self.tasks.extend(body.iter().rev().copied());
                }
                Ok(Run::Done(used))
            }
            Body { left, usage } => {
                if d.is_empty() {
                    return Ok(Run::NeedMore);
                }
                let n = (left as usize)
                    .min(d.len())
                    .min(left.min(usize::MAX as u64) as usize);
                let keep = match usage {
                    StrUse::Plain => false,
                    StrUse::Blob(_) => !self.blob_unchecked,
                    // Captured text is cut anyway: collect no more than that.
                    _ => self.collect.len() < CAPTURE_LIMIT,
                };
                if keep {
                    self.collect.extend_from_slice(&d[..n]);
                }
                let left = left - n as u64;
                if left > 0 {
                    self.tasks.push(Body { left, usage });
                } else {
                    self.string_done(usage)?;
                }
                Ok(Run::Done(n))
            }
            LzfBody { usage } => {
                let Some(lzf) = self.lzf.as_mut() else {
                    return Err(CheckErrorKind::Invalid("internal: no LZF state".into()));
                };
                match lzf.step(d).map_err(CheckErrorKind::Lzf)? {
                    lzf::Step::NeedMore => Ok(Run::NeedMore),
                    lzf::Step::Consumed(n) => {
                        if lzf.done() {
                            lzf.complete().map_err(CheckErrorKind::Lzf)?;
                            if let Some(l) = self.lzf.take()
                                && usage.wants_content()
                            {
                                self.collect = l.out;
                            }
                            self.string_done(usage)?;
                        } else {
                            self.tasks.push(LzfBody { usage });
                        }
                        Ok(Run::Done(n))
                    }
                }
            }
            ModuleOps => {
                self.tasks.push(Len(LenUse::ModuleOpcode));
                Ok(Run::Done(0))
            }
            Trailer => {
                if d.len() < 8 {
                    return Ok(Run::NeedMore);
                }
                let mut t = [0u8; 8];
                t.copy_from_slice(&d[..8]);
                let expected = u64::from_le_bytes(t);
                let computed = self.crc.value();
                self.summary.checksum = if expected == 0 {
                    Checksum::Disabled
                } else if expected == computed {
                    Checksum::Verified { crc64: computed }
                } else {
                    return Err(CheckErrorKind::ChecksumMismatch { expected, computed });
                };
                self.finished = true;
                Ok(Run::Done(8))
            }
        }
    }

    fn header(&mut self, d: &[u8]) -> Result<Run, CheckErrorKind> {
        if d.len() < 9 {
            // A short prefix that already is not a magic fails at once.
            if !b"REDIS".starts_with(&d[..d.len().min(5)])
                && !b"VALKEY".starts_with(&d[..d.len().min(6)])
            {
                return Err(CheckErrorKind::BadMagic(d.escape_ascii().to_string()));
            }
            return Ok(Run::NeedMore);
        }
        let head = &d[..9];
        let (magic, digits) = if head.starts_with(b"REDIS") {
            ("REDIS", &head[5..9])
        } else if head.starts_with(b"VALKEY") {
            ("VALKEY", &head[6..9])
        } else {
            return Err(CheckErrorKind::BadMagic(head.escape_ascii().to_string()));
        };
        let version: u32 = std::str::from_utf8(digits)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CheckErrorKind::BadMagic(head.escape_ascii().to_string()))?;
        let dialect = Dialect::from_magic(magic).unwrap_or_default();
        if !dialect.accepts(version) {
            return Err(CheckErrorKind::UnsupportedVersion {
                magic: magic.to_string(),
                version,
            });
        }
        self.dialect = dialect;
        self.summary.magic = magic.to_string();
        self.summary.rdb_version = version;
        Ok(Run::Done(9))
    }

    fn record(&mut self, d: &[u8]) -> Result<Run, CheckErrorKind> {
        let Some(&op) = d.first() else {
            return Ok(Run::NeedMore);
        };
        let dialect_op = self.dialect.opcode(op);
        let push = |s: &mut Self, body: &[Task]| {
            s.tasks.push(Record);
            s.tasks.extend(body.iter().rev().copied());
        };
        match op {
            0xFF => {
                if self.summary.rdb_version >= 5 {
                    self.tasks.push(Trailer);
                } else {
                    self.summary.checksum = Checksum::Absent;
                    self.finished = true;
                }
            }
            0xFE => push(self, &[Len(LenUse::SelectDb)]),
            0xFD => {
                self.pending_expire = true;
                push(self, &[Fixed(4, "expire time")]);
            }
            0xFC => {
                self.pending_expire = true;
                push(self, &[Fixed(8, "expire time")]);
            }
            0xFB => push(self, &[LEN, LEN]),
            0xFA => push(self, &[Str(StrUse::AuxKey), Str(StrUse::AuxValue)]),
            0xF9 => push(self, &[Fixed(1, "LFU frequency")]),
            0xF8 => push(self, &[LEN]),
            0xF7 => push(
                self,
                &[
                    Len(LenUse::ModuleId { aux: true }),
                    Len(LenUse::ModuleWhenOpcode),
                    LEN,
                    ModuleOps,
                ],
            ),
            0xF6 => {
                return Err(CheckErrorKind::UnsupportedType {
                    code: op,
                    what: "pre-release function format of Redis 7.0 RC",
                });
            }
            0xF5 => push(self, &[Str(StrUse::Function)]),
            0xF4 => push(self, &[LEN, LEN, LEN]),
            // Opcodes only one dialect has (Valkey's slot import).
            _ if dialect_op.is_some() => push(self, dialect_op.unwrap_or_default()),
            code => {
                let (_, body) = self.dialect.value_type(code, self.summary.rdb_version)?;
                self.db_counts.keys += 1;
                if std::mem::take(&mut self.pending_expire) {
                    self.db_counts.expires += 1;
                }
                self.type_counts.0[usize::from(code)] += 1;
                // Fast path for the commonest record, a string key and a
                // string value wholly in this chunk: checked in place, no
                // tasks. Anything else (or any doubt) takes the task path,
                // which also reports errors at their exact offset.
                let mark = self.jobs.len();
                let defer = self.deferring();
                let at = self.at;
                let mut jobs = defer.then_some(&mut self.jobs);
                if code == 0
                    && let Some(n) = string_record(&d[1..], at + 1, jobs.as_deref_mut())
                {
                    // Bulk data is runs of such records: walk the run here,
                    // without a task or a type lookup per key.
                    let (more, keys) = string_records(&d[1 + n..], at + 1 + n as u64, jobs);
                    self.db_counts.keys += keys;
                    self.type_counts.0[0] += keys;
                    self.tasks.push(Record);
                    return Ok(Run::Done(1 + n + more));
                }
                self.jobs.truncate(mark);
                self.tasks.push(Record);
                self.tasks.extend(body.iter().rev().copied());
                self.tasks.push(STR); // the key
            }
        }
        // An expiry is followed by its key, or first by the key's LRU idle
        // time or LFU frequency (a server with an LRU/LFU maxmemory-policy
        // writes EXPIRETIME_MS, IDLE or FREQ, then the key).
        if (op >= 0xF4 || dialect_op.is_some())
            && !matches!(op, 0xF8 | 0xF9 | 0xFC | 0xFD)
            && self.pending_expire
        {
            return Err(CheckErrorKind::Invalid(
                "expire time not followed by a key".into(),
            ));
        }
        Ok(Run::Done(1))
    }

    fn use_len(&mut self, usage: LenUse, len: u64) -> Result<(), CheckErrorKind> {
        match usage {
            LenUse::Discard => {}
            LenUse::Repeat(body) => self.tasks.push(Repeat { left: len, body }),
            LenUse::SelectDb => {
                self.flush_db_counts();
                self.db = len;
            }
            LenUse::QuicklistContainer => match len {
                1 => self.tasks.push(STR),
                2 => self.tasks.push(Str(StrUse::Blob(BlobKind::Listpack))),
                _ => {
                    return Err(CheckErrorKind::Invalid(format!(
                        "quicklist node container {len} is neither plain (1) nor packed (2)"
                    )));
                }
            },
            LenUse::ModuleId { aux } => {
                let id = len >> 10;
                let key = if self.module_counts.len() < MAX_MODULE_TYPES
                    || self.module_counts.contains_key(&id)
                {
                    id
                } else {
                    u64::MAX
                };
                let c = self.module_counts.entry(key).or_default();
                if aux {
                    c.aux += 1;
                } else {
                    c.values += 1;
                }
            }
            LenUse::ModuleWhenOpcode => {
                if len != 2 {
                    return Err(CheckErrorKind::Invalid(format!(
                        "module aux 'when' opcode {len}, expected 2"
                    )));
                }
            }
            LenUse::ModuleOpcode => match len {
                0 => {}
                1 | 2 => self.tasks.extend([ModuleOps, LEN]),
                3 => self.tasks.extend([ModuleOps, Fixed(4, "module float")]),
                4 => self.tasks.extend([ModuleOps, Fixed(8, "module double")]),
                5 => self.tasks.extend([ModuleOps, STR]),
                _ => {
                    return Err(CheckErrorKind::Invalid(format!(
                        "unknown module opcode {len}"
                    )));
                }
            },
        }
        Ok(())
    }

    fn string_header(&mut self, d: &[u8], usage: StrUse) -> Result<Run, CheckErrorKind> {
        let Some((len, n)) = read_len(d)? else {
            return Ok(Run::NeedMore);
        };
        self.collect.clear();
        self.blob_unchecked = false;
        match len {
            LenValue::Int(bytes) => {
                if d.len() < n + bytes {
                    return Ok(Run::NeedMore);
                }
                let raw = &d[n..n + bytes];
                let v: i64 = match bytes {
                    1 => i64::from(raw[0] as i8),
                    2 => i64::from(i16::from_le_bytes([raw[0], raw[1]])),
                    _ => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
                };
                if let StrUse::Blob(kind) = usage {
                    return Err(CheckErrorKind::Blob {
                        kind: kind.name(),
                        reason: "stored as an integer".into(),
                    });
                }
                if usage.wants_content() {
                    self.collect.extend_from_slice(v.to_string().as_bytes());
                }
                self.string_done(usage)?;
                Ok(Run::Done(n + bytes))
            }
            LenValue::Lzf => {
                let Some((clen, n2)) = read_len(&d[n..])? else {
                    return Ok(Run::NeedMore);
                };
                let Some((ulen, n3)) = read_len(&d[n + n2..])? else {
                    return Ok(Run::NeedMore);
                };
                let (LenValue::Len(clen), LenValue::Len(ulen)) = (clen, ulen) else {
                    return Err(CheckErrorKind::Lzf("encoded lengths".into()));
                };
                if clen == 0 {
                    return Err(CheckErrorKind::Lzf("zero compressed length".into()));
                }
                self.check_content_len(usage, ulen)?;
                let keep = match usage {
                    StrUse::Plain => lzf::Keep::Nothing,
                    StrUse::Blob(_) if !self.blob_unchecked => lzf::Keep::All,
                    StrUse::Blob(_) => lzf::Keep::Window,
                    _ if ulen <= 1 << 20 => lzf::Keep::All,
                    _ => lzf::Keep::Window,
                };
                let start = n + n2 + n3;
                // A plain string or checked blob wholly in this chunk can be
                // checked later, elsewhere.
                let check = match usage {
                    StrUse::Plain if clen >= DEFER_LZF_MIN as u64 => {
                        Some((self.at + start as u64, Check::Lzf { ulen }))
                    }
                    StrUse::Blob(kind) if keep == lzf::Keep::All => {
                        Some((self.at, Check::LzfBlob { kind, ulen }))
                    }
                    _ => None,
                };
                if let Some((at, check)) = check
                    && self.deferring()
                    && let Some(end) = usize::try_from(clen)
                        .ok()
                        .and_then(|c| start.checked_add(c))
                        .filter(|&end| end <= d.len())
                {
                    let base = self.at;
                    self.jobs.push(Job {
                        at,
                        start: base + start as u64,
                        end: base + end as u64,
                        check,
                    });
                    self.collect.clear();
                    return Ok(Run::Done(end));
                }
                // A blob wholly in this chunk is decoded in one go.
                if keep == lzf::Keep::All
                    && let Some(body) = usize::try_from(clen)
                        .ok()
                        .and_then(|c| d.get(start..start.checked_add(c)?))
                {
                    lzf::decode_whole(body, ulen, &mut self.collect)
                        .map_err(CheckErrorKind::Lzf)?;
                    self.string_done(usage)?;
                    return Ok(Run::Done(start + body.len()));
                }
                self.lzf = Some(Lzf::new(clen, ulen, keep));
                self.tasks.push(LzfBody { usage });
                Ok(Run::Done(start))
            }
            LenValue::Len(len) => {
                self.check_content_len(usage, len)?;
                if let StrUse::Blob(kind) = usage
                    && len > 0
                    && !self.blob_unchecked
                    && self.deferring()
                    && let Some(end) = usize::try_from(len)
                        .ok()
                        .and_then(|l| n.checked_add(l))
                        .filter(|&end| end <= d.len())
                {
                    let body = self.at + n as u64;
                    self.jobs.push(Job {
                        at: body,
                        start: body,
                        end: self.at + end as u64,
                        check: Check::Blob(kind),
                    });
                    return Ok(Run::Done(end));
                }
                if len == 0 {
                    self.string_done(usage)?;
                } else {
                    self.tasks.push(Body { left: len, usage });
                }
                Ok(Run::Done(n))
            }
        }
    }

    fn check_content_len(&mut self, usage: StrUse, len: u64) -> Result<(), CheckErrorKind> {
        match usage {
            StrUse::StreamId if len != 16 => Err(CheckErrorKind::Invalid(format!(
                "stream node key of {len} bytes, expected 16"
            ))),
            StrUse::Blob(_) if len > BLOB_CHECK_LIMIT => {
                self.blob_unchecked = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn string_done(&mut self, usage: StrUse) -> Result<(), CheckErrorKind> {
        match usage {
            StrUse::Plain | StrUse::StreamId => {}
            StrUse::AuxKey => self.aux_key = Some(capture(&self.collect)),
            StrUse::AuxValue => {
                let key = self.aux_key.take().unwrap_or_default();
                let aux = &mut self.summary.aux;
                if aux.len() < MAX_AUX_FIELDS || aux.contains_key(&key) {
                    aux.insert(key, capture(&self.collect));
                } else {
                    self.summary.aux_omitted += 1;
                }
            }
            StrUse::Function if self.summary.functions.len() >= MAX_FUNCTIONS => {
                self.summary.functions_omitted += 1;
            }
            StrUse::Function => {
                // Library code starts with a shebang: `#!lua name=mylib`.
                let code = capture(&self.collect);
                let name = code
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("name=")))
                    .unwrap_or("?")
                    .to_string();
                self.summary.functions.push(name);
            }
            StrUse::Blob(kind) => {
                if !self.blob_unchecked {
                    blob::validate(kind, &self.collect).map_err(|reason| CheckErrorKind::Blob {
                        kind: kind.name(),
                        reason,
                    })?;
                }
            }
        }
        self.collect.clear();
        Ok(())
    }

    /// Ends the scan: the payload must have ended exactly after the trailer.
    pub fn finish(mut self) -> Result<Summary, CheckError> {
        if let Some((offset, msg)) = self.failed {
            return Err(err(
                offset,
                CheckErrorKind::Invalid(format!("scan already failed: {msg}")),
            ));
        }
        let end = self.offset();
        if !self.finished {
            let what = match self.tasks.last() {
                _ if !self.started || self.summary.magic.is_empty() => "the header",
                Some(Trailer) => "the CRC-64 trailer",
                Some(Fixed(_, what)) => what,
                Some(Record) => "the key space (no EOF opcode)",
                Some(Body { .. }) | Some(LzfBody { .. }) | Some(Str(_)) => "a string",
                _ => "a value",
            };
            return Err(err(end, CheckErrorKind::Truncated(what)));
        }
        self.flush_db_counts();
        for (code, &n) in self.type_counts.0.iter().enumerate() {
            if n == 0 {
                continue;
            }
            // Every counted code was accepted by value_type during the scan.
            if let Ok(code) = u8::try_from(code)
                && let Ok((name, _)) = self.dialect.value_type(code, self.summary.rdb_version)
            {
                *self.summary.types.entry(name.to_string()).or_default() += n;
            }
        }
        for (id, c) in std::mem::take(&mut self.module_counts) {
            let name = match id {
                u64::MAX => OTHER_MODULES.to_string(),
                _ => module_type_name(id << 10),
            };
            let m = self.summary.modules.entry(name).or_default();
            m.values += c.values;
            m.aux += c.aux;
        }
        self.summary.payload_len = end;
        Ok(self.summary)
    }

    /// Adds the current database's counts to the summary. A database is
    /// listed only once it has a key, as before.
    fn flush_db_counts(&mut self) {
        let counts = std::mem::take(&mut self.db_counts);
        if counts.keys > 0 {
            let db = self.summary.databases.entry(self.db).or_default();
            db.keys += counts.keys;
            db.expires += counts.expires;
        }
    }
}

fn capture(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(CAPTURE_LIMIT)]).into_owned()
}

/// A decoded RDB length field.
enum LenValue {
    Len(u64),
    /// An integer-encoded string of this many bytes.
    Int(usize),
    Lzf,
}

/// Checks one plain string (raw, integer or LZF) wholly inside `d`, which
/// starts at payload offset `at`; its length in bytes, or `None` when it is
/// incomplete or invalid (the caller then takes the slow path, which says
/// what is wrong and where). With `jobs`, an LZF body is not decoded here
/// but left there to check.
#[inline]
fn plain_string(d: &[u8], at: u64, jobs: Option<&mut Vec<Job>>) -> Option<usize> {
    let (len, n) = read_len(d).ok()??;
    match len {
        LenValue::Len(l) => {
            let end = n.checked_add(usize::try_from(l).ok()?)?;
            (end <= d.len()).then_some(end)
        }
        LenValue::Int(bytes) => (n + bytes <= d.len()).then_some(n + bytes),
        LenValue::Lzf => {
            let (LenValue::Len(clen), n2) = read_len(&d[n..]).ok()?? else {
                return None;
            };
            let (LenValue::Len(ulen), n3) = read_len(&d[n + n2..]).ok()?? else {
                return None;
            };
            let start = n + n2 + n3;
            let end = start.checked_add(usize::try_from(clen).ok()?)?;
            let body = d.get(start..end)?;
            if clen == 0 {
                return None;
            }
            match jobs {
                Some(jobs) if body.len() >= DEFER_LZF_MIN => jobs.push(Job {
                    at: at + start as u64,
                    start: at + start as u64,
                    end: at + end as u64,
                    check: Check::Lzf { ulen },
                }),
                _ if !lzf::check_complete(body, ulen) => return None,
                _ => {}
            }
            Some(end)
        }
    }
}

/// Length of a string record's key and value (after its type byte) wholly
/// inside `d`; `None` as for [`plain_string`].
#[inline]
fn string_record(d: &[u8], at: u64, mut jobs: Option<&mut Vec<Job>>) -> Option<usize> {
    let k = plain_string(d, at, jobs.as_deref_mut())?;
    let v = plain_string(&d[k..], at + k as u64, jobs)?;
    Some(k + v)
}

/// The run of whole string records without expiry (type byte 0, key,
/// value) at the start of `d`: bytes and records. Stops before the first
/// record that is anything else or not wholly here, which the task path
/// then reads (and, if it is wrong, says where and why).
fn string_records(d: &[u8], at: u64, mut jobs: Option<&mut Vec<Job>>) -> (usize, u64) {
    let (mut used, mut keys) = (0usize, 0u64);
    while d.get(used) == Some(&0) {
        let mark = jobs.as_deref().map_or(0, Vec::len);
        let start = used + 1;
        let Some(n) = string_record(&d[start..], at + start as u64, jobs.as_deref_mut()) else {
            if let Some(j) = jobs {
                j.truncate(mark);
            }
            break;
        };
        used = start + n;
        keys += 1;
    }
    (used, keys)
}

/// Length of one collection element wholly inside `d` when `body` is only
/// plain strings and fixed fields; `None` otherwise, or when incomplete or
/// invalid (the task path then says what is wrong and where).
fn plain_element(
    body: &[Task],
    d: &[u8],
    at: u64,
    mut jobs: Option<&mut Vec<Job>>,
) -> Option<usize> {
    let mut p = 0;
    for t in body {
        p += match *t {
            Str(StrUse::Plain) => plain_string(&d[p..], at + p as u64, jobs.as_deref_mut())?,
            Fixed(n, _) if d.len() - p >= n as usize => n as usize,
            _ => return None,
        };
    }
    Some(p)
}

/// Reads an RDB length; `None` when `d` is too short.
#[inline(always)]
fn read_len(d: &[u8]) -> Result<Option<(LenValue, usize)>, CheckErrorKind> {
    let Some(&first) = d.first() else {
        return Ok(None);
    };
    Ok(match first >> 6 {
        0 => Some((LenValue::Len(u64::from(first & 0x3F)), 1)),
        1 => d.get(1).map(|&b| {
            (
                LenValue::Len((u64::from(first & 0x3F) << 8) | u64::from(b)),
                2,
            )
        }),
        2 => match first {
            0x80 => d.get(1..5).map(|b| {
                (
                    LenValue::Len(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                    5,
                )
            }),
            0x81 => d.get(1..9).map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (LenValue::Len(u64::from_be_bytes(a)), 9)
            }),
            _ => return Err(bad_len(first)),
        },
        _ => match first & 0x3F {
            0 => Some((LenValue::Int(1), 1)),
            1 => Some((LenValue::Int(2), 1)),
            2 => Some((LenValue::Int(4), 1)),
            3 => Some((LenValue::Lzf, 1)),
            _ => return Err(bad_len(first)),
        },
    })
}

/// Why a length byte is not one: kept out of line, so the scan's hot
/// callers inline [`read_len`].
#[cold]
#[inline(never)]
fn bad_len(first: u8) -> CheckErrorKind {
    if first >> 6 == 3 {
        CheckErrorKind::Invalid(format!("invalid string encoding {}", first & 0x3F))
    } else {
        CheckErrorKind::Invalid(format!("invalid length byte {first:#04x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw string in RDB form.
    fn raw(s: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::try_from(s.len()).expect("short")];
        v.extend_from_slice(s);
        v
    }

    /// `n` (at most 32) literal bytes then a back-reference of `len` to
    /// them: an LZF string of `n + len` bytes (under 64, so its lengths
    /// take a byte each).
    fn lzf(n: usize, len: usize) -> Vec<u8> {
        let mut body = vec![(n - 1) as u8];
        body.extend((0..n).map(|i| b'a' + (i % 26) as u8));
        body.extend(lzf::backref(len, n));
        let mut v = vec![0xC3, body.len() as u8, (n + len) as u8];
        v.extend(body);
        v
    }

    /// A file of runs of string records (raw, integer and LZF values,
    /// short and long, some with an expiry), broken by a hash and a second
    /// database; its key and expiry counts per database.
    fn strings_file() -> (Vec<u8>, [(u64, u64); 2]) {
        let mut v = b"REDIS0011".to_vec();
        let mut counts = [(0, 0); 2];
        for db in 0..2u8 {
            v.extend([0xFE, db]);
            for i in 0..300u32 {
                if i % 50 == 7 {
                    v.extend([0xFC, 1, 2, 3, 4, 5, 6, 7, 8]);
                    counts[usize::from(db)].1 += 1;
                }
                if i == 150 {
                    v.push(4);
                    v.extend(raw(b"h"));
                    v.push(1);
                    v.extend(raw(b"f"));
                    v.extend(raw(b"v"));
                    counts[usize::from(db)].0 += 1;
                }
                v.push(0);
                v.extend(raw(format!("key:{i}").as_bytes()));
                match i % 4 {
                    0 => v.extend(raw(b"value")),
                    1 => v.extend([0xC0, i as u8]),
                    2 => v.extend(lzf(5, 50)),
                    _ => v.extend(lzf(32, 30)),
                }
                counts[usize::from(db)].0 += 1;
            }
        }
        v.push(0xFF);
        let crc = crate::crc64::checksum(&v);
        v.extend(crc.to_le_bytes());
        (v, counts)
    }

    fn scan(bytes: &[u8], chunk: usize, defer: bool) -> Result<Summary, CheckError> {
        let mut s = Checker::new();
        for c in bytes.chunks(chunk) {
            if defer {
                let (d, fed) = s.feed_deferring(c);
                d.check(c)?;
                fed?;
            } else {
                s.feed(c)?;
            }
        }
        s.finish()
    }

    #[test]
    fn runs_of_string_records_count_and_check_as_one_at_a_time() {
        let (file, counts) = strings_file();
        let whole = scan(&file, file.len(), false).expect("valid");
        for (db, (keys, expires)) in counts.into_iter().enumerate() {
            let d = &whole.databases[&(db as u64)];
            assert_eq!((d.keys, d.expires), (keys, expires), "db {db}");
        }
        assert_eq!(whole.types["string"], 600);
        assert_eq!(whole.types["hash-hashtable"], 2);
        // One byte at a time never takes the run; any other cut, deferring
        // or not, must find the same.
        for chunk in [1, 3, 64, 1000, 4096] {
            for defer in [false, true] {
                assert_eq!(scan(&file, chunk, defer).as_ref(), Ok(&whole));
            }
        }
        // A short LZF value (checked in the run) and a long one (deferred)
        // that decode to one byte more than declared, with the CRC made
        // right: only the content check can catch them, and it does
        // however the file is cut, at the same offset whenever the string
        // is wholly in one piece.
        for value in [lzf(5, 50), lzf(32, 30)] {
            let at = file
                .windows(value.len())
                .rposition(|w| w == value)
                .expect("in the file");
            let mut bad = file.clone();
            bad[at + 2] -= 1;
            let end = bad.len() - 8;
            let crc = crate::crc64::checksum(&bad[..end]);
            bad[end..].copy_from_slice(&crc.to_le_bytes());
            let want = scan(&bad, bad.len(), false).expect_err("a wrong length");
            assert!(matches!(want.kind, CheckErrorKind::Lzf(_)), "{want}");
            assert_eq!(scan(&bad, bad.len(), true).err().as_ref(), Some(&want));
            for chunk in [1, 7, 1000] {
                for defer in [false, true] {
                    let got = scan(&bad, chunk, defer).expect_err("a wrong length");
                    assert!(matches!(got.kind, CheckErrorKind::Lzf(_)), "{got}");
                    if at / chunk == (at + value.len() - 1) / chunk {
                        assert_eq!(got, want, "chunks of {chunk}, deferring {defer}");
                    }
                }
            }
        }
    }

    #[test]
    fn module_type_names_come_from_their_ids() {
        // Redis encodes a name as each character's place in this set, six
        // bits each from the top, then ten bits of encoding version.
        let set = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (name, encver) in [
            ("vectorset", 0u64),
            ("rvtest-t1", 1),
            ("ReJSON-RL", 3),
            ("A________", 1023),
        ] {
            let id = name.bytes().fold(0u64, |id, c| {
                (id << 6) | set.iter().position(|&x| x == c).expect("in set") as u64
            });
            assert_eq!(module_type_name((id << 10) | encver), name);
        }
    }

    #[test]
    fn aux_fields_and_function_names_past_their_caps_are_counted_not_kept() {
        let mut v = b"REDIS0010".to_vec();
        let aux = |v: &mut Vec<u8>, k: &str, val: &str| {
            v.push(0xFA);
            v.extend(raw(k.as_bytes()));
            v.extend(raw(val.as_bytes()));
        };
        for i in 0..MAX_AUX_FIELDS + 10 {
            aux(&mut v, &format!("f{i}"), "x");
        }
        // A field already kept is still updated once the cap is reached.
        aux(&mut v, "f0", "last");
        for i in 0..MAX_FUNCTIONS + 3 {
            v.push(0xF5);
            v.extend(raw(format!("#!lua name=l{i}\n").as_bytes()));
        }
        v.push(0xFF);
        let crc = crate::crc64::checksum(&v);
        v.extend(crc.to_le_bytes());
        let s = scan(&v, 4096, false).expect("scans");
        assert_eq!(s.aux.len(), MAX_AUX_FIELDS);
        assert_eq!(s.aux["f0"], "last");
        assert_eq!(s.aux_omitted, 10);
        assert_eq!(s.functions.len(), MAX_FUNCTIONS);
        assert_eq!(s.functions[0], "l0");
        assert_eq!(s.functions_omitted, 3);
        let json = serde_json::to_string(&s).expect("serializes");
        let back: Summary = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, s);
        // Summaries without omissions serialize as before.
        let plain = serde_json::to_string(&Summary::default()).expect("serializes");
        assert!(!plain.contains("omitted"), "{plain}");
    }

    #[test]
    fn module_types_past_the_cap_are_counted_together() {
        // A module value of type id `t`: id (64-bit length), then one
        // unsigned field and EOF; and an aux record of the first type.
        let mut v = b"REDIS0010".to_vec();
        v.extend([0xF7, 0x81]);
        v.extend((1u64 << 10).to_be_bytes());
        v.extend([2, 2, 2, 7, 0]);
        v.extend([0xFE, 0]);
        let types = MAX_MODULE_TYPES as u64 + 44;
        for t in 1..=types {
            v.push(7);
            v.extend(raw(format!("m{t}").as_bytes()));
            v.push(0x81);
            v.extend((t << 10).to_be_bytes());
            v.extend([2, 5, 0]);
        }
        v.push(0xFF);
        let crc = crate::crc64::checksum(&v);
        v.extend(crc.to_le_bytes());
        let s = scan(&v, 4096, false).expect("scans");
        assert_eq!(s.types["module"], types);
        assert_eq!(s.modules.len(), MAX_MODULE_TYPES + 1);
        assert_eq!(
            s.modules[&module_type_name(1 << 10)],
            ModuleCounts { values: 1, aux: 1 }
        );
        assert_eq!(
            s.modules[OTHER_MODULES],
            ModuleCounts { values: 44, aux: 0 }
        );
        assert_eq!(s.modules.values().map(|c| c.values).sum::<u64>(), types);
    }
}
