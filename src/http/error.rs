//! Why a webhook was not accepted, and what each reason gets: one table.
//!
//! Each variant has one row in [`WebhookError::row`]: its status, `error` code, the
//! outcome it counts as in logs and metrics, its `Retry-After`, and its log level. A new
//! reason is a new variant and its row. Only what one or two variants have beyond that
//! (the text SQS-caused refusals show, `WWW-Authenticate`, the auth failure metric) is
//! matched elsewhere.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::access::AccessError;
use crate::forward::auth::AuthError;
use crate::forward::event::EventError;
use crate::sqs::SendError;

/// Why a webhook was not accepted. The answer is `{"error": code, "detail": what to
/// fix}`; causes from SQS are logged, not shown.
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
    #[error("BRIDGE_MAX_IN_FLIGHT events are being forwarded right now; retry shortly")]
    Overloaded,
    #[error(
        "the event bodies already waiting for the queue fill BRIDGE_MAX_BUFFERED_BYTES; retry shortly"
    )]
    BufferFull,
    #[error(
        "requests whose sender is known only from the body's signature fill their half of \
         BRIDGE_MAX_IN_FLIGHT or BRIDGE_MAX_BUFFERED_BYTES; retry shortly"
    )]
    UnverifiedFull,
    #[error(
        "this address's requests whose sender is known only from the body's signature fill \
         the quarter of their half of BRIDGE_MAX_IN_FLIGHT or BRIDGE_MAX_BUFFERED_BYTES one \
         address may hold; retry shortly"
    )]
    SourceShareFull,
    #[error(
        "this connection was refused as it was accepted (BRIDGE_MAX_CONNECTIONS_PER_SOURCE or \
         BRIDGE_ALLOWED_SOURCES); retry on another"
    )]
    ConnectionRefused,
    #[error(
        "the body of a request whose sender is known only from its signature arrived too \
         slowly (a pause over 2 s, or under 16 KiB/s); send it at once"
    )]
    BodyTooSlow,
    #[error("the bridge is shutting down; retry shortly")]
    ShuttingDown,
    #[error(
        "the event is {size} bytes with its attributes, more than the queue's MaximumMessageSize \
         ({max}); the bridge's operators must raise it; retry later"
    )]
    QueueTooSmall { size: usize, max: usize },
    #[error(transparent)]
    Queue(#[from] SendError),
    /// SQS did not take it and the spool can't either: never `200` without a durable copy.
    #[error("the event could not be queued, and the bridge's spool is full; retry later")]
    SpoolFull,
    #[error(
        "the event could not be queued, and the bridge's spool can't write to disk; retry later"
    )]
    SpoolFailed,
    /// The shared event memory could not say whether the event was queued before, and
    /// `BRIDGE_EVENT_MEMORY_ON_ERROR=refuse`. Its error stays in the log.
    #[error("the bridge could not check whether this event was queued before; retry later")]
    EventMemoryUnavailable,
}

impl From<crate::spool::SpoolError> for WebhookError {
    fn from(error: crate::spool::SpoolError) -> Self {
        match error {
            crate::spool::SpoolError::Full { .. } => Self::SpoolFull,
            crate::spool::SpoolError::Disk(_) => Self::SpoolFailed,
        }
    }
}

impl From<crate::spool::Undelivered> for WebhookError {
    fn from(error: crate::spool::Undelivered) -> Self {
        match error {
            crate::spool::Undelivered::Refused(e) => Self::Queue(e),
            crate::spool::Undelivered::Spool(e) => e.into(),
        }
    }
}

/// What one kind of refusal gets.
pub struct Row<'a> {
    pub status: StatusCode,
    /// The `error` field of the answer, and of the log line.
    pub code: &'a str,
    /// The `outcome` label of the log line and of the request metrics.
    pub outcome: &'static str,
    /// Seconds for `Retry-After`, when a retry may succeed.
    pub retry_after: Option<u32>,
    pub level: Level,
}

/// The level a refusal is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The sender's own mistake.
    Info,
    /// What the bridge's operators should look at: SQS, capacity, shutdown.
    Warn,
}

impl From<crate::forward::NoGroup> for WebhookError {
    fn from(_: crate::forward::NoGroup) -> Self {
        Self::NoGroup
    }
}

impl WebhookError {
    /// The table.
    #[must_use]
    pub fn row(&self) -> Row<'_> {
        use Level::{Info as INFO, Warn as WARN};
        use StatusCode as S;
        #[rustfmt::skip]
        let (code, (status, outcome, retry_after, level)) = match self {
            Self::Forbidden(_) =>             ("forbidden",              (S::FORBIDDEN, "forbidden", None, INFO)),
            Self::Unauthorized(_) =>          ("unauthorized",           (S::UNAUTHORIZED, "unauthorized", None, INFO)),
            Self::UnsupportedMediaType(_) =>  ("unsupported_media_type", (S::UNSUPPORTED_MEDIA_TYPE, "invalid", None, INFO)),
            Self::TooLarge(_) =>              ("too_large",              (S::PAYLOAD_TOO_LARGE, "too_large", None, INFO)),
            Self::BodyTimeout(_) =>           ("body_timeout",           (S::REQUEST_TIMEOUT, "timeout", None, INFO)),
            Self::BodyTooSlow =>              ("body_too_slow",          (S::REQUEST_TIMEOUT, "timeout", None, INFO)),
            Self::BodyRead(_) =>              ("body_unreadable",        (S::BAD_REQUEST, "invalid", None, INFO)),
            Self::Invalid(e) =>               (e.code(),                 (S::BAD_REQUEST, "invalid", None, INFO)),
            Self::NoGroup =>                  ("missing_group_id",       (S::BAD_REQUEST, "invalid", None, INFO)),
            Self::Overloaded
            | Self::BufferFull
            | Self::UnverifiedFull
            | Self::SourceShareFull
            | Self::ConnectionRefused =>      ("overloaded",             (S::SERVICE_UNAVAILABLE, "overloaded", Some(1), WARN)),
            Self::ShuttingDown =>             ("shutting_down",          (S::SERVICE_UNAVAILABLE, "shutting_down", Some(1), WARN)),
            Self::QueueTooSmall { .. } =>     ("queue_too_small",        (S::SERVICE_UNAVAILABLE, "unavailable", Some(5), WARN)),
            Self::Queue(e @ SendError::Invalid { .. }) =>
                                              (e.code(),                 (S::BAD_REQUEST, "rejected", None, WARN)),
            Self::Queue(e) =>                 (e.code(),                 (S::SERVICE_UNAVAILABLE, "unavailable", Some(5), WARN)),
            Self::SpoolFull =>                ("spool_full",             (S::SERVICE_UNAVAILABLE, "unavailable", Some(5), WARN)),
            Self::SpoolFailed =>              ("spool_unavailable",      (S::SERVICE_UNAVAILABLE, "unavailable", Some(5), WARN)),
            Self::EventMemoryUnavailable =>   ("event_memory_unavailable", (S::SERVICE_UNAVAILABLE, "unavailable", Some(5), WARN)),
        };
        Row {
            status,
            code,
            outcome,
            retry_after,
            level,
        }
    }

    /// A stable label for logs and the `error` field.
    #[must_use]
    pub fn code(&self) -> &str {
        self.row().code
    }

    /// What the sender is told: SQS's own words (which may name the queue, the account or
    /// the role) stay in the log.
    fn detail(&self) -> String {
        match self {
            Self::Queue(SendError::Invalid { code, .. }) => {
                format!("SQS refuses this message ({code}); the bridge's log has SQS's reason")
            }
            Self::Queue(SendError::QueueMissing) => {
                "the destination queue does not exist yet; retry later".to_owned()
            }
            Self::Queue(_) => "the queue did not accept the event in time; retry later".to_owned(),
            other => other.to_string(),
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
        self.row().status
    }

    fn error_response(&self) -> HttpResponse {
        let row = self.row();
        let mut response = HttpResponse::build(row.status);
        if let Some(seconds) = row.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if matches!(self, Self::Unauthorized(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "X-api-key, X-Payload-Signature"));
        }
        response.json(ErrorBody {
            error: row.code,
            detail: self.detail(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as the README and docs/openapi.yaml give it: a sender's mistake is a 4xx
    /// without `Retry-After`; the bridge's or SQS's trouble is a `503` with one.
    #[test]
    fn each_refusal_gets_its_status_code_and_retry() {
        let cases: [(WebhookError, u16, &str, Option<u32>); 10] = [
            (WebhookError::SpoolFull, 503, "spool_full", Some(5)),
            (WebhookError::SpoolFailed, 503, "spool_unavailable", Some(5)),
            (WebhookError::TooLarge(10), 413, "too_large", None),
            (WebhookError::NoGroup, 400, "missing_group_id", None),
            (WebhookError::BufferFull, 503, "overloaded", Some(1)),
            (WebhookError::ShuttingDown, 503, "shutting_down", Some(1)),
            (
                WebhookError::QueueTooSmall { size: 2, max: 1 },
                503,
                "queue_too_small",
                Some(5),
            ),
            (
                WebhookError::Queue(SendError::Invalid {
                    code: "InvalidMessageContents".into(),
                    detail: String::new(),
                }),
                400,
                "rejected_by_sqs",
                None,
            ),
            (
                WebhookError::Queue(SendError::QueueMissing),
                503,
                "queue_missing",
                Some(5),
            ),
            (
                WebhookError::Queue(SendError::Timeout(5)),
                503,
                "sqs_timeout",
                Some(5),
            ),
        ];
        for (error, status, code, retry) in cases {
            let row = error.row();
            assert_eq!(row.status.as_u16(), status, "{error:?}");
            assert_eq!(row.code, code);
            assert_eq!(row.retry_after, retry, "{error:?}");
            assert_eq!(
                row.level == Level::Warn,
                status == 503 || code == "rejected_by_sqs",
                "{error:?}"
            );
        }
    }
}
