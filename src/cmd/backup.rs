//! `replvault backup`: one backup, with progress on a terminal, aborted
//! cleanly on Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backup::take_backup;
use crate::cluster::take_cluster_backup;
use crate::cmd::common::{load_backup_key, open_vault, size};
use crate::cmd::flags::BackupArgs;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `replvault backup`.
pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let key = load_backup_key(&args.key, &args.write)?;
    let vault = open_vault(&args.vault).await?;
    let progress = Arc::new(AtomicU64::new(0));
    let show = !args.write.no_progress && std::io::stderr().is_terminal();
    let ticker = show.then(|| {
        let p = progress.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            // The rate counts from the first bytes, not from the wait.
            let mut sending = None;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = p.load(Ordering::Relaxed);
                if n == 0 {
                    let secs = start.elapsed().as_secs_f64();
                    eprint!("\r  waiting for the server to start sending ({secs:.0}s)      ");
                    continue;
                }
                let since = *sending.get_or_insert_with(Instant::now);
                let rate = n as f64 / since.elapsed().as_secs_f64().max(0.25);
                eprint!("\r  received {}  ({}/s)      ", size(n), size(rate as u64));
            }
        })
    });
    let began = Instant::now();
    let cluster = args.cluster_options().map_err(anyhow::Error::msg)?;
    let result = match &cluster {
        Some(c) => {
            let cancel = tokio_util::sync::CancellationToken::new();
            let stop = cancel.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
            take_cluster_backup(
                &args.source.options(),
                c,
                args.write.compression_level,
                &vault,
                key.as_ref(),
                progress,
                cancel,
            )
            .await
            .map_err(anyhow::Error::from)
        }
        None => take_backup(
            &args.source.options(),
            args.write.compression_level,
            &vault,
            key.as_ref(),
            progress,
            shutdown_signal(),
        )
        .await
        .map_err(anyhow::Error::from),
    };
    if let Some(t) = ticker {
        t.abort();
        eprint!("\r\x1b[K");
    }
    let m = result?;
    let ratio = m.rdb.bytes as f64 / (m.stored.bytes.max(1)) as f64;
    let total = began.elapsed().as_secs_f64();
    let rate = size((m.rdb.bytes as f64 / m.duration_secs.max(0.001)) as u64);
    // The manifest times the transfer; before it, the server forked and,
    // with diskless sync, may have waited repl-diskless-sync-delay.
    let waited = m.source.wait_secs.unwrap_or(0.0);
    let pace = if waited >= 1.0 {
        format!("{waited:.1}s waiting for the server to start sending, then {rate}/s")
    } else {
        format!("{rate}/s")
    };
    outln!(
        "backup {} complete: {} keys, RDB {} stored as {} ({ratio:.1}x) in {total:.1}s ({pace}), from {}",
        m.id,
        m.summary.total_keys(),
        size(m.rdb.bytes),
        size(m.stored.bytes),
        m.source.address
    );
    Ok(ExitCode::SUCCESS)
}
