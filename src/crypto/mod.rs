//! Keys and the STREAM construction over AES-256-GCM.
//!
//! - `keys`: the 32-byte master key file, its key id, HKDF per backup.
//! - `stream`: 64 KiB segments, nonce = 88-bit counter ‖ last flag.
// SKELETON: helper B implements this module.

/// The 32-byte master key from a key file.
pub struct MasterKey {
    _private: (),
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}
