//! The request log: one line and one set of metrics per webhook, whatever its outcome,
//! and the request id that ties the line to the answer.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpRequest;

use super::error::{Level, WebhookError};
use super::handlers::Accepted;
use crate::telemetry::metric;

/// What the request log records about an event, filled in as it becomes known.
#[derive(Default)]
pub struct EventLog {
    /// The client's address, once the source policy has resolved it.
    pub client: Option<IpAddr>,
    pub auth: Option<&'static str>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Random per process, so ids stay distinct across restarts and replicas (in a container
/// every replica is often pid 1). From std's hash keys (OS randomness, read once) and the
/// start time, not aws-lc's RNG, which seeds itself slowly on the first request
/// (docs/BENCHMARKS.md, "The request-id tag").
static PROCESS_TAG: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.write_u32(std::process::id());
    #[allow(clippy::cast_possible_truncation)] // any 32 bits of the hash will do
    let tag = hasher.finish() as u32;
    tag
});

/// The `X-Request-Id` a trusted proxy passed on, when it is short printable ASCII, else
/// a new one: from anyone else it could forge another request's log lines.
pub fn request_id(req: &HttpRequest, from_trusted_proxy: bool) -> String {
    req.headers()
        .get("x-request-id")
        .filter(|_| from_trusted_proxy)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || {
                format!(
                    "{:08x}-{:x}",
                    *PROCESS_TAG,
                    REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)
                )
            },
            str::to_owned,
        )
}

/// One webhook's end, as logged and counted.
pub struct Finished<'a> {
    pub request_id: &'a str,
    pub status: u16,
    pub elapsed_s: f64,
    pub client: Option<String>,
    pub result: &'a Result<Accepted, WebhookError>,
    pub log: &'a EventLog,
}

/// Writes the line at `level`: `tracing`'s macros take the level as a constant.
macro_rules! at_level {
    ($level:expr, $($fields:tt)*) => {
        match $level {
            Level::Warn => tracing::warn!($($fields)*),
            Level::Info => tracing::info!($($fields)*),
        }
    };
}

impl Finished<'_> {
    /// The metrics and the one log line. An accepted event's keys are SQS's answer; a
    /// refused one's are what it would have been sent with, where known.
    pub fn record(self) {
        let row = self.result.as_ref().err().map(WebhookError::row);
        let (outcome, level, message) = match &row {
            None if matches!(self.result, Ok(a) if a.status == "spooled") => {
                ("spooled", Level::Info, "webhook spooled")
            }
            None => ("accepted", Level::Info, "webhook accepted"),
            Some(row) => {
                let message = match row.level {
                    Level::Warn => "webhook not accepted",
                    Level::Info => "webhook rejected",
                };
                (row.outcome, row.level, message)
            }
        };
        metrics::counter!(metric::WEBHOOK_REQUESTS, "outcome" => outcome).increment(1);
        metrics::histogram!(metric::WEBHOOK_DURATION, "outcome" => outcome).record(self.elapsed_s);
        if let Err(WebhookError::Unauthorized(reason)) = self.result {
            metrics::counter!(metric::AUTH_FAILURES, "reason" => reason.reason()).increment(1);
        }
        let log = self.log;
        let (group_id, deduplication_id, message_id) = match self.result {
            Ok(accepted) => (
                Some(accepted.group_id.as_str()),
                Some(accepted.deduplication_id.as_str()),
                accepted.message_id.as_deref(),
            ),
            Err(_) => (
                log.group_id.as_deref(),
                log.deduplication_id.as_deref(),
                None,
            ),
        };
        let error = row.as_ref().map(|row| row.code);
        let cause = self.result.as_ref().err().map(ToString::to_string);
        at_level!(
            level,
            request_id = self.request_id,
            outcome,
            error,
            cause,
            status = self.status,
            latency_ms = self.elapsed_s * 1000.0,
            client = self.client,
            auth = log.auth,
            event_id = log.event_id,
            event_type = log.event_type,
            group_id,
            deduplication_id,
            message_id,
            "{message}"
        );
    }
}
