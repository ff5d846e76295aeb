//! HTTP endpoints: the webhook, `/healthz` and `/readyz`.
//!
//! The webhook runs its checks cheapest first (credential headers, content type, size,
//! then the body: signature, JSON, fields) and forwards only what passed them all, so a
//! rejected request never reaches the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use bytes::BytesMut;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::{AccessError, SourcePolicy};
use crate::auth::{AuthError, Authenticator, Pending, Presented};
use crate::dedup::Deduplicator;
use crate::event::{self, EventError, MessageGroupId};
use crate::queue::{self, EventQueue, OutgoingMessage, Readiness, SendError};
use crate::telemetry::metric;

/// Everything a request needs. Each worker has its own copy, which may hold a queue of
/// its own; everything else in it is shared between the workers.
#[derive(Clone)]
pub struct AppState {
    pub authenticator: Authenticator,
    pub queue: Arc<dyn EventQueue>,
    pub deduplicator: Arc<Deduplicator>,
    /// `EventSetup_<BRIDGE_EVENT_SETUP_ID>`, for events without their own group id.
    pub default_group: Option<MessageGroupId>,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    /// Caps forwards in flight, so an SQS outage can't pile up requests in memory.
    pub in_flight: Arc<Semaphore>,
    /// The size of `in_flight`, so shutdown can wait for every permit to come back.
    pub max_in_flight: u32,
    /// Caps the requests among `in_flight` from senders not yet known (an HMAC-shaped
    /// signature waiting for the body, no API key) at half of them, rounded up: whoever
    /// sends such values with slow bodies can't take the slots of senders the headers
    /// already authenticated.
    pub unverified: Arc<Semaphore>,
    /// One permit per byte of body held (`BRIDGE_MAX_BUFFERED_BYTES`), taken for the
    /// declared length (or as chunks arrive) and kept until the webhook is answered:
    /// `in_flight` alone would let 1,024 one-MiB bodies take a gigabyte.
    pub buffered: Arc<Semaphore>,
    /// Half of `buffered`, which the bodies of senders not yet known (as for
    /// `unverified`) also take from until their signature is checked: their bytes can't
    /// crowd out senders the headers authenticated.
    pub unverified_bytes: Arc<Semaphore>,
    /// The size of `buffered`, for `/metrics`.
    pub max_buffered_bytes: usize,
    /// Set on SIGTERM/SIGINT: new webhooks get `503`, answered connections are closed.
    pub draining: Arc<AtomicBool>,
    /// Shown on `/readyz` (e.g. authentication disabled).
    pub warnings: Vec<String>,
    /// Source allow-list, checked before authentication.
    pub sources: SourcePolicy,
    /// The last `/readyz` answer, reused for `BRIDGE_READY_CACHE_MS`.
    pub readiness: Arc<ReadinessCache>,
}

/// One readiness check at a time, its answer reused for a while: `/readyz` is public, and
/// each check is a `GetQueueAttributes` call (billed, and up to a forward timeout long).
/// It also logs each change: the first answer, and every change of state or reason.
pub struct ReadinessCache {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
    /// The queue's `MaximumMessageSize` as last seen (SQS's 1 MiB until then).
    queue_max_message_bytes: AtomicUsize,
}

impl ReadinessCache {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: tokio::sync::Mutex::new(None),
            queue_max_message_bytes: AtomicUsize::new(event::SQS_MAX_MESSAGE_BYTES),
        }
    }

    /// The largest message the queue takes (its `MaximumMessageSize`, attributes
    /// included), as last seen.
    #[must_use]
    pub fn queue_max_message_bytes(&self) -> usize {
        self.queue_max_message_bytes.load(Ordering::Relaxed)
    }

    /// The cached answer while fresh, else a new check. Callers that arrive during a
    /// check wait for it and share its answer.
    pub async fn get(&self, queue: &dyn EventQueue) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, readiness)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return readiness.clone();
        }
        let readiness = queue.readiness().await;
        if let Readiness::Ready {
            max_message_bytes: Some(max),
            ..
        } = readiness
        {
            self.queue_max_message_bytes.store(max, Ordering::Relaxed);
        }
        if !last
            .as_ref()
            .is_some_and(|(_, seen)| seen.shows_as(&readiness))
        {
            readiness.log();
        }
        *last = Some((Instant::now(), readiness.clone()));
        readiness
    }
}

/// Registers the routes; the webhook at `path`, and `/metrics` unless it has a listener
/// of its own.
pub fn configure(cfg: &mut web::ServiceConfig, path: &str, with_metrics: bool) {
    // Resources (not `App::route`), so another method gets `405` with `Allow`.
    cfg.service(web::resource(path).route(web::post().to(webhook)))
        .service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)));
    if with_metrics {
        cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
    }
}

/// `GET /metrics`: Prometheus text format. Gauges that are cheaper to read than to keep
/// up to date on every request are sampled here.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let in_flight = state.max_in_flight as usize - state.in_flight.available_permits();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    {
        metrics::gauge!(metric::FORWARDS_IN_FLIGHT).set(in_flight as f64);
        metrics::gauge!(metric::MAX_IN_FLIGHT).set(f64::from(state.max_in_flight));
        metrics::gauge!(metric::BUFFERED_BODY_BYTES).set(
            (state
                .max_buffered_bytes
                .saturating_sub(state.buffered.available_permits())) as f64,
        );
        metrics::gauge!(metric::MAX_BUFFERED_BODY_BYTES).set(state.max_buffered_bytes as f64);
        metrics::gauge!(metric::DEDUP_REMEMBERED).set(state.deduplicator.remembered() as f64);
    }
    let handle = crate::telemetry::prometheus();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// Why a webhook was not accepted. Each variant maps to one status and a JSON body
/// `{"error": code, "detail": what to fix}`; causes from SQS are logged, not shown.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Forbidden(#[from] AccessError),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("Content-Type `{0}` is not JSON; send application/json")]
    UnsupportedMediaType(String),
    #[error("the body is larger than the {0}-byte limit")]
    TooLarge(usize),
    #[error("the body was not received within {0} ms")]
    BodyTimeout(u128),
    #[error("the body could not be read: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Invalid(#[from] EventError),
    #[error("the event has no valid MessageGroupId and BRIDGE_EVENT_SETUP_ID is not set")]
    NoGroup,
    #[error("too many events are being forwarded right now; retry shortly")]
    Overloaded,
    #[error(
        "the event bodies already waiting for the queue fill BRIDGE_MAX_BUFFERED_BYTES; retry shortly"
    )]
    BufferFull,
    #[error("the bridge is shutting down; retry shortly")]
    ShuttingDown,
    #[error(
        "the event is {size} bytes with its attributes, more than the queue's MaximumMessageSize \
         ({max}); the bridge's operators must raise it; retry later"
    )]
    QueueTooSmall { size: usize, max: usize },
    #[error(transparent)]
    Queue(#[from] SendError),
}

impl WebhookError {
    /// A stable label for logs and the `error` field.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::Unauthorized(_) => "unauthorized",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooLarge(_) => "too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyRead(_) => "body_unreadable",
            Self::Invalid(e) => e.code(),
            Self::NoGroup => "missing_group_id",
            Self::Overloaded | Self::BufferFull => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::QueueTooSmall { .. } => "queue_too_small",
            Self::Queue(e) => e.code(),
        }
    }

    /// The request-log outcome this error counts as.
    #[must_use]
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "forbidden",
            Self::Unauthorized(_) => "unauthorized",
            Self::UnsupportedMediaType(_)
            | Self::BodyRead(_)
            | Self::Invalid(_)
            | Self::NoGroup => "invalid",
            Self::TooLarge(_) => "too_large",
            Self::BodyTimeout(_) => "timeout",
            Self::Overloaded | Self::BufferFull => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::Queue(SendError::Invalid { .. }) => "rejected",
            Self::Queue(_) | Self::QueueTooSmall { .. } => "unavailable",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Queue(SendError::Invalid { detail, .. }) => {
                format!("SQS refuses this message: {detail}")
            }
            Self::Queue(SendError::QueueMissing) => {
                "the destination queue does not exist yet; retry later".to_owned()
            }
            Self::Queue(_) => "the queue did not accept the event in time; retry later".to_owned(),
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u32> {
        match self {
            Self::Overloaded | Self::BufferFull | Self::ShuttingDown => Some(1),
            Self::Queue(SendError::Invalid { .. }) => None,
            Self::Queue(_) | Self::QueueTooSmall { .. } => Some(5),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_)
            | Self::Invalid(_)
            | Self::NoGroup
            | Self::Queue(SendError::Invalid { .. }) => StatusCode::BAD_REQUEST,
            Self::Overloaded
            | Self::BufferFull
            | Self::ShuttingDown
            | Self::QueueTooSmall { .. }
            | Self::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if matches!(self, Self::Unauthorized(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "X-api-key, X-Payload-Signature"));
        }
        response.json(ErrorBody {
            error: self.code(),
            detail: self.detail(),
        })
    }
}

/// The `200` answer: what SQS accepted, and under which keys.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub status: &'static str,
    pub message_id: String,
    pub sequence_number: Option<String>,
    pub group_id: String,
    pub deduplication_id: String,
}

/// What the request log records about an event, filled in as it becomes known.
#[derive(Default)]
struct EventLog {
    /// The client's address, once the source policy has resolved it.
    client: Option<std::net::IpAddr>,
    auth: Option<&'static str>,
    event_id: Option<String>,
    event_type: Option<String>,
    group_id: Option<String>,
    deduplication_id: Option<String>,
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Random per process, so ids stay distinct across restarts and replicas (in a container
/// every replica is often pid 1). From std's hash keys (OS randomness, read once) and the
/// start time: aws-lc's RNG would spend ~100 ms seeding itself on the first request.
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

fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
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

/// `POST {BRIDGE_PATH}`: authenticate, validate, forward, and answer only once SQS has it.
async fn webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id(&req);
    let mut log = EventLog::default();
    let result = forward(&req, payload, &state, &mut log).await;
    let mut response = match &result {
        Ok(accepted) => HttpResponse::Ok().json(accepted),
        Err(error) => error.error_response(),
    };
    if state.draining.load(Ordering::Relaxed) {
        // Let the answer flush, then free the connection so shutdown need not wait for it.
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let client = log.client.map_or_else(
        || req.peer_addr().map(|a| a.ip().to_string()),
        |ip| Some(ip.to_string()),
    );
    let status = response.status().as_u16();
    let outcome = result
        .as_ref()
        .map_or_else(WebhookError::outcome, |_| "accepted");
    metrics::counter!(metric::WEBHOOK_REQUESTS, "outcome" => outcome).increment(1);
    metrics::histogram!(metric::WEBHOOK_DURATION, "outcome" => outcome).record(elapsed);
    if let Err(WebhookError::Unauthorized(reason)) = &result {
        metrics::counter!(metric::AUTH_FAILURES, "reason" => reason.reason()).increment(1);
    }
    match &result {
        Ok(accepted) => tracing::info!(
            request_id,
            outcome = "accepted",
            status,
            latency_ms,
            client,
            auth = log.auth,
            event_id = log.event_id,
            event_type = log.event_type,
            group_id = accepted.group_id,
            deduplication_id = accepted.deduplication_id,
            message_id = accepted.message_id,
            "webhook accepted"
        ),
        Err(error) => {
            let level_warn = matches!(
                error,
                WebhookError::Queue(_)
                    | WebhookError::Overloaded
                    | WebhookError::BufferFull
                    | WebhookError::ShuttingDown
                    | WebhookError::QueueTooSmall { .. }
            );
            let cause = match error {
                WebhookError::Queue(e) => e.to_string(),
                other => other.to_string(),
            };
            if level_warn {
                tracing::warn!(
                    request_id,
                    outcome = error.outcome(),
                    error = error.code(),
                    cause,
                    status,
                    latency_ms,
                    client,
                    auth = log.auth,
                    event_id = log.event_id,
                    event_type = log.event_type,
                    group_id = log.group_id,
                    deduplication_id = log.deduplication_id,
                    "webhook not accepted"
                );
            } else {
                tracing::info!(
                    request_id,
                    outcome = error.outcome(),
                    error = error.code(),
                    cause,
                    status,
                    latency_ms,
                    client,
                    auth = log.auth,
                    event_id = log.event_id,
                    event_type = log.event_type,
                    "webhook rejected"
                );
            }
        }
    }
    response
}

async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    log: &mut EventLog,
) -> Result<Accepted, WebhookError> {
    if state.draining.load(Ordering::Relaxed) {
        return Err(WebhookError::ShuttingDown);
    }
    log.client = state
        .sources
        .check(req.peer_addr().map(|a| a.ip()), req.headers())?;
    let presented = Presented::from_headers(req.headers());
    let pending = state.authenticator.check_headers(&presented)?;
    check_content_type(req)?;
    let _permit = state
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| WebhookError::Overloaded)?;
    let unverified = match pending {
        Pending::Signature {
            key_verified: false,
        } => Some(
            state
                .unverified
                .clone()
                .try_acquire_owned()
                .map_err(|_| WebhookError::Overloaded)?,
        ),
        Pending::Signature { key_verified: true } | Pending::Done(_) => None,
    };
    // Held until the webhook is answered: the body stays in memory until SQS has it.
    let (body, mut body_permits) = read_body(req, payload, state, unverified.is_some()).await?;
    let method = state.authenticator.check_body(&presented, pending, &body)?;
    drop(unverified);
    body_permits.verified();
    log.auth = Some(method.as_str());

    // One copy-free conversion: the same string is checked, hashed and sent.
    let body = String::from_utf8(Vec::from(body))
        .map_err(|e| EventError::NotUtf8(e.utf8_error().valid_up_to()))?;
    let event = event::parse_text(&body)?;
    log.event_id = event.id.as_ref().map(|id| id.value.clone());
    log.event_type.clone_from(&event.event_type);
    for (field, problem) in &event.ignored_keys {
        tracing::warn!(field, %problem, "ignoring the event's own FIFO key: SQS would refuse it");
    }
    let group_id = event
        .group_id
        .clone()
        .or_else(|| state.default_group.clone())
        .ok_or(WebhookError::NoGroup)?;
    let attributes = event.attributes();
    // A queue made to take less than the bridge accepts: the deployment's to fix, so
    // `503` (the vendor retries) without a call SQS would refuse.
    let size = queue::message_bytes(&body, &attributes);
    if size > state.readiness.queue_max_message_bytes() {
        // It may have been raised since the last check, which only `/readyz` prompts:
        // look again (a cached answer, one check at a time).
        state.readiness.get(state.queue.as_ref()).await;
        let max = state.readiness.queue_max_message_bytes();
        if size > max {
            return Err(WebhookError::QueueTooSmall { size, max });
        }
    }
    let deduplication_id = state
        .deduplicator
        .assign(&group_id, &event, body.as_bytes());
    log.group_id = Some(group_id.as_str().to_owned());
    log.deduplication_id = Some(deduplication_id.as_str().to_owned());

    let receipt = state
        .queue
        .send(OutgoingMessage {
            body,
            group_id: group_id.clone(),
            deduplication_id: deduplication_id.clone(),
            attributes,
        })
        .await?;
    Ok(Accepted {
        status: "accepted",
        message_id: receipt.message_id,
        sequence_number: receipt.sequence_number,
        group_id: group_id.as_str().to_owned(),
        deduplication_id: deduplication_id.as_str().to_owned(),
    })
}

/// No `Content-Type` is taken as JSON; a declared one must be JSON (and UTF-8, if it says).
fn check_content_type(req: &HttpRequest) -> Result<(), WebhookError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("(not text)");
    let mut parts = text.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default().to_ascii_lowercase();
    let json = essence == "application/json"
        || essence == "text/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let utf8 = parts.all(|p| {
        p.split_once('=').is_none_or(|(k, v)| {
            !k.trim().eq_ignore_ascii_case("charset")
                || matches!(
                    v.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                    "utf-8" | "utf8"
                )
        })
    });
    if json && utf8 {
        Ok(())
    } else {
        Err(WebhookError::UnsupportedMediaType(
            text.chars().take(100).collect(),
        ))
    }
}

/// The permits for one body's bytes: of `buffered`, and of `unverified_bytes` while its
/// sender is not yet known. Dropping it gives them back.
#[derive(Default)]
struct BodyBytes {
    held: Option<OwnedSemaphorePermit>,
    unverified: Option<OwnedSemaphorePermit>,
}

impl BodyBytes {
    /// Takes permits until `total` bytes are covered, or refuses with `BufferFull`.
    fn cover(
        &mut self,
        state: &AppState,
        total: usize,
        unverified: bool,
    ) -> Result<(), WebhookError> {
        let taken = self
            .held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        let Some(more) = total.checked_sub(taken).filter(|n| *n > 0) else {
            return Ok(());
        };
        // Never more than the body limit (about 1 MiB), far below 4 GiB.
        let more32 = u32::try_from(more).map_err(|_| WebhookError::BufferFull)?;
        let take = |from: &Arc<Semaphore>| {
            Arc::clone(from)
                .try_acquire_many_owned(more32)
                .map_err(|_| WebhookError::BufferFull)
        };
        let unverified = unverified
            .then(|| take(&state.unverified_bytes))
            .transpose()?;
        let held = take(&state.buffered)?;
        add(&mut self.held, held);
        if let Some(permit) = unverified {
            add(&mut self.unverified, permit);
        }
        Ok(())
    }

    /// The sender is known now: its bytes no longer count against the unverified half.
    fn verified(&mut self) {
        self.unverified = None;
    }
}

/// Adds `permit` to what `slot` holds (permits of one semaphore).
fn add(slot: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match slot {
        Some(held) => held.merge(permit),
        None => *slot = Some(permit),
    }
}

/// Reads the body within `BRIDGE_BODY_READ_TIMEOUT_MS`, enforcing
/// `BRIDGE_MAX_BODY_BYTES` while reading (a declared oversized length is refused before
/// any byte is read; a stream that grows past it is cut off) and taking byte permits for
/// the declared length up front, or for each chunk of a chunked body as it arrives.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    unverified: bool,
) -> Result<(BytesMut, BodyBytes), WebhookError> {
    let (limit, timeout) = (state.max_body_bytes, state.body_read_timeout);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(WebhookError::TooLarge(limit));
    }
    let mut bytes = BodyBytes::default();
    bytes.cover(state, declared.unwrap_or(0), unverified)?;
    let read = async {
        // Not more than 64 KiB up front, whatever is declared: a sender that declares
        // 1 MiB and sends nothing holds no more than that.
        let mut body =
            BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit).min(64 * 1024));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| WebhookError::BodyRead(e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(WebhookError::TooLarge(limit));
            }
            bytes.cover(state, body.len() + chunk.len(), unverified)?;
            body.extend_from_slice(&chunk);
        }
        Ok((body, bytes))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| WebhookError::BodyTimeout(timeout.as_millis()))?
}

/// `GET /healthz`: the process is alive and serving.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: ready only when the queue answers and is FIFO.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.readiness.get(state.queue.as_ref()).await {
        Readiness::Ready {
            content_based_deduplication,
            max_message_bytes,
        } => HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "fifo": true,
            "content_based_deduplication": content_based_deduplication,
            "max_message_bytes": max_message_bytes,
            "warnings": state.warnings,
        })),
        Readiness::NotReady { reason, .. } => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .json(serde_json::json!({
                "status": "not_ready",
                "reason": reason,
                "warnings": state.warnings,
            })),
    }
}
