//! Test harness: real redis-server processes on free ports in temp dirs, a
//! tiny RESP client, DEBUG DIGEST, the every-type dataset, and the real
//! `replvault` binary with a clean environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago. Another test may
/// take it before the caller binds it: start servers on it with
/// [`start_listening`], which checks who listens and retries on a clash.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it holds; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The inodes of the TCP sockets listening on `port` (any address).
fn listening_inodes(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // sl local_address rem_address st ... inode (the 10th field)
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                out.push(f[9].to_string());
            }
        }
    }
    out
}

/// True when process `pid` holds every socket listening on TCP `port` (and
/// there is one). Connecting cannot tell: whatever process took the port
/// answers.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let held: Vec<String> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    inodes.iter().all(|i| held.contains(i))
}

/// Starts a server on ports of its own: `spawn(ports)` starts it on
/// `nports` ports that were free a moment ago, and `log()` reads what it
/// wrote. It is ready once the process itself listens on every one of them
/// (another test's server on a clashing port does not count) and `ready`
/// holds. If it exits at start because a port was taken in between, it is
/// started again on other ports. Gives the child and its ports.
pub fn start_listening(
    what: &str,
    nports: usize,
    spawn: impl FnMut(&[u16]) -> Child,
    log: impl Fn() -> String,
    ready: impl FnMut(&[u16]) -> bool,
) -> (Child, Vec<u16>) {
    start_listening_on(what, nports, free_port, spawn, log, ready)
}

/// [`start_listening`] on the ports `pick` gives (tests of the harness
/// pass one that is taken).
pub fn start_listening_on(
    what: &str,
    nports: usize,
    mut pick: impl FnMut() -> u16,
    mut spawn: impl FnMut(&[u16]) -> Child,
    log: impl Fn() -> String,
    mut ready: impl FnMut(&[u16]) -> bool,
) -> (Child, Vec<u16>) {
    const ATTEMPTS: usize = 8;
    for attempt in 1..=ATTEMPTS {
        let ports: Vec<u16> = (0..nports).map(|_| pick()).collect();
        let mut child = spawn(&ports);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = log();
                if text.to_ascii_lowercase().contains("address already in use")
                    && attempt < ATTEMPTS
                {
                    break;
                }
                panic!("{what} exited at start ({status}) on ports {ports:?}:\n{text}");
            }
            if ports.iter().all(|p| listens_on(child.id(), *p)) && ready(&ports) {
                return (child, ports);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not start on ports {ports:?}:\n{}", log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    unreachable!()
}

/// A port on 127.0.0.1 that refuses connections while this lives: bound
/// but not listening, so no other process can listen on it meanwhile (a
/// port from [`free_port`] may be taken by another test's server).
pub struct RefusedPort {
    fd: i32,
    pub port: u16,
}

impl RefusedPort {
    pub fn new() -> Self {
        // SAFETY: plain socket calls on a socket this owns; the address
        // structures are fully initialised.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let r = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = len;
            let r = libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len);
            assert_eq!(r, 0, "getsockname: {}", std::io::Error::last_os_error());
            RefusedPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RefusedPort {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this struct's own.
        unsafe { libc::close(self.fd) };
    }
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

/// Reads one reply.
pub fn read_reply(r: &mut BufReader<TcpStream>) -> Reply {
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
    /// The ports asked for with [`RedisServer::start_with_ports`].
    pub extra_ports: Vec<u16>,
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

    /// Starts a server whose extra arguments name `n` more ports of its own
    /// (`--tls-port`, `--cluster-port`): `extra(ports)` gives the arguments
    /// for the ports of each attempt, and `extra_ports` keeps the ones used.
    pub fn start_with_ports(n: usize, extra: impl Fn(&[u16]) -> Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_ports(&redis_server_bin(), dir, n, |p| extra(p))
    }

    /// Starts a server in `dir` (which may hold a dump.rdb to load).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_bin_in(&redis_server_bin(), dir, extra)
    }

    /// Starts `bin` (a redis-server or valkey-server of any version from
    /// 6.0 on) in `dir`.
    pub fn start_bin_in(bin: &str, dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::start_ports(bin, dir, 0, |_| extra.clone())
    }

    fn start_ports(
        bin: &str,
        dir: tempfile::TempDir,
        n: usize,
        extra: impl Fn(&[u16]) -> Vec<String>,
    ) -> Self {
        Self::start_bin_ports(bin, dir, n, free_port, extra)
    }

    /// [`RedisServer::start_with_ports`] for `bin` in `dir`, on ports that
    /// `pick` gives (a server whose cluster bus is its port plus 10,000,
    /// before 7.0, needs one with that port free too).
    pub fn start_bin_ports(
        bin: &str,
        dir: tempfile::TempDir,
        n: usize,
        pick: impl FnMut() -> u16,
        extra: impl Fn(&[u16]) -> Vec<String>,
    ) -> Self {
        // DEBUG is allowed by default before 7.0, which rejects the option.
        let debug = server_major_version(bin) >= 7;
        let log_path = dir.path().join("redis.log");
        let password = std::cell::RefCell::new(None::<String>);
        let spawn = |ports: &[u16]| {
            let extra = extra(&ports[1..]);
            let mut args: Vec<String> = vec![];
            // A config file first, if the caller passes one.
            let mut rest = &extra[..];
            if let Some(first) = extra.first()
                && first.ends_with(".conf")
            {
                args.push(first.to_string());
                rest = &extra[1..];
            }
            for a in [
                "--port",
                &ports[0].to_string(),
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
            if debug {
                args.extend(["--enable-debug-command".into(), "yes".into()]);
            }
            args.extend(rest.iter().cloned());
            *password.borrow_mut() = rest
                .windows(2)
                .find(|w| w[0] == "--requirepass")
                .map(|w| w[1].to_string());
            let log = std::fs::File::create(&log_path).unwrap();
            Command::new(bin)
                .args(&args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh installs the servers)"))
        };
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // Listening is not enough: the server answers once it has loaded
        // its dataset, and it is the process started here.
        let ready = |ports: &[u16]| ping_answers(ports[0], password.borrow().as_deref());
        let (child, ports) = start_listening_on(bin, 1 + n, pick, spawn, read_log, ready);
        let s = RedisServer {
            port: ports[0],
            extra_ports: ports[1..].to_vec(),
            dir,
            child,
            password: password.into_inner(),
        };
        // The same process, seen from inside: INFO's process_id (when a
        // password is set that the tests do not know, it cannot be asked).
        if let Ok(Reply::Bulk(Some(info))) = s.try_cmd(&["INFO", "server"]) {
            let info = String::from_utf8_lossy(&info).into_owned();
            let pid = info
                .lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .map(|p| p.trim().to_string());
            assert_eq!(
                pid,
                Some(s.child.id().to_string()),
                "another server answers on port {}",
                s.port
            );
        }
        s
    }

    /// Starts a fresh server that loads `rdb` as its dump.rdb.
    pub fn start_with_rdb(rdb: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
        Self::start_in(dir, &[])
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// One connection that stays open: for what belongs to a client, such as
/// the selected database, a transaction, or `WAIT` (which counts only the
/// calling client's own writes).
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    port: u16,
}

impl Client {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let w = s.try_clone().unwrap();
        Client {
            r: BufReader::new(s),
            w,
            port,
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs a command.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let bin: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bin(&bin)
    }

    /// Runs a command with binary-safe arguments.
    pub fn cmd_bin(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = Vec::new();
        encode(args, &mut out);
        self.w.write_all(&out).unwrap();
        read_reply(&mut self.r)
    }

    /// Runs a command and panics on an error reply.
    pub fn ok(&mut self, args: &[&str]) -> Reply {
        let r = self.cmd(args);
        assert!(!matches!(r, Reply::Error(_)), "{args:?}: {r:?}");
        r
    }
}

impl RedisServer {
    /// A connection that stays open, authenticated with the server password.
    pub fn client(&self) -> Client {
        let mut c = Client::connect(self.port);
        if let Some(pw) = &self.password {
            c.ok(&["AUTH", pw]);
        }
        c
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when the server on `port` answers PING (PONG, or NOAUTH when the
/// password is not known).
fn ping_answers(port: u16, password: Option<&str>) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut w) = s.try_clone() else {
        return false;
    };
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    if let Some(pw) = password {
        encode(&[b"AUTH", pw.as_bytes()], &mut out);
    }
    encode(&[b"PING"], &mut out);
    if w.write_all(&out).is_err() {
        return false;
    }
    let mut lines = Vec::new();
    for _ in 0..1 + usize::from(password.is_some()) {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(n) if n > 0 => lines.push(line),
            _ => return false,
        }
    }
    let last = lines.last().map(|l| l.trim_end()).unwrap_or_default();
    last == "+PONG" || last.starts_with("-NOAUTH")
}

/// Appends a command in RESP to `out`.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Fills `server` with the every-type dataset (fixtures/populate.sh).
pub fn fill_every_type(server: &RedisServer) {
    let mut c = Command::new("bash");
    c.arg(root().join("fixtures/populate.sh"))
        .arg(server.port.to_string());
    // redis-cli reads the password from here, and keeps it out of `ps`.
    if let Some(pw) = &server.password {
        c.env("REDISCLI_AUTH", pw);
    }
    let out = c.output().unwrap();
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

/// A `replvault run` daemon serving /metrics and /healthz on a port of its
/// own, its stdout and stderr in files; killed on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
    logs: tempfile::TempDir,
}

impl Daemon {
    /// `replvault run ARGS --listen 127.0.0.1:PORT`.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(
            |port| {
                let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
                a.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
                a
            },
            &[],
        )
    }

    /// The daemon `make(port)` gives the arguments of (`run` and its flags,
    /// listening on `port`), with only the environment `env`. Ready once
    /// it listens on that port itself; started again on another port if
    /// the one chosen was taken.
    pub fn start_with(mut make: impl FnMut(u16) -> Vec<String>, env: &[(String, String)]) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
        let (child, ports) = start_listening(
            "replvault run",
            1,
            |ports| {
                Command::new(env!("CARGO_BIN_EXE_replvault"))
                    .args(make(ports[0]))
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .stdin(Stdio::null())
                    .stdout(std::fs::File::create(&out).unwrap())
                    .stderr(std::fs::File::create(&err).unwrap())
                    .spawn()
                    .unwrap()
            },
            || std::fs::read_to_string(&err).unwrap_or_default(),
            |_| true,
        );
        Daemon {
            child,
            port: ports[0],
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr (its log) so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Sends SIGTERM and waits (20 s at most) for it to exit.
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        send_signal(self.child.id(), "TERM");
        let mut status = None;
        wait_for(
            "the daemon to exit after SIGTERM",
            Duration::from_secs(20),
            || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            },
        );
        status.unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// A private CA and a server certificate for `redis.test` and
/// 127.0.0.1, made with `openssl` in a temporary directory.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    /// The server's certificate.
    pub crt: String,
    /// Its key.
    pub key: String,
    /// The CA's certificate.
    pub ca: String,
}

pub fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn tls_files() -> TlsFiles {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=replvault test CA",
        ],
        d,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=redis.test",
        ],
        d,
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:redis.test,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        d,
    );
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let (crt, key, ca) = (p("server.crt"), p("server.key"), p("ca.crt"));
    TlsFiles {
        _dir: certs,
        crt,
        key,
        ca,
    }
}
