//! CRC-64/Jones as Redis computes it for the RDB trailer.
//!
//! Reflected, polynomial 0xad93d23594c935a9, init 0, xorout 0; the check
//! value for `"123456789"` is `0xe9c6d914c4b8d9ca`. This is *not* CRC-64/XZ
//! (what the `crc64fast` crate computes). `crc-fast`'s `Crc64Redis` is the
//! right algorithm, computed with carry-less multiply: the checksum covers
//! every payload byte, so it must not be the check's bottleneck.

use crc_fast::{CrcAlgorithm, Digest};

/// Running CRC-64/Jones over a byte stream fed in chunks of any size.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest,
}

impl Crc64 {
    /// A fresh checksum (init 0).
    pub fn new() -> Self {
        Crc64 {
            digest: Digest::new(CrcAlgorithm::Crc64Redis),
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The checksum of everything fed so far (does not reset).
    pub fn value(&self) -> u64 {
        self.digest.finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

/// CRC-64/Jones of one buffer.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut crc = Crc64::new();
    crc.update(bytes);
    crc.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_and_chunking_match_redis() {
        // The catalogue check value of CRC-64/Jones (CRC-64/XZ would give
        // 0x995dc9bbdf1939fa).
        assert_eq!(checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
        assert_eq!(checksum(b""), 0);
        // Fed in pieces, the same value.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut crc = Crc64::new();
        for piece in data.chunks(7) {
            crc.update(piece);
        }
        assert_eq!(crc.value(), checksum(&data));
        // The CRC over a file including its little-endian trailer is zero.
        let mut with_trailer = data.clone();
        with_trailer.extend_from_slice(&checksum(&data).to_le_bytes());
        assert_eq!(checksum(&with_trailer), 0);
    }
}
