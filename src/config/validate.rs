//! The layered settings checked and parsed into a [`Config`], in the order the
//! settings are listed, so the first error is always the same one. Every error names
//! the setting as it was given (see `Layered::given`), never its value when that may
//! be a secret.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::settings::{Layered, List};
use super::{Config, ConfigError, Listener, LogFormat, SpoolSettings, TlsFiles};
use crate::forward::group::GroupBy;
use crate::forward::keys::EventSetupId;
use crate::http::access::{self, SourcePolicy};
use crate::http::unverified_share;
use crate::sqs::limits::MAX_BODY_BYTES;

pub(super) fn config(layers: &Layered) -> Result<Config, ConfigError> {
    let queue_url = {
        let Some((url, source)) = layers.given("BRIDGE_QUEUE_URL", |s| s.queue_url.as_ref()) else {
            return Err(ConfigError::new(
                "BRIDGE_QUEUE_URL",
                "is required: the URL of the SQS FIFO queue to forward to",
            ));
        };
        parse_queue_url(&url).map_err(|p| ConfigError::new(source, p))?
    };

    let event_setup_id = layers
        .given("BRIDGE_EVENT_SETUP_ID", |s| s.event_setup_id.as_ref())
        .map(|(id, source)| {
            EventSetupId::parse(&id).map_err(|e| {
                ConfigError::new(
                    source,
                    format!("`EventSetup_<id>` must be a valid MessageGroupId, but the id {e}"),
                )
            })
        })
        .transpose()?;
    let (group_by, source) = layers.or_default("BRIDGE_GROUP_BY", |s| &s.group_by);
    let group_by = GroupBy::parse(&group_by).map_err(|e| ConfigError::new(source, e))?;

    let shared_secrets =
        secret_list(layers.list("BRIDGE_SHARED_SECRETS", |s| s.shared_secrets.as_ref()))?;
    let api_keys = secret_list(layers.list("BRIDGE_API_KEYS", |s| s.api_keys.as_ref()))?;
    long_enough("BRIDGE_SHARED_SECRETS", &shared_secrets)?;
    long_enough("BRIDGE_API_KEYS", &api_keys)?;
    let allow_unauthenticated =
        boolean(layers.or_default("BRIDGE_ALLOW_UNAUTHENTICATED", |s| &s.allow_unauthenticated))?;
    if shared_secrets.is_empty() && api_keys.is_empty() && !allow_unauthenticated {
        return Err(ConfigError::new(
            "BRIDGE_SHARED_SECRETS/BRIDGE_API_KEYS",
            "no credential is configured; set at least one shared secret or API key \
             (or BRIDGE_ALLOW_UNAUTHENTICATED=true for local use only)",
        ));
    }
    let (value, source) = layers.or_default("BRIDGE_REQUIRE_HMAC", |s| &s.require_hmac);
    let require_hmac = boolean((value, source.clone()))?;
    if require_hmac && shared_secrets.is_empty() {
        return Err(ConfigError::new(
            source,
            "is true, but BRIDGE_SHARED_SECRETS is empty: there is no secret to sign with",
        ));
    }

    let listen = listen_address(layers)?;

    let (path, source) = layers.or_default("BRIDGE_PATH", |s| &s.path);
    if !path.starts_with('/') || path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(ConfigError::new(
            source,
            format!("must be a URL path starting with `/`, got `{path}`"),
        ));
    }
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/") {
        return Err(ConfigError::new(
            source,
            format!("`{path}` is taken by another endpoint"),
        ));
    }

    let max_body_bytes = number(
        &layers.or_default("BRIDGE_MAX_BODY_BYTES", |s| &s.max_body_bytes),
        2,
        MAX_BODY_BYTES as u64,
    )?;
    let (value, source) = layers.or_default("BRIDGE_DEDUP", |s| &s.dedup);
    let dedup = value
        .parse()
        .map_err(|p: String| ConfigError::new(source, p))?;
    let forward_timeout = millis(
        &layers.or_default("BRIDGE_FORWARD_TIMEOUT_MS", |s| &s.forward_timeout_ms),
        100,
        600_000,
    )?;
    let (value, source) = layers.or_default("BRIDGE_LOG_FORMAT", |s| &s.log_format);
    let log_format = match value.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::new(
                source,
                format!("must be `text` or `json`, got `{other}`"),
            ));
        }
    };
    let shutdown_timeout = Duration::from_secs(number(
        &layers.or_default("BRIDGE_SHUTDOWN_TIMEOUT_S", |s| &s.shutdown_timeout_s),
        1,
        3_600,
    )? as u64);
    let workers = number(&layers.or_default("BRIDGE_WORKERS", |s| &s.workers), 1, 256)?;
    let max_in_flight = number(
        &layers.or_default("BRIDGE_MAX_IN_FLIGHT", |s| &s.max_in_flight),
        1,
        1_000_000,
    )?;
    let max_connections = number(
        &layers.or_default("BRIDGE_MAX_CONNECTIONS", |s| &s.max_connections),
        1,
        1_000_000,
    )?;
    let max_connections_per_source = u32::try_from(number(
        &layers.or_default("BRIDGE_MAX_CONNECTIONS_PER_SOURCE", |s| {
            &s.max_connections_per_source
        }),
        1,
        1_000_000,
    )?)
    .unwrap_or(u32::MAX);
    let buffered = layers.or_default("BRIDGE_MAX_BUFFERED_BYTES", |s| &s.max_buffered_bytes);
    // Tokio's semaphores hold at most `MAX_PERMITS` (2^61 on 64-bit, 2^29 on 32-bit).
    let max_permits = u64::try_from(tokio::sync::Semaphore::MAX_PERMITS).unwrap_or(u64::MAX);
    let max_buffered_bytes = number(&buffered, 1, max_permits.min(1 << 36))?;
    if unverified_share(max_buffered_bytes) < max_body_bytes {
        return Err(ConfigError::new(
            &buffered.1,
            format!(
                "{max_buffered_bytes} is less than twice BRIDGE_MAX_BODY_BYTES ({max_body_bytes}): \
                 half of it is what senders known only by their signature may hold, so the \
                 largest allowed event from them could never be accepted"
            ),
        ));
    }
    let body_read_timeout = millis(
        &layers.or_default("BRIDGE_BODY_READ_TIMEOUT_MS", |s| &s.body_read_timeout_ms),
        100,
        600_000,
    )?;
    let ready_cache = millis(
        &layers.or_default("BRIDGE_READY_CACHE_MS", |s| &s.ready_cache_ms),
        0,
        60_000,
    )?;

    let batch = boolean(layers.or_default("BRIDGE_BATCH", |s| &s.batch))?;
    let batch_concurrency = number(
        &layers.or_default("BRIDGE_BATCH_CONCURRENCY", |s| &s.batch_concurrency),
        1,
        256,
    )?;

    let metrics_listen = layers
        .given("BRIDGE_METRICS_LISTEN", |s| s.metrics_listen.as_ref())
        .map(|(value, source)| {
            value.parse().map_err(|_| {
                ConfigError::new(source, "must be an address and port such as 0.0.0.0:9090")
            })
        })
        .transpose()?;
    let sources = SourcePolicy {
        allowed: networks(layers.list("BRIDGE_ALLOWED_SOURCES", |s| s.allowed_sources.as_ref()))?,
        trusted_proxies: networks(
            layers.list("BRIDGE_TRUSTED_PROXIES", |s| s.trusted_proxies.as_ref()),
        )?,
    };
    let reload = Duration::from_secs(number(
        &layers.or_default("BRIDGE_TLS_RELOAD_S", |s| &s.tls_reload_s),
        0,
        86_400,
    )? as u64);
    let tls = match (
        layers.given("BRIDGE_TLS_CERT", |s| s.tls_cert.as_ref()),
        layers.given("BRIDGE_TLS_KEY", |s| s.tls_key.as_ref()),
    ) {
        (None, None) => None,
        (Some((cert, _)), Some((key, _))) => Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
            reload,
        }),
        (Some(_), None) => {
            return Err(ConfigError::new(
                "BRIDGE_TLS_KEY",
                "is required with BRIDGE_TLS_CERT",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "BRIDGE_TLS_CERT",
                "is required with BRIDGE_TLS_KEY",
            ));
        }
    };

    let spool = spool(layers, max_body_bytes)?;
    let event_memory = super::memory::event_memory(layers)?;

    // Given, but blank: counts as unset, with a warning.
    let allowed_sources_blank = layers.settings.allowed_sources.is_some()
        && layers
            .list("BRIDGE_ALLOWED_SOURCES", |s| s.allowed_sources.as_ref())
            .is_none();

    Ok(Config {
        queue_url,
        event_setup_id,
        group_by,
        shared_secrets,
        api_keys,
        allow_unauthenticated,
        require_hmac,
        listen,
        path,
        max_body_bytes,
        dedup,
        forward_timeout,
        log_format,
        shutdown_timeout,
        workers,
        max_in_flight,
        max_buffered_bytes,
        max_connections,
        max_connections_per_source,
        body_read_timeout,
        ready_cache,
        batch,
        batch_concurrency,
        metrics_listen,
        sources,
        tls,
        spool,
        event_memory,
        allowed_sources_blank,
    })
}

/// The spool's settings, when `BRIDGE_SPOOL_DIR` is set: the directory itself is checked
/// when the bridge starts (and by `check-config`), not here.
fn spool(layers: &Layered, max_body_bytes: usize) -> Result<Option<SpoolSettings>, ConfigError> {
    let Some((dir, source)) = layers.given("BRIDGE_SPOOL_DIR", |s| s.spool_dir.as_ref()) else {
        return Ok(None);
    };
    if !std::path::Path::new(&dir).is_absolute() {
        return Err(ConfigError::new(
            source,
            format!("must be an absolute path, got `{dir}`"),
        ));
    }
    let max = layers.or_default("BRIDGE_SPOOL_MAX_BYTES", |s| &s.spool_max_bytes);
    let max_bytes = number(&max, 1, 1 << 40)? as u64;
    // Room for one event of the largest size the bridge accepts, with its keys.
    let least = u64::try_from(max_body_bytes).unwrap_or(u64::MAX) + 4096;
    if max_bytes < least {
        return Err(ConfigError::new(
            max.1,
            format!(
                "{max_bytes} is too small to hold one event of BRIDGE_MAX_BODY_BYTES \
                 ({max_body_bytes}); use at least {least}"
            ),
        ));
    }
    let adopt_interval = Duration::from_secs(number(
        &layers.or_default("BRIDGE_SPOOL_ADOPT_INTERVAL_S", |s| {
            &s.spool_adopt_interval_s
        }),
        1,
        60,
    )? as u64);
    Ok(Some(SpoolSettings {
        dir: dir.into(),
        max_bytes,
        adopt_interval,
    }))
}

/// Only the listener settings: nothing else is checked (see [`Listener`]).
pub(super) fn listener(layers: &Layered) -> Result<Listener, ConfigError> {
    Ok(Listener {
        addr: listen_address(layers)?,
        tls: layers
            .given("BRIDGE_TLS_CERT", |s| s.tls_cert.as_ref())
            .is_some(),
    })
}

fn listen_address(layers: &Layered) -> Result<SocketAddr, ConfigError> {
    let (value, source) = layers.or_default("BRIDGE_LISTEN", |s| &s.listen);
    value.parse().map_err(|_| {
        ConfigError::new(
            source,
            format!("must be an address and port such as 0.0.0.0:8080, got `{value}`"),
        )
    })
}

/// Credentials shorter than this are refused: easy to guess, and no lockout stops
/// guessing (the vendor sends from one shared address; see the README).
const MIN_CREDENTIAL_CHARS: usize = 16;

/// Refuses credentials under [`MIN_CREDENTIAL_CHARS`], saying how many, never which.
fn long_enough(setting: &str, values: &[SecretString]) -> Result<(), ConfigError> {
    let short = values
        .iter()
        .filter(|s| s.expose_secret().chars().count() < MIN_CREDENTIAL_CHARS)
        .count();
    if short == 0 {
        return Ok(());
    }
    Err(ConfigError::new(
        setting,
        format!(
            "{short} value(s) are shorter than {MIN_CREDENTIAL_CHARS} characters: easy to \
             guess; use long random values (e.g. `openssl rand -hex 32`)"
        ),
    ))
}

/// A FIFO queue URL: `http(s)://host/.../NAME.fifo`.
fn parse_queue_url(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(format!(
            "must be an http(s) URL such as https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo, got `{url}`"
        ));
    };
    if !rest.contains('/') || !url.to_ascii_lowercase().ends_with(".fifo") {
        return Err(format!(
            "must be the URL of a FIFO queue (its name ends in `.fifo`), got `{url}`"
        ));
    }
    Ok(url.to_owned())
}

/// A comma-separated list, or a JSON array of strings for values that hold a comma, or
/// the file's TOML array; several values allow rotation. Empty items are skipped. Errors
/// never show a value.
///
/// A secret with a comma in it, given plainly, would become several shorter credentials,
/// each of them accepted: so a list with an item under 8 characters is refused, and so is
/// a JSON object (a key/value secret from Secrets Manager, given whole).
fn secret_list(given: Option<(&List, String)>) -> Result<Vec<SecretString>, ConfigError> {
    let Some((list, source)) = given else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = match list {
        List::Items(items) => items.clone(),
        List::Text(text) => split_secrets(text.trim()).map_err(|p| ConfigError::new(source, p))?,
    };
    Ok(items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from)
        .collect())
}

/// The items of a credential list given as text (see [`secret_list`]).
fn split_secrets(text: &str) -> Result<Vec<String>, String> {
    if text.starts_with('{') {
        return Err(
            "looks like a JSON object (a key/value secret from Secrets Manager?): give the \
             secret's value itself, or a JSON array of values"
                .to_owned(),
        );
    }
    if text.starts_with('[') {
        return serde_json::from_str(text)
            .map_err(|_| "starts with `[` but is not a JSON array of strings".to_owned());
    }
    let items: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
    let listed = items.iter().filter(|s| !s.is_empty()).count() > 1;
    if listed
        && items
            .iter()
            .any(|s| !s.is_empty() && s.chars().count() < MIN_LISTED_CHARS)
    {
        return Err(format!(
            "a comma-separated item is under {MIN_LISTED_CHARS} characters: if a \
             secret contains `,`, give the values as a JSON array, e.g. [\"a,b\", \"c\"]"
        ));
    }
    Ok(items)
}

/// Shorter items of a comma-separated credential list are refused (see [`secret_list`]).
const MIN_LISTED_CHARS: usize = 8;

/// IPs and CIDRs; unset or blank: none.
fn networks(given: Option<(&List, String)>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some((list, source)) = given else {
        return Ok(Vec::new());
    };
    let networks =
        access::parse_networks(&list.text()).map_err(|p| ConfigError::new(&source, p))?;
    if networks.is_empty() {
        // `,`: most likely a template joining values that did not arrive.
        return Err(ConfigError::new(
            source,
            "names no address, only separators; give IPs or CIDRs, or leave it unset",
        ));
    }
    Ok(networks)
}

fn boolean((value, source): (String, String)) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(
            source,
            format!("must be `true` or `false`, got `{value}`"),
        )),
    }
}

pub(super) fn number(
    (value, source): &(String, String),
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            ConfigError::new(
                source,
                format!("must be a whole number from {min} to {max}, got `{value}`"),
            )
        })
}

fn millis(given: &(String, String), min: u64, max: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(number(given, min, max)? as u64))
}
