//! Connecting to the server: TCP, or TLS with rustls (ring provider), with
//! a connect timeout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::SourceError;
use super::url::RedisTarget;

/// A byte stream to the server, plain or TLS.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A connection to the server.
pub type Connection = Box<dyn AsyncStream>;

/// How to connect.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Give up after this long.
    pub connect_timeout: Duration,
    /// CA bundle (PEM) instead of the web PKI roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Name to verify and send as SNI instead of the URL host.
    pub tls_server_name: Option<String>,
    /// Client certificate chain (PEM).
    pub tls_cert_file: Option<PathBuf>,
    /// Client private key (PEM).
    pub tls_key_file: Option<PathBuf>,
}

fn tls_err(what: impl std::fmt::Display) -> SourceError {
    SourceError::Tls(what.to_string())
}

fn tls_config(opts: &ConnectOptions) -> Result<rustls::ClientConfig, SourceError> {
    let mut roots = rustls::RootCertStore::empty();
    match &opts.tls_ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_err(format!("cannot read CA file {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert
                    .map_err(|e| tls_err(format!("bad certificate in {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| {
                    tls_err(format!("bad CA certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(tls_err(format!(
                    "no certificates in CA file {}",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_err)?
    .with_root_certificates(roots);
    match (&opts.tls_cert_file, &opts.tls_key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| {
                    tls_err(format!(
                        "cannot read client certificate {}: {e}",
                        cert.display()
                    ))
                })?
                .collect::<Result<_, _>>()
                .map_err(|e| tls_err(format!("bad client certificate {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_err(format!("cannot read client key {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(tls_err)
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Connects to `target`, with TLS for `rediss://`.
pub async fn connect(
    target: &RedisTarget,
    opts: &ConnectOptions,
) -> Result<Connection, SourceError> {
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = tokio::time::timeout(
        opts.connect_timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| SourceError::ConnectTimeout {
        addr: target.redacted(),
        after: opts.connect_timeout,
    })?
    .map_err(|source| SourceError::Connect {
        addr: target.redacted(),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    if !target.tls {
        return Ok(Box::new(tcp));
    }
    let config = tls_config(opts)?;
    let name = opts
        .tls_server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| tls_err(format!("invalid TLS server name {name:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(opts.connect_timeout, connector.connect(server_name, tcp))
        .await
        .map_err(|_| SourceError::ConnectTimeout {
            addr: target.redacted(),
            after: opts.connect_timeout,
        })?
        .map_err(|e| tls_err(format!("TLS handshake with {addr} failed: {e}")))?;
    Ok(Box::new(tls))
}
