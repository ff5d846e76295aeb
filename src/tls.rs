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
