//! Authenticating webhook requests: `X-api-key` and `X-Payload-Signature`.
//!
//! The vendor documents `X-Payload-Signature` as carrying the shared secret itself; senders
//! that sign send an HMAC-SHA256 of the raw body instead. Both are accepted. Every
//! comparison is constant-time, and no secret is ever formatted: [`Authenticator`] keeps
//! only digests and keyed HMAC states, and its `Debug` prints counts.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::forward::event::sha256;

pub const API_KEY_HEADER: &str = "x-api-key";
pub const SIGNATURE_HEADER: &str = "x-payload-signature";

/// Standard base64, with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a request is not authenticated. Every variant is a `401`; the text says which header
/// to fix and never echoes what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send {0}")]
    Missing(&'static str),
    #[error("the {0} header was sent more than once")]
    Duplicate(&'static str),
    #[error("the {0} header is empty")]
    Empty(&'static str),
    #[error("the X-api-key header does not match any configured API key")]
    WrongApiKey,
    #[error(
        "the X-Payload-Signature header is neither a configured shared secret nor an HMAC-SHA256 of the body under one"
    )]
    WrongSignature,
    #[error(
        "the X-Payload-Signature header carries the shared secret itself; this bridge accepts \
         only an HMAC-SHA256 of the body"
    )]
    RawSecretRefused,
}

impl AuthError {
    /// A stable label for logs and metrics.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing(_) => "missing",
            Self::Duplicate(_) => "duplicate_header",
            Self::Empty(_) => "empty_header",
            Self::WrongApiKey => "wrong_api_key",
            Self::WrongSignature => "wrong_signature",
            Self::RawSecretRefused => "raw_secret_refused",
        }
    }
}

/// How a request was authenticated, for the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ApiKey,
    SharedSecret,
    Hmac,
    /// `BRIDGE_ALLOW_UNAUTHENTICATED=true` and no credential configured.
    Unauthenticated,
}

impl AuthMethod {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::SharedSecret => "shared_secret",
            Self::Hmac => "hmac",
            Self::Unauthenticated => "none",
        }
    }
}

/// The credential headers of one request, read once. A malformed header (sent twice,
/// empty) is kept as its error: it only matters if that kind of credential is configured.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    api_key: Result<Option<&'a [u8]>, AuthError>,
    signature: Result<Option<&'a [u8]>, AuthError>,
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("api_key", &self.api_key.map(|v| v.map(|_| "[redacted]")))
            .field(
                "signature",
                &self.signature.map(|v| v.map(|_| "[redacted]")),
            )
            .finish()
    }
}

impl<'a> Presented<'a> {
    /// Reads both headers; duplicates and empty values become errors for later.
    #[must_use]
    pub fn from_headers(headers: &'a actix_web::http::header::HeaderMap) -> Self {
        Self {
            api_key: single(headers, API_KEY_HEADER, "X-api-key"),
            signature: single(headers, SIGNATURE_HEADER, "X-Payload-Signature"),
        }
    }
}

fn single<'a>(
    headers: &'a actix_web::http::header::HeaderMap,
    name: &str,
    display: &'static str,
) -> Result<Option<&'a [u8]>, AuthError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Duplicate(display));
    }
    let value = first.as_bytes().trim_ascii();
    if value.is_empty() {
        return Err(AuthError::Empty(display));
    }
    Ok(Some(value))
}

/// One shared secret, kept as what the checks need and nothing printable.
#[derive(Clone)]
struct SharedSecret {
    /// SHA-256 of the secret, compared in constant time with the header's SHA-256, so the
    /// comparison does not depend on where the two first differ nor on their lengths.
    digest: [u8; 32],
    /// The secret as an HMAC-SHA256 key, through aws-lc-rs, as it runs per request
    /// (docs/BENCHMARKS.md, "SHA-256 through aws-lc-rs").
    mac: hmac::Key,
}

/// Checks credentials against the configured secrets and keys.
#[derive(Clone)]
pub struct Authenticator {
    secrets: Vec<SharedSecret>,
    api_keys: Vec<[u8; 32]>,
    allow_unauthenticated: bool,
    /// `BRIDGE_REQUIRE_HMAC`: a body's HMAC is the only credential that proves the body
    /// came from the secret's holder; the raw secret, once seen, signs any body.
    require_hmac: bool,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("shared_secrets", &self.secrets.len())
            .field("api_keys", &self.api_keys.len())
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("require_hmac", &self.require_hmac)
            .finish()
    }
}

/// The checks that remain once the headers are seen, needing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Done(AuthMethod),
    /// The API key (if one was sent) matched, and the signature is shaped like an HMAC
    /// tag; whether it is one of the body needs the body. `key_verified`: a configured API
    /// key was sent and matched, so the sender is known before the body.
    Signature {
        key_verified: bool,
    },
}

impl Authenticator {
    #[must_use]
    pub fn new(
        shared_secrets: &[SecretString],
        api_keys: &[SecretString],
        allow_unauthenticated: bool,
    ) -> Self {
        let secrets = shared_secrets
            .iter()
            .map(|s| {
                let bytes = s.expose_secret().as_bytes();
                SharedSecret {
                    digest: sha256(bytes),
                    mac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
                }
            })
            .collect();
        let api_keys = api_keys
            .iter()
            .map(|k| sha256(k.expose_secret().as_bytes()))
            .collect();
        Self {
            secrets,
            api_keys,
            allow_unauthenticated,
            require_hmac: false,
        }
    }

    /// Accept only an HMAC-SHA256 of the body (`BRIDGE_REQUIRE_HMAC`): the raw shared
    /// secret is refused, and so is an API key without a signature.
    #[must_use]
    pub fn requiring_hmac(mut self, require: bool) -> Self {
        self.require_hmac = require;
        self
    }

    /// True when requests are let through without any credential.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.allow_unauthenticated && self.secrets.is_empty() && self.api_keys.is_empty()
    }

    /// The checks that need no body: called before the body is read, so a request without
    /// valid headers costs no body buffering. That includes the raw shared secret, and a
    /// signature that is not shaped like an HMAC tag: only a value that may be one leaves
    /// the decision to the body.
    ///
    /// Each header of a configured kind must be valid, and at least one must be there.
    /// A header of a kind that is not configured is ignored.
    pub fn check_headers(&self, presented: &Presented<'_>) -> Result<Pending, AuthError> {
        if self.is_open() {
            return Ok(Pending::Done(AuthMethod::Unauthenticated));
        }
        let api_key = if self.api_keys.is_empty() {
            None
        } else {
            presented.api_key?
        };
        let signature = if self.secrets.is_empty() {
            None
        } else {
            presented.signature?
        };
        if api_key.is_none() && signature.is_none() {
            return Err(AuthError::Missing(self.expected_headers()));
        }
        if self.require_hmac && signature.is_none() {
            return Err(AuthError::Missing(
                "an X-Payload-Signature header with an HMAC-SHA256 of the body",
            ));
        }
        if let Some(key) = api_key {
            let digest = sha256(key);
            let matched = self
                .api_keys
                .iter()
                .fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&digest));
            if !bool::from(matched) {
                return Err(AuthError::WrongApiKey);
            }
        }
        match signature {
            None => Ok(Pending::Done(AuthMethod::ApiKey)),
            Some(value) if self.is_raw_secret(value) => {
                if self.require_hmac {
                    Err(AuthError::RawSecretRefused)
                } else {
                    Ok(Pending::Done(AuthMethod::SharedSecret))
                }
            }
            Some(value) if decode_signature(value).is_some() => Ok(Pending::Signature {
                key_verified: api_key.is_some(),
            }),
            Some(_) => Err(AuthError::WrongSignature),
        }
    }

    /// Finishes authentication with the body, for requests that carry a signature.
    pub fn check_body(
        &self,
        presented: &Presented<'_>,
        pending: Pending,
        body: &[u8],
    ) -> Result<AuthMethod, AuthError> {
        match (pending, presented.signature) {
            (Pending::Done(method), _) => Ok(method),
            (Pending::Signature { .. }, Ok(Some(value))) => self.verify_signature(value, body),
            (Pending::Signature { .. }, _) => Err(AuthError::WrongSignature),
        }
    }

    /// The shared secret itself, as the vendor documents the header (constant-time).
    fn is_raw_secret(&self, value: &[u8]) -> bool {
        let digest = sha256(value);
        let raw = self.secrets.iter().fold(subtle::Choice::from(0), |acc, s| {
            acc | s.digest.ct_eq(&digest)
        });
        bool::from(raw)
    }

    fn verify_signature(&self, value: &[u8], body: &[u8]) -> Result<AuthMethod, AuthError> {
        let Some(tag) = decode_signature(value) else {
            return Err(AuthError::WrongSignature);
        };
        for secret in &self.secrets {
            // Constant-time comparison.
            if hmac::verify(&secret.mac, body, &tag).is_ok() {
                return Ok(AuthMethod::Hmac);
            }
        }
        Err(AuthError::WrongSignature)
    }

    fn expected_headers(&self) -> &'static str {
        match (self.api_keys.is_empty(), self.secrets.is_empty()) {
            (false, false) => "an X-api-key or X-Payload-Signature header",
            (false, true) => "an X-api-key header",
            _ => "an X-Payload-Signature header",
        }
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

/// The tag of an HMAC-SHA256 signature: hex (any case) or base64, optionally
/// `sha256=`-prefixed.
fn decode_signature(value: &[u8]) -> Option<[u8; 32]> {
    decode_tag(strip_prefix_ignore_case(value, b"sha256=").unwrap_or(value))
}

/// A 32-byte tag from 64 hex digits or from base64.
fn decode_tag(encoded: &[u8]) -> Option<[u8; 32]> {
    let mut tag = [0u8; 32];
    if encoded.len() == 64 && hex::decode_to_slice(encoded, &mut tag).is_ok() {
        return Some(tag);
    }
    let decoded = BASE64.decode(encoded).ok()?;
    tag.copy_from_slice(decoded.get(..32).filter(|_| decoded.len() == 32)?);
    Some(tag)
}

/// The value a signing sender puts in `X-Payload-Signature`: lowercase hex HMAC-SHA256.
#[must_use]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body))
}

#[cfg(test)]
mod tests;
