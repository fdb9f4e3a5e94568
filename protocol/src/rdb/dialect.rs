//! The two RDB dialects: Redis (`REDIS` magic, versions 1 to 12) and
//! Valkey (`VALKEY` magic, versions 80 and up).
//!
//! They share the length and string encodings, the opcodes 244 to 255 and
//! the value types 0 to 21 (the last open-source Redis format, RDB 11), then
//! diverge: Redis 7.4+ (RDB 12) gives 22 to 25 to hashes with field TTLs in
//! four layouts, Valkey 9.0 (RDB 80) gives 22 to its own field-TTL hash
//! (`RDB_TYPE_HASH_2`, one layout) and 243 to a slot-import opcode. Each
//! dialect has its own table here, picked by the magic, so a code is never
//! read with the other's meaning: a Redis file with type 24 is a Redis
//! hash, a Valkey file with type 24 is an error, and type 22 is parsed by
//! whichever layout the magic says.
//!
//! Valkey writes `REDIS0011` up to 8.x (plain Redis RDB 11) and reserves
//! 12 to 79 for foreign formats; it never writes `VALKEY` with a version
//! below 80 or `REDIS` with one above 79 (`rdbIsVersionAccepted`).

use super::CheckErrorKind;
use super::tasks::{LEN, LenUse, STR, Task, redis_type};
use Task::{Fixed, Len};

/// Newest Valkey RDB version accepted (Valkey 9.0 and 9.1 write 80). 81
/// (Valkey 9.2) adds a type not modelled.
pub const MAX_VALKEY_RDB_VERSION: u32 = 80;

/// Oldest version Valkey writes with the `VALKEY` magic.
pub(super) const MIN_VALKEY_RDB_VERSION: u32 = 80;

/// Newest Redis RDB version accepted.
pub const MAX_REDIS_RDB_VERSION: u32 = 12;

/// Which table of value types and opcodes a file uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `REDIS` magic.
    #[default]
    Redis,
    /// `VALKEY` magic.
    Valkey,
}

/// Valkey's `RDB_TYPE_HASH_2`: field, value, then the field's absolute
/// expiry in ms (little endian; -1 when the field has none), per field.
const VALKEY_HASH2_BODY: &[Task] = &[Len(LenUse::Repeat(&[
    STR,
    STR,
    Fixed(8, "hash field expire time"),
]))];

/// Valkey's `RDB_OPCODE_SLOT_IMPORT` (cluster slot migration in progress):
/// job name, then start and end slot of each range.
pub(super) const VALKEY_SLOT_IMPORT_BODY: &[Task] = &[STR, Len(LenUse::Repeat(&[LEN, LEN]))];

impl Dialect {
    /// The dialect a magic names, if any.
    pub(super) fn from_magic(magic: &str) -> Option<Dialect> {
        match magic {
            "REDIS" => Some(Dialect::Redis),
            "VALKEY" => Some(Dialect::Valkey),
            _ => None,
        }
    }

    /// Whether this checker reads `version` in this dialect.
    pub(super) fn accepts(self, version: u32) -> bool {
        match self {
            Dialect::Redis => (1..=MAX_REDIS_RDB_VERSION).contains(&version),
            Dialect::Valkey => (MIN_VALKEY_RDB_VERSION..=MAX_VALKEY_RDB_VERSION).contains(&version),
        }
    }

    /// Body of a dialect-specific opcode below 244, if `op` is one.
    pub(super) fn opcode(self, op: u8) -> Option<&'static [Task]> {
        match (self, op) {
            (Dialect::Valkey, 0xF3) => Some(VALKEY_SLOT_IMPORT_BODY),
            _ => None,
        }
    }

    /// Name and body of value type `code` in a file of `version`.
    pub(super) fn value_type(
        self,
        code: u8,
        version: u32,
    ) -> Result<(&'static str, &'static [Task]), CheckErrorKind> {
        match self {
            Dialect::Redis => {
                let found = redis_type(code).ok_or(CheckErrorKind::UnknownType(code))?;
                // A type newer than the file cannot have been written by the
                // server that wrote it; this is what keeps a Valkey 8 file
                // (REDIS0011) from ever having a 22 read as Redis's.
                if version < redis_type_since(code) {
                    return Err(CheckErrorKind::UnsupportedType {
                        code,
                        what: "newer than the file's RDB version",
                    });
                }
                Ok(found)
            }
            Dialect::Valkey => match code {
                22 => Ok(("hash-ttl-hashtable", VALKEY_HASH2_BODY)),
                // Shared with Redis up to RDB 11; all older than RDB 80.
                0..=21 => redis_type(code).ok_or(CheckErrorKind::UnknownType(code)),
                _ => Err(CheckErrorKind::UnknownType(code)),
            },
        }
    }
}

/// The Redis RDB version that introduced value type `code` (rdb.h history).
fn redis_type_since(code: u8) -> u32 {
    match code {
        5 | 7 => 8,    // ZSET_2, MODULE_2 (Redis 4.0)
        14 => 7,       // QUICKLIST (Redis 3.2)
        15 => 9,       // STREAM_LISTPACKS (Redis 5.0)
        16..=19 => 10, // listpack hash/zset, QUICKLIST_2, STREAM_LISTPACKS_2 (Redis 7.0)
        20 | 21 => 11, // SET_LISTPACK, STREAM_LISTPACKS_3 (Redis 7.2)
        22..=25 => 12, // hash field TTLs (Redis 7.4, 8.0)
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CheckError, Checker, Checksum, Summary};
    use super::*;
    use crate::crc64::Crc64;

    /// A whole file: header, body records, EOF opcode, CRC-64 trailer.
    fn file(header: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = header.to_vec();
        v.extend_from_slice(body);
        v.push(0xFF);
        let mut crc = Crc64::new();
        crc.update(&v);
        v.extend_from_slice(&crc.value().to_le_bytes());
        v
    }

    fn check(bytes: &[u8]) -> Result<Summary, CheckError> {
        let mut s = Checker::new();
        s.feed(bytes)?;
        s.finish()
    }

    /// `SELECTDB 0`, then one key `k` of `code` with `value`.
    fn key(code: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFE, 0x00, code, 0x01, b'k'];
        v.extend_from_slice(value);
        v
    }

    /// Valkey 9's HASH_2 with two fields: `a` expiring, `b` with -1.
    fn hash2() -> Vec<u8> {
        let mut v = vec![0x02, 0x01, b'a', 0x01, b'1'];
        v.extend_from_slice(&4_102_444_800_000i64.to_le_bytes());
        v.extend_from_slice(&[0x01, b'b', 0x01, b'2']);
        v.extend_from_slice(&(-1i64).to_le_bytes());
        v
    }

    /// A ZSET_2 (type 5) with one member and a binary double score.
    fn zset2() -> Vec<u8> {
        let mut v = vec![0x01, 0x01, b'm'];
        v.extend_from_slice(&1.5f64.to_le_bytes());
        v
    }

    fn kind(r: Result<Summary, CheckError>) -> CheckErrorKind {
        r.expect_err("should be rejected").kind
    }

    #[test]
    fn a_bad_magic_is_shown_with_its_bytes_escaped() {
        // A gzipped dump, as the usual backup script stores it.
        let e = check(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03rest").unwrap_err();
        assert_eq!(e.offset, 0);
        assert_eq!(
            e.kind.to_string(),
            r#"not an RDB file (bad magic "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02")"#
        );
        // Fewer than 9 bytes that already are not a magic.
        let e = check(b"\"x\xff").unwrap_err();
        assert_eq!(
            e.kind.to_string(),
            r#"not an RDB file (bad magic "\"x\xff")"#
        );
    }

    #[test]
    fn valkey_hash2_is_read_with_valkeys_layout() {
        let s = check(&file(b"VALKEY080", &key(22, &hash2()))).unwrap();
        assert_eq!(s.magic, "VALKEY");
        assert_eq!(s.rdb_version, 80);
        assert_eq!(s.types.get("hash-ttl-hashtable"), Some(&1));
        assert_eq!(s.total_keys(), 1);
        assert!(matches!(s.checksum, Checksum::Verified { .. }));
    }

    #[test]
    fn valkey_hash2_bytes_under_redis_magic_are_not_accepted() {
        // RDB 11 (what Valkey 8 writes as REDIS0011) has no type 22 at all.
        assert_eq!(
            kind(check(&file(b"REDIS0011", &key(22, &hash2())))),
            CheckErrorKind::UnsupportedType {
                code: 22,
                what: "newer than the file's RDB version"
            }
        );
        // In RDB 12, 22 is Redis 7.4's layout (a TTL length before each
        // field): the Valkey bytes do not parse as it.
        assert!(check(&file(b"REDIS0012", &key(22, &hash2()))).is_err());
    }

    #[test]
    fn redis_only_codes_are_unknown_to_valkey() {
        for code in [23u8, 24, 25, 26, 0xF2] {
            assert_eq!(
                kind(check(&file(b"VALKEY080", &key(code, &[0x00])))),
                CheckErrorKind::UnknownType(code),
                "type {code}"
            );
        }
    }

    #[test]
    fn slot_import_is_valkey_only() {
        // Job name "j", one range 0-16383.
        let op = [0xF3, 0x01, b'j', 0x01, 0x00, 0x7F, 0xFF];
        let mut body = op.to_vec();
        body.extend(key(0, &[0x01, b'v']));
        let s = check(&file(b"VALKEY080", &body)).unwrap();
        assert_eq!(s.total_keys(), 1);
        assert_eq!(
            kind(check(&file(b"REDIS0012", &body))),
            CheckErrorKind::UnknownType(0xF3)
        );
    }

    #[test]
    fn shared_types_read_the_same_in_both() {
        let redis = check(&file(b"REDIS0011", &key(5, &zset2()))).unwrap();
        let valkey = check(&file(b"VALKEY080", &key(5, &zset2()))).unwrap();
        assert_eq!(redis.types, valkey.types);
        assert_eq!(redis.types.get("zset-skiplist"), Some(&1));
    }

    #[test]
    fn types_newer_than_the_redis_version_are_rejected() {
        assert!(check(&file(b"REDIS0008", &key(5, &zset2()))).is_ok());
        assert!(matches!(
            kind(check(&file(b"REDIS0007", &key(5, &zset2())))),
            CheckErrorKind::UnsupportedType { code: 5, .. }
        ));
    }

    #[test]
    fn versions_outside_each_dialect_are_unsupported() {
        for (header, magic, version) in [
            (&b"VALKEY079"[..], "VALKEY", 79),
            (b"VALKEY011", "VALKEY", 11),
            (b"VALKEY081", "VALKEY", 81),
            (b"REDIS0013", "REDIS", 13),
            (b"REDIS0080", "REDIS", 80),
            (b"REDIS0000", "REDIS", 0),
        ] {
            assert_eq!(
                kind(check(&file(header, &[]))),
                CheckErrorKind::UnsupportedVersion {
                    magic: magic.into(),
                    version
                },
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        for v in 1..=MAX_REDIS_RDB_VERSION {
            let mut bytes = file(format!("REDIS{v:04}").as_bytes(), &[]);
            if v < 5 {
                bytes.truncate(10); // no CRC trailer before RDB 5
            }
            let s = check(&bytes).unwrap();
            assert_eq!(s.rdb_version, v);
        }
    }

    #[test]
    fn valkey_version_aux_is_kept() {
        // What Valkey 9 writes instead of redis-ver.
        let body = [&[0xFA, 0x0A][..], b"valkey-ver", &[0x05], b"9.1.2"].concat();
        let s = check(&file(b"VALKEY080", &body)).unwrap();
        assert_eq!(s.aux.get("valkey-ver").map(String::as_str), Some("9.1.2"));
    }
}
