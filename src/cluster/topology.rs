//! A Redis Cluster's shards as a node reports them: `CLUSTER SHARDS` (7.0
//! on), or `CLUSTER NODES` on older servers, and the node each backup reads
//! from.

use replvault_protocol::resp::Frame;

use crate::source::client::text;

/// Slots in a cluster.
pub const SLOTS: u32 = 16_384;

/// A node's role in its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The shard's primary.
    Primary,
    /// One of its replicas.
    Replica,
}

/// A node as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Node id (40 hex digits).
    pub id: String,
    /// Announced host.
    pub host: String,
    /// Announced port.
    pub port: u16,
    /// Announced TLS port (`CLUSTER SHARDS` gives both; before 7.0 and in
    /// `CLUSTER NODES` a TLS cluster announces its TLS port as `port`).
    pub tls_port: Option<u16>,
    /// Its role.
    pub role: Role,
    /// Replication offset, where the reply gives one.
    pub offset: i64,
    /// Not failed or unreachable as far as the asked node knows.
    pub healthy: bool,
}

/// A shard: its slot ranges and its nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    /// Inclusive slot ranges.
    pub slots: Vec<(u16, u16)>,
    /// Its primary first, then its replicas.
    pub nodes: Vec<Node>,
}

impl Shard {
    /// The shard's primary.
    pub fn primary(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.role == Role::Primary)
    }
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(f: &Frame) -> Vec<(String, &Frame)> {
    match f {
        Frame::Array(items) => items
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?)))
            .collect(),
        Frame::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => Vec::new(),
    }
}

/// Parses a `CLUSTER SHARDS` reply.
pub fn parse_shards(reply: &Frame) -> Result<Vec<Shard>, String> {
    let Frame::Array(shards) = reply else {
        return Err(format!("CLUSTER SHARDS answered {reply:?}"));
    };
    let mut out = Vec::new();
    for s in shards {
        let mut shard = Shard::default();
        for (k, v) in pairs(s) {
            match (k.as_str(), v) {
                ("slots", Frame::Array(bounds)) => {
                    let nums: Vec<u16> = bounds
                        .iter()
                        .filter_map(|b| text(b)?.parse().ok())
                        .collect();
                    if nums.len() != bounds.len() || nums.len() % 2 != 0 {
                        return Err("CLUSTER SHARDS gave an odd slot list".into());
                    }
                    shard.slots = nums.chunks(2).map(|c| (c[0], c[1])).collect();
                }
                ("nodes", Frame::Array(nodes)) => {
                    for n in nodes {
                        let mut node = Node {
                            id: String::new(),
                            host: String::new(),
                            port: 0,
                            tls_port: None,
                            role: Role::Replica,
                            offset: 0,
                            healthy: false,
                        };
                        let mut endpoint = None;
                        for (k, v) in pairs(n) {
                            let t = text(v).unwrap_or_default();
                            match k.as_str() {
                                "id" => node.id = t,
                                "ip" => node.host = t,
                                "endpoint" => endpoint = Some(t),
                                "port" => node.port = t.parse().unwrap_or(0),
                                "tls-port" => node.tls_port = t.parse().ok(),
                                "role" => {
                                    node.role = if t == "master" {
                                        Role::Primary
                                    } else {
                                        Role::Replica
                                    }
                                }
                                "replication-offset" => node.offset = t.parse().unwrap_or(0),
                                "health" => node.healthy = t == "online",
                                _ => {}
                            }
                        }
                        // The endpoint is what clients are told to use
                        // (a hostname, or "?" when unknown).
                        if let Some(e) = endpoint.filter(|e| !e.is_empty() && e != "?") {
                            node.host = e;
                        }
                        shard.nodes.push(node);
                    }
                }
                _ => {}
            }
        }
        shard.nodes.sort_by_key(|n| n.role != Role::Primary);
        out.push(shard);
    }
    Ok(out)
}

/// Parses a `CLUSTER NODES` reply (every version).
pub fn parse_nodes(text: &str) -> Result<Vec<Shard>, String> {
    let mut primaries: Vec<(String, Shard)> = Vec::new();
    let mut replicas: Vec<(String, Node)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("CLUSTER NODES line {line:?}"));
        }
        // ip:port@cport[,hostname]
        let addr = f[1].split('@').next().unwrap_or("");
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("CLUSTER NODES address {:?}", f[1]))?;
        let hostname = f[1]
            .split_once(',')
            .map(|(_, h)| h)
            .filter(|h| !h.is_empty());
        let flags: Vec<&str> = f[2].split(',').collect();
        let healthy = !flags
            .iter()
            .any(|x| matches!(*x, "fail" | "fail?" | "noaddr" | "handshake" | "nofailover"))
            && f[7] == "connected"
            || flags.contains(&"myself");
        let node = Node {
            id: f[0].to_string(),
            host: hostname.unwrap_or(host).to_string(),
            port: port.parse().unwrap_or(0),
            tls_port: None,
            role: if flags.contains(&"master") {
                Role::Primary
            } else {
                Role::Replica
            },
            offset: 0,
            healthy,
        };
        if node.role == Role::Primary {
            let mut slots = Vec::new();
            for s in &f[8..] {
                // Importing/migrating markers: `[slot-<-id]`, `[slot->-id]`.
                if s.starts_with('[') {
                    continue;
                }
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
                    return Err(format!("CLUSTER NODES slots {s:?}"));
                };
                slots.push((a, b));
            }
            primaries.push((
                node.id.clone(),
                Shard {
                    slots,
                    nodes: vec![node],
                },
            ));
        } else {
            replicas.push((f[3].to_string(), node));
        }
    }
    for (master, node) in replicas {
        if let Some((_, s)) = primaries.iter_mut().find(|(id, _)| *id == master) {
            s.nodes.push(node);
        }
    }
    Ok(primaries.into_iter().map(|(_, s)| s).collect())
}

/// Shards that own slots, and the slots nobody owns (as ranges).
pub fn coverage(shards: &[Shard]) -> Vec<(u16, u16)> {
    let mut owned = vec![false; SLOTS as usize];
    for s in shards {
        for &(a, b) in &s.slots {
            for slot in a..=b.min((SLOTS - 1) as u16) {
                owned[slot as usize] = true;
            }
        }
    }
    let mut missing = Vec::new();
    let mut start = None;
    for (i, &o) in owned.iter().enumerate() {
        match (o, start) {
            (false, None) => start = Some(i as u16),
            (true, Some(s)) => {
                missing.push((s, i as u16 - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        missing.push((s, (SLOTS - 1) as u16));
    }
    missing
}

/// `0-5460,5461` style text of slot ranges.
pub fn ranges_text(r: &[(u16, u16)]) -> String {
    r.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `FROM=TO` rewrites of announced `host:port` addresses (NAT, containers).
#[derive(Clone, Debug, Default)]
pub struct AddressMap(pub Vec<(String, String)>);

impl AddressMap {
    /// Parses `FROM=TO` pairs, each `host:port`.
    pub fn parse(pairs: &[String]) -> Result<AddressMap, String> {
        let mut out = Vec::new();
        for p in pairs {
            let (from, to) = p.split_once('=').ok_or_else(|| {
                format!("--cluster-address-map {p:?}: expected FROM=TO (host:port=host:port)")
            })?;
            for side in [from, to] {
                if side
                    .rsplit_once(':')
                    .is_none_or(|(_, port)| port.parse::<u16>().is_err())
                {
                    return Err(format!(
                        "--cluster-address-map {p:?}: {side:?} is not host:port"
                    ));
                }
            }
            out.push((from.to_string(), to.to_string()));
        }
        Ok(AddressMap(out))
    }

    /// Where to connect for an announced address.
    pub fn apply(&self, host: &str, port: u16) -> (String, u16) {
        let announced = format!("{host}:{port}");
        for (from, to) in &self.0 {
            if *from == announced
                && let Some((h, p)) = to.rsplit_once(':')
                && let Ok(p) = p.parse()
            {
                return (h.to_string(), p);
            }
        }
        (host.to_string(), port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
8c39 127.0.0.1:7106@17106 slave d02e 0 1 2 connected
3325 127.0.0.1:7105@17105 slave b80c 0 1 1 connected
31d9 127.0.0.1:7103@17103 master - 0 1 3 connected 10923-16383
e81c 127.0.0.1:7104@17104 slave,fail 31d9 0 1 3 disconnected
d02e 10.0.0.2:7102@17102,node2.example master - 0 1 2 connected 5461-10921 10922 [10922->-31d9]
b80c 127.0.0.1:7101@17101 myself,master - 0 1 1 connected 0-5460
";

    #[test]
    fn cluster_nodes_parse_into_shards() {
        let shards = parse_nodes(NODES).expect("valid");
        assert_eq!(shards.len(), 3);
        let s2 = shards
            .iter()
            .find(|s| s.primary().is_some_and(|p| p.port == 7102))
            .unwrap();
        assert_eq!(s2.slots, [(5461, 10921), (10922, 10922)]);
        assert_eq!(s2.primary().unwrap().host, "node2.example");
        assert_eq!(s2.nodes[1].port, 7106);
        let s3 = shards
            .iter()
            .find(|s| s.primary().is_some_and(|p| p.port == 7103))
            .unwrap();
        assert!(!s3.nodes[1].healthy, "a failed replica is not healthy");
        assert!(coverage(&shards).is_empty());
        assert_eq!(coverage(&shards[..2]), coverage(&shards[..2]));
        let without_first: Vec<Shard> = shards
            .iter()
            .filter(|s| s.primary().is_some_and(|p| p.port != 7101))
            .cloned()
            .collect();
        assert_eq!(coverage(&without_first), [(0, 5460)]);
        assert_eq!(ranges_text(&[(0, 5460), (7, 7)]), "0-5460,7");
    }

    #[test]
    fn cluster_shards_parse() {
        let b = |s: &str| Frame::Bulk(s.as_bytes().to_vec());
        let node = |id: &str, port: i64, role: &str, health: &str| {
            Frame::Array(vec![
                b("id"),
                b(id),
                b("port"),
                Frame::Integer(port),
                b("ip"),
                b("127.0.0.1"),
                b("endpoint"),
                b("127.0.0.1"),
                b("role"),
                b(role),
                b("replication-offset"),
                Frame::Integer(14),
                b("health"),
                b(health),
            ])
        };
        let reply = Frame::Array(vec![Frame::Array(vec![
            b("slots"),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(5460)]),
            b("nodes"),
            Frame::Array(vec![
                node("r", 7104, "replica", "online"),
                node("p", 7101, "master", "online"),
            ]),
        ])]);
        let shards = parse_shards(&reply).expect("valid");
        assert_eq!(shards[0].slots, [(0, 5460)]);
        assert_eq!(shards[0].nodes[0].id, "p", "the primary comes first");
        assert!(shards[0].nodes[1].healthy && shards[0].nodes[1].offset == 14);
        assert_eq!(shards[0].nodes[0].tls_port, None);

        // A TLS cluster names both ports.
        let mut tls = node("t", 7101, "master", "online");
        if let Frame::Array(fields) = &mut tls {
            fields.extend([b("tls-port"), Frame::Integer(8101)]);
        }
        let reply = Frame::Array(vec![Frame::Array(vec![
            b("slots"),
            Frame::Array(vec![Frame::Integer(0), Frame::Integer(16383)]),
            b("nodes"),
            Frame::Array(vec![tls]),
        ])]);
        let shards = parse_shards(&reply).expect("valid");
        assert_eq!(shards[0].nodes[0].port, 7101);
        assert_eq!(shards[0].nodes[0].tls_port, Some(8101));
    }

    #[test]
    fn address_map_rewrites_announced_addresses() {
        let m = AddressMap::parse(&["10.0.0.2:7102=127.0.0.1:17102".into()]).expect("valid");
        assert_eq!(m.apply("10.0.0.2", 7102), ("127.0.0.1".into(), 17102));
        assert_eq!(m.apply("10.0.0.3", 7102), ("10.0.0.3".into(), 7102));
        assert!(AddressMap::parse(&["a=b".into()]).is_err());
    }
}
