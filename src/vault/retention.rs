//! Which backups to keep: a pure function of the backups' start times, the
//! policy and the current time ([`plan`]), and [`prune`], which applies it
//! to a vault.
//!
//! The rules follow restic's `forget`: a backup kept by any rule is kept.
//! `--keep-last N` keeps the N newest; `--keep-within D` those started less
//! than D ago; `--keep-daily/weekly/monthly N` walk from newest to oldest and
//! keep the newest backup of each UTC day / ISO week / month until N such
//! periods are covered. The newest complete backup is always kept.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};

use super::{Vault, VaultError};

/// A retention policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the newest N.
    pub last: Option<u32>,
    /// Keep those newer than this.
    pub within: Option<Duration>,
    /// Newest of each of the last N UTC days.
    pub daily: Option<u32>,
    /// Newest of each of the last N ISO weeks.
    pub weekly: Option<u32>,
    /// Newest of each of the last N months.
    pub monthly: Option<u32>,
}

impl RetentionPolicy {
    /// True when no rule is given (prune refuses: it would keep only the
    /// newest backup, which is never what someone meant).
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }
}

/// Why a backup is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The newest complete backup.
    Newest,
    /// Among the newest N.
    Last(u32),
    /// Started within the window.
    Within(Duration),
    /// Newest of this day.
    Daily(String),
    /// Newest of this ISO week.
    Weekly(String),
    /// Newest of this month.
    Monthly(String),
    /// A base the stream archive needs for `--keep-pitr`.
    Pitr,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Newest => f.write_str("newest backup"),
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Within(d) => write!(f, "within {}", humantime::format_duration(*d)),
            Reason::Daily(d) => write!(f, "daily {d}"),
            Reason::Weekly(w) => write!(f, "weekly {w}"),
            Reason::Monthly(m) => write!(f, "monthly {m}"),
            Reason::Pitr => f.write_str("base of the point-in-time window"),
        }
    }
}

/// The decision for one backup; `keep` is empty for a backup to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Backup id.
    pub id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Every rule that keeps it.
    pub keep: Vec<Reason>,
}

impl Decision {
    /// True when some rule keeps it.
    pub fn kept(&self) -> bool {
        !self.keep.is_empty()
    }
}

/// Decides for each backup `(id, started_at)`, in any order; the result is
/// newest first. Ties in time are broken by id, so the plan is stable.
pub fn plan(
    backups: &[(String, DateTime<Utc>)],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut out: Vec<Decision> = backups
        .iter()
        .map(|(id, t)| Decision {
            id: id.clone(),
            started_at: *t,
            keep: Vec::new(),
        })
        .collect();
    out.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    if let Some(first) = out.first_mut() {
        first.keep.push(Reason::Newest);
    }
    if let Some(n) = policy.last {
        for d in out.iter_mut().take(n as usize) {
            d.keep.push(Reason::Last(n));
        }
    }
    if let Some(w) = policy.within {
        let limit = chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX);
        for d in out.iter_mut() {
            // A backup "from the future" (clock skew) counts as recent.
            if now.signed_duration_since(d.started_at) <= limit {
                d.keep.push(Reason::Within(w));
            }
        }
    }
    bucket(
        &mut out,
        policy.daily,
        |t| t.format("%Y-%m-%d").to_string(),
        Reason::Daily,
    );
    bucket(
        &mut out,
        policy.weekly,
        |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        },
        Reason::Weekly,
    );
    bucket(
        &mut out,
        policy.monthly,
        |t| t.format("%Y-%m").to_string(),
        Reason::Monthly,
    );
    out
}

/// Keeps the newest backup of each period until `n` periods are covered;
/// `out` is newest first.
fn bucket(
    out: &mut [Decision],
    n: Option<u32>,
    period: impl Fn(DateTime<Utc>) -> String,
    reason: impl Fn(String) -> Reason,
) {
    let Some(n) = n else { return };
    let mut seen = BTreeSet::new();
    for d in out.iter_mut() {
        if seen.len() >= n as usize {
            break;
        }
        let p = period(d.started_at);
        if seen.insert(p.clone()) {
            d.keep.push(reason(p));
        }
    }
}

/// What [`prune`] did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// Decisions for complete backups, newest first.
    pub decisions: Vec<Decision>,
    /// Incomplete backups (no manifest) removed, with their age.
    pub leftovers: Vec<(String, String)>,
    /// Pending uploads aborted (S3 multipart uploads).
    pub aborted_uploads: Vec<String>,
    /// Deletions that failed: (what, error).
    pub failed: Vec<(String, String)>,
    /// Nothing was deleted.
    pub dry_run: bool,
}

impl Report {
    /// Backups deleted (or that would be).
    pub fn deleted(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.kept())
    }
}

/// Applies `policy` to `vault`: deletes complete backups outside it
/// (manifest first) unless `protect` names them, incomplete ones older than
/// `grace`, and pending uploads older than `grace`. With `dry_run`, deletes
/// nothing. A deletion that fails is recorded and the rest go on.
pub async fn prune(
    vault: &Vault,
    policy: &RetentionPolicy,
    protect: &BTreeSet<String>,
    grace: Duration,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Report, VaultError> {
    let backups: Vec<(String, DateTime<Utc>)> = vault
        .list()
        .await?
        .into_iter()
        .map(|m| (m.id, m.started_at))
        .collect();
    let mut decisions = plan(&backups, policy, now);
    for d in &mut decisions {
        if protect.contains(&d.id) {
            d.keep.push(Reason::Pitr);
        }
    }
    let mut report = Report {
        decisions,
        dry_run,
        ..Report::default()
    };
    let grace_c = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    for d in report.decisions.iter().filter(|d| !d.kept()) {
        if dry_run {
            continue;
        }
        if let Err(e) = vault.delete_backup(&d.id).await {
            report.failed.push((d.id.clone(), e.to_string()));
        }
    }
    for inc in vault.list_incomplete().await? {
        // No modification time known: treat as old only past the grace
        // period counted from the id's own timestamp.
        let t = inc.last_modified.or_else(|| id_time(&inc.id));
        let Some(t) = t else { continue };
        if now.signed_duration_since(t) <= grace_c {
            continue;
        }
        let age = humantime::format_duration(
            now.signed_duration_since(t)
                .to_std()
                .map(|d| Duration::from_secs(d.as_secs()))
                .unwrap_or_default(),
        )
        .to_string();
        if !dry_run {
            let mut failed = false;
            for k in &inc.keys {
                if let Err(e) = vault.store().delete(k).await {
                    report.failed.push((k.clone(), e.to_string()));
                    failed = true;
                }
            }
            if failed {
                continue;
            }
        }
        report.leftovers.push((inc.id, age));
    }
    for u in vault.store().pending_uploads().await? {
        if u.initiated
            .is_some_and(|t| now.signed_duration_since(t) <= grace_c)
        {
            continue;
        }
        if !dry_run && let Err(e) = vault.store().abort_pending_upload(&u).await {
            report.failed.push((u.key.clone(), e.to_string()));
            continue;
        }
        report.aborted_uploads.push(u.key);
    }
    Ok(report)
}

/// The time in a backup id (`20261124T120000Z-ab12`).
fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let stamp = id.split('-').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn backups(times: &[&str]) -> Vec<(String, DateTime<Utc>)> {
        times.iter().map(|s| (format!("b-{s}"), t(s))).collect()
    }

    /// The ids kept, newest first.
    fn kept(times: &[&str], p: &RetentionPolicy, now: &str) -> Vec<String> {
        plan(&backups(times), p, t(now))
            .into_iter()
            .filter(Decision::kept)
            .map(|d| d.id.trim_start_matches("b-").to_string())
            .collect()
    }

    const NOW: &str = "2026-11-24T12:00:00Z";

    /// Every 6 hours from 2026-10-01 to 2026-11-24 12:00, unsorted.
    fn series() -> Vec<String> {
        let mut v: Vec<String> = (0..=54 * 4 + 2)
            .map(|i| {
                (t("2026-10-01T00:00:00Z") + chrono::Duration::hours(6 * i))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .collect();
        v.reverse();
        v.swap(3, 40);
        v
    }

    #[test]
    fn table() {
        let s = series();
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        struct Case {
            name: &'static str,
            policy: RetentionPolicy,
            want: Vec<&'static str>,
        }
        let cases = [
            Case {
                name: "keep-last 3",
                policy: RetentionPolicy {
                    last: Some(3),
                    ..RetentionPolicy::default()
                },
                want: vec![
                    "2026-11-24T12:00:00Z",
                    "2026-11-24T06:00:00Z",
                    "2026-11-24T00:00:00Z",
                ],
            },
            Case {
                name: "keep-within 12h includes the boundary",
                policy: RetentionPolicy {
                    within: Some(Duration::from_secs(12 * 3600)),
                    ..RetentionPolicy::default()
                },
                want: vec![
                    "2026-11-24T12:00:00Z",
                    "2026-11-24T06:00:00Z",
                    "2026-11-24T00:00:00Z",
                ],
            },
            Case {
                name: "keep-daily 3: newest of each day",
                policy: RetentionPolicy {
                    daily: Some(3),
                    ..RetentionPolicy::default()
                },
                want: vec![
                    "2026-11-24T12:00:00Z",
                    "2026-11-23T18:00:00Z",
                    "2026-11-22T18:00:00Z",
                ],
            },
            Case {
                name: "keep-weekly 2: ISO weeks start on Monday (2026-11-23)",
                policy: RetentionPolicy {
                    weekly: Some(2),
                    ..RetentionPolicy::default()
                },
                want: vec!["2026-11-24T12:00:00Z", "2026-11-22T18:00:00Z"],
            },
            Case {
                name: "keep-monthly 5 with only two months of backups",
                policy: RetentionPolicy {
                    monthly: Some(5),
                    ..RetentionPolicy::default()
                },
                want: vec!["2026-11-24T12:00:00Z", "2026-10-31T18:00:00Z"],
            },
            Case {
                name: "rules combine: a backup kept by any rule is kept",
                policy: RetentionPolicy {
                    last: Some(1),
                    daily: Some(2),
                    monthly: Some(2),
                    ..RetentionPolicy::default()
                },
                want: vec![
                    "2026-11-24T12:00:00Z",
                    "2026-11-23T18:00:00Z",
                    "2026-10-31T18:00:00Z",
                ],
            },
            Case {
                name: "keep-last 0 still keeps the newest",
                policy: RetentionPolicy {
                    last: Some(0),
                    ..RetentionPolicy::default()
                },
                want: vec!["2026-11-24T12:00:00Z"],
            },
        ];
        for c in cases {
            assert_eq!(kept(&s, &c.policy, NOW), c.want, "{}", c.name);
        }
    }

    #[test]
    fn iso_weeks_cross_the_year_boundary() {
        // 2026-12-31 (Thu) and 2027-01-01 (Fri) are both in ISO week 2026-W53.
        let times = [
            "2027-01-01T10:00:00Z",
            "2026-12-31T10:00:00Z",
            "2026-12-27T10:00:00Z",
        ];
        let p = RetentionPolicy {
            weekly: Some(2),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            kept(&times, &p, "2027-01-02T00:00:00Z"),
            ["2027-01-01T10:00:00Z", "2026-12-27T10:00:00Z"]
        );
        let d = plan(&backups(&times), &p, t("2027-01-02T00:00:00Z"));
        assert!(
            d[0].keep.contains(&Reason::Weekly("2026-W53".into())),
            "{:?}",
            d[0]
        );
        // Months and days do split there.
        let p = RetentionPolicy {
            monthly: Some(2),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            kept(&times, &p, "2027-01-02T00:00:00Z"),
            ["2027-01-01T10:00:00Z", "2026-12-31T10:00:00Z"]
        );
    }

    #[test]
    fn month_ends_and_same_day_backups() {
        let times = [
            "2026-02-28T23:59:59Z",
            "2026-02-28T00:00:01Z",
            "2026-03-01T00:00:00Z",
            "2026-01-31T23:00:00Z",
        ];
        let p = RetentionPolicy {
            monthly: Some(3),
            daily: Some(2),
            ..RetentionPolicy::default()
        };
        assert_eq!(
            kept(&times, &p, "2026-03-02T00:00:00Z"),
            [
                "2026-03-01T00:00:00Z",
                "2026-02-28T23:59:59Z",
                "2026-01-31T23:00:00Z"
            ]
        );
    }

    #[test]
    fn identical_timestamps_and_future_backups() {
        let now = t(NOW);
        let same = vec![
            ("a".to_string(), now - chrono::Duration::days(3)),
            ("b".to_string(), now - chrono::Duration::days(3)),
            ("future".to_string(), now + chrono::Duration::hours(2)),
        ];
        let p = RetentionPolicy {
            last: Some(2),
            ..RetentionPolicy::default()
        };
        let d = plan(&same, &p, now);
        // Newest first, ties by id: the plan is stable.
        let ids: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["future", "b", "a"]);
        assert!(d[0].kept() && d[1].kept() && !d[2].kept());
        let p = RetentionPolicy {
            within: Some(Duration::from_secs(60)),
            ..RetentionPolicy::default()
        };
        let d = plan(&same, &p, now);
        assert!(d[0].keep.contains(&Reason::Within(Duration::from_secs(60))));
    }

    #[test]
    fn empty_inputs() {
        assert!(
            plan(
                &[],
                &RetentionPolicy {
                    last: Some(3),
                    ..RetentionPolicy::default()
                },
                t(NOW)
            )
            .is_empty()
        );
        assert!(RetentionPolicy::default().is_empty());
        assert!(
            !RetentionPolicy {
                daily: Some(0),
                ..RetentionPolicy::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn ids_carry_their_time() {
        assert_eq!(
            id_time("20261124T120000Z-ab12"),
            Some(t("2026-11-24T12:00:00Z"))
        );
        assert_eq!(id_time("junk"), None);
    }
}
