//! Sorting SQS's answers into what the sender should be told: the one place that knows
//! SQS's error codes. A new error class is a new arm here (and its row in
//! `http::error`'s table, if it needs an answer of its own).

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::telemetry::metric;

/// Why a message is not in the queue. Only [`SendError::Invalid`] is the event's fault;
/// everything else is worth a retry by the sender.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// SQS will never accept this message (`InvalidMessageContents` and the like).
    #[error("SQS refused the message ({code}): {detail}")]
    Invalid { code: String, detail: String },
    /// The queue does not exist (yet): a deploy-time state, not the event's fault.
    #[error("the queue does not exist")]
    QueueMissing,
    /// No answer within `BRIDGE_FORWARD_TIMEOUT_MS`, retries included.
    #[error("SQS did not accept the message within {0} ms")]
    Timeout(u128),
    /// Anything else: throttling, 5xx, network, credentials, permissions.
    #[error("SQS call failed ({code}): {detail}")]
    Failed { code: String, detail: String },
}

impl SendError {
    /// A stable label for logs, metrics and the `error` field of the answer.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            Self::Invalid { .. } => "rejected_by_sqs",
            Self::QueueMissing => "queue_missing",
            Self::Timeout(_) => "sqs_timeout",
            Self::Failed { .. } => "sqs_unavailable",
        }
    }

    /// The label `bridge_sqs_errors_total` counts this under: SQS's own code where it
    /// gave one.
    fn metric_code(&self) -> String {
        match self {
            Self::Invalid { code, .. } | Self::Failed { code, .. } => code.clone(),
            Self::QueueMissing => "queue_missing".to_owned(),
            Self::Timeout(_) => "timeout".to_owned(),
        }
    }

    /// The bridge stopped before answering (its dispatcher is gone): a retry may reach a
    /// process that is still running.
    pub(crate) fn stopped(detail: &str) -> Self {
        Self::Failed {
            code: "dispatcher_stopped".into(),
            detail: detail.into(),
        }
    }
}

/// Sorts an SDK error into what the sender should be told. The SDK has already retried
/// what is retryable (throttling, timeouts, 5xx, dropped connections).
pub(crate) fn classify<E, R>(
    error: &SdkError<E, R>,
    queue_missing: impl Fn(&E) -> bool,
) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::TimeoutError(_) = error {
        return SendError::Failed {
            code: "timeout".into(),
            detail: DisplayErrorContext(error).to_string(),
        };
    }
    let Some(service) = error.as_service_error() else {
        // Only a failure to reach SQS is `network` (worth the batcher's retry); a
        // request that could not be built (credentials, configuration) or an answer that
        // could not be read would fail again the same way.
        let code = match error {
            SdkError::DispatchFailure(_) => "network",
            SdkError::ResponseError(_) => "bad_response",
            _ => "construction",
        };
        return SendError::Failed {
            code: code.into(),
            detail: DisplayErrorContext(error).to_string(),
        };
    };
    if queue_missing(service) {
        return SendError::QueueMissing;
    }
    classify_code(
        service.code().unwrap_or("unknown").to_owned(),
        service.message().unwrap_or_default().to_owned(),
    )
}

/// The event's fault only for content SQS will never take; a missing queue or a
/// permission problem is the deployment's, and worth the sender's retry.
pub(crate) fn classify_code(code: String, detail: String) -> SendError {
    match code.as_str() {
        "InvalidMessageContents" => SendError::Invalid { code, detail },
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => SendError::QueueMissing,
        _ => SendError::Failed { code, detail },
    }
}

/// SQS throttling, however it is spelled (`ThrottlingException` in the JSON protocol,
/// `RequestThrottled` in the older one, and their relatives).
pub(crate) fn is_throttling(code: &str) -> bool {
    code.contains("Throttl") || code == "TooManyRequestsException" || code == "SlowDown"
}

/// SQS failing on its side (a 5xx).
pub(crate) fn is_server_fault(code: &str) -> bool {
    matches!(
        code,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "InternalServerError"
    )
}

/// Records one SQS call's latency and, when it failed, its error code.
pub(crate) fn observe<T>(
    action: &'static str,
    started: std::time::Instant,
    result: Result<T, SendError>,
) -> Result<T, SendError> {
    metrics::histogram!(metric::SQS_CALL_DURATION, "action" => action)
        .record(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        count_error(action, error);
    }
    result
}

/// Counts one failed call, or one failed entry of a batch call, by SQS's error code.
pub(crate) fn count_error(action: &'static str, error: &SendError) {
    metrics::counter!(metric::SQS_ERRORS, "action" => action, "code" => error.metric_code())
        .increment(1);
}
