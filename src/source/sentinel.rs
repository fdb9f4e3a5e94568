//! Sentinel discovery: `sentinel://[user:pass@]H1:P1,H2:P2/MASTER` names a
//! set of sentinels and a master; the first sentinel that answers says
//! where the master and its replicas are, and the backup is taken from a
//! healthy replica (or the primary).
//!
//! The URL's credentials are the data nodes'; `--sentinel-password` is the
//! sentinels'. `sentinels://` speaks TLS to sentinels and nodes alike, with
//! the same `--tls-*` settings.

use replvault_protocol::resp::Frame;

use super::client::text;

use super::client::Client;
use super::{RedisTarget, SourceError, SourceOptions, connect};

/// Which node to back up from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// A healthy replica (its link to the primary up), else the primary
    /// with a warning, so the primary does not fork.
    Replica,
    /// The primary.
    Primary,
}

/// A parsed `sentinel://` URL.
#[derive(Clone)]
pub struct SentinelUrl {
    /// The sentinels, in the order given.
    pub sentinels: Vec<(String, u16)>,
    /// The master's name.
    pub master: String,
    /// TLS to sentinels and nodes.
    pub tls: bool,
    /// The data nodes' user.
    pub username: Option<String>,
    /// The data nodes' password.
    pub password: Option<String>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl SentinelUrl {
    /// True if `s` is a Sentinel URL.
    pub fn is_sentinel(s: &str) -> bool {
        s.starts_with("sentinel://") || s.starts_with("sentinels://")
    }

    /// Parses `sentinel[s]://[user[:password]@]host:port[,host:port...]/master`.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let bad = |why: &str| {
            SourceError::InvalidUrl(format!(
                "{why} (expected sentinel://[user[:password]@]host:port[,host:port...]/MASTERNAME)"
            ))
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("sentinels://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("sentinel://") {
            (false, r)
        } else {
            return Err(bad("not a sentinel:// URL"));
        };
        let (hosts_part, master) = rest
            .rsplit_once('/')
            .ok_or_else(|| bad("no master name after the hosts"))?;
        if master.is_empty() {
            return Err(bad("an empty master name"));
        }
        let (creds, hosts) = match hosts_part.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, hosts_part),
        };
        // The credentials parse as a redis:// URL's, with one placeholder host.
        let (username, password) = match creds {
            Some(c) => {
                let t = RedisTarget::parse(&format!("redis://{c}@placeholder"))?;
                (t.username, t.password)
            }
            None => (None, None),
        };
        let mut sentinels = Vec::new();
        for h in hosts.split(',').filter(|h| !h.is_empty()) {
            let t = RedisTarget::parse(&format!("redis://{h}"))
                .map_err(|_| bad(&format!("invalid sentinel address {h:?}")))?;
            let port = if h
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                t.port
            } else {
                26379
            };
            sentinels.push((t.host, port));
        }
        if sentinels.is_empty() {
            return Err(bad("no sentinel address"));
        }
        Ok(SentinelUrl {
            sentinels,
            master: master.to_string(),
            tls,
            username,
            password,
        })
    }
}

/// A replica as a sentinel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Replica {
    host: String,
    port: u16,
    flags: String,
    link: String,
    offset: i64,
}

impl Replica {
    fn healthy(&self) -> bool {
        // Port 0 is a replica nobody can connect to, like replvault's own
        // stream archiver.
        self.port != 0
            && self.link == "ok"
            && !self
                .flags
                .split(',')
                .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
    }
}

fn fields(f: &Frame) -> Vec<(String, String)> {
    match f {
        Frame::Array(items) => items
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?)))
            .collect(),
        Frame::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        _ => Vec::new(),
    }
}

fn parse_replicas(f: &Frame) -> Vec<Replica> {
    let Frame::Array(items) = f else {
        return Vec::new();
    };
    items
        .iter()
        .map(|r| {
            let mut rep = Replica::default();
            for (k, v) in fields(r) {
                match k.as_str() {
                    "ip" => rep.host = v,
                    "port" => rep.port = v.parse().unwrap_or(0),
                    "flags" => rep.flags = v,
                    "master-link-status" => rep.link = v,
                    "slave-repl-offset" => rep.offset = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            rep
        })
        .collect()
}

/// Asks the sentinels, in order, where to connect for `role`.
pub async fn discover(
    url: &SentinelUrl,
    opts: &SourceOptions,
    role: NodeRole,
) -> Result<RedisTarget, SourceError> {
    let mut errors = Vec::new();
    for (host, port) in &url.sentinels {
        let sentinel = RedisTarget {
            host: host.clone(),
            port: *port,
            tls: url.tls,
            username: None,
            password: opts.sentinel_password.clone(),
        };
        match ask(&sentinel, url, opts, role).await {
            Ok(t) => return Ok(t),
            Err(e) => {
                tracing::warn!(sentinel = %sentinel.redacted(), error = %e, "sentinel did not answer; trying the next");
                errors.push(format!("{}: {e}", sentinel.redacted()));
            }
        }
    }
    Err(SourceError::Sentinel(format!(
        "no sentinel could say where master {:?} is: {}",
        url.master,
        errors.join("; ")
    )))
}

async fn ask(
    sentinel: &RedisTarget,
    url: &SentinelUrl,
    opts: &SourceOptions,
    role: NodeRole,
) -> Result<RedisTarget, SourceError> {
    let conn = connect(sentinel, &opts.connect).await?;
    let mut c = Client::new(
        conn,
        opts.connect
            .connect_timeout
            .max(std::time::Duration::from_secs(5)),
    );
    if let Some(pw) = &sentinel.password {
        if let Frame::Error(e) = c.call(&[b"AUTH", pw.as_bytes()]).await? {
            return Err(SourceError::Sentinel(format!(
                "AUTH refused ({e}): check --sentinel-password"
            )));
        }
    }
    let node = |host: String, port: u16| RedisTarget {
        host,
        port,
        tls: url.tls,
        username: url.username.clone(),
        password: url.password.clone(),
    };
    let master = match c
        .call(&[
            b"SENTINEL",
            b"GET-MASTER-ADDR-BY-NAME",
            url.master.as_bytes(),
        ])
        .await?
    {
        Frame::Array(a) if a.len() == 2 => {
            let host = text(&a[0]).unwrap_or_default();
            let port = text(&a[1]).and_then(|p| p.parse().ok()).unwrap_or(0);
            node(host, port)
        }
        Frame::Null | Frame::Array(_) => {
            return Err(SourceError::Sentinel(format!(
                "it monitors no master named {:?}",
                url.master
            )));
        }
        Frame::Error(e) => return Err(SourceError::Sentinel(e)),
        other => return Err(SourceError::Sentinel(format!("unexpected reply {other:?}"))),
    };
    if role == NodeRole::Primary {
        c.close().await;
        return Ok(master);
    }
    let replicas = match c
        .call(&[b"SENTINEL", b"REPLICAS", url.master.as_bytes()])
        .await?
    {
        // Before Redis 5 the command was SENTINEL SLAVES.
        Frame::Error(e) if e.to_ascii_uppercase().contains("UNKNOWN") => {
            c.call(&[b"SENTINEL", b"SLAVES", url.master.as_bytes()])
                .await?
        }
        other => other,
    };
    c.close().await;
    let best = parse_replicas(&replicas)
        .into_iter()
        .filter(Replica::healthy)
        .max_by_key(|r| r.offset);
    Ok(match best {
        Some(r) => node(r.host, r.port),
        None => {
            tracing::warn!(master = %url.master, primary = %master.redacted(), "no healthy replica: backing up from the primary (it will fork)");
            master
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u =
            SentinelUrl::parse("sentinel://backup:p%40ss@10.0.0.1:26379,s2,[::1]:26380/mymaster")
                .expect("valid");
        assert_eq!(
            u.sentinels,
            [
                ("10.0.0.1".to_string(), 26379),
                ("s2".to_string(), 26379),
                ("::1".to_string(), 26380)
            ]
        );
        assert_eq!(u.master, "mymaster");
        assert_eq!(u.username.as_deref(), Some("backup"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert!(!u.tls);
        assert!(!format!("{u:?}").contains("p@ss"));
        assert!(SentinelUrl::parse("sentinels://h:1/m").expect("valid").tls);
        for bad in [
            "sentinel://h:1",
            "sentinel://h:1/",
            "sentinel:///m",
            "redis://h/m",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_reachable_replicas_with_their_link_up_are_healthy() {
        let r = |port, flags: &str, link: &str| Replica {
            host: "h".into(),
            port,
            flags: flags.into(),
            link: link.into(),
            offset: 0,
        };
        assert!(r(6380, "slave", "ok").healthy());
        assert!(!r(6380, "s_down,slave", "ok").healthy());
        assert!(!r(6380, "slave,disconnected", "ok").healthy());
        assert!(!r(6380, "slave", "err").healthy());
        assert!(!r(0, "slave", "ok").healthy());
    }

    #[test]
    fn replicas_reply_parses_in_resp2_and_resp3() {
        let kv = |k: &str, v: &str| [Frame::Bulk(k.into()), Frame::Bulk(v.into())];
        let one: Vec<Frame> = [
            kv("ip", "10.0.0.2"),
            kv("port", "6380"),
            kv("flags", "slave"),
            kv("master-link-status", "ok"),
            kv("slave-repl-offset", "42"),
        ]
        .concat();
        let got = parse_replicas(&Frame::Array(vec![Frame::Array(one)]));
        assert_eq!(
            got,
            [Replica {
                host: "10.0.0.2".into(),
                port: 6380,
                flags: "slave".into(),
                link: "ok".into(),
                offset: 42
            }]
        );
    }
}
