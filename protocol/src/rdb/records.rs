//! Records: the header, what each opcode and value type pushes, and the
//! in-place walk over runs of string records.

use super::blob::BlobKind;
use super::checker::{Checker, Run};
use super::deferred::Job;
use super::dialect::Dialect;
use super::error::CheckErrorKind;
use super::keys::KeyTrack;
use super::strings::{plain_key, plain_string, string_record};
use super::summary::{Checksum, MAX_MODULE_TYPES};
use super::tasks::Task::{self, *};
use super::tasks::{LEN, LenUse, STR, StrUse};

impl Checker {
    pub(super) fn header(&mut self, d: &[u8]) -> Result<Run, CheckErrorKind> {
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

    pub(super) fn record(&mut self, d: &[u8]) -> Result<Run, CheckErrorKind> {
        let Some(&op) = d.first() else {
            return Ok(Run::NeedMore);
        };
        if let Some(t) = self.track.as_deref_mut() {
            t.record(self.at, op);
        }
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
                if let Some(t) = self.track.as_deref_mut() {
                    // Per-key work: runs of whole string records in place,
                    // as below but each key hashed; anything else on the
                    // task path, its key read as a key.
                    t.key_record(self.at, self.db)?;
                    let at = self.at;
                    let run = if code == 0 {
                        keyed_string_records(&d[1..], at + 1, self.db, t, &mut self.collect)
                    } else {
                        Ok((0, 0))
                    };
                    let (used, keys) = match run {
                        Ok(r) => r,
                        Err((at, kind)) => {
                            self.err_at = Some(at);
                            return Err(kind);
                        }
                    };
                    if keys > 0 {
                        // The first key was counted above.
                        self.db_counts.keys += keys - 1;
                        self.type_counts.0[0] += keys - 1;
                        self.tasks.push(Record);
                        return Ok(Run::Done(1 + used));
                    }
                    self.tasks.push(Record);
                    self.tasks.extend(body.iter().rev().copied());
                    self.tasks.push(Str(StrUse::Key));
                    return Ok(Run::Done(1));
                }
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

    pub(super) fn use_len(&mut self, usage: LenUse, len: u64) -> Result<(), CheckErrorKind> {
        match usage {
            LenUse::Discard => {}
            LenUse::Repeat(body) => {
                // Every element takes at least a byte. The count's own
                // bytes are already behind `at` by at most 9; ignore them.
                self.check_declared("an element count", len, 0, false)?;
                self.tasks.push(Repeat { left: len, body })
            }
            LenUse::SelectDb => {
                self.flush_db_counts()?;
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

/// [`string_records`] with per-key work, from the key of a string record
/// whose type byte is already read (and its key record begun), `d` at
/// offset `at`: bytes and records (the first included; none when it is not
/// wholly here). Each record is reported to `track` only once it is known
/// to lie wholly here, so the task path takes over cleanly; a key outside
/// the slots is an error at its record.
fn keyed_string_records(
    d: &[u8],
    at: u64,
    db: u64,
    track: &mut KeyTrack,
    scratch: &mut Vec<u8>,
) -> Result<(usize, u64), (u64, CheckErrorKind)> {
    let (mut used, mut keys) = (0usize, 0u64);
    loop {
        // After the first, each record starts with its type byte.
        let start = match keys {
            0 => 0,
            _ if d.get(used) == Some(&0) => used + 1,
            _ => break,
        };
        let Some((key, k)) = plain_key(&d[start..], scratch) else {
            break;
        };
        let Some(v) = plain_string(&d[start + k..], at + (start + k) as u64, None) else {
            break;
        };
        if keys > 0 {
            let record = at + used as u64;
            track.record(record, 0);
            track.key_record(record, db).map_err(|e| (record, e))?;
        }
        track.whole_key(key)?;
        used = start + k + v;
        keys += 1;
    }
    scratch.clear();
    Ok((used, keys))
}

#[cfg(test)]
mod tests {
    use super::super::CheckErrorKind;
    use super::super::lzf;
    use super::super::test_support::{check, raw};
    use super::super::{Checker, Limits};

    /// The error of feeding `bytes` whole to a checker with `limits`.
    fn refused(bytes: &[u8], limits: Limits) -> CheckErrorKind {
        let mut c = Checker::new().with_limits(limits);
        c.feed(bytes).expect_err("refused while feeding").kind
    }

    #[test]
    fn declared_lengths_are_bounded_by_the_payload_or_the_value_limit() {
        let start = b"REDIS0011\xfe\x00".to_vec();
        // A list declaring 2^32 elements in a 1 KiB payload.
        let mut list = start.clone();
        list.extend_from_slice(b"\x01\x01k\x81");
        list.extend_from_slice(&(1u64 << 32).to_be_bytes());
        let kind = refused(
            &list,
            Limits {
                payload_len: Some(1024),
                ..Limits::default()
            },
        );
        assert!(
            matches!(kind, CheckErrorKind::BeyondPayload { what: "an element count", declared, left }
                if declared == 1 << 32 && left < 1024),
            "{kind:?}"
        );
        // A string of 2 KiB in a 1 KiB payload, and in a payload of unknown
        // length under a 1 KiB limit; an LZF string whose expansion is
        // past the limit.
        let mut string = start.clone();
        string.extend_from_slice(b"\x00\x01k\x48\x00");
        let kind = refused(
            &string,
            Limits {
                payload_len: Some(1024),
                ..Limits::default()
            },
        );
        assert!(
            matches!(
                kind,
                CheckErrorKind::BeyondPayload {
                    what: "a string",
                    declared: 2048,
                    ..
                }
            ),
            "{kind:?}"
        );
        let kind = refused(
            &string,
            Limits {
                payload_len: None,
                max_value: 1024,
            },
        );
        assert!(
            matches!(
                kind,
                CheckErrorKind::ValueTooLarge {
                    declared: 2048,
                    max: 1024,
                    ..
                }
            ),
            "{kind:?}"
        );
        let mut packed = start.clone();
        packed.extend_from_slice(b"\x00\x01k\xc3\x05\x48\x00");
        let kind = refused(
            &packed,
            Limits {
                payload_len: None,
                max_value: 1024,
            },
        );
        assert!(
            matches!(
                kind,
                CheckErrorKind::ValueTooLarge {
                    what: "a compressed string",
                    declared: 2048,
                    ..
                }
            ),
            "{kind:?}"
        );
        // Within the limits, the same string is read on (and waits for bytes).
        let mut c = Checker::new().with_limits(Limits {
            payload_len: None,
            max_value: 4096,
        });
        c.feed(&string).expect("a 2 KiB string under a 4 KiB limit");
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

    /// A file with one key in each of `dbs` databases (with `again`, the
    /// last one selected again for a second key), then EOF and the CRC.
    fn key_per_database(dbs: u64, again: bool) -> Vec<u8> {
        let mut v = b"REDIS0011".to_vec();
        let again = again.then_some(dbs - 1);
        for db in (0..dbs).chain(again) {
            v.extend([0xFE, 0x80]);
            v.extend((db as u32).to_be_bytes());
            v.push(0);
            v.extend(raw(format!("k{db}:{}", v.len()).as_bytes()));
            v.extend(raw(b"v"));
        }
        v.push(0xFF);
        let crc = crate::crc64::checksum(&v);
        v.extend(crc.to_le_bytes());
        v
    }

    #[test]
    fn keys_in_more_databases_than_a_manifest_lists_are_refused() {
        let max = super::super::MAX_DATABASES as u64;
        let whole = check(&key_per_database(max, true), 4096, false).expect("valid");
        assert_eq!(whole.databases.len() as u64, max);
        assert_eq!(whole.databases[&(max - 1)].keys, 2);
        // One more fails at the SELECTDB after it, before the end: the
        // summary stays bounded whatever the file declares.
        let file = key_per_database(max + 1, true);
        let e = check(&file, 4096, false).expect_err("too many databases");
        assert!(
            matches!(e.kind, CheckErrorKind::TooManyDatabases { .. }),
            "{e}"
        );
        assert!(e.offset < file.len() as u64 - 9, "{e}");
        // And at the end when the excess database is the last one.
        let e =
            check(&key_per_database(max + 1, false), 4096, true).expect_err("too many databases");
        assert!(
            matches!(e.kind, CheckErrorKind::TooManyDatabases { .. }),
            "{e}"
        );
    }

    #[test]
    fn runs_of_string_records_count_and_check_as_one_at_a_time() {
        let (file, counts) = strings_file();
        let whole = check(&file, file.len(), false).expect("valid");
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
                assert_eq!(check(&file, chunk, defer).as_ref(), Ok(&whole));
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
            let want = check(&bad, bad.len(), false).expect_err("a wrong length");
            assert!(matches!(want.kind, CheckErrorKind::Lzf(_)), "{want}");
            assert_eq!(check(&bad, bad.len(), true).err().as_ref(), Some(&want));
            for chunk in [1, 7, 1000] {
                for defer in [false, true] {
                    let got = check(&bad, chunk, defer).expect_err("a wrong length");
                    assert!(matches!(got.kind, CheckErrorKind::Lzf(_)), "{got}");
                    if at / chunk == (at + value.len() - 1) / chunk {
                        assert_eq!(got, want, "chunks of {chunk}, deferring {defer}");
                    }
                }
            }
        }
    }
}
