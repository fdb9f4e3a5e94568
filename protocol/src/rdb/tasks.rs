//! The checker's task set, and the tasks each value type expands into.

use super::blob::BlobKind;

/// What a length is for once read.
#[derive(Clone, Copy, Debug)]
pub(super) enum LenUse {
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
pub(super) enum StrUse {
    Plain,
    AuxKey,
    AuxValue,
    Function,
    Blob(BlobKind),
    StreamId,
    /// A key, when the check looks at keys (see `keys`).
    Key,
}

impl StrUse {
    pub(super) fn wants_content(self) -> bool {
        !matches!(self, StrUse::Plain)
    }
}

/// One step of the interpreter.
#[derive(Clone, Copy, Debug)]
pub(super) enum Task {
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

pub(super) const STR: Task = Str(StrUse::Plain);
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

pub(super) const LEN: Task = Len(LenUse::Discard);
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
/// [`dialect`](super::dialect) for where they part).
pub(super) fn redis_type(code: u8) -> Option<(&'static str, &'static [Task])> {
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
