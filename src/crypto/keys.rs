//! The master key file, its key id, and per-backup key derivation.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Key file errors. Messages name the file and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file could not be written.
    #[error("cannot write key file {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file exists already (keygen never overwrites).
    #[error(
        "key file {0} already exists: keygen never overwrites a key (backups made with it would become unreadable)"
    )]
    Exists(PathBuf),
    /// The contents are not a key.
    #[error(
        "key file {path} is not a replvault key: expected 32 raw bytes or 64 hex digits, found {len} bytes"
    )]
    Format {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Anyone on the machine could read the key.
    #[error("key file {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The 32-byte master key from a key file. Zeroized on drop, never printed;
/// a clone is zeroized on drop too.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", self.key_id())
    }
}

/// Fills `buf` from the system CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), KeyError> {
    SystemRandom::new().fill(buf).map_err(|_| KeyError::Random)
}

impl MasterKey {
    /// Wraps raw key bytes (tests and generation).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut b = [0u8; KEY_LEN];
        random_bytes(&mut b)?;
        Ok(Self::from_bytes(b))
    }

    /// Loads a key file: 32 raw bytes, or 64 hex digits (with an optional
    /// trailing newline, which suits Kubernetes Secrets and env files).
    /// Refuses a file other users can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
                path: path.into(),
                source,
            })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(KeyError::Permissions {
                    path: path.into(),
                    mode,
                });
            }
        }
        let raw = Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?);
        let format = || KeyError::Format {
            path: path.into(),
            len: raw.len(),
        };
        let mut key = [0u8; KEY_LEN];
        if raw.len() == KEY_LEN {
            key.copy_from_slice(&raw);
        } else {
            let text = std::str::from_utf8(&raw).map_err(|_| format())?.trim_end();
            if text.len() != 2 * KEY_LEN {
                return Err(format());
            }
            hex::decode_to_slice(text, &mut key).map_err(|_| format())?;
        }
        Ok(Self::from_bytes(key))
    }

    /// Writes the key to a new file with mode 0600; never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.into())
            } else {
                KeyError::Write {
                    path: path.into(),
                    source,
                }
            }
        })?;
        f.write_all(&self.bytes[..])
            .and_then(|()| f.sync_all())
            .map_err(|source| KeyError::Write {
                path: path.into(),
                source,
            })
    }

    /// A public fingerprint of the key: 16 hex digits of
    /// HMAC-SHA256(key, "replvault key id v1"). Safe to store and print.
    pub fn key_id(&self) -> String {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes[..]);
        let tag = hmac::sign(&k, b"replvault key id v1");
        hex::encode(&tag.as_ref()[..8])
    }

    /// The per-backup payload key: HKDF-SHA256(salt, master) with info
    /// "replvault payload v1".
    pub fn payload_key(&self, salt: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        struct Len32;
        impl hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                KEY_LEN
            }
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.bytes[..]);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // Expanding 32 bytes from SHA-256 cannot exceed HKDF's output limit.
        if let Ok(okm) = prk.expand(&[b"replvault payload v1"], Len32) {
            let _ = okm.fill(&mut out[..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = MasterKey::generate().unwrap();
        k.save_new(&p).unwrap();
        assert_eq!(MasterKey::load(&p).unwrap().key_id(), k.key_id());
        assert!(matches!(
            MasterKey::generate().unwrap().save_new(&p),
            Err(KeyError::Exists(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                MasterKey::load(&p),
                Err(KeyError::Permissions { .. })
            ));
        }
    }

    #[test]
    fn hex_keys_and_bad_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hex");
        std::fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let k = MasterKey::load(&p).unwrap();
        assert_eq!(k.key_id(), MasterKey::from_bytes([0xab; 32]).key_id());
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(
            MasterKey::load(&p),
            Err(KeyError::Format { len: 5, .. })
        ));
        assert!(!format!("{k:?}").contains("abab"));
    }

    #[test]
    fn payload_keys_differ_by_salt() {
        let k = MasterKey::from_bytes([1; 32]);
        assert_ne!(*k.payload_key(&[0; 32]), *k.payload_key(&[1; 32]));
        assert_eq!(*k.payload_key(&[0; 32]), *k.payload_key(&[0; 32]));
    }
}
