//! One module per subcommand, and the process edge: logging set-up, the
//! tokio runtime, and turning errors into one line and an exit code.
//!
//! This is the only place that uses `anyhow`; libraries return their own
//! `thiserror` enums, which carry the context printed here.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use flags::{Cli, Command, LogFormat};

/// `println!` that ignores a closed stdout (`replvault list | head`)
/// instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod backup;
pub mod common;
pub mod config_file;
pub mod flags;
pub mod inspect;
pub mod keygen;
pub mod list;
pub mod options;
pub mod prune;
pub mod restore;
pub mod run;
pub mod verify;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default): a peer closing a socket must
    // be an error we report, not a silent death. A closed stdout is handled
    // by `outln!`.
    // `--config FILE`: its keys become environment defaults, before any
    // thread exists (setting the environment is only sound then).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(path) = config_file::config_path(&argv) {
        match config_file::env_from_file(&path) {
            Ok(vars) => {
                for (k, v) in vars {
                    if std::env::var_os(&k).is_none() {
                        // SAFETY: single-threaded here: no runtime, no
                        // threads started yet.
                        unsafe { std::env::set_var(k, v) };
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let cli = Cli::parse_from(argv);
    if matches!(cli.command, Command::Run(_)) {
        crate::heap::configure_for_daemon();
    }
    init_tracing(cli.log_format, cli.verbose);
    // Before any other thread exists, so all of them inherit it.
    match crate::thread_policy::batch() {
        Ok(true) => tracing::debug!("threads run under SCHED_BATCH"),
        Ok(false) => {}
        Err(e) => {
            tracing::debug!(error = %e, "cannot switch to SCHED_BATCH; keeping the default policy")
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            // One line: the context chain joined with ": ", each cause once.
            eprintln!("error: {}", crate::error_line::one_line(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Backup(args) => backup::run(args).await,
        Command::List(args) => list::run(args).await,
        Command::Restore(args) => restore::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Prune(args) => prune::run(args).await,
        Command::Run(args) => run::run(*args).await,
        Command::Keygen(args) => keygen::run(args).await,
        Command::Inspect(args) => inspect::run(args).await,
    }
}

fn init_tracing(format: LogFormat, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "replvault=info,warn",
        1 => "replvault=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}
