//! The `replvault` binary: parse flags, set up logging, run one subcommand,
//! turn its error into one clear line and a non-zero exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    replvault::cmd::main()
}
