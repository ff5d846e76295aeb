//! Configuration: defaults, then an optional TOML file, then `BRIDGE_*` environment
//! variables (the environment wins). Validated once at start-up into [`Config`], whose
//! fields can only hold usable values; every error names the setting it is about.
//!
//! In the file, a setting's key is its variable's name without `BRIDGE_`, in lower case
//! (`queue_url`, `api_keys`, ...); lists may be TOML arrays or comma-separated strings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::http::access::{self, SourcePolicy};
use std::sync::Arc;

use crate::forward::dedup::DedupMode;
use crate::forward::keys::EventSetupId;
use crate::sqs::limits::MAX_BODY_BYTES;

/// Every setting the bridge reads, as its environment variable.
pub const SETTINGS: &[&str] = &[
    "BRIDGE_QUEUE_URL",
    "BRIDGE_EVENT_SETUP_ID",
    "BRIDGE_SHARED_SECRETS",
    "BRIDGE_API_KEYS",
    "BRIDGE_ALLOW_UNAUTHENTICATED",
    "BRIDGE_LISTEN",
    "BRIDGE_PATH",
    "BRIDGE_MAX_BODY_BYTES",
    "BRIDGE_DEDUP",
    "BRIDGE_FORWARD_TIMEOUT_MS",
    "BRIDGE_LOG_FORMAT",
    "BRIDGE_SHUTDOWN_TIMEOUT_S",
    "BRIDGE_WORKERS",
    "BRIDGE_MAX_IN_FLIGHT",
    "BRIDGE_MAX_BUFFERED_BYTES",
    "BRIDGE_BODY_READ_TIMEOUT_MS",
    "BRIDGE_READY_CACHE_MS",
    "BRIDGE_BATCH",
    "BRIDGE_BATCH_CONCURRENCY",
    "BRIDGE_METRICS_LISTEN",
    "BRIDGE_ALLOWED_SOURCES",
    "BRIDGE_TRUSTED_PROXIES",
    "BRIDGE_TLS_CERT",
    "BRIDGE_TLS_KEY",
    "BRIDGE_TLS_RELOAD_S",
];

/// A setting that can't be used, and why. The value itself is never shown: it may be a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// The FIFO queue's URL (ends in `.fifo`).
    pub queue_url: String,
    /// Group for events that carry no `MessageGroupId`; `None` means every event must.
    pub event_setup_id: Option<EventSetupId>,
    pub shared_secrets: Vec<SecretString>,
    pub api_keys: Vec<SecretString>,
    /// Only meaningful with no credential configured: lets every request through.
    pub allow_unauthenticated: bool,
    pub listen: SocketAddr,
    /// The webhook's path; starts with `/`.
    pub path: String,
    pub max_body_bytes: usize,
    pub dedup: DedupMode,
    /// The whole time SQS gets for one message, retries included.
    pub forward_timeout: Duration,
    pub log_format: LogFormat,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads.
    pub workers: usize,
    /// Forwards allowed at once; beyond, `503` at once instead of queueing in memory.
    pub max_in_flight: usize,
    /// Bytes of webhook bodies held at once (read, waiting for SQS); beyond, `503`: what
    /// bounds memory when large bodies arrive together.
    pub max_buffered_bytes: usize,
    /// How long a client may take to send its body.
    pub body_read_timeout: Duration,
    /// How long one `/readyz` answer is reused, so probes can't drive SQS calls.
    pub ready_cache: Duration,
    /// Coalesce concurrent forwards into `SendMessageBatch` calls.
    pub batch: bool,
    /// Batch calls in flight at once.
    pub batch_concurrency: usize,
    /// Serve `/metrics` here instead of on the webhook's listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Source allow-list and trusted proxies.
    pub sources: SourcePolicy,
    /// Native HTTPS; `None` serves plain HTTP (behind a TLS-terminating load balancer).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `BRIDGE_ALLOWED_SOURCES` was given but blank, so every source is allowed: worth a
    /// warning, as it usually means a value that failed to arrive.
    allowed_sources_blank: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("queue_url", &self.queue_url)
            .field("event_setup_id", &self.event_setup_id)
            .field("shared_secrets", &self.shared_secrets.len())
            .field("api_keys", &self.api_keys.len())
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("listen", &self.listen)
            .field("path", &self.path)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("dedup", &self.dedup)
            .field("forward_timeout", &self.forward_timeout)
            .field("log_format", &self.log_format)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("workers", &self.workers)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("ready_cache", &self.ready_cache)
            .field("batch", &self.batch)
            .field("batch_concurrency", &self.batch_concurrency)
            .field("metrics_listen", &self.metrics_listen)
            .field("sources", &self.sources)
            .field("tls", &self.tls.is_some())
            .field("allowed_sources_blank", &self.allowed_sources_blank)
            .finish()
    }
}

/// One raw value and where it came from, for error messages.
struct Raw {
    value: String,
    source: String,
}

impl Config {
    /// Loads from the process environment and an optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, |name| std::env::var(name).ok())
    }

    /// Loads from a file and an environment given as a function, so tests need not touch
    /// the process environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_raw(&raw_settings(file, env)?)
    }

    fn from_raw(raw: &BTreeMap<&'static str, Raw>) -> Result<Self, ConfigError> {
        let get = |name: &str| setting(raw, name);
        let parse = |name: &str, default: &str| -> (String, String) {
            match get(name) {
                Some(r) => (r.value.trim().to_owned(), r.source.clone()),
                None => (default.to_owned(), name.to_owned()),
            }
        };

        let queue_url = {
            let Some(r) = get("BRIDGE_QUEUE_URL") else {
                return Err(ConfigError::new(
                    "BRIDGE_QUEUE_URL",
                    "is required: the URL of the SQS FIFO queue to forward to",
                ));
            };
            parse_queue_url(r.value.trim()).map_err(|p| ConfigError::new(&r.source, p))?
        };

        let event_setup_id = get("BRIDGE_EVENT_SETUP_ID")
            .map(|r| {
                EventSetupId::parse(r.value.trim()).map_err(|e| {
                    ConfigError::new(
                        &r.source,
                        format!("`EventSetup_<id>` must be a valid MessageGroupId, but the id {e}"),
                    )
                })
            })
            .transpose()?;

        let shared_secrets = secret_list(get("BRIDGE_SHARED_SECRETS"))?;
        let api_keys = secret_list(get("BRIDGE_API_KEYS"))?;
        let (value, source) = parse("BRIDGE_ALLOW_UNAUTHENTICATED", "false");
        let allow_unauthenticated = parse_bool(&value).map_err(|p| ConfigError::new(source, p))?;
        if shared_secrets.is_empty() && api_keys.is_empty() && !allow_unauthenticated {
            return Err(ConfigError::new(
                "BRIDGE_SHARED_SECRETS/BRIDGE_API_KEYS",
                "no credential is configured; set at least one shared secret or API key \
                 (or BRIDGE_ALLOW_UNAUTHENTICATED=true for local use only)",
            ));
        }

        let listen = listen_address(raw)?;

        let (path, source) = parse("BRIDGE_PATH", "/webhook");
        if !path.starts_with('/')
            || path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
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
            &parse("BRIDGE_MAX_BODY_BYTES", &MAX_BODY_BYTES.to_string()),
            2,
            MAX_BODY_BYTES as u64,
        )?;
        let (value, source) = parse("BRIDGE_DEDUP", "timestamp");
        let dedup = value
            .parse()
            .map_err(|p: String| ConfigError::new(source, p))?;
        let forward_timeout = Duration::from_millis(number(
            &parse("BRIDGE_FORWARD_TIMEOUT_MS", "10000"),
            100,
            600_000,
        )? as u64);
        let (value, source) = parse("BRIDGE_LOG_FORMAT", "text");
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
            &parse("BRIDGE_SHUTDOWN_TIMEOUT_S", "30"),
            1,
            3_600,
        )? as u64);
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let workers = number(&parse("BRIDGE_WORKERS", &cores.to_string()), 1, 256)?;
        let max_in_flight = number(&parse("BRIDGE_MAX_IN_FLIGHT", "1024"), 1, 1_000_000)?;
        let buffered = parse(
            "BRIDGE_MAX_BUFFERED_BYTES",
            &DEFAULT_MAX_BUFFERED_BYTES.to_string(),
        );
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
        let body_read_timeout = Duration::from_millis(number(
            &parse("BRIDGE_BODY_READ_TIMEOUT_MS", "15000"),
            100,
            600_000,
        )? as u64);
        let ready_cache =
            Duration::from_millis(
                number(&parse("BRIDGE_READY_CACHE_MS", "1000"), 0, 60_000)? as u64
            );

        let (value, source) = parse("BRIDGE_BATCH", "true");
        let batch = parse_bool(&value).map_err(|p| ConfigError::new(source, p))?;
        let batch_concurrency = number(&parse("BRIDGE_BATCH_CONCURRENCY", "2"), 1, 256)?;

        let metrics_listen = get("BRIDGE_METRICS_LISTEN")
            .map(|r| {
                r.value.trim().parse().map_err(|_| {
                    ConfigError::new(
                        &r.source,
                        "must be an address and port such as 0.0.0.0:9090",
                    )
                })
            })
            .transpose()?;
        let networks = |name: &str| {
            get(name)
                .map(|r| {
                    let list = access::parse_networks(&r.value)
                        .map_err(|p| ConfigError::new(&r.source, p))?;
                    if list.is_empty() {
                        // `,`: most likely a template joining values that did not arrive.
                        return Err(ConfigError::new(
                            &r.source,
                            "names no address, only separators; give IPs or CIDRs, or leave it unset",
                        ));
                    }
                    Ok(list)
                })
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let sources = SourcePolicy {
            allowed: networks("BRIDGE_ALLOWED_SOURCES")?,
            trusted_proxies: networks("BRIDGE_TRUSTED_PROXIES")?,
        };
        let tls_reload =
            Duration::from_secs(number(&parse("BRIDGE_TLS_RELOAD_S", "60"), 0, 86_400)? as u64);
        let tls = match (get("BRIDGE_TLS_CERT"), get("BRIDGE_TLS_KEY")) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(crate::http::tls::server_config(
                Path::new(cert.value.trim()),
                Path::new(key.value.trim()),
                tls_reload,
            )?),
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

        let allowed_sources_blank = raw.contains_key("BRIDGE_ALLOWED_SOURCES")
            && setting(raw, "BRIDGE_ALLOWED_SOURCES").is_none();

        Ok(Self {
            queue_url,
            event_setup_id,
            shared_secrets,
            api_keys,
            allow_unauthenticated,
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
            body_read_timeout,
            ready_cache,
            batch,
            batch_concurrency,
            metrics_listen,
            sources,
            tls,
            allowed_sources_blank,
        })
    }

    /// Lines worth a warning at start-up and on `/readyz`.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let no_credentials = self.shared_secrets.is_empty() && self.api_keys.is_empty();
        if self.allow_unauthenticated && no_credentials {
            warnings.push(
                "AUTHENTICATION IS DISABLED (BRIDGE_ALLOW_UNAUTHENTICATED=true): anyone who can \
                 reach this endpoint can put messages on the queue; for local use only"
                    .to_owned(),
            );
        } else if self.allow_unauthenticated {
            warnings.push(
                "BRIDGE_ALLOW_UNAUTHENTICATED=true has no effect: credentials are configured and enforced"
                    .to_owned(),
            );
        }
        warnings
    }

    /// Warnings for the start-up log and `check-config`, not for `/readyz`, which anyone
    /// can read: a credential short enough to guess, an allow-list that allows everyone,
    /// timeouts that let a drain cut forwards short.
    #[must_use]
    pub fn operator_warnings(&self) -> Vec<String> {
        let mut warnings = self.credential_warnings();
        if self.allowed_sources_blank {
            warnings.push(
                "BRIDGE_ALLOWED_SOURCES is set but empty, so every source address is allowed; \
                 give the vendor's addresses, or unset it to allow all on purpose"
                    .to_owned(),
            );
        }
        // A request holds its slot while its body arrives and then while SQS answers; the
        // drain after SIGTERM waits BRIDGE_SHUTDOWN_TIMEOUT_S for every slot.
        let longest = self.body_read_timeout + self.forward_timeout;
        if longest > self.shutdown_timeout {
            warnings.push(format!(
                "BRIDGE_SHUTDOWN_TIMEOUT_S ({} s) is shorter than BRIDGE_BODY_READ_TIMEOUT_MS + \
                 BRIDGE_FORWARD_TIMEOUT_MS ({} ms): a forward in progress at SIGTERM can be cut \
                 off after SQS stored its event, and the sender's retry may then be queued again",
                self.shutdown_timeout.as_secs(),
                longest.as_millis()
            ));
        }
        warnings
    }

    fn credential_warnings(&self) -> Vec<String> {
        let short = |list: &[SecretString]| {
            list.iter()
                .filter(|s| s.expose_secret().chars().count() < MIN_CREDENTIAL_CHARS)
                .count()
        };
        [
            ("BRIDGE_SHARED_SECRETS", short(&self.shared_secrets)),
            ("BRIDGE_API_KEYS", short(&self.api_keys)),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(setting, n)| {
            format!(
                "{n} value(s) of {setting} are shorter than {MIN_CREDENTIAL_CHARS} characters: easy to guess; use long random values"
            )
        })
        .collect()
    }
}

/// The part of `BRIDGE_MAX_BUFFERED_BYTES` that senders known only once their body's HMAC
/// is checked may hold: half.
#[must_use]
pub fn unverified_share(max_buffered_bytes: usize) -> usize {
    max_buffered_bytes / 2
}

/// The default for `BRIDGE_MAX_BUFFERED_BYTES`: 64 MiB, room for 64 of the largest bodies
/// or tens of thousands of typical ones, well inside a 512 MiB container.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;

/// Where `serve` listens, and whether with TLS: all `healthcheck` needs. Read without the
/// rest of the configuration and without loading the TLS files, so that files changed
/// under a running bridge (a renewal it refuses, an edited setting) don't make a bridge
/// that still serves look dead to its container's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl Listener {
    /// Reads the listener settings from the process environment and an optional file,
    /// as [`Config::load`] would.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let raw = raw_settings(file, |name| std::env::var(name).ok())?;
        Ok(Self {
            addr: listen_address(&raw)?,
            tls: setting(&raw, "BRIDGE_TLS_CERT").is_some(),
        })
    }
}

/// A setting's raw value; a blank one counts as unset.
fn setting<'a>(raw: &'a BTreeMap<&'static str, Raw>, name: &str) -> Option<&'a Raw> {
    raw.get(name).filter(|r| !r.value.trim().is_empty())
}

/// The file's settings, then the environment's over them.
fn raw_settings(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<&'static str, Raw>, ConfigError> {
    let mut raw = match file {
        Some(path) => read_file(path)?,
        None => BTreeMap::new(),
    };
    for name in SETTINGS {
        if let Some(value) = env(name) {
            raw.insert(
                name,
                Raw {
                    value,
                    source: (*name).to_owned(),
                },
            );
        }
    }
    Ok(raw)
}

/// `BRIDGE_LISTEN`, `0.0.0.0:8080` when unset or blank.
fn listen_address(raw: &BTreeMap<&'static str, Raw>) -> Result<SocketAddr, ConfigError> {
    let Some(r) = setting(raw, "BRIDGE_LISTEN") else {
        return Ok(SocketAddr::from(([0, 0, 0, 0], 8080)));
    };
    let value = r.value.trim();
    value.parse().map_err(|_| {
        ConfigError::new(
            &r.source,
            format!("must be an address and port such as 0.0.0.0:8080, got `{value}`"),
        )
    })
}

/// Shorter credentials are accepted, with a warning.
const MIN_CREDENTIAL_CHARS: usize = 16;

fn read_file(path: &Path) -> Result<BTreeMap<&'static str, Raw>, ConfigError> {
    let setting = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&setting, format!("can't read the file: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(&setting, format!("is not valid TOML: {}", e.message()))
    })?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        let env_name = format!("BRIDGE_{}", key.to_ascii_uppercase());
        let Some(name) = SETTINGS.iter().find(|n| **n == env_name) else {
            let known: Vec<String> = SETTINGS
                .iter()
                .map(|n| n["BRIDGE_".len()..].to_ascii_lowercase())
                .collect();
            return Err(ConfigError::new(
                &setting,
                format!("unknown setting `{key}`; known: {}", known.join(", ")),
            ));
        };
        let source = format!("{key} (in {})", path.display());
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let items = items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| ConfigError::new(&source, "list items must be strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if CREDENTIAL_LISTS.contains(name) {
                    // Credentials keep their items whole, as the environment's JSON-array form.
                    serde_json::to_string(&items).unwrap_or_default()
                } else if items.iter().any(|s| s.contains(',')) {
                    // Other lists become the environment's comma-separated form, where an
                    // item holding a comma would silently become two values.
                    return Err(ConfigError::new(
                        &source,
                        "a list item contains `,`, which separates values (as in the environment variable)",
                    ));
                } else {
                    items.join(",")
                }
            }
            _ => {
                return Err(ConfigError::new(
                    &source,
                    "must be a string, number, boolean or list of strings",
                ));
            }
        };
        raw.insert(*name, Raw { value, source });
    }
    Ok(raw)
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

/// A comma-separated list, or a JSON array of strings for values that hold a comma;
/// several values allow rotation. Empty items are skipped. Errors never show a value.
///
/// A secret with a comma in it, given plainly, would become several shorter credentials,
/// each of them accepted: so a list with an item under 8 characters is refused, and so is
/// a JSON object (a key/value secret from Secrets Manager, given whole).
fn secret_list(raw: Option<&Raw>) -> Result<Vec<SecretString>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let text = raw.value.trim();
    if text.starts_with('{') {
        return Err(ConfigError::new(
            &raw.source,
            "looks like a JSON object (a key/value secret from Secrets Manager?): give the \
             secret's value itself, or a JSON array of values",
        ));
    }
    let items: Vec<String> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|_| {
            ConfigError::new(
                &raw.source,
                "starts with `[` but is not a JSON array of strings",
            )
        })?
    } else {
        let items: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
        let listed = items.iter().filter(|s| !s.is_empty()).count() > 1;
        if listed
            && items
                .iter()
                .any(|s| !s.is_empty() && s.chars().count() < MIN_LISTED_CHARS)
        {
            return Err(ConfigError::new(
                &raw.source,
                format!(
                    "a comma-separated item is under {MIN_LISTED_CHARS} characters: if a \
                     secret contains `,`, give the values as a JSON array, e.g. [\"a,b\", \"c\"]"
                ),
            ));
        }
        items
    };
    Ok(items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from)
        .collect())
}

/// The settings read by [`secret_list`].
const CREDENTIAL_LISTS: [&str; 2] = ["BRIDGE_SHARED_SECRETS", "BRIDGE_API_KEYS"];

/// Shorter items of a comma-separated credential list are refused (see [`secret_list`]).
const MIN_LISTED_CHARS: usize = 8;

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("must be `true` or `false`, got `{value}`")),
    }
}

fn number((value, source): &(String, String), min: u64, max: u64) -> Result<usize, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const QUEUE: &str = "http://127.0.0.1:4566/000000000000/events.fifo";

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_sources(None, |name| env.get(name).cloned())
    }

    fn setting_of(pairs: &[(&str, &str)]) -> String {
        load(pairs).expect_err("invalid").setting
    }

    #[test]
    fn defaults_apply() {
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "key-aaaa, key-bbbb,"),
        ])
        .unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.path, "/webhook");
        assert_eq!(c.max_body_bytes, MAX_BODY_BYTES);
        assert_eq!(c.dedup, DedupMode::Timestamp);
        assert_eq!(c.forward_timeout, Duration::from_secs(10));
        assert!(c.event_setup_id.is_none());
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn errors_name_the_setting() {
        let base = [("BRIDGE_QUEUE_URL", QUEUE), ("BRIDGE_API_KEYS", "k")];
        let with = |extra: (&'static str, &'static str)| {
            let mut v = base.to_vec();
            v.push(extra);
            setting_of(&v)
        };
        assert_eq!(setting_of(&[("BRIDGE_API_KEYS", "k")]), "BRIDGE_QUEUE_URL");
        assert_eq!(
            setting_of(&[
                ("BRIDGE_QUEUE_URL", "http://h/1/q"),
                ("BRIDGE_API_KEYS", "k")
            ]),
            "BRIDGE_QUEUE_URL"
        );
        assert_eq!(
            setting_of(&[("BRIDGE_QUEUE_URL", QUEUE)]),
            "BRIDGE_SHARED_SECRETS/BRIDGE_API_KEYS"
        );
        assert_eq!(with(("BRIDGE_LISTEN", "8080")), "BRIDGE_LISTEN");
        assert_eq!(with(("BRIDGE_PATH", "webhook")), "BRIDGE_PATH");
        assert_eq!(with(("BRIDGE_PATH", "/healthz")), "BRIDGE_PATH");
        assert_eq!(
            with(("BRIDGE_MAX_BODY_BYTES", "2000000")),
            "BRIDGE_MAX_BODY_BYTES"
        );
        assert_eq!(with(("BRIDGE_DEDUP", "random")), "BRIDGE_DEDUP");
        assert_eq!(
            with(("BRIDGE_FORWARD_TIMEOUT_MS", "soon")),
            "BRIDGE_FORWARD_TIMEOUT_MS"
        );
        assert_eq!(
            with(("BRIDGE_EVENT_SETUP_ID", "has space")),
            "BRIDGE_EVENT_SETUP_ID"
        );
        assert_eq!(with(("BRIDGE_LOG_FORMAT", "xml")), "BRIDGE_LOG_FORMAT");
        assert_eq!(
            with(("BRIDGE_ALLOW_UNAUTHENTICATED", "maybe")),
            "BRIDGE_ALLOW_UNAUTHENTICATED"
        );
    }

    #[test]
    fn unauthenticated_mode_must_be_asked_for_and_warns() {
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_ALLOW_UNAUTHENTICATED", "true"),
        ])
        .unwrap();
        assert!(c.warnings()[0].contains("AUTHENTICATION IS DISABLED"));
    }

    #[test]
    fn short_credentials_are_warned_about_privately() {
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            (
                "BRIDGE_SHARED_SECRETS",
                r#"["tiny-1", "a-long-enough-random-secret"]"#,
            ),
            ("BRIDGE_API_KEYS", "k"),
        ])
        .unwrap();
        let warnings = c.operator_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(
            warnings[0],
            "1 value(s) of BRIDGE_SHARED_SECRETS are shorter than 16 characters: easy to guess; use long random values"
        );
        assert!(warnings.iter().all(|w| !w.contains("tiny-1")));
        assert!(c.warnings().is_empty(), "not on /readyz");
    }

    #[test]
    fn a_blank_allow_list_and_a_drain_shorter_than_a_forward_are_warned_about() {
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
        ])
        .unwrap();
        assert!(
            c.operator_warnings().is_empty(),
            "defaults: 15 s + 10 s within 30 s"
        );
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
            ("BRIDGE_ALLOWED_SOURCES", " "),
            ("BRIDGE_SHUTDOWN_TIMEOUT_S", "20"),
        ])
        .unwrap();
        assert!(c.sources.allowed.is_empty());
        let warnings = c.operator_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("BRIDGE_ALLOWED_SOURCES is set but empty"));
        assert!(
            warnings[1].contains("(20 s) is shorter than"),
            "{}",
            warnings[1]
        );
        assert!(warnings[1].contains("(25000 ms)"), "{}", warnings[1]);
        assert!(c.warnings().is_empty(), "not on /readyz");
        for name in ["BRIDGE_ALLOWED_SOURCES", "BRIDGE_TRUSTED_PROXIES"] {
            let e = load(&[
                ("BRIDGE_QUEUE_URL", QUEUE),
                ("BRIDGE_API_KEYS", "k"),
                (name, " , "),
            ])
            .unwrap_err();
            assert_eq!(e.setting, name);
            assert!(e.problem.starts_with("names no address"), "{e}");
        }
    }

    #[test]
    fn the_buffer_budget_must_hold_the_largest_body() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![("BRIDGE_QUEUE_URL", QUEUE), ("BRIDGE_API_KEYS", "k")];
            all.extend_from_slice(pairs);
            load(&all)
        };
        assert_eq!(
            with(&[]).unwrap().max_buffered_bytes,
            DEFAULT_MAX_BUFFERED_BYTES
        );
        let e = with(&[("BRIDGE_MAX_BUFFERED_BYTES", "65536")]).unwrap_err();
        assert_eq!(e.setting, "BRIDGE_MAX_BUFFERED_BYTES");
        assert!(
            e.problem.contains("less than twice BRIDGE_MAX_BODY_BYTES"),
            "{e}"
        );
        let e = with(&[
            ("BRIDGE_MAX_BUFFERED_BYTES", "65535"),
            ("BRIDGE_MAX_BODY_BYTES", "32768"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "BRIDGE_MAX_BUFFERED_BYTES");
        let c = with(&[
            ("BRIDGE_MAX_BUFFERED_BYTES", "65536"),
            ("BRIDGE_MAX_BODY_BYTES", "32768"),
        ])
        .unwrap();
        assert_eq!(c.max_buffered_bytes, 65536);
    }

    #[test]
    fn a_secret_holding_a_comma_is_never_split_into_shorter_credentials() {
        let with = |value: &str| {
            load(&[
                ("BRIDGE_QUEUE_URL", QUEUE),
                ("BRIDGE_SHARED_SECRETS", value),
            ])
        };
        // Split plainly, `Xk9q2mPz,7` would make `7` a valid credential.
        let e = with("Xk9q2mPz,7").unwrap_err();
        assert!(e.problem.contains("JSON array"), "{e}");
        assert!(!e.to_string().contains("Xk9q2mPz"), "{e}");
        let c = with(r#"["Xk9q2mPz,7", "second-secret-value"]"#).unwrap();
        assert_eq!(c.shared_secrets.len(), 2);
        assert_eq!(c.shared_secrets[0].expose_secret(), "Xk9q2mPz,7");
        let e = with(r#"{"hmac": "Xk9q2mPz"}"#).unwrap_err();
        assert!(e.problem.contains("JSON object"), "{e}");
        assert!(!e.to_string().contains("Xk9q2mPz"), "{e}");
        assert!(with(r#"["unterminated"#).is_err());
        // Rotation lists of ordinary values, and a single short value, still load.
        assert_eq!(
            with("first-secret,second-secret")
                .unwrap()
                .shared_secrets
                .len(),
            2
        );
        assert_eq!(with("k").unwrap().shared_secrets.len(), 1);
    }

    #[test]
    fn errors_and_debug_never_show_secrets() {
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_SHARED_SECRETS", "s3cr3t-value"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
        let e = load(&[("BRIDGE_SHARED_SECRETS", "s3cr3t-value")]).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t-value"));
    }

    #[test]
    fn file_settings_are_overridden_by_the_environment() {
        let dir = std::env::temp_dir().join(format!("bridge-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bridge.toml");
        std::fs::write(
            &path,
            format!("queue_url = \"{QUEUE}\"\napi_keys = [\"a\", \"b\"]\nforward_timeout_ms = 2000\npath = \"/in\"\n"),
        )
        .unwrap();
        let env: HashMap<&str, &str> = [("BRIDGE_PATH", "/hook")].into();
        let c = Config::from_sources(Some(&path), |n| env.get(n).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.forward_timeout, Duration::from_secs(2));
        assert_eq!(c.path, "/hook");

        // Credentials in a TOML list stay whole, commas and all; other lists can't hold one.
        std::fs::write(
            &path,
            format!("queue_url = \"{QUEUE}\"\nshared_secrets = [\"a,b\", \"c\"]\n"),
        )
        .unwrap();
        let c = Config::from_sources(Some(&path), |_| None).unwrap();
        assert_eq!(c.shared_secrets[0].expose_secret(), "a,b");
        assert_eq!(c.shared_secrets.len(), 2);
        std::fs::write(
            &path,
            format!(
                "queue_url = \"{QUEUE}\"\napi_keys = \"k\"\nallowed_sources = [\"10.0.0.1,10.0.0.2\"]\n"
            ),
        )
        .unwrap();
        let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
        assert!(e.problem.contains("contains `,`"), "{e}");
        std::fs::write(&path, "queue_url = \"x\"\nqueue = 1\n").unwrap();
        let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
        assert!(e.problem.contains("unknown setting `queue`"), "{e}");
        std::fs::write(
            &path,
            format!("queue_url = \"{QUEUE}\"\napi_keys = \"k\"\nworkers = 0\n"),
        )
        .unwrap();
        let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
        assert!(e.setting.starts_with("workers (in "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
