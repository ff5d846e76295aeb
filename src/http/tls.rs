//! Native HTTPS with rustls, from `BRIDGE_TLS_CERT` / `BRIDGE_TLS_KEY` (PEM files).
//! Without them the bridge serves plain HTTP, for use behind a TLS-terminating load
//! balancer.
//!
//! The files are watched: certificates are renewed every few weeks (ACME, cert-manager),
//! and a bridge that kept serving the old one would fail every handshake once it expired.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, TlsFiles};

/// Loads the certificate chain and key into a server configuration with rustls's safe
/// defaults (TLS 1.3 and 1.2 with modern cipher suites only, aws-lc-rs crypto). The files
/// are looked at again at most every `files.reload`, from a handshake; when they changed,
/// the new pair is served from then on, or, if it is unusable, the old one still is.
///
/// Unusable files are a [`ConfigError`] naming `BRIDGE_TLS_CERT` or `BRIDGE_TLS_KEY`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, ConfigError> {
    let (cert, key) = (files.cert.as_path(), files.key.as_path());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // Stamped before reading, so files replaced meanwhile are read again.
    let seen = stamp(cert, key);
    let current = load(cert, key, &provider)?;
    let resolver = ReloadingCertificate {
        cert: cert.to_owned(),
        key: key.to_owned(),
        provider: Arc::clone(&provider),
        every: files.reload,
        current: RwLock::new(Arc::new(current)),
        watch: Mutex::new(Watch {
            checked: Instant::now(),
            seen,
        }),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("BRIDGE_TLS_CERT", e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads and checks one certificate chain and its key.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, ConfigError> {
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
    CertifiedKey::from_der(certs, private_key, provider).map_err(|e| {
        ConfigError::new(
            "BRIDGE_TLS_KEY",
            format!("does not match the certificate or is unusable: {e}"),
        )
    })
}

/// What identifies a version of the two files: modification time, length and (on Unix)
/// inode of each, `None` while either can't be read. A renamed-into-place file, or a
/// Kubernetes secret's symlink swap, changes it.
type Stamp = Option<[(SystemTime, u64, u64); 2]>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some((meta.modified().ok()?, meta.len(), inode))
    };
    Some([one(cert)?, one(key)?])
}

/// When the files were last looked at, and what they were then.
struct Watch {
    checked: Instant,
    seen: Stamp,
}

/// Serves the current certificate; one handshake at a time looks for new files.
struct ReloadingCertificate {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    every: Duration,
    current: RwLock<Arc<CertifiedKey>>,
    watch: Mutex<Watch>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertificate {
    /// Loads the files if they changed since last seen. A failure is logged once per
    /// change of the files, and the certificate in use stays.
    fn refresh(&self) {
        // Handshakes that find another one checking go on with the current certificate.
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if watch.checked.elapsed() < self.every {
            return;
        }
        watch.checked = Instant::now();
        let now = stamp(&self.cert, &self.key);
        if now == watch.seen {
            return;
        }
        watch.seen = now;
        match load(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
                tracing::info!(
                    cert = %self.cert.display(),
                    "TLS certificate reloaded: new handshakes get the new one"
                );
            }
            Err(e) => tracing::error!(
                error = %e,
                "the TLS certificate files changed but can't be used; still serving the previous certificate"
            ),
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// A client configuration for the `healthcheck` subcommand, which asks this process's own
/// listener on loopback whether it serves. The certificate is for the public name, not
/// for `127.0.0.1`, and may be private, so it is not verified against names or roots;
/// the handshake's signatures still are. Nothing secret is sent over it.
#[must_use]
pub(crate) fn loopback_client_config() -> rustls::ClientConfig {
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
