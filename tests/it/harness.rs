//! The test harness itself: a server is known by its process, not by
//! whoever answers on its port, and a port taken meanwhile is replaced.

use std::cell::Cell;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

use super::util::*;

#[test]
fn a_taken_port_is_neither_mistaken_for_the_server_nor_fatal() {
    // Another process answers on the first port offered: connecting to it
    // succeeds, but it is not the server started.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = other.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("redis.log");
    let first = Cell::new(true);
    let spawns = Cell::new(0);
    let (mut child, ports) = start_listening_on(
        "redis-server",
        1,
        || {
            if first.replace(false) {
                taken
            } else {
                free_port()
            }
        },
        |ports| {
            spawns.set(spawns.get() + 1);
            let f = std::fs::File::create(&log).unwrap();
            Command::new(redis_server_bin())
                .args(["--port", &ports[0].to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--dir", dir.path().to_str().unwrap()])
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .unwrap()
        },
        || std::fs::read_to_string(&log).unwrap_or_default(),
        |_| true,
    );
    assert_eq!(spawns.get(), 2, "started again after the clash");
    assert_ne!(ports[0], taken);
    assert!(listens_on(child.id(), ports[0]));
    assert!(!listens_on(child.id(), taken));
    let _ = child.kill();
    let _ = child.wait();
    drop(other);
}

#[test]
fn redis_servers_answer_from_their_own_process() {
    let a = RedisServer::start();
    let b = RedisServer::start_with(&["--requirepass", "pw"]);
    for s in [&a, &b] {
        assert!(listens_on(s.pid(), s.port));
        let info = s.cmd(&["INFO", "server"]).text();
        assert!(
            info.contains(&format!("process_id:{}\r\n", s.pid())),
            "{info}"
        );
    }
    assert!(!listens_on(a.pid(), b.port));
}

#[test]
fn a_refused_port_refuses_and_cannot_be_taken() {
    let p = RefusedPort::new();
    let e = TcpStream::connect(("127.0.0.1", p.port)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    assert!(TcpListener::bind(("127.0.0.1", p.port)).is_err());
    // A server told to use it exits at start, as on any clash.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(redis_server_bin())
        .args(["--port", &p.port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    out.stderr.as_slice().read_to_string(&mut text).unwrap();
    assert!(!out.status.success());
    assert!(
        text.to_ascii_lowercase().contains("address already in use"),
        "{text}"
    );
}
