//! Native HTTPS with rustls, from `BRIDGE_TLS_CERT` / `BRIDGE_TLS_KEY` (PEM files).
//! Without them the bridge serves plain HTTP, for use behind a TLS-terminating load
//! balancer.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

/// Loads the certificate chain and key into a server configuration with rustls's safe
/// defaults (TLS 1.3 and 1.2 with modern cipher suites only, aws-lc-rs crypto).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| {
            ConfigError::new(
                "BRIDGE_TLS_CERT",
                format!("can't read PEM certificates from {}: {e}", cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            "BRIDGE_TLS_CERT",
            format!("{} holds no certificate", cert.display()),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ConfigError::new(
            "BRIDGE_TLS_KEY",
            format!("can't read a PEM private key from {}: {e}", key.display()),
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::new("BRIDGE_TLS_CERT", e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, private_key)
    .map_err(|e| {
        ConfigError::new(
            "BRIDGE_TLS_KEY",
            format!("does not match the certificate or is unusable: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration for the `healthcheck` subcommand, which asks this process's own
/// listener on loopback whether it serves. The certificate is for the public name, not
/// for `127.0.0.1`, and may be private, so it is not verified against names or roots;
/// the handshake's signatures still are. Nothing secret is sent over it.
#[must_use]
pub fn loopback_client_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // No ALPN here: hyper-rustls refuses a configuration that sets its own.
    rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the safe default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(OwnCertificate(provider)))
        .with_no_client_auth()
}

/// Accepts whatever certificate the bridge's own listener presents (see
/// [`loopback_client_config`]).
#[derive(Debug)]
struct OwnCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
