//! When the next backup runs: a fixed interval or a cron expression, with
//! jitter, and backoff after failures.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;

/// First retry delay after a failed backup; doubles per failure in a row.
pub const RETRY_BASE: Duration = Duration::from_secs(30);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(30 * 60);
/// Longest `--every`.
pub const MAX_EVERY: Duration = Duration::from_secs(366 * 24 * 3600);

/// A backup schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so often, counted from the last success.
    Every(Duration),
    /// At the times a cron expression (UTC) names.
    Cron(Box<Cron>),
}

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Neither `--every` nor `--cron`.
    #[error("no schedule: pass --every DURATION (e.g. 6h) or --cron 'EXPR' (e.g. '0 */6 * * *')")]
    Missing,
    /// `--every 0s`.
    #[error("--every must be longer than zero (examples: 30m, 6h, 1d)")]
    Zero,
    /// An interval longer than [`MAX_EVERY`]: surely a typo.
    #[error("--every {0} is longer than a year: pick a shorter interval")]
    TooLong(String),
    /// A bad cron expression.
    #[error("invalid --cron expression {expr:?}: {reason}")]
    BadCron {
        /// The expression.
        expr: String,
        /// What the parser said.
        reason: String,
    },
}

impl Schedule {
    /// From `--every` / `--cron`.
    pub fn new(every: Option<Duration>, cron: Option<&str>) -> Result<Self, ScheduleError> {
        match (every, cron) {
            (Some(d), _) if d.is_zero() => Err(ScheduleError::Zero),
            (Some(d), _) if d > MAX_EVERY => Err(ScheduleError::TooLong(
                humantime::format_duration(d).to_string(),
            )),
            (Some(d), _) => Ok(Schedule::Every(d)),
            (None, Some(expr)) => Cron::from_str(expr)
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(|e| ScheduleError::BadCron {
                    expr: expr.to_string(),
                    reason: e.to_string(),
                }),
            (None, None) => Err(ScheduleError::Missing),
        }
    }

    /// The first run after start: an interval schedule runs at once unless
    /// the vault's newest backup is recent (so restarts do not pile up
    /// backups); a cron schedule waits for its next time.
    pub fn first(&self, last_success: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => match last_success {
                Some(t) => add(t, *d).max(now),
                None => now,
            },
            Schedule::Cron(_) => self.after(now),
        }
    }

    /// The next run after `now`.
    pub fn after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => add(now, *d),
            // No next occurrence only for impossible dates (Feb 30):
            // fall back to daily rather than spin.
            Schedule::Cron(c) => c
                .find_next_occurrence(&now, false)
                .unwrap_or(now + chrono::Duration::days(1)),
        }
    }
}

/// When to retry after `failures` failed attempts in a row: backoff, but
/// never later than the next scheduled run.
pub fn retry_at(failures: u32, now: DateTime<Utc>, next_scheduled: DateTime<Utc>) -> DateTime<Utc> {
    let exp = failures.saturating_sub(1).min(16);
    let delay = RETRY_BASE.saturating_mul(1 << exp).min(RETRY_MAX);
    add(now, delay).min(next_scheduled)
}

/// A uniformly random delay in `[0, max]`.
pub fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut b = [0u8; 8];
    if crate::crypto::keys::random_bytes(&mut b).is_err() {
        return Duration::ZERO;
    }
    let frac = u64::from_le_bytes(b) as f64 / u64::MAX as f64;
    max.mul_f64(frac)
}

/// `t + d`, saturating rather than panicking at the end of time.
fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn interval_first_run_respects_the_last_backup() {
        let s = Schedule::new(Some(Duration::from_secs(6 * 3600)), None).unwrap();
        let now = t("2026-11-24T12:00:00Z");
        assert_eq!(s.first(None, now), now);
        assert_eq!(
            s.first(Some(t("2026-11-24T10:00:00Z")), now),
            t("2026-11-24T16:00:00Z")
        );
        assert_eq!(s.first(Some(t("2026-11-23T10:00:00Z")), now), now);
        // A backup "from the future" (clock skew) still gets a bounded wait.
        assert_eq!(s.after(now), t("2026-11-24T18:00:00Z"));
    }

    #[test]
    fn cron_runs_at_its_times() {
        let s = Schedule::new(None, Some("0 */6 * * *")).unwrap();
        let now = t("2026-11-24T12:00:00Z");
        assert_eq!(s.first(None, now), t("2026-11-24T18:00:00Z"));
        assert_eq!(
            s.after(t("2026-11-24T23:59:59Z")),
            t("2026-11-25T00:00:00Z")
        );
        assert!(matches!(
            Schedule::new(None, Some("61 * * * *")),
            Err(ScheduleError::BadCron { .. })
        ));
        assert!(matches!(
            Schedule::new(None, None),
            Err(ScheduleError::Missing)
        ));
        assert!(matches!(
            Schedule::new(Some(Duration::ZERO), None),
            Err(ScheduleError::Zero)
        ));
        assert!(matches!(
            Schedule::new(Some(Duration::from_secs(300_000 * 365 * 86400)), None),
            Err(ScheduleError::TooLong(_))
        ));
        assert_eq!(
            add(Utc::now(), Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn retries_back_off_but_never_past_the_next_run() {
        let now = t("2026-11-24T12:00:00Z");
        let far = t("2026-11-25T12:00:00Z");
        assert_eq!(retry_at(1, now, far), t("2026-11-24T12:00:30Z"));
        assert_eq!(retry_at(2, now, far), t("2026-11-24T12:01:00Z"));
        assert_eq!(retry_at(30, now, far), t("2026-11-24T12:30:00Z"));
        let soon = t("2026-11-24T12:00:05Z");
        assert_eq!(retry_at(1, now, soon), soon);
    }

    #[test]
    fn jitter_stays_in_range() {
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(10)) <= Duration::from_secs(10));
        }
    }
}
