//! Helpers several subcommands share: opening the vault, loading the key,
//! formatting sizes.

use anyhow::Context;

use super::flags::{KeyArgs, VaultArgs, WriteArgs};
use crate::crypto::MasterKey;
use crate::vault::Vault;

/// Opens the vault a `--vault` value names.
pub async fn open_vault(args: &VaultArgs) -> anyhow::Result<Vault> {
    let store = crate::store::open(&args.options()).await?;
    Ok(Vault::new(store))
}

/// Opens a vault that must already exist (list, restore, verify, prune).
pub async fn open_existing_vault(args: &VaultArgs) -> anyhow::Result<Vault> {
    let store = crate::store::open_existing(&args.options()).await?;
    Ok(Vault::new(store))
}

/// Loads `--key-file`, if given.
pub fn load_key(args: &KeyArgs) -> anyhow::Result<Option<MasterKey>> {
    args.key_file
        .as_deref()
        .map(|p| MasterKey::load(p).with_context(|| "cannot use the encryption key".to_string()))
        .transpose()
}

/// The key a backup writes with: required unless `--no-encryption`, so
/// plaintext is never stored by accident.
pub fn load_backup_key(key: &KeyArgs, write: &WriteArgs) -> anyhow::Result<Option<MasterKey>> {
    let k = load_key(key)?;
    if k.is_none() && !write.no_encryption {
        anyhow::bail!(
            "no encryption key: pass --key-file (create one with `replvault keygen --out FILE`) or --no-encryption to store the backup unencrypted"
        );
    }
    Ok(k)
}

/// `1.2 GiB`-style sizes.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
