//! The handshake and payload framing driven by real redis-server 7.0
//! transcripts (testdata/psync-*.bin: what the server sent after
//! `REPLCONF listening-port`, `REPLCONF capa eof capa psync2`, `PSYNC ? -1`),
//! split at every byte boundary around the framing and at a wide sample
//! elsewhere, plus the refusal mappings.

use replvault_protocol::payload::{Framing, PayloadReader};
use replvault_protocol::rdb::Checker;
use replvault_protocol::replica::{Config, Event, Handshake, HandshakeError};

struct Outcome {
    events: Vec<Event>,
    payload: Vec<u8>,
    complete: bool,
}

/// Drives a handshake over `input` delivered in the given pieces.
fn drive(pieces: &[&[u8]], config: Config) -> Result<Outcome, HandshakeError> {
    let mut hs = Handshake::new(config);
    let mut sent = Vec::new();
    while let Some(b) = hs.poll_transmit() {
        sent.push(b);
    }
    let mut events = Vec::new();
    let mut reader: Option<PayloadReader> = None;
    let mut payload = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            if let Some(r) = reader.as_mut() {
                let used = r.feed(&buf, &mut |b| payload.extend_from_slice(b)).unwrap();
                buf.drain(..used);
                break;
            }
            let used = hs.handle_input(&buf)?;
            buf.drain(..used);
            let mut sent = 0;
            while hs.poll_transmit().is_some() {
                sent += 1;
            }
            while let Some(e) = hs.poll_event() {
                if let Event::Payload(f) = &e {
                    reader = Some(PayloadReader::new(f.clone()));
                }
                events.push(e);
            }
            // A reply moved the handshake on: the rest of the buffer may
            // hold the next reply already.
            if reader.is_none() && used == 0 && sent == 0 {
                break;
            }
        }
    }
    let complete = reader.as_ref().is_some_and(|r| r.is_complete());
    Ok(Outcome {
        events,
        payload,
        complete,
    })
}

fn transcript(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn check(out: &Outcome, eof: bool) {
    assert!(out.complete);
    assert!(
        matches!(&out.events[0], Event::FullResync { replid, offset: 0 } if replid.len() == 40)
    );
    match &out.events[1] {
        Event::Payload(Framing::Eof(_)) => assert!(eof),
        Event::Payload(Framing::Length(n)) => {
            assert!(!eof);
            assert_eq!(*n as usize, out.payload.len());
        }
        e => panic!("unexpected {e:?}"),
    }
    let mut s = Checker::new();
    s.feed(&out.payload).unwrap();
    let summary = s.finish().unwrap();
    assert!(summary.total_keys() > 0);
}

fn split_points(len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..200.min(len))
        .chain(len.saturating_sub(200)..len)
        .collect();
    v.extend((0..len).step_by(997));
    v.sort();
    v.dedup();
    v
}

#[test]
fn transcripts_split_at_every_boundary() {
    for (name, eof) in [
        ("psync-diskless-7.0.bin", true),
        ("psync-disk-7.0.bin", false),
    ] {
        let t = transcript(name);
        // The two +OK replies are for the REPLCONFs.
        let whole = drive(&[&t], Config::default()).unwrap();
        check(&whole, eof);
        for at in split_points(t.len()) {
            let out = drive(&[&t[..at], &t[at..]], Config::default()).unwrap();
            check(&out, eof);
            assert_eq!(out.payload, whole.payload, "{name} split at {at}");
        }
        let bytes: Vec<&[u8]> = t.chunks(1).collect();
        let out = drive(&bytes, Config::default()).unwrap();
        assert_eq!(out.payload, whole.payload, "{name} byte by byte");
    }
}

#[test]
fn keepalive_newlines_are_skipped() {
    let t = transcript("psync-disk-7.0.bin");
    let fr = t.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let fr = fr + t[fr..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let fr = fr + t[fr..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut with = t[..fr].to_vec();
    with.extend_from_slice(b"\n\n\n");
    with.extend_from_slice(&t[fr..]);
    check(&drive(&[&with], Config::default()).unwrap(), false);
}

/// The error a server reply leads to; the same whichever byte it is split
/// at, and fed byte by byte.
fn refusal(reply: &[u8], config: Config) -> HandshakeError {
    let whole = drive(&[reply], config.clone())
        .err()
        .expect("handshake should fail");
    for at in 0..=reply.len() {
        let split = drive(&[&reply[..at], &reply[at..]], config.clone()).err();
        assert_eq!(split.as_ref(), Some(&whole), "split at {at}");
    }
    let bytes: Vec<&[u8]> = reply.chunks(1).collect();
    assert_eq!(drive(&bytes, config).err().as_ref(), Some(&whole));
    whole
}

#[test]
fn refusals_map_to_clear_errors() {
    let auth = Config {
        password: Some("secret".into()),
        ..Config::default()
    };
    assert_eq!(
        refusal(b"-NOAUTH Authentication required.\r\n", Config::default()),
        HandshakeError::AuthRequired
    );
    let e = refusal(
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        auth.clone(),
    );
    assert!(matches!(e, HandshakeError::AuthFailed(_)));
    assert!(!format!("{e} {e:?}").contains("secret"));
    let e = refusal(
        b"+OK\r\n+OK\r\n-ERR unknown command 'PSYNC'\r\n-ERR unknown command 'SYNC'\r\n",
        Config::default(),
    );
    assert!(matches!(e, HandshakeError::SyncRefused(_)), "{e:?}");
    assert!(e.to_string().contains("--mode scan"));
    let e = refusal(
        b"+OK\r\n+OK\r\n-NOPERM this user has no permissions to run the 'psync' command\r\n-NOPERM this user has no permissions to run the 'sync' command\r\n",
        Config::default(),
    );
    assert!(matches!(e, HandshakeError::NoPermission { .. }), "{e:?}");
    assert_eq!(
        refusal(
            b"+OK\r\n+OK\r\n-LOADING Redis is loading the dataset in memory\r\n",
            Config::default()
        ),
        HandshakeError::Loading
    );
    assert_eq!(
        refusal(
            b"+OK\r\n+OK\r\n-MASTERDOWN Link with MASTER is down\r\n",
            Config::default()
        ),
        HandshakeError::MasterDown
    );
    assert!(matches!(
        refusal(b"HTTP/1.1 400 Bad Request\r\n", Config::default()),
        HandshakeError::Protocol { .. }
    ));
    assert!(!format!("{auth:?}").contains("secret"));
}

#[test]
fn psync_refused_falls_back_to_sync() {
    let t = transcript("psync-disk-7.0.bin");
    // Replace the +FULLRESYNC line with a PSYNC refusal: SYNC answers with
    // the payload header directly.
    let fr = t.windows(11).position(|w| w == b"+FULLRESYNC").unwrap();
    let end = fr + t[fr..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut s = t[..fr].to_vec();
    s.extend_from_slice(b"-ERR unknown command 'PSYNC'\r\n");
    s.extend_from_slice(&t[end..]);
    let out = drive(&[&s], Config::default()).unwrap();
    assert_eq!(out.events[0], Event::FellBackToSync);
    assert!(matches!(out.events[1], Event::Payload(Framing::Length(_))));
    assert!(out.complete);
}

#[test]
fn rdb_only_refusal_is_reported_and_tolerated() {
    let t = transcript("psync-disk-7.0.bin");
    let mut s = b"+OK\r\n+OK\r\n-ERR Unrecognized REPLCONF option: rdb-only\r\n".to_vec();
    s.extend_from_slice(&t[10..]);
    let cfg = Config {
        rdb_only: true,
        ..Config::default()
    };
    let out = drive(&[&s], cfg).unwrap();
    assert!(matches!(&out.events[0], Event::OptionRefused { option, .. } if option == "rdb-only"));
    assert!(out.complete);
}

#[test]
fn truncated_payload_is_reported() {
    let mut r = PayloadReader::new(Framing::Length(100));
    r.feed(&[0u8; 40], &mut |_| {}).unwrap();
    assert!(
        r.handle_eof()
            .unwrap_err()
            .to_string()
            .contains("after 40 payload bytes, expected 100")
    );
    let mut r = PayloadReader::new(Framing::Eof([b'x'; 40]));
    r.feed(&[0u8; 100], &mut |_| {}).unwrap();
    assert!(r.handle_eof().is_err());
}

#[test]
fn eof_mark_never_delivered_and_short_payloads_work() {
    let mark = [b'm'; 40];
    for payload_len in [0usize, 1, 39, 40, 41, 100] {
        let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
        let mut stream = payload.clone();
        stream.extend_from_slice(&mark);
        for at in 0..=stream.len() {
            let mut r = PayloadReader::new(Framing::Eof(mark));
            let mut got = Vec::new();
            let a = r
                .feed(&stream[..at], &mut |b| got.extend_from_slice(b))
                .unwrap();
            let b = r
                .feed(&stream[at..], &mut |b| got.extend_from_slice(b))
                .unwrap();
            assert_eq!(a + b, stream.len());
            assert!(r.is_complete(), "len {payload_len} split {at}");
            assert_eq!(got, payload, "len {payload_len} split {at}");
        }
    }
}

#[test]
fn acks_after_eof_payload_about_every_second() {
    use std::time::{Duration, Instant};
    let mut r = PayloadReader::new(Framing::Eof([b'm'; 40]));
    let now = Instant::now();
    assert!(r.poll_ack(now, 7).is_none());
    r.feed(&[b'm'; 40], &mut |_| {}).unwrap();
    assert_eq!(
        r.poll_ack(now, 7).unwrap(),
        b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n7\r\n"
    );
    assert!(r.poll_ack(now + Duration::from_millis(500), 7).is_none());
    assert!(r.poll_ack(now + Duration::from_millis(1001), 7).is_some());
    let mut r = PayloadReader::new(Framing::Length(0));
    r.feed(&[], &mut |_| {}).unwrap();
    assert!(r.poll_ack(now, 0).is_none());
}

#[test]
fn version_is_announced_and_a_refusal_tolerated() {
    let cfg = Config {
        announce_version: Some(replvault_protocol::replica::ANNOUNCED_VALKEY_VERSION.into()),
        ..Config::default()
    };
    let mut hs = Handshake::new(cfg.clone());
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.extend(hs.poll_transmit().unwrap());
        hs.handle_input(b"+OK\r\n").unwrap();
    }
    assert!(
        sent.ends_with(b"*3\r\n$8\r\nREPLCONF\r\n$7\r\nversion\r\n$5\r\n9.0.0\r\n"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    // Redis has no `version` option: the handshake goes on to PSYNC.
    let t = transcript("psync-disk-7.0.bin");
    let mut s = b"+OK\r\n+OK\r\n-ERR Unrecognized REPLCONF option: version\r\n".to_vec();
    s.extend_from_slice(&t[10..]);
    let out = drive(&[&s], cfg).unwrap();
    assert!(matches!(&out.events[0], Event::OptionRefused { option, .. } if option == "version"));
    assert!(out.complete);
}
