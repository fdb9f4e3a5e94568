//! Test harness: real redis-server processes on free ports in temp dirs, a
//! tiny RESP client, DEBUG DIGEST, the every-type dataset, and the real
//! `replvault` binary with a clean environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The redis-server binary (REPLVAULT_TEST_REDIS_SERVER overrides).
pub fn redis_server_bin() -> String {
    std::env::var("REPLVAULT_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// The major version `bin --version` reports (`v=7.0.15` gives 7).
pub fn server_major_version(bin: &str) -> u32 {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh installs the servers)"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_once("v=")
        .and_then(|(_, v)| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{bin} --version: {text}"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) => String::new(),
            Reply::Array(a) => format!("{a:?}"),
        }
    }
}

fn read_reply(r: &mut BufReader<TcpStream>) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" => Reply::Status(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(rest.parse().unwrap()),
        "$" => {
            let n: i64 = rest.parse().unwrap();
            if n < 0 {
                return Reply::Bulk(None);
            }
            let mut b = vec![0u8; n as usize + 2];
            r.read_exact(&mut b).unwrap();
            b.truncate(n as usize);
            Reply::Bulk(Some(b))
        }
        "*" => {
            let n: i64 = rest.parse().unwrap();
            Reply::Array((0..n.max(0)).map(|_| read_reply(r)).collect())
        }
        other => panic!("unexpected reply type {other:?} in {line:?}"),
    }
}

/// A redis-server process, killed on drop.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    pub password: Option<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments (`--name value` pairs).
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts a server in `dir` (which may hold a dump.rdb to load).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_bin_in(&redis_server_bin(), dir, extra)
    }

    /// Starts `bin` (a redis-server or valkey-server of any version from
    /// 6.0 on) in `dir`.
    pub fn start_bin_in(bin: &str, dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let port = free_port();
        let mut args: Vec<String> = vec![];
        // A config file first, if the caller passes one.
        let mut rest = extra;
        if let Some(first) = extra.first()
            && first.ends_with(".conf")
        {
            args.push(first.to_string());
            rest = &extra[1..];
        }
        for a in [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.path().to_str().unwrap(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ] {
            args.push(a.to_string());
        }
        // DEBUG is allowed by default before 7.0, which rejects the option.
        if server_major_version(bin) >= 7 {
            args.extend(["--enable-debug-command".into(), "yes".into()]);
        }
        args.extend(rest.iter().map(|s| s.to_string()));
        let log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
        let child = Command::new(bin)
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh installs the servers)"));
        let password = rest
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_string());
        let s = RedisServer {
            port,
            dir,
            child,
            password,
        };
        s.wait_ready();
        s
    }

    /// Starts a fresh server that loads `rdb` as its dump.rdb.
    pub fn start_with_rdb(rdb: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
        Self::start_in(dir, &[])
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                drop(s);
                let r = self.try_cmd(&["PING"]);
                if let Ok(Reply::Status(p)) = &r
                    && p == "PONG"
                {
                    return;
                }
                if let Ok(Reply::Error(e)) = &r
                    && e.starts_with("NOAUTH")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn try_cmd(&self, args: &[&str]) -> std::io::Result<Reply> {
        let bin: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.try_cmd_bin(&bin)
    }

    fn try_cmd_bin(&self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut w = s.try_clone()?;
        let mut r = BufReader::new(s);
        if let Some(pw) = &self.password {
            let mut out = Vec::new();
            encode(&[b"AUTH", pw.as_bytes()], &mut out);
            w.write_all(&out)?;
            read_reply(&mut r);
        }
        let mut out = Vec::new();
        encode(args, &mut out);
        w.write_all(&out)?;
        Ok(read_reply(&mut r))
    }

    /// Runs a command (as the default user, with the server password).
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args).unwrap()
    }

    /// Runs a command with binary-safe arguments.
    pub fn cmd_bin(&self, args: &[&[u8]]) -> Reply {
        self.try_cmd_bin(args).unwrap()
    }

    /// `DEBUG DIGEST`: one hash over the whole dataset.
    pub fn digest(&self) -> String {
        match self.cmd(&["DEBUG", "DIGEST"]) {
            Reply::Status(s) => s,
            other => panic!("DEBUG DIGEST failed: {other:?}"),
        }
    }

    /// `INFO keyspace` as (db, keys, expires).
    pub fn keyspace(&self) -> Vec<(u64, u64, u64)> {
        let info = self.cmd(&["INFO", "keyspace"]).text();
        info.lines()
            .filter_map(|l| {
                let (db, rest) = l.trim().strip_prefix("db")?.split_once(':')?;
                let mut keys = 0;
                let mut expires = 0;
                for kv in rest.split(',') {
                    match kv.split_once('=') {
                        Some(("keys", v)) => keys = v.parse().ok()?,
                        Some(("expires", v)) => expires = v.parse().ok()?,
                        _ => {}
                    }
                }
                Some((db.parse().ok()?, keys, expires))
            })
            .collect()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Fills `server` with the every-type dataset (fixtures/populate.sh).
pub fn fill_every_type(server: &RedisServer) {
    let out = Command::new("bash")
        .arg(root().join("fixtures/populate.sh"))
        .arg(server.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "populate.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `replvault verify` of the latest backup in the local vault `vault`.
pub fn verify_in(vault: &Path, key: &Path) -> Output {
    replvault(&[
        "verify",
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ])
}

/// `replvault restore` of the latest backup in the local vault `vault`,
/// decrypted with `key`, to `out`.
pub fn restore_to(vault: &Path, key: &Path, out: &Path) -> Output {
    replvault(&restore_args(vault.to_str().unwrap(), key, out))
}

/// `replvault restore` of the latest backup in `vault` (a path or a URL) to
/// `out`.
pub fn restore_args<'a>(vault: &'a str, key: &'a Path, out: &'a Path) -> [&'a str; 8] {
    [
        "restore",
        "latest",
        "--vault",
        vault,
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
}

/// `replvault backup` of `url` into the local vault `vault`, encrypted with
/// `key`, with `extra` flags.
pub fn backup_to(url: &str, vault: &Path, key: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "backup",
        "--redis",
        url,
        "--vault",
        vault.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    replvault(&args)
}

/// `replvault list --json` of a local vault.
pub fn list_json(vault: &Path) -> serde_json::Value {
    let out = ok(replvault(&[
        "list",
        "--vault",
        vault.to_str().unwrap(),
        "--json",
    ]));
    serde_json::from_str(&out).unwrap()
}

/// Runs the replvault binary with only the given environment.
pub fn replvault(args: &[&str]) -> Output {
    replvault_env(args, &[])
}

pub fn replvault_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_replvault"));
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().unwrap()
}

/// Spawns the binary (for signal tests).
pub fn replvault_spawn(args: &[&str]) -> Child {
    replvault_spawn_env(args, &[])
}

/// Spawns the binary with only the given environment.
pub fn replvault_spawn_env(args: &[&str], env: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_replvault"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "replvault failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// Asserts failure and returns the `error:` line of stderr.
pub fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "replvault should have failed: {}",
        stdout(&o)
    );
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    lines[0].to_string()
}

/// Makes a key file in `dir`.
pub fn keygen(dir: &Path) -> PathBuf {
    let p = dir.join("backup.key");
    ok(replvault(&["keygen", "--out", p.to_str().unwrap()]));
    p
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Sends a signal (`TERM`, `INT`...) to a process.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

/// fixtures/module/rvtest.c built once per test process: a module type with
/// every field kind a module saves, and aux records before and after the
/// keyspace. Built under a name of its own and renamed into place, so
/// tests building it at once never load a half-written file.
pub fn test_module() -> &'static Path {
    static SO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let so = dir.join("rvtest.so");
        let tmp = dir.join(format!("rvtest-{}.so", std::process::id()));
        let out = Command::new("cc")
            .args(["-O2", "-fPIC", "-shared", "-o"])
            .arg(&tmp)
            .arg(root().join("fixtures/module/rvtest.c"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &so).unwrap();
        so
    })
}
