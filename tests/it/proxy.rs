//! A TCP proxy for fault injection between replvault and redis-server:
//! flip one byte of what the server sends, cut the link after N bytes, or
//! throttle it. One connection at a time; stops when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the proxy does to server-to-client bytes.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// XOR the byte at this offset with 0x01.
    FlipAt(u64),
    /// Close both sides after this many bytes.
    CutAfter(u64),
    /// At most this many bytes per second.
    Throttle(u64),
    /// Forward this many bytes, then nothing more, keeping the connection
    /// open (a server that hangs mid-transfer).
    StallAfter(u64),
    /// Close both sides of the first connection after this many bytes;
    /// forward later ones untouched (a link cut once, then healed).
    CutFirstAfter(u64),
}

pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Server-to-client bytes forwarded, over all connections.
    forwarded: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let forwarded = Arc::new(AtomicU64::new(0));
        let counted = forwarded.clone();
        std::thread::spawn(move || {
            let mut accepted = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let fault = match fault {
                            Fault::CutFirstAfter(n) if accepted == 0 => Fault::CutAfter(n),
                            Fault::CutFirstAfter(_) => Fault::CutAfter(u64::MAX),
                            f => f,
                        };
                        accepted += 1;
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        // client -> server: plain copy.
                        std::thread::spawn(move || {
                            let (mut c, mut s) = (c2, s2);
                            let _ = std::io::copy(&mut c, &mut s);
                            let _ = s.shutdown(Shutdown::Write);
                        });
                        let (stop3, counted) = (stop2.clone(), counted.clone());
                        std::thread::spawn(move || pump(server, client, fault, stop3, counted));
                    }
                    // Nothing to accept: poll again (and the stop flag).
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            port,
            stop,
            forwarded,
        }
    }

    /// Server-to-client bytes forwarded so far, over all connections.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
) {
    // A tick (50 ms) of a throttled rate fits in one read.
    let size = match fault {
        Fault::Throttle(rate) => (rate / 20).max(16 * 1024) as usize,
        _ => 16 * 1024,
    };
    let mut buf = vec![0u8; size];
    let mut seen: u64 = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let want = match fault {
            Fault::Throttle(rate) => (rate / 20).clamp(1, buf.len() as u64) as usize,
            _ => buf.len(),
        };
        let n = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match fault {
            Fault::FlipAt(at) if at >= seen && at < seen + n as u64 => {
                buf[(at - seen) as usize] ^= 0x01
            }
            Fault::CutAfter(limit) if seen + n as u64 >= limit => {
                let keep = (limit - seen) as usize;
                let _ = to.write_all(&buf[..keep]);
                break;
            }
            Fault::StallAfter(limit) if seen + n as u64 >= limit => {
                let keep = (limit - seen) as usize;
                let _ = to.write_all(&buf[..keep]);
                // Hold the connection open, silent, until the proxy goes.
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                break;
            }
            // The throttle itself: one read per tick. Tests that need a
            // backup to be still running use StallAfter, not a slow rate.
            Fault::Throttle(_) => std::thread::sleep(Duration::from_millis(50)),
            _ => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        forwarded.fetch_add(n as u64, Ordering::Relaxed);
        seen += n as u64;
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
