//! The Redis password never appears in what replvault prints: stdout and
//! stderr at the most verbose level (`-vvv`), as text and as JSON logs,
//! for backups that succeed and backups that fail, with the password in
//! the URL or in REPLVAULT_REDIS_PASSWORD; nor in the vault.

use std::process::Output;
use std::time::Duration;

use super::util::*;

/// Distinctive, and the same in a URL as in the clear.
const PW: &str = "Zq7-Vault-Secret-PW-3141";
/// One that a URL must percent-encode, in the clear and encoded: neither
/// form may appear.
const PW_SPECIAL: &str = "Sp3c!al:p@ss/w0rd";
const PW_SPECIAL_URL: &str = "Sp3c%21al%3Ap%40ss%2Fw0rd";

/// Every form of every password used here.
const SECRETS: [&str; 3] = [PW, PW_SPECIAL, PW_SPECIAL_URL];

/// The password `user` has, and how it is written in a URL.
fn password_of(user: &str) -> (&'static str, &'static str) {
    if user == "special" {
        (PW_SPECIAL, PW_SPECIAL_URL)
    } else {
        (PW, PW)
    }
}

/// How the password reaches replvault.
#[derive(Clone, Copy, Debug)]
enum Given {
    Url,
    Env,
}

/// `backup` of `port` (user `user`, password `PW` given as `given`) into
/// `vault` with `extra` flags, at -vvv in `format`.
fn backup(
    port: u16,
    user: &str,
    given: Given,
    format: &str,
    vault: &std::path::Path,
    key: &std::path::Path,
    extra: &[&str],
) -> Output {
    let (pw, in_url) = password_of(user);
    let url = match given {
        Given::Url => format!("redis://{user}:{in_url}@127.0.0.1:{port}"),
        Given::Env if user.is_empty() => format!("redis://127.0.0.1:{port}"),
        Given::Env => format!("redis://{user}@127.0.0.1:{port}"),
    };
    let mut args = vec!["-vvv", "--log-format", format];
    args.extend([
        "backup",
        "--redis",
        &url,
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--no-progress",
        "--connect-timeout",
        "2s",
    ]);
    args.extend_from_slice(extra);
    let env: &[(&str, &str)] = match given {
        Given::Url => &[],
        Given::Env => &[("REPLVAULT_REDIS_PASSWORD", pw)],
    };
    replvault_env(&args, env)
}

/// Checks one run's output: no password anywhere, and verbose logs of the
/// format asked for, which name the server's address (so the URL was
/// logged, without its password).
fn check_output(what: &str, o: &Output, format: &str, port: u16) {
    let (out, err) = (stdout(o), stderr(o));
    for pw in SECRETS {
        assert!(
            !out.contains(pw) && !err.contains(pw),
            "{what}: the password {pw:?} is in the output:\n{out}\n{err}"
        );
    }
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) || out.contains(&format!("127.0.0.1:{port}")),
        "{what}: the address is not in the output:\n{out}\n{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    match format {
        "json" => {
            let logs: Vec<serde_json::Value> = lines
                .iter()
                .filter(|l| !l.starts_with("error:"))
                .map(|l| {
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not JSON: {l}: {e}"))
                })
                .collect();
            assert!(
                logs.iter()
                    .any(|l| l["level"] == "DEBUG" || l["level"] == "TRACE"),
                "{what}: -vvv logs no debug lines:\n{err}"
            );
        }
        _ => assert!(
            lines
                .iter()
                .any(|l| l.contains(" DEBUG ") || l.contains(" TRACE ")),
            "{what}: -vvv logs no debug lines:\n{err}"
        ),
    }
}

/// No file in `vault` holds the password.
fn check_vault(what: &str, vault: &std::path::Path) {
    for f in files_under(vault) {
        let bytes = std::fs::read(vault.join(&f)).unwrap();
        for pw in SECRETS {
            assert!(
                !bytes.windows(pw.len()).any(|w| w == pw.as_bytes()),
                "{what}: the password {pw:?} is in {f}"
            );
        }
    }
}

#[test]
fn the_password_never_appears_in_logs_or_output() {
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    // A server with the password for the default user, and an ACL user
    // with the same password and only replication rights.
    let src = RedisServer::start_with(&["--requirepass", PW]);
    fill_every_type(&src);
    let acl = [
        "ACL",
        "SETUSER",
        "backup",
        "on",
        &format!(">{PW}"),
        "+sync",
        "+psync",
        "+replconf",
        "+ping",
    ];
    assert_eq!(src.cmd(&acl).text(), "OK");
    let acl = [
        "ACL",
        "SETUSER",
        "special",
        "on",
        &format!(">{PW_SPECIAL}"),
        "+sync",
        "+psync",
        "+replconf",
        "+ping",
    ];
    assert_eq!(src.cmd(&acl).text(), "OK");
    // One that refuses replication: the fallback to scan mode connects and
    // authenticates a second time.
    let conf = work.path().join("no-sync.conf");
    std::fs::write(
        &conf,
        "rename-command SYNC \"\"\nrename-command PSYNC \"\"\n",
    )
    .unwrap();
    let no_sync = RedisServer::start_with(&[conf.to_str().unwrap(), "--requirepass", PW]);
    fill_every_type(&no_sync);
    // One whose password is another, and a port where nothing listens.
    let other = RedisServer::start_with(&["--requirepass", "a-different-password"]);
    let down = RefusedPort::new();

    let mut n = 0;
    for format in ["text", "json"] {
        for given in [Given::Url, Given::Env] {
            let mut case = |port: u16, user: &str, extra: &[&str], succeeds: bool| {
                n += 1;
                let what = format!(
                    "{format} logs, password by {given:?}, user {user:?}, port {port} {extra:?}"
                );
                let vault = work.path().join(format!("vault-{n}"));
                let o = backup(port, user, given, format, &vault, &key, extra);
                check_output(&what, &o, format, port);
                if succeeds {
                    ok(o);
                    assert_eq!(list_json(&vault).as_array().unwrap().len(), 1, "{what}");
                } else {
                    let e = fails(o);
                    assert!(!e.contains(PW), "{what}: {e}");
                }
                check_vault(&what, &vault);
            };
            case(src.port, "", &[], true);
            case(src.port, "backup", &[], true);
            case(src.port, "special", &[], true);
            case(src.port, "", &["--mode", "scan"], true);
            case(no_sync.port, "", &[], true);
            case(other.port, "", &[], false);
            case(other.port, "special", &[], false);
            case(down.port, "", &[], false);
            case(down.port, "special", &[], false);
        }
    }
}

#[test]
fn the_daemon_never_logs_the_password() {
    let src = RedisServer::start_with(&["--requirepass", PW]);
    src.cmd(&["SET", "k", "v"]);
    let down = RefusedPort::new();
    let work = tempfile::tempdir().unwrap();
    let key = keygen(work.path());
    for (format, port, succeeds) in [("text", src.port, true), ("json", down.port, false)] {
        let vault = work.path().join(format!("vault-{format}"));
        let (v, k) = (
            vault.to_str().unwrap().to_string(),
            key.to_str().unwrap().to_string(),
        );
        let url = format!("redis://:{PW}@127.0.0.1:{port}");
        let mut daemon = Daemon::start_with(
            |listen| {
                [
                    "-vvv",
                    "--log-format",
                    format,
                    "run",
                    "--redis",
                    &url,
                    "--vault",
                    &v,
                    "--key-file",
                    &k,
                    "--every",
                    "1h",
                    "--connect-timeout",
                    "2s",
                    "--listen",
                ]
                .map(String::from)
                .into_iter()
                .chain([format!("127.0.0.1:{listen}")])
                .collect()
            },
            &[],
        );
        let done = if succeeds {
            "backup complete"
        } else {
            "backup failed"
        };
        wait_for(done, Duration::from_secs(30), || {
            daemon.stderr().contains(done)
        });
        let st = daemon.sigterm();
        assert!(st.success(), "{st}: {}", daemon.stderr());
        let (out, err) = (daemon.stdout(), daemon.stderr());
        assert!(
            !out.contains(PW) && !err.contains(PW),
            "{format}: the password is in the daemon's output:\n{out}\n{err}"
        );
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("TRACE") || err.contains("DEBUG"), "{err}");
        check_vault(format, &vault);
    }
}
