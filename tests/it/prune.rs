//! `replvault prune` on a real local vault: backups of a real redis-server,
//! plus copies of one with older timestamps, and incomplete leftovers.

use std::path::Path;
use std::process::Command;

use super::util::*;

/// Copies backup `src_id` in `vault` as a backup started at `at` (RFC 3339).
fn clone_backup(vault: &Path, src_id: &str, at: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let id = format!(
        "{}-{:04x}",
        t.format("%Y%m%dT%H%M%SZ"),
        t.timestamp() as u16
    );
    let from = vault.join("backups").join(src_id);
    let to = vault.join("backups").join(&id);
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(from.join("data"), to.join("data")).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from.join("manifest.json")).unwrap()).unwrap();
    m["id"] = id.clone().into();
    m["started_at"] = at.into();
    m["finished_at"] = at.into();
    m["stored"]["key"] = format!("backups/{id}/data").into();
    std::fs::write(to.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    id
}

/// RFC 3339 time on `day` at `hour`:00 UTC, `back` calendar months before
/// the current one, so the test means the same whatever month it runs in.
fn months_ago(back: u32, day: u32, hour: u32) -> String {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let months = now.year() * 12 + now.month0() as i32 - back as i32;
    format!(
        "{:04}-{:02}-{day:02}T{hour:02}:00:00Z",
        months.div_euclid(12),
        months.rem_euclid(12) + 1
    )
}

fn ids(vault: &Path) -> Vec<String> {
    let list = ok(replvault(&[
        "list",
        "--vault",
        vault.to_str().unwrap(),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn touch_old(path: &Path, ago: &str) {
    let st = Command::new("touch")
        .args(["-d", ago])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn prune_applies_the_policy_and_keeps_what_it_must() {
    let redis = RedisServer::start();
    fill_every_type(&redis);
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    let vault = work.path().join("vault");
    let v = vault.to_str().unwrap();
    let k = key.to_str().unwrap();
    ok(replvault(&[
        "backup",
        "--redis",
        &redis.url(),
        "--vault",
        v,
        "--key-file",
        k,
    ]));
    let real = ids(&vault).pop().unwrap();
    // Older backups: two on the 1st of last month, one in each of the two
    // months before it.
    let (m1, m2) = (months_ago(1, 1, 0), months_ago(2, 1, 0));
    let m1_late = clone_backup(&vault, &real, &months_ago(1, 1, 18));
    let m1_early = clone_backup(&vault, &real, &months_ago(1, 1, 6));
    let m2_mid = clone_backup(&vault, &real, &months_ago(2, 15, 12));
    let m3_mid = clone_backup(&vault, &real, &months_ago(3, 3, 12));
    assert_eq!(ids(&vault).len(), 5);

    // Incomplete leftovers: an old one (removed) and a fresh one (kept: it
    // may be a backup in progress).
    let old_inc = vault.join("backups/20260101T000000Z-dead");
    std::fs::create_dir_all(&old_inc).unwrap();
    std::fs::write(old_inc.join("data"), b"partial").unwrap();
    touch_old(&old_inc.join("data"), "3 days ago");
    let fresh_inc = vault.join("backups/20991231T000000Z-beef");
    std::fs::create_dir_all(&fresh_inc).unwrap();
    std::fs::write(fresh_inc.join("data"), b"partial").unwrap();

    // No rule: refused.
    let err = fails(replvault(&["prune", "--vault", v]));
    assert!(err.contains("no retention rule"), "{err}");

    // Dry run: the plan, nothing deleted. Three months: this one (the real
    // backup), the newest of last month's two, and the month before.
    let policy = ["--keep-last", "1", "--keep-monthly", "3"];
    let mut dry = vec!["prune", "--vault", v, "--dry-run"];
    dry.extend(policy);
    let out = ok(replvault(&dry));
    assert!(
        out.contains(&format!("keep   {real}  (newest backup, last 1, monthly ")),
        "{out}"
    );
    assert!(
        out.contains(&format!("keep   {m1_late}  (monthly {})", &m1[..7])),
        "{out}"
    );
    assert!(
        out.contains(&format!("keep   {m2_mid}  (monthly {})", &m2[..7])),
        "{out}"
    );
    assert!(
        out.contains(&format!("would delete {m1_early}  (outside the policy)")),
        "{out}"
    );
    assert!(out.contains(&format!("would delete {m3_mid}")), "{out}");
    assert!(
        out.contains("would delete 20260101T000000Z-dead  (incomplete"),
        "{out}"
    );
    assert!(!out.contains("20991231T000000Z-beef"), "{out}");
    assert_eq!(ids(&vault).len(), 5);
    assert!(old_inc.join("data").exists());

    // For real.
    let mut real_run = vec!["prune", "--vault", v];
    real_run.extend(policy);
    let out = ok(replvault(&real_run));
    assert!(
        out.contains("pruned: kept 3, deleted 2 backup(s) and 1 incomplete leftover(s)"),
        "{out}"
    );
    let mut left = ids(&vault);
    left.sort();
    let mut want = vec![real.clone(), m1_late.clone(), m2_mid.clone()];
    want.sort();
    assert_eq!(left, want);
    for gone in [&m1_early, &m3_mid] {
        assert!(
            !vault
                .join("backups")
                .join(gone)
                .join("manifest.json")
                .exists()
        );
        assert!(!vault.join("backups").join(gone).join("data").exists());
    }
    assert!(!old_inc.join("data").exists());
    assert!(fresh_inc.join("data").exists());

    // What is left still restores.
    let out_file = work.path().join("dump.rdb");
    ok(restore_to(&vault, &key, &out_file));
    let restored = RedisServer::start_with_rdb(&out_file);
    assert_eq!(restored.digest(), redis.digest());

    // The newest backup survives even a policy that matches nothing: once
    // it started more than the 1s of --keep-within ago (a wait on the
    // clock, computed from its manifest).
    let started = list_json(&vault)
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == real.as_str())
        .map(|m| chrono::DateTime::parse_from_rfc3339(m["started_at"].as_str().unwrap()).unwrap())
        .unwrap();
    wait_for(
        "the newest backup to be over 1s old",
        std::time::Duration::from_secs(10),
        || {
            chrono::Utc::now().signed_duration_since(started)
                > chrono::TimeDelta::milliseconds(1100)
        },
    );
    let out = ok(replvault(&["prune", "--vault", v, "--keep-within", "1s"]));
    assert!(
        out.contains(&format!("keep   {real}  (newest backup)")),
        "{out}"
    );
    assert_eq!(ids(&vault), [real]);
}
