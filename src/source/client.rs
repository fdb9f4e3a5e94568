//! A RESP client over one connection, with pipelining: scan mode's and
//! Sentinel discovery's way to send commands and read replies.

use std::time::Duration;

use bytes::BytesMut;
use replvault_protocol::replica::HandshakeError;
use replvault_protocol::resp::{self, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SourceError;
use super::conn::Connection;

/// A RESP client over one connection, with pipelining.
pub(crate) struct Client {
    conn: Connection,
    buf: BytesMut,
    out: Vec<u8>,
    idle: Duration,
}

impl Client {
    /// A client on `conn` that gives up after `idle` without a reply.
    pub(crate) fn new(conn: Connection, idle: Duration) -> Self {
        Client {
            conn,
            buf: BytesMut::new(),
            out: Vec::new(),
            idle,
        }
    }

    pub(crate) fn queue(&mut self, args: &[&[u8]]) {
        resp::encode_command(args, &mut self.out);
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SourceError> {
        self.conn
            .write_all(&self.out)
            .await
            .map_err(|source| SourceError::Io { bytes: 0, source })?;
        self.out.clear();
        Ok(())
    }

    pub(crate) async fn read(&mut self, command: &str) -> Result<Frame, SourceError> {
        loop {
            match resp::decode(&self.buf) {
                Ok(Some((frame, used))) => {
                    let _ = self.buf.split_to(used);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(HandshakeError::Protocol {
                        command: command.to_string(),
                        reply: format!("{e:?}"),
                    }
                    .into());
                }
            }
            self.buf.reserve(64 * 1024);
            let n = match tokio::time::timeout(self.idle, self.conn.read_buf(&mut self.buf)).await {
                Err(_) => {
                    return Err(SourceError::IdleTimeout {
                        after: self.idle,
                        bytes: 0,
                    });
                }
                Ok(Err(source)) => return Err(SourceError::Io { bytes: 0, source }),
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                return Err(HandshakeError::Closed(command.to_string()).into());
            }
        }
    }

    pub(crate) async fn call(&mut self, args: &[&[u8]]) -> Result<Frame, SourceError> {
        self.queue(args);
        self.flush().await?;
        let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        self.read(&name).await
    }

    /// Closes the connection.
    pub(crate) async fn close(mut self) {
        let _ = self.conn.shutdown().await;
    }
}

/// A reply's text: a bulk or simple string, or an integer as digits.
pub(crate) fn text(f: &Frame) -> Option<String> {
    match f {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        Frame::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}
