//! `DUMP` payloads, and writing an RDB file from them (scan mode).
//!
//! A `DUMP` reply is one serialized value: the value's type byte and body,
//! then a 2-byte little-endian RDB version and a CRC-64 (little-endian) over
//! everything before it. An RDB key record is the same type byte, then the
//! key as a string, then the same body; so each payload embeds into an RDB
//! without re-encoding. `FUNCTION DUMP` has the same footer around a run of
//! `FUNCTION2` records, which embed verbatim.
//!
//! [`RdbWriter`] appends records to a caller's buffer and keeps the running
//! CRC, so the caller can flush the buffer whenever it likes.

use crate::crc64::{self, Crc64};

/// Opcodes and the magic the writer uses (Redis's rdb.h).
mod op {
    pub(super) const FUNCTION2: u8 = 245;
    pub(super) const AUX: u8 = 250;
    pub(super) const RESIZEDB: u8 = 251;
    pub(super) const EXPIRETIME_MS: u8 = 252;
    pub(super) const SELECTDB: u8 = 254;
    pub(super) const EOF: u8 = 255;
}

/// Bytes after the value in a DUMP payload: version and CRC.
const FOOTER: usize = 10;

/// A payload that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpError {
    /// Too short to hold the footer (or, for a key, a type byte).
    #[error("DUMP payload of {0} bytes is too short")]
    TooShort(usize),
    /// The payload's CRC does not match.
    #[error("DUMP payload CRC mismatch (stored {stored:016x}, computed {computed:016x})")]
    Crc {
        /// CRC in the footer.
        stored: u64,
        /// CRC of the payload.
        computed: u64,
    },
    /// The payload's RDB version is newer than the file being written.
    #[error(
        "DUMP payload has RDB version {payload}, newer than the RDB version {file} this backup writes (the server changed version during the walk?)"
    )]
    NewerThanFile {
        /// The payload's version.
        payload: u16,
        /// The file's version.
        file: u32,
    },
    /// The payload's RDB version is newer than this replvault knows.
    #[error(
        "DUMP payload has RDB version {0}, which this replvault does not support (Redis up to {redis}, Valkey up to {valkey}): upgrade replvault",
        redis = crate::rdb::MAX_REDIS_RDB_VERSION,
        valkey = crate::rdb::MAX_VALKEY_RDB_VERSION
    )]
    Unsupported(u16),
}

/// A checked DUMP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dump<'a> {
    /// The value: type byte, then the serialized body.
    pub value: &'a [u8],
    /// The RDB version the server serialized it with.
    pub rdb_version: u16,
}

impl<'a> Dump<'a> {
    /// Checks the footer of a `DUMP` (or `FUNCTION DUMP`) reply.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DumpError> {
        // `FUNCTION DUMP` of a server without functions is just the footer.
        if payload.len() < FOOTER {
            return Err(DumpError::TooShort(payload.len()));
        }
        let (body, crc) = payload.split_at(payload.len() - 8);
        let mut stored = [0u8; 8];
        stored.copy_from_slice(crc);
        let stored = u64::from_le_bytes(stored);
        let computed = crc64::checksum(body);
        if stored != computed {
            return Err(DumpError::Crc { stored, computed });
        }
        let (value, ver) = body.split_at(body.len() - 2);
        let rdb_version = u16::from_le_bytes([ver[0], ver[1]]);
        let v = u32::from(rdb_version);
        // Redis numbers its formats 1..=12; Valkey 9 started its own at 80.
        if v > crate::rdb::MAX_REDIS_RDB_VERSION
            && !(80..=crate::rdb::MAX_VALKEY_RDB_VERSION).contains(&v)
        {
            return Err(DumpError::Unsupported(rdb_version));
        }
        Ok(Dump { value, rdb_version })
    }
}

/// Appends an RDB length.
pub(crate) fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if let Ok(n32) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n32.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a raw RDB string.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Writes an RDB file record by record into caller-owned buffers.
#[derive(Debug)]
pub struct RdbWriter {
    version: u32,
    crc: Crc64,
    bytes: u64,
}

impl RdbWriter {
    /// Starts an RDB of `version`, appending the magic to `out`: `REDIS`
    /// and four digits, or `VALKEY` and three for Valkey's formats (80+).
    pub fn new(version: u32, out: &mut Vec<u8>) -> Self {
        let mut w = RdbWriter {
            version,
            crc: Crc64::new(),
            bytes: 0,
        };
        let magic = if version >= 80 {
            format!("VALKEY{version:03}")
        } else {
            format!("REDIS{version:04}")
        };
        w.emit(out, |o| o.extend_from_slice(magic.as_bytes()));
        w
    }

    /// The RDB version being written.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn emit(&mut self, out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
        let start = out.len();
        f(out);
        self.crc.update(&out[start..]);
        self.bytes += (out.len() - start) as u64;
    }

    /// An AUX field.
    pub fn aux(&mut self, out: &mut Vec<u8>, key: &str, value: &str) {
        self.emit(out, |o| {
            o.push(op::AUX);
            put_str(o, key.as_bytes());
            put_str(o, value.as_bytes());
        });
    }

    /// The function libraries of a checked `FUNCTION DUMP` payload.
    pub fn functions(&mut self, out: &mut Vec<u8>, dump: &Dump<'_>) -> Result<(), DumpError> {
        self.check_version(dump)?;
        // An empty library set dumps as just the footer.
        if dump.value.first() == Some(&op::FUNCTION2) || dump.value.is_empty() {
            self.emit(out, |o| o.extend_from_slice(dump.value));
        }
        Ok(())
    }

    /// SELECTDB and RESIZEDB (sizes are only a hint to the loader).
    pub fn select_db(&mut self, out: &mut Vec<u8>, db: u64, keys: u64, expires: u64) {
        self.emit(out, |o| {
            o.push(op::SELECTDB);
            put_len(o, db);
            o.push(op::RESIZEDB);
            put_len(o, keys);
            put_len(o, expires);
        });
    }

    /// One key from its checked DUMP payload, with an absolute expiry in
    /// Unix milliseconds if it has one.
    pub fn key(
        &mut self,
        out: &mut Vec<u8>,
        key: &[u8],
        dump: &Dump<'_>,
        expire_at_ms: Option<i64>,
    ) -> Result<(), DumpError> {
        self.check_version(dump)?;
        let Some((&ty, body)) = dump.value.split_first() else {
            return Err(DumpError::TooShort(0));
        };
        self.emit(out, |o| {
            if let Some(ms) = expire_at_ms {
                o.push(op::EXPIRETIME_MS);
                o.extend_from_slice(&ms.to_le_bytes());
            }
            o.push(ty);
            put_str(o, key);
            o.extend_from_slice(body);
        });
        Ok(())
    }

    /// EOF and the CRC-64 trailer; the file is complete.
    pub fn finish(mut self, out: &mut Vec<u8>) -> u64 {
        self.emit(out, |o| o.push(op::EOF));
        out.extend_from_slice(&self.crc.value().to_le_bytes());
        self.bytes + 8
    }

    fn check_version(&self, dump: &Dump<'_>) -> Result<(), DumpError> {
        if u32::from(dump.rdb_version) > self.version {
            return Err(DumpError::NewerThanFile {
                payload: dump.rdb_version,
                file: self.version,
            });
        }
        Ok(())
    }
}

/// Builds a DUMP-format payload around `value` (tests and tools).
pub fn make_payload(value: &[u8], rdb_version: u16) -> Vec<u8> {
    let mut p = value.to_vec();
    p.extend_from_slice(&rdb_version.to_le_bytes());
    let crc = crc64::checksum(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::Checker;

    #[test]
    fn lengths_encode_like_redis() {
        let enc = |n| {
            let mut v = Vec::new();
            put_len(&mut v, n);
            v
        };
        assert_eq!(enc(5), [5]);
        assert_eq!(enc(63), [63]);
        assert_eq!(enc(64), [0x40, 64]);
        assert_eq!(enc(16383), [0x7f, 0xff]);
        assert_eq!(enc(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn payload_footer_is_checked() {
        // A string value "hello": type 0, length 5, bytes.
        let p = make_payload(b"\x00\x05hello", 10);
        let d = Dump::parse(&p).unwrap();
        assert_eq!(d.value, b"\x00\x05hello");
        assert_eq!(d.rdb_version, 10);
        let mut bad = p.clone();
        bad[3] ^= 1;
        assert!(matches!(Dump::parse(&bad), Err(DumpError::Crc { .. })));
        assert_eq!(Dump::parse(&p[..5]), Err(DumpError::TooShort(5)));
        let empty = make_payload(b"", 10);
        assert_eq!(Dump::parse(&empty).unwrap().value, b"");
        let newer = make_payload(b"\x00\x01x", 99);
        assert_eq!(Dump::parse(&newer), Err(DumpError::Unsupported(99)));
        let between = make_payload(b"\x00\x01x", 13);
        assert_eq!(Dump::parse(&between), Err(DumpError::Unsupported(13)));
        let valkey = make_payload(b"\x00\x01x", 80);
        assert_eq!(Dump::parse(&valkey).unwrap().rdb_version, 80);
    }

    #[test]
    fn written_file_passes_the_checker() {
        let mut out = Vec::new();
        let mut w = RdbWriter::new(10, &mut out);
        w.aux(&mut out, "redis-ver", "7.0.15");
        w.aux(&mut out, "replvault-mode", "scan");
        let lib = b"#!lua name=l\nredis.register_function('f', function() return 1 end)";
        let mut fvalue = vec![op::FUNCTION2];
        put_str(&mut fvalue, lib);
        let fp = make_payload(&fvalue, 10);
        w.functions(&mut out, &Dump::parse(&fp).unwrap()).unwrap();
        w.select_db(&mut out, 0, 2, 1);
        let s = make_payload(b"\x00\x05hello", 10);
        let long_key = vec![b'k'; 100];
        w.key(&mut out, &long_key, &Dump::parse(&s).unwrap(), None)
            .unwrap();
        w.key(
            &mut out,
            b"t",
            &Dump::parse(&s).unwrap(),
            Some(4_102_444_800_000),
        )
        .unwrap();
        w.select_db(&mut out, 5, 1, 0);
        w.key(&mut out, b"x", &Dump::parse(&s).unwrap(), None)
            .unwrap();
        let newer = make_payload(b"\x00\x01x", 11);
        assert!(matches!(
            w.key(&mut out, b"y", &Dump::parse(&newer).unwrap(), None),
            Err(DumpError::NewerThanFile { .. })
        ));
        let n = w.finish(&mut out);
        assert_eq!(n, out.len() as u64);
        let mut checker = Checker::new();
        checker.feed(&out).unwrap();
        let sum = checker.finish().unwrap();
        assert_eq!(sum.rdb_version, 10);
        assert_eq!(sum.total_keys(), 3);
        assert_eq!(sum.functions.len(), 1, "{sum:?}");
    }
}
