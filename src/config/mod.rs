//! Configuration: defaults, then an optional TOML file, then `BRIDGE_*` environment
//! variables (the environment wins). Validated once at start-up into [`Config`], whose
//! fields can only hold usable values; every error names the setting it is about.
//!
//! In the file, a setting's key is its variable's name without `BRIDGE_`, in lower case
//! (`queue_url`, `api_keys`, ...); lists may be TOML arrays or comma-separated strings.
//!
//! - `settings`: every setting and its default, layered with figment, each value
//!   remembering where it came from; `sources`: the layers.
//! - `validate`: those values checked and parsed into [`Config`].
//! - `warnings`: what is allowed but worth telling the operator.

mod memory;
mod settings;
mod sources;
#[cfg(test)]
mod tests;
mod validate;
mod warnings;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::forward::dedup::DedupMode;
use crate::forward::group::GroupBy;
use crate::forward::keys::EventSetupId;
use crate::http::access::SourcePolicy;
pub use crate::memory::{MemoryKind, MemorySettings, OnError};
pub use crate::spool::SpoolSettings;

use settings::Settings;

/// Every setting the bridge reads, as its environment variable.
pub const SETTINGS: &[&str] = &[
    "BRIDGE_QUEUE_URL",
    "BRIDGE_EVENT_SETUP_ID",
    "BRIDGE_GROUP_BY",
    "BRIDGE_SHARED_SECRETS",
    "BRIDGE_API_KEYS",
    "BRIDGE_ALLOW_UNAUTHENTICATED",
    "BRIDGE_REQUIRE_HMAC",
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
    "BRIDGE_MAX_CONNECTIONS",
    "BRIDGE_MAX_CONNECTIONS_PER_SOURCE",
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
    "BRIDGE_SPOOL_DIR",
    "BRIDGE_SPOOL_MAX_BYTES",
    "BRIDGE_SPOOL_ADOPT_INTERVAL_S",
    "BRIDGE_EVENT_MEMORY",
    "BRIDGE_EVENT_MEMORY_TABLE",
    "BRIDGE_EVENT_MEMORY_TTL",
    "BRIDGE_EVENT_MEMORY_MAX_EVENTS",
    "BRIDGE_EVENT_MEMORY_ON_ERROR",
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

/// The PEM files for native HTTPS. Only named here: [`crate::http::tls::server_config`] loads
/// them when the server starts, so reading configuration never touches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `BRIDGE_TLS_CERT`: the certificate chain.
    pub cert: PathBuf,
    /// `BRIDGE_TLS_KEY`: its private key.
    pub key: PathBuf,
    /// `BRIDGE_TLS_RELOAD_S`: how often (at most) a handshake looks for renewed files.
    pub reload: Duration,
}

/// The validated configuration.
#[derive(Clone)]
#[allow(clippy::struct_excessive_bools)] // independent switches, each a setting
pub struct Config {
    /// The FIFO queue's URL (ends in `.fifo`).
    pub queue_url: String,
    /// Group for events that carry no `MessageGroupId`; `None` means every event must.
    pub event_setup_id: Option<EventSetupId>,
    /// How events without their own `MessageGroupId` are grouped.
    pub group_by: GroupBy,
    pub shared_secrets: Vec<SecretString>,
    pub api_keys: Vec<SecretString>,
    /// Only meaningful with no credential configured: lets every request through.
    pub allow_unauthenticated: bool,
    /// Every request must carry an HMAC-SHA256 of its body: the raw shared secret, or an
    /// API key alone, is refused.
    pub require_hmac: bool,
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
    /// Open connections in all (split over the workers): each may hold up to 128 KiB of
    /// unfinished request head, so this bounds that memory.
    pub max_connections: usize,
    /// Open connections one source address may hold (trusted proxies are not capped).
    pub max_connections_per_source: u32,
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
    pub tls: Option<TlsFiles>,
    /// The durable spool for events SQS can't take; `None`: such events get `503`.
    pub spool: Option<SpoolSettings>,
    /// Which memory remembers events, for how long, and what happens when it fails.
    pub event_memory: MemorySettings,
    /// `BRIDGE_ALLOWED_SOURCES` was given but blank, so every source is allowed: worth a
    /// warning, as it usually means a value that failed to arrive.
    allowed_sources_blank: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials are counted, never shown.
        f.debug_struct("Config")
            .field("queue_url", &self.queue_url)
            .field("event_setup_id", &self.event_setup_id)
            .field("group_by", &self.group_by)
            .field("shared_secrets", &self.shared_secrets.len())
            .field("api_keys", &self.api_keys.len())
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("require_hmac", &self.require_hmac)
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
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_source",
                &self.max_connections_per_source,
            )
            .field("body_read_timeout", &self.body_read_timeout)
            .field("ready_cache", &self.ready_cache)
            .field("batch", &self.batch)
            .field("batch_concurrency", &self.batch_concurrency)
            .field("metrics_listen", &self.metrics_listen)
            .field("sources", &self.sources)
            .field("tls", &self.tls)
            .field("spool", &self.spool)
            .field("event_memory", &self.event_memory)
            .field("allowed_sources_blank", &self.allowed_sources_blank)
            .finish()
    }
}

impl Config {
    /// Loads from the process environment and an optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, process_env)
    }

    /// Loads from a file and an environment given as a function, so tests need not touch
    /// the process environment.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        validate::config(&Settings::load(file, env)?)
    }

    /// Only where `serve` listens, from the same layers as [`Config::load`]: what
    /// `healthcheck` needs (see [`Listener`]).
    pub fn listener(file: Option<&Path>) -> Result<Listener, ConfigError> {
        validate::listener(&Settings::load_listener(file, process_env)?)
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where `serve` listens, and whether with TLS: all `healthcheck` needs. Read without
/// checking the rest of the configuration and without loading the TLS files, so that
/// files changed under a running bridge (a renewal it refuses, an edited setting) don't
/// make a bridge that still serves look dead to its container's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// The default for `BRIDGE_MAX_BUFFERED_BYTES`: 64 MiB, room for 64 of the largest bodies
/// or tens of thousands of typical ones, well inside a 512 MiB container.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;
