//! HTTP endpoints: the webhook, `/healthz`, `/readyz` and `/metrics`.
//!
//! The webhook runs its checks cheapest first (source, credential headers, content type,
//! admission, then the body: signature, JSON, fields) and forwards only what passed them
//! all, so a rejected request never reaches the queue.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use super::AppState;
use super::access::AccessError;
use super::admission::check_content_type;
use super::error::WebhookError;
use super::request_log::{EventLog, Finished, request_id};
use crate::forward::Event;
use crate::forward::auth::{Pending, Presented};
use crate::forward::event::ATTR_CONFLICTS_WITH;
use crate::memory::{Claimed, EventKey, EventMemory, OnError};
use crate::spool::Delivery;
use crate::sqs::{OutgoingMessage, Readiness};
use crate::telemetry::metric;

/// The `200` answer: what SQS accepted (`"accepted"`, with SQS's message id), what the
/// spool holds for SQS (`"spooled"`), or what SQS accepted for an earlier attempt of the
/// same event, by the shared memory (`"duplicate"`, the first answer's ids), and under
/// which keys.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub sequence_number: Option<String>,
    pub group_id: String,
    pub deduplication_id: String,
}

/// `POST {BRIDGE_PATH}`: authenticate, validate, forward, and answer only once SQS has it.
pub(super) async fn webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id(
        &req,
        state
            .sources
            .is_trusted_proxy(req.peer_addr().map(|a| a.ip())),
    );
    let mut log = EventLog::default();
    let result = forward(&req, payload, &state, &mut log).await;
    let mut response = match &result {
        Ok(accepted) => HttpResponse::Ok().json(accepted),
        Err(error) => error.error_response(),
    };
    if state.draining.load(Ordering::Relaxed)
        || matches!(result, Err(WebhookError::ConnectionRefused))
    {
        // Let the answer flush, then free the connection (so shutdown need not wait for
        // it, or it gives its place back).
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Finished {
        request_id: &request_id,
        status: response.status().as_u16(),
        elapsed_s: started.elapsed().as_secs_f64(),
        client: log.client.map_or_else(
            || req.peer_addr().map(|a| a.ip().to_string()),
            |ip| Some(ip.to_string()),
        ),
        result: &result,
        log: &log,
    }
    .record();
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
    if req.conn_data::<super::connections::Refused>().is_some() {
        return Err(WebhookError::ConnectionRefused);
    }
    log.client = state
        .sources
        .check(req.peer_addr().map(|a| a.ip()), req.headers())?;
    let presented = Presented::from_headers(req.headers());
    let pending = state.authenticator.check_headers(&presented)?;
    check_content_type(req)?;
    let verified = !matches!(
        pending,
        Pending::Signature {
            key_verified: false
        }
    );
    // Held until the webhook is answered: the body stays in memory until SQS has it.
    let mut slot = state.admission.admit(verified, log.client)?;
    let body = state.admission.read_body(req, payload, &mut slot).await?;
    let method = state.authenticator.check_body(&presented, pending, &body)?;
    slot.verified();
    log.auth = Some(method.as_str());

    let event = Event::parse(Vec::from(body))?;
    log.event_id = event.parsed.id.as_ref().map(|id| id.value.clone());
    log.event_type.clone_from(&event.parsed.event_type);
    let group_id = state.pipeline.group(&event)?;
    let attributes = event.parsed.attributes();
    // A queue made to take less than the bridge accepts: the deployment's to fix, so
    // `503` (the vendor retries) without a call SQS would refuse.
    let size = crate::sqs::limits::message_bytes(&event.body, &attributes);
    let mut too_small = None;
    if size > state.readiness.limits().max_message_bytes() {
        // It may have been raised since the last check, which only `/readyz` prompts:
        // look again (a cached answer, one check at a time).
        state.readiness.get().await;
        let max = state.readiness.limits().max_message_bytes();
        if size > max {
            too_small = Some(max);
        }
    }
    if let (Some(max), None) = (too_small, &state.spool) {
        return Err(WebhookError::QueueTooSmall { size, max });
    }
    let identity = state
        .memory
        .as_ref()
        .map(|_| state.pipeline.identity(&group_id, &event));
    let mut message = state.pipeline.message(event, group_id, attributes);
    let mut remembered = None;
    if let (Some(memory), Some((key, body_sha256))) = (&state.memory, identity) {
        match remember(memory, key, &body_sha256, &mut message).await? {
            Remembered::Duplicate(accepted) => return Ok(accepted),
            Remembered::Forward(key) => remembered = key,
        }
    }
    let group_id = message.group_id.as_str().to_owned();
    let deduplication_id = message.deduplication_id.as_str().to_owned();
    log.group_id = Some(group_id.clone());
    log.deduplication_id = Some(deduplication_id.clone());

    let delivery = match &state.spool {
        None => Delivery::Queued(state.sender.send(message).await?),
        // Too large for the queue as it is now: kept until the queue is raised.
        Some(spool) if too_small.is_some() => spool.spool(message).await?,
        Some(spool) => spool.forward(&state.sender, message).await?,
    };
    if let (Some(memory), Some(key)) = (&state.memory, &remembered) {
        let marked = match &delivery {
            Delivery::Queued(receipt) => memory.sent(key, receipt).await,
            Delivery::Spooled => memory.spooled(key).await,
        };
        if let Err(error) = marked {
            // SQS (or the spool) has it: the answer stands. A repeat finds the record
            // unfinished and is sent again under the same id (RELIABILITY.md, "The
            // event memory").
            tracing::warn!(error = %error, "could not record an event's answer in the event memory");
        }
    }
    Ok(match delivery {
        Delivery::Queued(receipt) => Accepted {
            status: "accepted",
            message_id: Some(receipt.message_id),
            sequence_number: receipt.sequence_number,
            group_id,
            deduplication_id,
        },
        Delivery::Spooled => Accepted {
            status: "spooled",
            message_id: None,
            sequence_number: None,
            group_id,
            deduplication_id,
        },
    })
}

/// What the shared memory made of an event.
enum Remembered {
    /// Already queued: the first answer, again.
    Duplicate(Accepted),
    /// Forward it (its id and attributes set as the memory says), then mark this key sent
    /// (`None`: the memory was unreachable and the event goes without it).
    Forward(Option<EventKey>),
}

/// Claims the event in the shared memory; the rules are [`crate::memory::decide`]'s.
async fn remember(
    memory: &EventMemory,
    key: EventKey,
    body_sha256: &[u8; 32],
    message: &mut OutgoingMessage,
) -> Result<Remembered, WebhookError> {
    match memory
        .claim(&key, body_sha256, &message.deduplication_id)
        .await
    {
        Ok(Claimed::Forward(id)) => {
            message.deduplication_id = id;
            Ok(Remembered::Forward(Some(key)))
        }
        Ok(Claimed::Duplicate {
            deduplication_id,
            receipt,
        }) => Ok(Remembered::Duplicate(Accepted {
            status: "duplicate",
            sequence_number: receipt.as_ref().and_then(|r| r.sequence_number.clone()),
            message_id: receipt.map(|r| r.message_id),
            group_id: message.group_id.as_str().to_owned(),
            deduplication_id: deduplication_id.as_str().to_owned(),
        })),
        Ok(Claimed::Conflict {
            key,
            deduplication_id,
            first,
        }) => {
            message.deduplication_id = deduplication_id;
            message.attributes.push((ATTR_CONFLICTS_WITH, first));
            Ok(Remembered::Forward(Some(key)))
        }
        Err(error) => {
            let action = match memory.on_error {
                OnError::Refuse => "refused",
                OnError::Forward => "forwarded",
            };
            metrics::counter!(metric::EVENT_MEMORY_UNAVAILABLE, "action" => action).increment(1);
            tracing::warn!(error = %error, action, "the event memory could not be reached");
            match memory.on_error {
                OnError::Refuse => Err(WebhookError::EventMemoryUnavailable),
                OnError::Forward => Ok(Remembered::Forward(None)),
            }
        }
    }
}

/// `GET /healthz`: the process is alive and serving.
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Whether the request's source may see what the webhook port shows allowed sources
/// only (`/metrics`, `/readyz`'s details): every source when no allow-list is set.
fn allowed(req: &HttpRequest, state: &AppState) -> Result<(), AccessError> {
    state
        .sources
        .check(req.peer_addr().map(|a| a.ip()), req.headers())
        .map(drop)
}

/// `GET /readyz` on the webhook port: ready only when the queue answers and is FIFO. The
/// details (the queue's settings, the reason, warnings such as disabled authentication)
/// only for allowed sources; others, such as a load balancer's probes, get the status.
pub(super) async fn readyz(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    readiness(&state, allowed(&req, &state).is_ok()).await
}

/// `GET /readyz` on the metrics listener: always with the details.
pub async fn readyz_private(state: web::Data<AppState>) -> HttpResponse {
    readiness(&state, true).await
}

async fn readiness(state: &AppState, details: bool) -> HttpResponse {
    let (mut response, mut body) = match state.readiness.get().await {
        Readiness::Ready {
            content_based_deduplication,
            max_message_bytes,
        } => (
            HttpResponse::Ok(),
            serde_json::json!({
                "status": "ready",
                "fifo": true,
                "content_based_deduplication": content_based_deduplication,
                "max_message_bytes": max_message_bytes,
            }),
        ),
        Readiness::NotReady { reason, .. } => {
            let mut response = HttpResponse::ServiceUnavailable();
            response.insert_header((header::RETRY_AFTER, "5"));
            (
                response,
                serde_json::json!({ "status": "not_ready", "reason": reason }),
            )
        }
    };
    if let Some(spool) = &state.spool {
        let backlog = spool.backlog();
        // A write that failed matters while events go into the spool; with SQS taking
        // them and nothing waiting, it must not take the instance out of service.
        if backlog.full || (backlog.failing.is_some() && backlog.spooling) {
            // Events SQS can't take would get 503 here: let the load balancer try
            // another task.
            response = HttpResponse::ServiceUnavailable();
            response.insert_header((header::RETRY_AFTER, "5"));
            let reason = if backlog.full {
                "spool_full"
            } else {
                "spool_failing"
            };
            body = serde_json::json!({ "status": "not_ready", "reason": reason, "sqs": body });
        } else if body["status"] != "ready" {
            // SQS is out, but every event still gets a durable copy: stay in service, so
            // the task (and the disk holding the spool) is not replaced.
            response = HttpResponse::Ok();
            body = serde_json::json!({ "status": "ready", "sqs": body });
        }
        body["spooling"] = serde_json::json!(backlog.spooling);
        body["spool"] = serde_json::json!(backlog);
    }
    if details {
        body["warnings"] = serde_json::json!(state.warnings.as_slice());
    } else {
        body = serde_json::json!({ "status": body["status"] });
    }
    response.json(body)
}

/// `GET /metrics` on the webhook port: only for allowed sources (scrape through
/// `BRIDGE_METRICS_LISTEN` otherwise).
pub(super) async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match allowed(&req, &state) {
        Ok(()) => metrics_private(state).await,
        Err(refused) => WebhookError::from(refused).error_response(),
    }
}

/// `GET /metrics` in Prometheus text format, on the metrics listener. Gauges that are
/// cheaper to read than to keep up to date on every request are sampled here.
pub async fn metrics_private(state: web::Data<AppState>) -> HttpResponse {
    let (in_flight, max_in_flight) = state.admission.slots_in_use();
    let (buffered, max_buffered) = state.admission.bytes_in_use();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    {
        metrics::gauge!(metric::FORWARDS_IN_FLIGHT).set(in_flight as f64);
        metrics::gauge!(metric::MAX_IN_FLIGHT).set(f64::from(max_in_flight));
        metrics::gauge!(metric::BUFFERED_BODY_BYTES).set(buffered as f64);
        metrics::gauge!(metric::MAX_BUFFERED_BODY_BYTES).set(max_buffered as f64);
        metrics::gauge!(metric::OPEN_CONNECTIONS).set(state.connections.open() as f64);
        metrics::gauge!(metric::DEDUP_REMEMBERED)
            .set(state.pipeline.deduplicator.remembered() as f64);
        if let Some(held) = state.memory.as_ref().and_then(EventMemory::records_held) {
            metrics::gauge!(metric::EVENT_MEMORY_RECORDS).set(held as f64);
        }
        if let Some(spool) = &state.spool {
            let backlog = spool.backlog();
            metrics::gauge!(metric::SPOOL_EVENTS).set(backlog.events as f64);
            metrics::gauge!(metric::SPOOL_BYTES).set(backlog.bytes as f64);
            metrics::gauge!(metric::SPOOL_OLDEST_AGE).set(backlog.oldest_event_age_seconds);
        }
    }
    let handle = crate::telemetry::prometheus();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
