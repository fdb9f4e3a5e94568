//! What the daemon knows about its backups, rendered as Prometheus text
//! and as a health verdict.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backup::BackupError;
use crate::vault::{Manifest, VaultError};

/// Failure reasons, as the `reason` label of `replvault_failures_total`.
pub const REASONS: [&str; 3] = ["source", "vault", "interrupted"];

/// The `reason` label for a failed backup.
pub fn reason(e: &BackupError) -> &'static str {
    match e {
        BackupError::Source(_) | BackupError::Cluster(_) => "source",
        BackupError::Vault(VaultError::Aborted) | BackupError::Interrupted => "interrupted",
        _ => "vault",
    }
}

/// The daemon's state.
#[derive(Debug, Clone)]
pub struct State {
    /// When the daemon started.
    pub started: DateTime<Utc>,
    /// When the newest complete backup finished (seeded from the vault).
    pub last_success: Option<DateTime<Utc>>,
    /// When the last attempt ended, and whether it succeeded.
    pub last_attempt: Option<(DateTime<Utc>, bool)>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The last successful backup's figures.
    pub last_duration_secs: f64,
    /// How long the server took to start sending that backup's snapshot.
    pub last_wait_secs: f64,
    /// RDB bytes of the last successful backup.
    pub last_rdb_bytes: u64,
    /// Stored bytes of the last successful backup.
    pub last_stored_bytes: u64,
    /// Successful backups since start.
    pub successes: u64,
    /// Failed backups since start, by reason (indexes of [`REASONS`]).
    pub failures: [u64; 3],
    /// RDB bytes of all successful backups since start.
    pub rdb_bytes_total: u64,
    /// Stored bytes of all successful backups since start.
    pub stored_bytes_total: u64,
    /// A backup is running.
    pub in_progress: bool,
    /// When the next backup is due.
    pub next_run: Option<DateTime<Utc>>,
    /// Backups deleted by retention since start.
    pub pruned: u64,
}

impl State {
    /// A fresh state.
    pub fn new(started: DateTime<Utc>) -> Self {
        State {
            started,
            last_success: None,
            last_attempt: None,
            last_error: None,
            last_duration_secs: 0.0,
            last_wait_secs: 0.0,
            last_rdb_bytes: 0,
            last_stored_bytes: 0,
            successes: 0,
            failures: [0; 3],
            rdb_bytes_total: 0,
            stored_bytes_total: 0,
            in_progress: false,
            next_run: None,
            pruned: 0,
        }
    }

    /// Records a success.
    pub fn success(&mut self, m: &Manifest) {
        self.in_progress = false;
        self.last_success = Some(m.finished_at);
        self.last_attempt = Some((m.finished_at, true));
        self.last_error = None;
        self.last_duration_secs = m.wall_secs();
        self.last_wait_secs = m.source.wait_secs.unwrap_or(0.0);
        self.last_rdb_bytes = m.rdb.bytes;
        self.last_stored_bytes = m.stored.bytes;
        self.successes += 1;
        self.rdb_bytes_total += m.rdb.bytes;
        self.stored_bytes_total += m.stored.bytes;
    }

    /// Records a failure.
    pub fn failure(&mut self, e: &BackupError, now: DateTime<Utc>) {
        self.in_progress = false;
        self.last_attempt = Some((now, false));
        self.last_error = Some(e.to_string());
        let r = reason(e);
        if let Some(i) = REASONS.iter().position(|x| *x == r) {
            self.failures[i] += 1;
        }
    }

    /// Healthy unless the last success (or, before any, the start) is older
    /// than `threshold`; the text says why.
    pub fn health(&self, now: DateTime<Utc>, threshold: Duration) -> (bool, String) {
        let limit = chrono::Duration::from_std(threshold).unwrap_or(chrono::Duration::MAX);
        match self.last_success {
            Some(t) if now - t <= limit => (true, format!("ok: last successful backup at {t}")),
            Some(t) => (
                false,
                format!(
                    "unhealthy: the last successful backup was at {t}, more than {} ago{}",
                    humantime::format_duration(threshold),
                    self.error_suffix()
                ),
            ),
            None if now - self.started <= limit => (
                true,
                format!("ok: no backup yet (started at {})", self.started),
            ),
            None => (
                false,
                format!(
                    "unhealthy: no successful backup since the start at {}{}",
                    self.started,
                    self.error_suffix()
                ),
            ),
        }
    }

    fn error_suffix(&self) -> String {
        self.last_error
            .as_ref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    }

    /// Prometheus text exposition format.
    pub fn render(&self, progress_bytes: u64) -> String {
        let mut o = String::new();
        let mut g = |name: &str, kind: &str, help: &str, lines: &[(String, String)]| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        let ts = |t: Option<DateTime<Utc>>| {
            t.map(|t| format!("{:.3}", t.timestamp_millis() as f64 / 1000.0))
                .unwrap_or_else(|| "0".into())
        };
        g(
            "replvault_up",
            "gauge",
            "1 while the daemon runs.",
            &one("1".into()),
        );
        g(
            "replvault_last_success_timestamp_seconds",
            "gauge",
            "When the newest complete backup finished (0: none yet).",
            &one(ts(self.last_success)),
        );
        g(
            "replvault_last_attempt_timestamp_seconds",
            "gauge",
            "When the last backup attempt ended (0: none yet).",
            &one(ts(self.last_attempt.map(|a| a.0))),
        );
        g(
            "replvault_last_attempt_success",
            "gauge",
            "1 if the last backup attempt succeeded, 0 if it failed or none ran yet.",
            &one(u8::from(self.last_attempt.is_some_and(|a| a.1)).to_string()),
        );
        g(
            "replvault_last_duration_seconds",
            "gauge",
            "Wall time of the last successful backup, from asking for the snapshot to the commit.",
            &one(format!("{:.3}", self.last_duration_secs)),
        );
        g(
            "replvault_last_wait_seconds",
            "gauge",
            "Of that, how long the server took to start sending (its fork; repl-diskless-sync-delay).",
            &one(format!("{:.3}", self.last_wait_secs)),
        );
        g(
            "replvault_last_rdb_bytes",
            "gauge",
            "RDB bytes read in the last successful backup.",
            &one(self.last_rdb_bytes.to_string()),
        );
        g(
            "replvault_last_stored_bytes",
            "gauge",
            "Bytes stored for the last successful backup.",
            &one(self.last_stored_bytes.to_string()),
        );
        let ratio = if self.last_stored_bytes == 0 {
            0.0
        } else {
            self.last_rdb_bytes as f64 / self.last_stored_bytes as f64
        };
        g(
            "replvault_last_compression_ratio",
            "gauge",
            "RDB bytes over stored bytes for the last successful backup.",
            &one(format!("{ratio:.3}")),
        );
        g(
            "replvault_backups_total",
            "counter",
            "Backup attempts since start, by result.",
            &[
                (r#"{result="success"}"#.into(), self.successes.to_string()),
                (
                    r#"{result="failure"}"#.into(),
                    self.failures.iter().sum::<u64>().to_string(),
                ),
            ],
        );
        g(
            "replvault_failures_total",
            "counter",
            "Failed backups since start, by reason.",
            &REASONS
                .iter()
                .zip(self.failures)
                .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n.to_string()))
                .collect::<Vec<_>>(),
        );
        g(
            "replvault_rdb_bytes_total",
            "counter",
            "RDB bytes read by successful backups since start.",
            &one(self.rdb_bytes_total.to_string()),
        );
        g(
            "replvault_stored_bytes_total",
            "counter",
            "Bytes stored by successful backups since start.",
            &one(self.stored_bytes_total.to_string()),
        );
        g(
            "replvault_backup_in_progress",
            "gauge",
            "1 while a backup runs.",
            &one(u8::from(self.in_progress).to_string()),
        );
        g(
            "replvault_backup_progress_bytes",
            "gauge",
            "RDB bytes received so far by the running backup.",
            &one(if self.in_progress { progress_bytes } else { 0 }.to_string()),
        );
        g(
            "replvault_next_backup_timestamp_seconds",
            "gauge",
            "When the next backup is due.",
            &one(ts(self.next_run)),
        );
        g(
            "replvault_pruned_backups_total",
            "counter",
            "Backups deleted by the retention policy since start.",
            &one(self.pruned.to_string()),
        );
        o
    }
}

/// The stream archivers' metrics (`run --pitr`), one series per archiver,
/// labelled `shard` for a cluster's.
pub fn render_pitr(
    all: &[(Option<String>, crate::pitr::ArchiverStatus)],
    now: DateTime<Utc>,
) -> String {
    let mut o = String::new();
    let now_ms = now.timestamp_millis().max(0) as u64;
    type Field = fn(&crate::pitr::ArchiverStatus, u64) -> String;
    let metrics: [(&str, &str, &str, Field); 6] = [
        (
            "replvault_pitr_streaming",
            "gauge",
            "1 while the archiver is connected and streaming.",
            |s, _| u8::from(s.streaming).to_string(),
        ),
        (
            "replvault_pitr_committed_offset",
            "gauge",
            "Replication offset of the last byte written to the vault (and acknowledged).",
            |s, _| s.committed_offset.to_string(),
        ),
        (
            "replvault_pitr_lag_bytes",
            "gauge",
            "Stream bytes received but not yet written to the vault.",
            |s, _| {
                s.received_offset
                    .saturating_sub(s.committed_offset)
                    .to_string()
            },
        ),
        (
            "replvault_pitr_lag_seconds",
            "gauge",
            "Age of the oldest command received but not yet written to the vault.",
            |s, now| {
                let lag = s.oldest_pending_ms.map_or(0, |t| now.saturating_sub(t));
                format!("{:.3}", lag as f64 / 1000.0)
            },
        ),
        (
            "replvault_pitr_segments_total",
            "counter",
            "Segments written since start.",
            |s, _| s.segments.to_string(),
        ),
        (
            "replvault_pitr_gaps_total",
            "counter",
            "Timelines started after a gap (the primary could not continue) since start.",
            |s, _| s.gaps.to_string(),
        ),
    ];
    for (name, kind, help, value) in metrics {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for (label, s) in all {
            let labels = label
                .as_ref()
                .map(|l| format!("{{shard=\"{l}\"}}"))
                .unwrap_or_default();
            let _ = writeln!(o, "{name}{labels} {}", value(s, now_ms));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceError;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn health_follows_the_last_success() {
        let day = Duration::from_secs(26 * 3600);
        let mut s = State::new(t("2026-11-24T00:00:00Z"));
        assert!(s.health(t("2026-11-24T10:00:00Z"), day).0);
        let (ok, why) = s.health(t("2026-11-26T00:00:00Z"), day);
        assert!(!ok && why.contains("no successful backup"), "{why}");
        s.last_success = Some(t("2026-11-25T00:00:00Z"));
        assert!(s.health(t("2026-11-26T00:00:00Z"), day).0);
        s.failure(
            &BackupError::Source(SourceError::InvalidUrl("x".into())),
            t("2026-11-26T03:00:00Z"),
        );
        let (ok, why) = s.health(t("2026-11-26T03:00:00Z"), day);
        assert!(!ok && why.contains("last error"), "{why}");
    }

    #[test]
    fn render_is_prometheus_text() {
        let mut s = State::new(t("2026-11-24T00:00:00Z"));
        s.failure(&BackupError::Interrupted, t("2026-11-24T01:00:00Z"));
        let text = s.render(0);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("replvault_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.contains("replvault_failures_total{reason=\"interrupted\"} 1"));
        assert!(text.contains("replvault_backups_total{result=\"failure\"} 1"));
        assert!(text.contains("replvault_last_attempt_success 0"));
    }
}
