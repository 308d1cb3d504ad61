//! TLS to the warehouse, with libpq's `sslmode` meanings (as the Postgres CDC
//! source's `tls.rs`, from which this is taken: a connector crate depends on
//! no other). tokio-postgres knows only disable/prefer/require and leaves
//! certificate checks to the TLS connector, so the checks `verify-ca` and
//! `verify-full` ask for are made here:
//! - `prefer`, `require`: encrypted; the certificate is not checked (as libpq
//!   without a root certificate).
//! - `verify-ca`: the chain must lead to `sslrootcert`.
//! - `verify-full`: that, and the certificate must name the host.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sluice_api::{ConnectError, ErrorKind};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::SslMode;

fn config_error(message: String) -> ConnectError {
    ConnectError::new(ErrorKind::Config, message)
}

/// The TLS connector for `sslmode`, or `None` for `disable`.
pub fn connector(
    sslmode: SslMode,
    rootcert: Option<&str>,
) -> Result<Option<MakeRustlsConnect>, ConnectError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = match sslmode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => None,
        SslMode::VerifyCa | SslMode::VerifyFull => {
            // The config refuses verify-* without sslrootcert.
            let path = rootcert.ok_or_else(|| {
                config_error(
                    "connection.url: sslmode=verify-ca or verify-full needs sslrootcert".into(),
                )
            })?;
            Some(chain_verifier(path, provider.clone())?)
        }
    };
    let verifier = Verifier {
        chain,
        check_name: sslmode == SslMode::VerifyFull,
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::fatal(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// A verifier of chains to the CAs in the PEM file at `path`.
fn chain_verifier(
    path: &str,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, ConnectError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
        config_error(format!(
            "connection.url: sslrootcert: cannot read {path}: {e}"
        ))
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| {
            config_error(format!(
                "connection.url: sslrootcert: {path} is not PEM: {e}"
            ))
        })?;
        roots.add(cert).map_err(|e| {
            config_error(format!(
                "connection.url: sslrootcert: a certificate in {path}: {e}"
            ))
        })?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| config_error(format!("connection.url: sslrootcert: {path}: {e}")))
}

/// Whether a connection failed in its TLS handshake because of the server's
/// certificate (an untrusted CA, another host's name, expired): a setting to
/// fix, not an outage to wait out.
pub fn is_certificate_error(e: &tokio_postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        // tokio-rustls wraps rustls's error in an io::Error, whose `source`
        // skips it.
        let inner = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map_or(c, |i| i as &(dyn std::error::Error + 'static));
        if matches!(
            inner.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_))
        ) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The server's certificate as `sslmode` asks: not at all (`chain` is
/// `None`), its chain, or its chain and name. The handshake's signatures are
/// always checked, so the session is encrypted to the key's holder.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
