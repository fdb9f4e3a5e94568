//! Lengths and strings (raw, integer, LZF): what each string is for, and
//! the in-place check of plain strings.

use super::BLOB_CHECK_LIMIT;
use super::blob;
use super::checker::{Checker, Run};
use super::deferred::{Check, Job};
use super::error::CheckErrorKind;
use super::lzf::{self, Lzf};
use super::summary::{CAPTURE_LIMIT, MAX_AUX_FIELDS, MAX_FUNCTIONS};
use super::tasks::StrUse;
use super::tasks::Task::{self, *};

/// Plain LZF strings shorter than this (compressed) are checked in place
/// even when deferring: queueing the check costs about what it saves.
const DEFER_LZF_MIN: usize = 32;

impl Checker {
    pub(super) fn string_header(&mut self, d: &[u8], usage: StrUse) -> Result<Run, CheckErrorKind> {
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
                self.check_declared("a compressed string", clen, n + n2 + n3, true)?;
                if self.limits.payload_len.is_none() {
                    self.check_declared("a compressed string", ulen, n + n2 + n3, true)?;
                }
                self.check_content_len(usage, ulen)?;
                let keep = match usage {
                    StrUse::Plain => lzf::Keep::Nothing,
                    StrUse::Blob(_) if !self.blob_unchecked => lzf::Keep::All,
                    StrUse::Blob(_) => lzf::Keep::Window,
                    StrUse::Key if ulen > 1 << 20 => lzf::Keep::Stream,
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
                self.check_declared("a string", len, n, true)?;
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

    pub(super) fn string_done(&mut self, usage: StrUse) -> Result<(), CheckErrorKind> {
        match usage {
            StrUse::Plain | StrUse::StreamId => {}
            StrUse::AuxKey => {
                let key = capture(&self.collect);
                if let Some(t) = self.track.as_deref_mut() {
                    t.aux_key(&key);
                }
                self.aux_key = Some(key);
            }
            StrUse::Key => {
                if let Some(t) = self.track.as_deref_mut() {
                    t.key_bytes(&self.collect);
                    if let Err((at, kind)) = t.key_done() {
                        self.err_at = Some(at);
                        return Err(kind);
                    }
                }
            }
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
}

fn capture(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(CAPTURE_LIMIT)]).into_owned()
}

/// A decoded RDB length field.
pub(super) enum LenValue {
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
pub(super) fn plain_string(d: &[u8], at: u64, jobs: Option<&mut Vec<Job>>) -> Option<usize> {
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
pub(super) fn string_record(d: &[u8], at: u64, mut jobs: Option<&mut Vec<Job>>) -> Option<usize> {
    let k = plain_string(d, at, jobs.as_deref_mut())?;
    let v = plain_string(&d[k..], at + k as u64, jobs)?;
    Some(k + v)
}

/// The content of a key wholly inside `d` (raw bytes, an integer's text,
/// or LZF decoded into `scratch`) and its length in `d`; `None` as for
/// [`plain_string`], or for a key decoding to more than 64 KiB (left to the
/// task path, which streams it).
#[inline]
pub(super) fn plain_key<'a>(d: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<(&'a [u8], usize)> {
    let (len, n) = read_len(d).ok()??;
    match len {
        LenValue::Len(l) => {
            let end = n.checked_add(usize::try_from(l).ok()?)?;
            Some((d.get(n..end)?, end))
        }
        LenValue::Int(bytes) => {
            let raw = d.get(n..n + bytes)?;
            let v: i64 = match bytes {
                1 => i64::from(raw[0] as i8),
                2 => i64::from(i16::from_le_bytes([raw[0], raw[1]])),
                _ => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            };
            scratch.clear();
            scratch.extend_from_slice(v.to_string().as_bytes());
            Some((scratch, n + bytes))
        }
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
            if clen == 0 || ulen > 64 * 1024 {
                return None;
            }
            lzf::decode_whole(body, ulen, scratch).ok()?;
            Some((scratch, end))
        }
    }
}

/// Length of one collection element wholly inside `d` when `body` is only
/// plain strings and fixed fields; `None` otherwise, or when incomplete or
/// invalid (the task path then says what is wrong and where).
pub(super) fn plain_element(
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
pub(super) fn read_len(d: &[u8]) -> Result<Option<(LenValue, usize)>, CheckErrorKind> {
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

/// Why a length byte is not one: kept out of line, so the check's hot
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
