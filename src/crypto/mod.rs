//! Keys and the STREAM construction over AES-256-GCM.
//!
//! - [`keys`]: the 32-byte master key file, its public key id, and the
//!   per-backup key derived with HKDF-SHA256.
//! - [`aead_stream`]: the data object container: a header, then 64 KiB segments
//!   sealed with AES-256-GCM, nonce = 88-bit counter ‖ last-segment flag.

pub mod aead_stream;
pub mod keys;

pub use aead_stream::{Decryptor, Encryptor, Header, StreamError};
pub use keys::{KeyError, MasterKey};
