//! The data object container: header, then STREAM segments.
//!
//! ```text
//! header (54 bytes)
//!   magic     8  "RVAULT\x00\x01"
//!   version   1  1
//!   algorithm 1  0 = none, 1 = AES-256-GCM STREAM
//!   segment   4  plaintext segment size, big-endian (65536)
//!   key id    8  fingerprint of the master key (zero when algorithm = 0)
//!   salt     32  HKDF salt for this backup's payload key (random)
//! segments (algorithm 1)
//!   each: ciphertext of `segment` plaintext bytes + 16-byte tag; the last
//!   one may be shorter (even empty) and is sealed with the last flag.
//!   nonce = 11-byte big-endian segment counter ‖ 1 byte (1 on the last)
//!   AAD   = the 54 header bytes, so the header is authenticated too.
//! ```
//!
//! As in age's STREAM, truncation at a segment boundary, reordering,
//! dropping, extension and tampering all fail authentication, and no
//! plaintext of a segment is released before its tag checks. With algorithm
//! 0 (`--no-encryption`, by explicit request only) the body is the plain
//! zstd stream.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::keys::{MasterKey, random_bytes};

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
/// AES-GCM tag length.
pub const TAG: usize = 16;
/// Header length.
pub const HEADER_LEN: usize = 54;
const MAGIC: &[u8; 8] = b"RVAULT\x00\x01";

/// Container errors.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum StreamError {
    /// Not a replvault data object.
    #[error("not a replvault data object (bad header)")]
    BadHeader,
    /// A newer format than this build reads.
    #[error("data object format {0} is newer than this replvault understands: upgrade replvault")]
    UnsupportedVersion(u8),
    /// The backup is encrypted and no key was given.
    #[error("this backup is encrypted (key id {0}): pass --key-file or set REPLVAULT_KEY_FILE")]
    NoKey(String),
    /// A key was given but the object claims to be unencrypted.
    #[error(
        "this data object is not encrypted although a key was given: it was made with --no-encryption, or its header was tampered with; restore it without --key-file if you made it unencrypted"
    )]
    UnexpectedPlaintext,
    /// The key is not the one the backup was made with.
    #[error(
        "wrong key: this backup was made with key id {backup}, your key file has key id {yours}"
    )]
    WrongKey {
        /// Key id in the backup.
        backup: String,
        /// Key id of the given key.
        yours: String,
    },
    /// A segment failed authentication.
    #[error("data object is corrupt or tampered with: segment {0} failed authentication")]
    Tampered(u64),
    /// The object ends early.
    #[error("data object is truncated: {0}")]
    Truncated(&'static str),
    /// The random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// True for AES-256-GCM, false for `--no-encryption`.
    pub encrypted: bool,
    /// Key id (hex), when encrypted.
    pub key_id: Option<String>,
    /// Salt for the payload key.
    pub salt: [u8; 32],
    /// Plaintext segment size.
    pub segment: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8] = 1;
        h[9] = u8::from(self.encrypted);
        h[10..14].copy_from_slice(&self.segment.to_be_bytes());
        if let Some(id) = &self.key_id {
            let _ = hex::decode_to_slice(id, &mut h[14..22]);
        }
        h[22..54].copy_from_slice(&self.salt);
        h
    }

    /// Parses the first [`HEADER_LEN`] bytes of a data object.
    pub fn parse(h: &[u8]) -> Result<Header, StreamError> {
        if h.len() < HEADER_LEN || &h[..8] != MAGIC {
            return Err(StreamError::BadHeader);
        }
        if h[8] != 1 {
            return Err(StreamError::UnsupportedVersion(h[8]));
        }
        let encrypted = match h[9] {
            0 => false,
            1 => true,
            _ => return Err(StreamError::BadHeader),
        };
        let segment = u32::from_be_bytes([h[10], h[11], h[12], h[13]]);
        if segment as usize != SEGMENT {
            return Err(StreamError::BadHeader);
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&h[22..54]);
        Ok(Header {
            encrypted,
            key_id: encrypted.then(|| hex::encode(&h[14..22])),
            salt,
            segment,
        })
    }
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn aead_key(master: &MasterKey, salt: &[u8]) -> LessSafeKey {
    let k = master.payload_key(salt);
    // A 32-byte key is always valid for AES-256-GCM.
    let unbound = UnboundKey::new(&AES_256_GCM, &k[..]).unwrap_or_else(|_| unreachable!());
    LessSafeKey::new(unbound)
}

/// Seals a stream; call [`Encryptor::finish`] or the output is truncated
/// (and will be rejected on restore).
pub struct Encryptor {
    key: Option<LessSafeKey>,
    header: [u8; HEADER_LEN],
    header_written: bool,
    counter: u64,
    seg: Vec<u8>,
}

impl Encryptor {
    /// An encryptor with a fresh salt; `None` writes the plaintext
    /// container (`--no-encryption`).
    pub fn new(master: Option<&MasterKey>) -> Result<Self, StreamError> {
        let mut salt = [0u8; 32];
        random_bytes(&mut salt).map_err(|_| StreamError::Random)?;
        let header = Header {
            encrypted: master.is_some(),
            key_id: master.map(MasterKey::key_id),
            salt,
            segment: SEGMENT as u32,
        };
        Ok(Encryptor {
            key: master.map(|m| aead_key(m, &salt)),
            header: header.encode(),
            header_written: false,
            counter: 0,
            seg: Vec::with_capacity(SEGMENT),
        })
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(&self.header);
            self.header_written = true;
        }
    }

    fn seal(&mut self, last: bool, out: &mut Vec<u8>) {
        if let Some(key) = &self.key {
            let start = out.len();
            out.extend_from_slice(&self.seg);
            // Sealing only fails for inputs over ~64 GiB.
            if let Ok(tag) = key.seal_in_place_separate_tag(
                nonce(self.counter, last),
                Aad::from(&self.header[..]),
                &mut out[start..],
            ) {
                out.extend_from_slice(tag.as_ref());
            }
            self.counter += 1;
            self.seg.clear();
        }
    }

    /// Adds plaintext; sealed output is appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        self.write_header(out);
        if self.key.is_none() {
            out.extend_from_slice(data);
            return;
        }
        while !data.is_empty() {
            // A full segment is sealed only once more data follows, since
            // the last segment must carry the last flag.
            if self.seg.len() == SEGMENT {
                self.seal(false, out);
            }
            let take = (SEGMENT - self.seg.len()).min(data.len());
            self.seg.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Seals the last segment.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.write_header(out);
        self.seal(true, out);
    }
}

/// Opens a stream pushed in chunks of any size.
pub struct Decryptor {
    master: Option<MasterKey>,
    header: Option<(Header, [u8; HEADER_LEN], Option<LessSafeKey>)>,
    buf: Vec<u8>,
    counter: u64,
}

impl Decryptor {
    /// A decryptor; `master` may be `None` for plaintext containers.
    pub fn new(master: Option<MasterKey>) -> Self {
        Decryptor {
            master,
            header: None,
            buf: Vec::new(),
            counter: 0,
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref().map(|h| &h.0)
    }

    /// Adds stored bytes; authenticated plaintext is appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        self.buf.extend_from_slice(data);
        if self.header.is_none() {
            if self.buf.len() < HEADER_LEN {
                return Ok(());
            }
            let header = Header::parse(&self.buf)?;
            let key = match (&header.key_id, &self.master) {
                // Never downgrade: with a key in hand, plaintext is refused.
                (None, Some(_)) => return Err(StreamError::UnexpectedPlaintext),
                (None, None) => None,
                (Some(id), None) => return Err(StreamError::NoKey(id.clone())),
                (Some(id), Some(m)) => {
                    if m.key_id() != *id {
                        return Err(StreamError::WrongKey {
                            backup: id.clone(),
                            yours: m.key_id(),
                        });
                    }
                    Some(aead_key(m, &header.salt))
                }
            };
            let mut raw = [0u8; HEADER_LEN];
            raw.copy_from_slice(&self.buf[..HEADER_LEN]);
            self.header = Some((header, raw, key));
            self.buf.drain(..HEADER_LEN);
        }
        let Some((_, _, key)) = &self.header else {
            return Ok(());
        };
        if key.is_none() {
            out.append(&mut self.buf);
            return Ok(());
        }
        // Keep at least one byte back: only the end of the object tells
        // which segment is the last.
        let mut pos = 0;
        while self.buf.len() - pos > SEGMENT + TAG {
            self.open(pos, SEGMENT + TAG, false, out)?;
            pos += SEGMENT + TAG;
        }
        self.buf.drain(..pos);
        Ok(())
    }

    fn open(
        &mut self,
        at: usize,
        len: usize,
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        let Some((_, raw, Some(key))) = &self.header else {
            return Err(StreamError::BadHeader);
        };
        let start = out.len();
        out.extend_from_slice(&self.buf[at..at + len]);
        match key.open_in_place(
            nonce(self.counter, last),
            Aad::from(&raw[..]),
            &mut out[start..],
        ) {
            Ok(plain) => {
                let n = plain.len();
                out.truncate(start + n);
                self.counter += 1;
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(StreamError::Tampered(self.counter))
            }
        }
    }

    /// Checks the end of the object and releases the last segment.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        match &self.header {
            None => Err(StreamError::Truncated("shorter than its header")),
            Some((_, _, None)) => {
                out.append(&mut self.buf);
                Ok(())
            }
            Some(_) => {
                if self.buf.len() < TAG {
                    return Err(StreamError::Truncated("the last segment is missing"));
                }
                let len = self.buf.len();
                self.open(0, len, true, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    fn seal(data: &[u8], master: Option<&MasterKey>) -> Vec<u8> {
        let mut e = Encryptor::new(master).unwrap();
        let mut out = Vec::new();
        for c in data.chunks(10_007) {
            e.push(c, &mut out);
        }
        e.finish(&mut out);
        out
    }

    fn open(
        stored: &[u8],
        master: Option<MasterKey>,
        chunk: usize,
    ) -> Result<Vec<u8>, StreamError> {
        let mut d = Decryptor::new(master);
        let mut out = Vec::new();
        for c in stored.chunks(chunk) {
            d.push(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_segment_edges() {
        for n in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 5,
            2_000_000,
        ] {
            let d = data(n);
            let s = seal(&d, Some(&key(1)));
            assert_eq!(s.len(), HEADER_LEN + n + TAG * n.div_ceil(SEGMENT).max(1));
            for chunk in [1usize, 999, 1 << 20] {
                if chunk == 1 && n > 200_000 {
                    continue;
                }
                assert_eq!(
                    open(&s, Some(key(1)), chunk).unwrap(),
                    d,
                    "n {n} chunk {chunk}"
                );
            }
            assert_eq!(open(&seal(&d, None), None, 4096).unwrap(), d);
        }
    }

    #[test]
    fn truncation_is_detected_everywhere() {
        let d = data(3 * SEGMENT + 100);
        let s = seal(&d, Some(&key(1)));
        let seg = SEGMENT + TAG;
        let mut cuts = vec![0, 10, HEADER_LEN, HEADER_LEN + 5];
        for i in 1..=3 {
            cuts.push(HEADER_LEN + i * seg);
            cuts.push(HEADER_LEN + i * seg - 1);
            cuts.push(HEADER_LEN + i * seg + 7);
        }
        cuts.push(s.len() - 1);
        for cut in cuts {
            assert!(open(&s[..cut], Some(key(1)), 4096).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn tampering_reordering_extension_and_wrong_key_are_detected() {
        let d = data(3 * SEGMENT);
        let s = seal(&d, Some(&key(1)));
        for pos in [9, 15, 30, HEADER_LEN, HEADER_LEN + SEGMENT, s.len() - 1] {
            let mut t = s.clone();
            t[pos] ^= 1;
            assert!(open(&t, Some(key(1)), 4096).is_err(), "flip at {pos}");
        }
        let seg = SEGMENT + TAG;
        let mut swapped = s[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&s[HEADER_LEN + seg..HEADER_LEN + 2 * seg]);
        swapped.extend_from_slice(&s[HEADER_LEN..HEADER_LEN + seg]);
        swapped.extend_from_slice(&s[HEADER_LEN + 2 * seg..]);
        assert_eq!(
            open(&swapped, Some(key(1)), 4096),
            Err(StreamError::Tampered(0))
        );
        let mut longer = s.clone();
        longer.extend_from_slice(&[0; 20]);
        assert!(open(&longer, Some(key(1)), 4096).is_err());
        assert!(matches!(
            open(&s, Some(key(2)), 4096),
            Err(StreamError::WrongKey { .. })
        ));
        assert!(matches!(open(&s, None, 4096), Err(StreamError::NoKey(_))));
    }

    #[test]
    fn ciphertext_hides_plaintext() {
        let d = b"MARKER-PLAINTEXT-".repeat(10_000);
        let s = seal(&d, Some(&key(1)));
        assert!(!s.windows(17).any(|w| w == b"MARKER-PLAINTEXT-"));
    }
}
