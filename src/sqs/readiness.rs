//! Readiness: whether the queue answers and is FIFO, what `/readyz` shows of it, and the
//! cache that keeps a public `/readyz` from driving SQS calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;

use super::classify::classify;
use super::limits::QueueLimits;
use super::{SendError, SqsQueue};
use crate::telemetry::metric;

/// The state `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready {
        content_based_deduplication: bool,
        /// The queue's `MaximumMessageSize` (attributes included), when SQS gave it:
        /// queues made before 2025 may still take only 256 KiB.
        max_message_bytes: Option<usize>,
    },
    /// `reason` is shown on `/readyz`, to anyone who can reach it; `detail` (the queue URL,
    /// with the account id, and SQS's message, which may name the role) goes to the log
    /// and to `check-config` only.
    NotReady { reason: String, detail: String },
}

impl Readiness {
    /// The same as `/readyz` shows it: state and reason, not the logged detail (which
    /// may carry SQS's request ids, different on every call).
    #[must_use]
    pub fn shows_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::NotReady { reason: a, .. }, Self::NotReady { reason: b, .. }) => a == b,
            _ => self == other,
        }
    }

    /// Logs this answer (called when it differs from the last one).
    pub(crate) fn log(&self) {
        match self {
            Self::Ready {
                content_based_deduplication,
                max_message_bytes,
            } => tracing::info!(
                content_based_deduplication,
                max_message_bytes,
                "queue is ready"
            ),
            Self::NotReady { reason, detail } => tracing::warn!(
                reason,
                detail,
                "queue is not ready: webhooks get 503 until it is"
            ),
        }
    }
}

impl SqsQueue {
    /// Whether the queue answers and is a FIFO queue (one `GetQueueAttributes` call).
    pub async fn readiness(&self) -> Readiness {
        let readiness = self.check_queue().await;
        let ready = matches!(readiness, Readiness::Ready { .. });
        metrics::gauge!(metric::READY).set(if ready { 1.0 } else { 0.0 });
        readiness
    }

    async fn check_queue(&self) -> Readiness {
        let started = std::time::Instant::now();
        let call = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::FifoQueue)
            .attribute_names(QueueAttributeName::ContentBasedDeduplication)
            .attribute_names(QueueAttributeName::MaximumMessageSize)
            .send();
        let answer = tokio::time::timeout(self.forward_timeout, call).await;
        metrics::histogram!(metric::SQS_CALL_DURATION, "action" => "GetQueueAttributes")
            .record(started.elapsed().as_secs_f64());
        // `/readyz` is reachable by anyone who can reach the webhook: its reason names the
        // problem, while the queue URL (the account id) and SQS's message (which may name
        // the role) go to the log and `check-config` only.
        let not_ready = |reason: String, detail: String| Readiness::NotReady {
            reason,
            detail: format!("queue {}: {detail}", self.queue_url),
        };
        let answer = match answer {
            Err(_) => {
                let reason = "SQS did not answer GetQueueAttributes".to_owned();
                return not_ready(reason.clone(), reason);
            }
            Ok(Err(e)) => {
                let error = classify(&e, aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError::is_queue_does_not_exist);
                let reason = match &error {
                    SendError::QueueMissing => "the queue does not exist".to_owned(),
                    SendError::Invalid { code, .. } | SendError::Failed { code, .. } => {
                        format!(
                            "GetQueueAttributes failed ({code}); the bridge's log has the detail"
                        )
                    }
                    SendError::Timeout(_) => "SQS did not answer GetQueueAttributes".to_owned(),
                };
                return not_ready(reason, error.to_string());
            }
            Ok(Ok(answer)) => answer,
        };
        let attribute = |name| {
            answer
                .attributes()
                .and_then(|a| a.get(&name))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        if attribute(QueueAttributeName::FifoQueue) {
            Readiness::Ready {
                content_based_deduplication: attribute(
                    QueueAttributeName::ContentBasedDeduplication,
                ),
                max_message_bytes: answer
                    .attributes()
                    .and_then(|a| a.get(&QueueAttributeName::MaximumMessageSize))
                    .and_then(|v| v.parse().ok()),
            }
        } else {
            let reason = "the queue is not a FIFO queue".to_owned();
            not_ready(reason.clone(), reason)
        }
    }
}

/// One readiness check at a time, its answer reused for a while: `/readyz` is public, and
/// each check is a `GetQueueAttributes` call (billed, and up to a forward timeout long).
/// It also logs each change: the first answer, and every change of state or reason.
pub struct ReadinessCache {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
    /// Written with each answer's `MaximumMessageSize`.
    limits: Arc<QueueLimits>,
    /// The queue asked: the client every worker shares. With batching off, a worker's
    /// sends go over its own connections, but checks are rare (one at a time, cached),
    /// so they share one client.
    queue: SqsQueue,
}

impl ReadinessCache {
    #[must_use]
    pub fn new(queue: SqsQueue, ttl: Duration, limits: Arc<QueueLimits>) -> Self {
        Self {
            ttl,
            last: tokio::sync::Mutex::new(None),
            limits,
            queue,
        }
    }

    /// The queue's limits, as the last check read them.
    #[must_use]
    pub fn limits(&self) -> &QueueLimits {
        &self.limits
    }

    /// The cached answer while fresh, else a new check. Callers that arrive during a
    /// check wait for it and share its answer.
    pub async fn get(&self) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, readiness)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return readiness.clone();
        }
        let readiness = self.queue.readiness().await;
        if let Readiness::Ready {
            max_message_bytes: Some(max),
            ..
        } = readiness
        {
            self.limits.set_max_message_bytes(max);
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
