//! `replvault verify`: decrypt, decompress, CRC + structure check, SHA-256
//! against the manifest, without writing anything.

use std::process::ExitCode;

use crate::cmd::common::{load_key, open_existing_vault, size};
use crate::cmd::flags::VerifyArgs;
use crate::restore;

/// Runs `replvault verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let vault = open_existing_vault(&args.vault).await?;
    let manifests = if args.all {
        vault.list().await?
    } else {
        vec![vault.resolve(&args.backup).await?]
    };
    if manifests.is_empty() {
        outln!("no backups in {} to verify", vault.store().describe());
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    for m in &manifests {
        let key = load_key(&args.key)?;
        match restore::verify(&vault, m, key).await {
            Ok(r) => outln!(
                "OK      {}  {} RDB, {} keys, CRC and structure valid, SHA-256 matches",
                m.id,
                size(r.rdb_bytes),
                r.summary.total_keys()
            ),
            Err(e) => {
                failed += 1;
                outln!("FAILED  {}  {e}", m.id);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} backups failed verification",
            manifests.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
