//! `replvault run`: backups on a schedule, one at a time, with retries,
//! retention after each success, `/metrics` and `/healthz`, and a clean
//! exit on SIGTERM (a backup in flight is aborted and its debris removed).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::backup::{BackupError, take_backup};
use crate::cluster::{ClusterError, ClusterOptions, take_cluster_backup};
use crate::crypto::MasterKey;
use crate::pitr::archiver;
use crate::pitr::prune::prune_vault;
use crate::pitr::{ArchiverStatus, PitrOptions, SharedStatus};
use crate::source::SourceOptions;
use crate::vault::Manifest;
use crate::vault::Vault;
use crate::vault::retention::RetentionPolicy;
use tracing::Instrument;

pub mod http;
pub mod metrics;
pub mod schedule;

pub use metrics::State;
pub use schedule::{Schedule, ScheduleError};

/// State shared with the HTTP endpoints.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    progress: Arc<AtomicU64>,
    unhealthy_after: Duration,
    /// The stream archivers' status, with `--pitr`: one, or one per
    /// shard of a cluster (labelled with its index).
    pitr: Mutex<Vec<(Option<String>, SharedStatus)>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data: keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        let mut text = self.lock().render(self.progress.load(Ordering::Relaxed));
        let pitr = self.pitr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !pitr.is_empty() {
            let all: Vec<(Option<String>, ArchiverStatus)> = pitr
                .iter()
                .map(|(l, p)| {
                    (
                        l.clone(),
                        p.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                    )
                })
                .collect();
            text.push_str(&metrics::render_pitr(&all, Utc::now()));
        }
        text
    }

    /// Health verdict and its reason.
    pub fn health(&self) -> (bool, String) {
        self.lock().health(Utc::now(), self.unhealthy_after)
    }
}

/// What the daemon does, and when.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The server to back up.
    pub source: SourceOptions,
    /// zstd level of each backup.
    pub compression_level: i32,
    /// When to back up.
    pub schedule: Schedule,
    /// Random delay up to this long before each scheduled backup.
    pub jitter: Duration,
    /// Applied after each successful backup, unless empty.
    pub retention: RetentionPolicy,
    /// Incomplete backups older than this are removed with the retention.
    pub incomplete_grace: Duration,
    /// Keep the stream archive restorable this far back (`--keep-pitr`).
    pub keep_pitr: Option<Duration>,
    /// Serve `/metrics` and `/healthz` here.
    pub listen: Option<SocketAddr>,
    /// `/healthz` fails when the last success is older than this.
    pub unhealthy_after: Duration,
    /// Archive the replication stream too (`--pitr`).
    pub pitr: Option<PitrOptions>,
    /// Back up a Redis Cluster (`--cluster`).
    pub cluster: Option<ClusterOptions>,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The stream archivers could not start.
    #[error("point-in-time recovery: {0}")]
    Pitr(String),
    /// The metrics address cannot be bound.
    #[error("cannot listen on {addr} for /metrics: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    args: DaemonOptions,
    vault: Vault,
    key: Option<MasterKey>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let schedule = &args.schedule;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(Utc::now())),
        progress: Arc::new(AtomicU64::new(0)),
        unhealthy_after: args.unhealthy_after,
        pitr: Mutex::new(Vec::new()),
    });
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        c.cancel();
    });
    let server = match args.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Listen { addr, source })?;
            // The address bound, so `--listen 127.0.0.1:0` says its port.
            let addr = listener.local_addr().unwrap_or(addr);
            tracing::info!(%addr, "serving /metrics and /healthz");
            Some(tokio::spawn(http::serve(listener, shared.clone())))
        }
        None => None,
    };
    // The vault's newest backup counts as the last success, so a restart
    // neither reports unhealthy nor backs up again at once.
    match vault.list().await {
        Ok(list) => shared.lock().last_success = list.last().map(|m| m.finished_at),
        Err(e) => tracing::warn!(error = %e, "cannot list the vault at start"),
    }
    let policy = &args.retention;
    let last = shared.lock().last_success;
    let mut next = schedule.first(last, Utc::now());
    let mut archivers = Vec::new();
    if let Some(opts) = &args.pitr {
        // One archiver, or one per shard of a cluster (at its primary,
        // found again before each reconnection: a failover moves it).
        let sources: Vec<(Option<String>, Option<u16>, SourceOptions)> = match &args.cluster {
            None => vec![(None, None, args.source.clone())],
            Some(c) => crate::cluster::backup::shard_primaries(&args.source, c)
                .await
                .map_err(|e| DaemonError::Pitr(crate::error_line::one_line(&e)))?
                .into_iter()
                .enumerate()
                .map(|(i, (slot, s))| (Some(i.to_string()), Some(slot), s))
                .collect(),
        };
        // Any node may answer discovery: the seed, then every primary.
        let seeds: Arc<Vec<SourceOptions>> = Arc::new(
            std::iter::once(args.source.clone())
                .chain(sources.iter().map(|(_, _, s)| s.clone()))
                .collect(),
        );
        if last.is_none() && args.cluster.is_none() {
            // The archiver's own snapshot is the first base.
            next = schedule.after(Utc::now());
        }
        let mut statuses = Vec::new();
        for (label, slot, known) in sources {
            let status = SharedStatus::default();
            let (base, seeds, cluster) = (args.source.clone(), seeds.clone(), args.cluster.clone());
            let source = move || {
                let (base, seeds, cluster, known) =
                    (base.clone(), seeds.clone(), cluster.clone(), known.clone());
                async move {
                    let (Some(slot), Some(c)) = (slot, cluster) else {
                        return Ok(known);
                    };
                    match crate::cluster::backup::shard_primary(&base, &seeds, &c, slot).await {
                        Ok(s) => Ok(s),
                        Err(e @ crate::cluster::ClusterError::Topology(_)) => {
                            Err(crate::error_line::one_line(&e))
                        }
                        Err(e) => {
                            // No node answers now: the last known primary.
                            tracing::warn!(error = %crate::error_line::one_line(&e), "cluster discovery failed; trying the last known primary");
                            Ok(known)
                        }
                    }
                }
            };
            statuses.push((label.clone(), status.clone()));
            let (vault, key) = (vault.clone(), key.clone());
            let opts = PitrOptions {
                shard: slot,
                ..opts.clone()
            };
            let (shared2, cancel2) = (shared.clone(), cancel.clone());
            archivers.push(tokio::spawn(async move {
                let on_base = move |r: Result<Manifest, String>| match r {
                    Ok(m) => shared2.lock().success(&m),
                    Err(e) => tracing::warn!(error = %e, "the archiver's base backup failed"),
                };
                archiver::run(
                    source,
                    &vault,
                    key.as_ref(),
                    &opts,
                    status,
                    on_base,
                    cancel2,
                )
                .instrument(tracing::info_span!("archiver", shard = label.as_deref()))
                .await;
            }));
        }
        if args.cluster.is_some() {
            // The cluster backups are the bases: the first one waits until
            // every shard's stream is archived, so its offsets are covered.
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while statuses
                .iter()
                .any(|(_, s)| !s.lock().unwrap_or_else(|p| p.into_inner()).streaming)
                && std::time::Instant::now() < deadline
                && !cancel.is_cancelled()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        *shared.pitr.lock().unwrap_or_else(|p| p.into_inner()) = statuses;
    }
    let mut failures = 0u32;
    loop {
        shared.lock().next_run = Some(next);
        let wait =
            (next - Utc::now()).to_std().unwrap_or(Duration::ZERO) + schedule::jitter(args.jitter);
        tracing::info!(at = %next, wait = ?wait, "next backup");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => break,
        }
        shared.progress.store(0, Ordering::Relaxed);
        shared.lock().in_progress = true;
        let result = match &args.cluster {
            Some(c) => take_cluster_backup(
                &args.source,
                c,
                args.compression_level,
                &vault,
                key.as_ref(),
                shared.progress.clone(),
                cancel.child_token(),
            )
            .await
            .map_err(|e| match e {
                ClusterError::Interrupted => BackupError::Interrupted,
                e => BackupError::Cluster(crate::error_line::one_line(&e)),
            }),
            None => {
                take_backup(
                    &args.source,
                    args.compression_level,
                    &vault,
                    key.as_ref(),
                    shared.progress.clone(),
                    cancel.clone().cancelled_owned(),
                )
                .await
            }
        };
        let now = Utc::now();
        match result {
            Ok(m) => {
                failures = 0;
                tracing::info!(
                    id = %m.id,
                    rdb_bytes = m.rdb.bytes,
                    stored_bytes = m.stored.bytes,
                    keys = m.summary.total_keys(),
                    duration_secs = m.duration_secs,
                    wait_secs = m.source.wait_secs,
                    "backup complete"
                );
                shared.lock().success(&m);
                next = schedule.after(now);
                if !policy.is_empty() || args.keep_pitr.is_some() {
                    apply_retention(
                        &vault,
                        policy,
                        args.keep_pitr,
                        args.incomplete_grace,
                        &shared,
                    )
                    .await;
                }
            }
            Err(e) => {
                shared.lock().failure(&e, now);
                if matches!(e, BackupError::Interrupted) || cancel.is_cancelled() {
                    tracing::info!("backup interrupted by shutdown; nothing was committed");
                    break;
                }
                failures += 1;
                next = schedule::retry_at(failures, now, schedule.after(now));
                tracing::error!(error = %e, failures, retry_at = %next, "backup failed");
            }
        }
    }
    // A clean stop writes what the archivers received before they end.
    cancel.cancel();
    for a in archivers {
        let _ = a.await;
    }
    if let Some(s) = server {
        s.abort();
    }
    Ok(())
}

/// Prunes after a successful backup; failures are logged, not fatal (the
/// next run tries again).
async fn apply_retention(
    vault: &Vault,
    policy: &RetentionPolicy,
    keep_pitr: Option<Duration>,
    grace: Duration,
    shared: &Shared,
) {
    match prune_vault(vault, policy, keep_pitr, grace, false, Utc::now()).await {
        Ok((r, archive)) => {
            if let Some(a) = archive {
                tracing::info!(segments = a.segments, timelines = ?a.timelines, "stream archive pruned");
                for (what, e) in &a.failed {
                    tracing::warn!(%what, error = %e, "retention could not delete");
                }
            }
            let deleted: Vec<&str> = r.deleted().map(|d| d.id.as_str()).collect();
            shared.lock().pruned += deleted.len() as u64;
            tracing::info!(
                kept = r.decisions.len() - deleted.len(),
                deleted = ?deleted,
                leftovers = r.leftovers.len(),
                aborted_uploads = r.aborted_uploads.len(),
                "retention applied"
            );
            for (what, e) in &r.failed {
                tracing::warn!(%what, error = %e, "retention could not delete");
            }
        }
        Err(e) => tracing::warn!(error = %e, "retention failed"),
    }
}
