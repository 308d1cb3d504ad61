//! HTTPS for the REST API: a listener that completes the TLS handshake before
//! handing the connection to axum. Certificates and key are PEM files named by
//! `listeners.https.ssl.certificate.location` and `listeners.https.ssl.key.location`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::WorkerConfig;

pub const CERT_KEY: &str = "listeners.https.ssl.certificate.location";
pub const KEY_KEY: &str = "listeners.https.ssl.key.location";

/// How long a client may take over its handshake before it is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: &WorkerConfig) -> Result<Self, String> {
        let path = |key: &str| {
            config
                .get(key)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("'{key}': required for an https listener"))
        };
        let (cert_path, key_path) = (path(CERT_KEY)?, path(KEY_KEY)?);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("'{CERT_KEY}': cannot read certificates from {cert_path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("'{CERT_KEY}': {cert_path} holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| format!("'{KEY_KEY}': cannot read a private key from {key_path}: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("'{KEY_KEY}': the key does not fit the certificate: {e}"))?;
        Ok(Self {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("REST accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::debug!(peer = %addr, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
