//! `replvault keygen`: write a new random key file (mode 0600, never
//! overwriting) and print its key id; with `--if-missing`, keep a valid key
//! that is already there.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::flags::KeygenArgs;
use crate::crypto::MasterKey;

/// Runs `replvault keygen`.
pub async fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    if args.if_missing && args.out.exists() {
        let key = MasterKey::load(&args.out)?;
        outln!(
            "{} already holds a key (key id {}): left as it is",
            args.out.display(),
            key.key_id()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let key = MasterKey::generate().context("cannot generate a key")?;
    key.save_new(&args.out)?;
    outln!(
        "wrote a new key to {} (key id {})",
        args.out.display(),
        key.key_id()
    );
    outln!(
        "keep a copy outside the vault: without this key no backup made with it can be restored"
    );
    Ok(ExitCode::SUCCESS)
}
