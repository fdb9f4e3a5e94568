//! `redis://` and `rediss://` URLs: where the server is and how to log in.

use std::fmt;

use super::SourceError;

/// A parsed server address with credentials.
#[derive(Clone)]
pub struct RedisTarget {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `rediss://`: connect with TLS.
    pub tls: bool,
    /// ACL user, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password.
        write!(f, "RedisTarget({})", self.redacted())
    }
}

impl RedisTarget {
    /// Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://...`.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let bad = |why: &str| {
            SourceError::InvalidUrl(format!(
                "{why} (expected redis://[user[:password]@]host[:port] or rediss://...)"
            ))
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(bad(&format!("unsupported scheme {other:?}"))),
        };
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("no host")),
        };
        let decode = |v: &str| {
            percent_decode(v).map_err(|()| bad("invalid percent-encoding in the credentials"))
        };
        let username = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?;
        // Application URLs often name a database (`/0`): accepted, since a
        // backup holds every database anyway. Anything else is a mistake.
        let db = url.path().trim_start_matches('/');
        if !db.bytes().all(|b| b.is_ascii_digit()) || url.path().matches('/').count() > 1 {
            return Err(bad(&format!(
                "unexpected path {:?}: only a database number may follow the port",
                url.path()
            )));
        }
        if url.query().is_some() {
            return Err(bad("query parameters are not supported"));
        }
        Ok(RedisTarget {
            host,
            port: url.port().unwrap_or(6379),
            tls,
            username,
            password,
        })
    }

    /// The address without secrets, for logs and manifests.
    pub fn redacted(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.username {
            Some(u) => format!("{scheme}://{u}@{host}:{}", self.port),
            None => format!("{scheme}://{host}:{}", self.port),
        }
    }
}

impl RedisTarget {
    /// The URL with its credentials, percent-encoded (to hand a node's
    /// address on inside the process; never for output).
    pub fn url_with_secrets(&self) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let scheme = if self.tls { "rediss" } else { "redis" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let creds = match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
            (None, Some(p)) => format!(":{}@", enc(p)),
            (Some(u), None) => format!("{}@", enc(u)),
            (None, None) => String::new(),
        };
        format!("{scheme}://{creds}{host}:{}", self.port)
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_secrets_parses_back() {
        for u in [
            "redis://b%40ck:p%40ss%3Aw@h:1",
            "rediss://:pw@[::1]:6380",
            "redis://h:7",
        ] {
            let t = RedisTarget::parse(u).unwrap();
            let again = RedisTarget::parse(&t.url_with_secrets()).unwrap();
            assert_eq!(
                (
                    again.host,
                    again.port,
                    again.tls,
                    again.username,
                    again.password
                ),
                (t.host, t.port, t.tls, t.username, t.password)
            );
        }
    }

    #[test]
    fn parses_and_redacts() {
        let t = RedisTarget::parse("redis://backup:p%40ss@db.example:6380").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("db.example", 6380, false)
        );
        assert_eq!(t.username.as_deref(), Some("backup"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.redacted(), "redis://backup@db.example:6380");
        assert!(!format!("{t:?}").contains("p@ss"));
        let t = RedisTarget::parse("rediss://:secret@[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 6379, true));
        assert_eq!(t.username, None);
        assert_eq!(t.redacted(), "rediss://[::1]:6379");
        assert!(RedisTarget::parse("http://x").is_err());
        assert!(RedisTarget::parse("localhost:6379").is_err());
    }

    #[test]
    fn a_database_number_is_accepted_and_nothing_else() {
        for ok in ["redis://h", "redis://h/", "redis://h:1/0", "redis://h/15"] {
            let t = RedisTarget::parse(ok).unwrap();
            assert_eq!(t.host, "h", "{ok}");
        }
        for bad in [
            "redis://h/x",
            "redis://h/0/1",
            "redis://h?db=1",
            "redis://h/0?x",
        ] {
            let e = RedisTarget::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid --redis URL"), "{bad}: {e}");
        }
    }
}
