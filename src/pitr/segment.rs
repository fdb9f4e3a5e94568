//! One segment of the stream archive: its object key, and its contents
//! sealed and opened (`docs/FORMAT.md`, "Segments").

use serde::{Deserialize, Serialize};

use crate::crypto::{Decryptor, Encryptor, MasterKey, StreamError};

/// Magic at the start of a segment's plaintext.
const MAGIC: &[u8; 8] = b"RVSEG\x00\x00\x01";
/// Current segment format.
pub const FORMAT: u32 = 1;
/// Largest plaintext a reader accepts, so a hostile object cannot make it
/// allocate without bound: the largest segment size plus one command of
/// the largest size a primary sends, plus room for the times.
pub const MAX_PLAINTEXT: u64 = (1 << 30) + (1 << 29);
/// Largest stored segment object a reader fetches: the plaintext bound,
/// what zstd adds to incompressible data, the AEAD tags and the header.
pub const MAX_STORED: u64 = MAX_PLAINTEXT + (MAX_PLAINTEXT >> 6) + 4096;
/// Longest header a reader accepts.
const MAX_HEADER: u32 = 64 * 1024;

/// What a segment's header records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// Segment format.
    pub format: u32,
    /// The timeline it belongs to.
    pub timeline: String,
    /// Replication id the primary used for these bytes.
    pub replid: String,
    /// Offset before the first byte.
    pub start: u64,
    /// Offset of the last byte.
    pub end: u64,
    /// Database selected before the first byte.
    pub db: u32,
    /// Database selected after the last byte.
    pub db_end: u32,
    /// Arrival of the first command, Unix milliseconds.
    pub first_ms: u64,
    /// Arrival of the last command, Unix milliseconds.
    pub last_ms: u64,
    /// Commands in the segment.
    pub commands: u64,
}

/// A segment's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The header.
    pub header: SegmentHeader,
    /// Arrival time of each command, Unix milliseconds, in stream order.
    pub times: Vec<u64>,
    /// The stream bytes, `header.end - header.start` of them.
    pub stream: Vec<u8>,
}

/// Why a segment cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// Sealing failed.
    #[error("cannot seal a segment: {0}")]
    Seal(#[source] StreamError),
    /// The container is wrong (key, tampering, truncation).
    #[error("segment {key}: {source}")]
    Crypto {
        /// Object key.
        key: String,
        /// What the container check found.
        #[source]
        source: StreamError,
    },
    /// The segment could not be built.
    #[error("cannot build a segment: {0}")]
    Compress(String),
    /// The plaintext does not decompress.
    #[error("segment {key}: the data does not decompress: {reason}")]
    Decompress {
        /// Object key.
        key: String,
        /// zstd's message.
        reason: String,
    },
    /// The plaintext is not a segment of this format.
    #[error("segment {key} is malformed: {reason}")]
    Malformed {
        /// Object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where a segment is stored, and what its key says.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentKey {
    /// Offset before the first byte.
    pub start: u64,
    /// Offset of the last byte.
    pub end: u64,
    /// Arrival of the first command, Unix milliseconds.
    pub first_ms: u64,
    /// Arrival of the last command, Unix milliseconds.
    pub last_ms: u64,
}

impl SegmentKey {
    /// The object key within `pitr/<timeline>/`.
    pub fn object(&self, timeline: &str) -> String {
        format!(
            "pitr/{timeline}/seg/{:020}-{:020}-{:013}-{:013}",
            self.start, self.end, self.first_ms, self.last_ms
        )
    }

    /// Stream bytes it holds.
    pub fn stream_len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Parses the last part of a segment's object key.
    pub fn parse(name: &str) -> Option<SegmentKey> {
        let mut it = name.split('-');
        let mut num = |width: usize| {
            it.next()
                .filter(|p| p.len() == width && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
        };
        let key = SegmentKey {
            start: num(20)?,
            end: num(20)?,
            first_ms: num(13)?,
            last_ms: num(13)?,
        };
        (it.next().is_none() && key.start <= key.end && key.first_ms <= key.last_ms).then_some(key)
    }
}

impl Segment {
    /// The key this segment is stored under.
    pub fn key(&self) -> SegmentKey {
        SegmentKey {
            start: self.header.start,
            end: self.header.end,
            first_ms: self.header.first_ms,
            last_ms: self.header.last_ms,
        }
    }

    /// The stored object: the plaintext compressed at `level` and sealed
    /// with `key` (or the plaintext container without one).
    pub fn seal(&self, key: Option<&MasterKey>, level: i32) -> Result<Vec<u8>, SegmentError> {
        // The stream is compressed where it lies, after the header and the
        // times: no plaintext copy of a 16 MiB segment is made. One zstd
        // frame that declares its size, as `open` expects.
        let mut head = Vec::with_capacity(self.times.len() * 2 + 512);
        head.extend_from_slice(MAGIC);
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| SegmentError::Compress(format!("header: {e}")))?;
        head.extend_from_slice(&(header.len() as u32).to_be_bytes());
        head.extend_from_slice(&header);
        let mut prev = self.header.first_ms;
        for &t in &self.times {
            leb128(t.saturating_sub(prev), &mut head);
            prev = t.max(prev);
        }
        let compress = |e: std::io::Error| SegmentError::Compress(e.to_string());
        let total = (head.len() + self.stream.len()) as u64;
        let mut z = zstd::stream::Encoder::new(Vec::with_capacity(self.stream.len() / 4), level)
            .map_err(compress)?;
        z.include_contentsize(true).map_err(compress)?;
        z.set_pledged_src_size(Some(total)).map_err(compress)?;
        std::io::Write::write_all(&mut z, &head).map_err(compress)?;
        std::io::Write::write_all(&mut z, &self.stream).map_err(compress)?;
        let packed = z.finish().map_err(compress)?;
        let mut enc = Encryptor::new(key).map_err(SegmentError::Seal)?;
        let mut out = Vec::with_capacity(packed.len() + packed.len() / 1000 + 128);
        enc.push(&packed, &mut out);
        enc.finish(&mut out);
        Ok(out)
    }

    /// Opens the object stored at `object_key`, checking it is the
    /// segment `expect` says (range and times as in its key).
    pub fn open(
        object_key: &str,
        stored: &[u8],
        key: Option<MasterKey>,
        expect: &SegmentKey,
    ) -> Result<Segment, SegmentError> {
        let malformed = |reason: String| SegmentError::Malformed {
            key: object_key.to_string(),
            reason,
        };
        let mut dec = Decryptor::new(key);
        let mut packed = Vec::with_capacity(stored.len());
        let crypto = |source| SegmentError::Crypto {
            key: object_key.to_string(),
            source,
        };
        dec.push(stored, &mut packed).map_err(crypto)?;
        dec.finish(&mut packed).map_err(crypto)?;
        let size = zstd::zstd_safe::get_frame_content_size(&packed)
            .ok()
            .flatten()
            .ok_or_else(|| malformed("the zstd frame does not declare its size".into()))?;
        if size > MAX_PLAINTEXT {
            return Err(malformed(format!("it claims {size} bytes")));
        }
        let plain = zstd::bulk::decompress(&packed, size as usize).map_err(|e| {
            SegmentError::Decompress {
                key: object_key.to_string(),
                reason: e.to_string(),
            }
        })?;
        drop(packed);
        let rest = plain
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| malformed("no segment magic".into()))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("cut in its header".into()))?;
        let len = u32::from_be_bytes(*len);
        if len > MAX_HEADER || len as usize > rest.len() {
            return Err(malformed(format!("a header of {len} bytes")));
        }
        let (header, mut rest) = rest.split_at(len as usize);
        let header: SegmentHeader =
            serde_json::from_slice(header).map_err(|e| malformed(format!("header: {e}")))?;
        if header.format > FORMAT {
            return Err(malformed(format!(
                "format {} is newer than this replvault: upgrade",
                header.format
            )));
        }
        let found = SegmentKey {
            start: header.start,
            end: header.end,
            first_ms: header.first_ms,
            last_ms: header.last_ms,
        };
        if &found != expect {
            return Err(malformed(format!(
                "its header says {found:?}, its key {expect:?}"
            )));
        }
        let mut times = Vec::with_capacity(header.commands.min(1 << 20) as usize);
        let mut t = header.first_ms;
        for _ in 0..header.commands {
            let (d, used) =
                read_leb128(rest).ok_or_else(|| malformed("cut in its arrival times".into()))?;
            rest = &rest[used..];
            t = t
                .checked_add(d)
                .ok_or_else(|| malformed("an arrival time overflows".into()))?;
            times.push(t);
        }
        if times.last().is_some_and(|&l| l != header.last_ms) {
            return Err(malformed(
                "its last arrival time differs from its header".into(),
            ));
        }
        if rest.len() as u64 != header.end - header.start {
            return Err(malformed(format!(
                "{} stream bytes for offsets {} to {}",
                rest.len(),
                header.start,
                header.end
            )));
        }
        Ok(Segment {
            stream: rest.to_vec(),
            header,
            times,
        })
    }
}

fn leb128(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_leb128(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Segment {
        let stream =
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".to_vec();
        Segment {
            header: SegmentHeader {
                format: FORMAT,
                timeline: "20261205T060000Z-3c1a".into(),
                replid: "a".repeat(40),
                start: 100,
                end: 100 + stream.len() as u64,
                db: 0,
                db_end: 1,
                first_ms: 1_796_450_400_123,
                last_ms: 1_796_450_400_500,
                commands: 2,
            },
            times: vec![1_796_450_400_123, 1_796_450_400_500],
            stream,
        }
    }

    #[test]
    fn a_segment_round_trips_and_its_key_parses() {
        let s = sample();
        let k = s.key();
        let object = k.object(&s.header.timeline);
        let name = object.rsplit('/').next().expect("a name");
        assert_eq!(SegmentKey::parse(name), Some(k.clone()));
        let key = MasterKey::from_bytes([7; 32]);
        let sealed = s.seal(Some(&key), 3).expect("sealed");
        let back = Segment::open(&object, &sealed, Some(key.clone()), &k).expect("opens");
        assert_eq!(back, s);
        // Without encryption too.
        let plain = s.seal(None, 3).expect("sealed");
        assert_eq!(Segment::open(&object, &plain, None, &k).expect("opens"), s);
        // A wrong key, a flipped byte, a cut object, another key's range.
        let other = MasterKey::from_bytes([8; 32]);
        assert!(Segment::open(&object, &sealed, Some(other), &k).is_err());
        let mut bad = sealed.clone();
        let last = bad.len() - 20;
        bad[last] ^= 1;
        assert!(Segment::open(&object, &bad, Some(key.clone()), &k).is_err());
        assert!(
            Segment::open(&object, &sealed[..sealed.len() - 1], Some(key.clone()), &k).is_err()
        );
        let moved = SegmentKey { start: 101, ..k };
        assert!(Segment::open(&object, &sealed, Some(key), &moved).is_err());
    }

    #[test]
    fn keys_of_another_shape_are_not_segments() {
        for bad in [
            "",
            "1-2-3-4",
            "00000000000000000002-00000000000000000001-0000000000001-0000000000002",
            "00000000000000000001-00000000000000000002-0000000000001-0000000000002-x",
            "0000000000000000000a-00000000000000000002-0000000000001-0000000000002",
        ] {
            assert_eq!(SegmentKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            leb128(v, &mut b);
            assert_eq!(read_leb128(&b), Some((v, b.len())));
        }
        assert_eq!(read_leb128(&[0x80; 11]), None);
    }
}
