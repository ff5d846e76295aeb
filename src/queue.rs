//! The queue side: the seam between HTTP and SQS, and its SQS implementation.
//!
//! Routes see only [`EventQueue`], so tests can put a fault-injecting fake behind the same
//! seam, and other sends (batching) can be added without touching the HTTP layer.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry};

use crate::event::{DeduplicationId, MessageGroupId};
use crate::telemetry::metric;

/// One message, ready for SQS: every field already valid.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// The received body, unchanged.
    pub body: String,
    pub group_id: MessageGroupId,
    pub deduplication_id: DeduplicationId,
    /// String attributes (`event_id`, `event_type`).
    pub attributes: Vec<(&'static str, String)>,
}

impl OutgoingMessage {
    /// What SQS counts against its size limits: see [`message_bytes`].
    #[must_use]
    pub fn size(&self) -> usize {
        message_bytes(&self.body, &self.attributes)
    }
}

/// A message's size as SQS counts it against `MaximumMessageSize` and a batch's total:
/// the body, and each attribute's name, data type (`String`) and value.
#[must_use]
pub fn message_bytes(body: &str, attributes: &[(&'static str, String)]) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(name, value)| name.len() + "String".len() + value.len())
            .sum::<usize>()
}

/// What SQS answered for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub sequence_number: Option<String>,
}

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
}

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

/// Where authenticated, validated events go.
#[async_trait]
pub trait EventQueue: Send + Sync + 'static {
    /// Resolves only once the queue has the message, or with why it does not.
    async fn send(&self, message: OutgoingMessage) -> Result<Receipt, SendError>;

    /// Whether the queue answers and is a FIFO queue.
    async fn readiness(&self) -> Readiness;
}

/// The SQS FIFO queue, through `aws-sdk-sqs`.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    forward_timeout: Duration,
}

impl SqsQueue {
    /// Loads the standard AWS configuration chain (environment, profile, container and
    /// instance credentials, `AWS_ENDPOINT_URL[_SQS]`).
    pub async fn from_env(queue_url: String, forward_timeout: Duration) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::new(
            &aws_sdk_sqs::Client::new(&config),
            queue_url,
            forward_timeout,
        )
    }

    /// Wraps a client, replacing its timeouts and retries with the bridge's: retries
    /// happen inside the forward budget, and each attempt gets a third of it so a hung
    /// connection is abandoned in time for another try.
    ///
    /// Stalled-stream protection is off: its grace period (20 s) is longer than any
    /// attempt the bridge allows (at most 5 s), so it could never fire first, and it
    /// costs timers and throughput bookkeeping on every call.
    #[must_use]
    pub fn new(client: &aws_sdk_sqs::Client, queue_url: String, forward_timeout: Duration) -> Self {
        let attempt =
            (forward_timeout / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .operation_timeout(forward_timeout)
            .operation_attempt_timeout(attempt)
            .connect_timeout(attempt.min(Duration::from_secs(2)))
            .build();
        let retries = aws_sdk_sqs::config::retry::RetryConfig::standard()
            .with_max_attempts(5)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(2));
        let config = client
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .retry_config(retries)
            .stalled_stream_protection(
                aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled(),
            )
            .interceptor(PayloadHash)
            .interceptor(crate::sqs_json::SqsJson::default())
            .build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(config),
            queue_url,
            forward_timeout,
        }
    }
}

impl SqsQueue {
    /// The same queue and settings over a connection pool of its own.
    ///
    /// With batching off, each actix worker makes its SDK calls in its request handlers.
    /// A connection is driven by the runtime that opened it, so with one pool shared by
    /// all workers, a call often goes out on a connection another worker's thread drives,
    /// and crosses threads twice. The client is built as the SDK builds its default
    /// (rustls with aws-lc, proxy settings from the environment), through the same
    /// `build_with_connector_fn`; that function is doc-hidden upstream, so check it on
    /// SDK upgrades (the batching-off tests drive this path against LocalStack).
    #[must_use]
    pub fn with_own_connections(&self) -> Self {
        use aws_smithy_http_client::{Connector, proxy::ProxyConfig, tls};

        let http = aws_smithy_http_client::Builder::new().build_with_connector_fn(
            |settings, components| {
                let mut connector = Connector::builder().tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ));
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            },
        );
        let config = self.client.config().to_builder().http_client(http).build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(config),
            queue_url: self.queue_url.clone(),
            forward_timeout: self.forward_timeout,
        }
    }
}

/// Hands SigV4 the SHA-256 of the request body, computed with aws-lc-rs.
///
/// SigV4 hashes every request body; the SDK does it with the `sha2` crate, which on CPUs
/// without SHA extensions is about 1.6× slower than aws-lc-rs, and a full batch is ~12 KiB
/// of escaped JSON: about a tenth of the bridge's CPU under load (docs/BENCHMARKS.md).
/// The signature is unchanged: SigV4 takes a precomputed payload hash in place of the
/// body (the same hook S3 uses), and a test compares both signatures.
#[derive(Debug)]
pub struct PayloadHash;

impl aws_sdk_sqs::config::Intercept for PayloadHash {
    fn name(&self) -> &'static str {
        "PayloadHash"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_sqs::config::RuntimeComponents,
        cfg: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        use aws_runtime::auth::SigV4OperationSigningConfig;
        use aws_sigv4::http_request::SignableBody;

        let Some(body) = context.request().body().bytes() else {
            return Ok(()); // a streaming body: SigV4 decides
        };
        let Some(signing) = cfg.load::<SigV4OperationSigningConfig>() else {
            return Ok(());
        };
        if signing.signing_options.payload_override.is_some() {
            return Ok(()); // set already: by an earlier attempt, or by the SDK itself
        }
        let mut signing = signing.clone();
        signing.signing_options.payload_override =
            Some(SignableBody::Precomputed(sha256_hex(body)));
        cfg.interceptor_state().store_put(signing);
        Ok(())
    }
}

/// Lowercase hex SHA-256, as SigV4 writes a payload hash.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(crate::event::sha256(bytes))
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<Receipt, SendError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.body)
            .message_group_id(message.group_id.as_str())
            .message_deduplication_id(message.deduplication_id.as_str());
        for (name, value) in message.attributes {
            request = request.message_attributes(name, string_attribute(value));
        }
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(self.forward_timeout, request.send())
            .await
            .map_err(|_| SendError::Timeout(self.forward_timeout.as_millis()))
            .and_then(|r| {
                r.map_err(|e| {
                    classify(
                        &e,
                        aws_sdk_sqs::operation::send_message::SendMessageError::is_queue_does_not_exist,
                    )
                })
            });
        let sent = observe("SendMessage", started, sent)?;
        Ok(Receipt {
            message_id: sent.message_id.unwrap_or_default(),
            sequence_number: sent.sequence_number,
        })
    }

    async fn readiness(&self) -> Readiness {
        let readiness = self.check_queue().await;
        let ready = matches!(readiness, Readiness::Ready { .. });
        metrics::gauge!(metric::READY).set(if ready { 1.0 } else { 0.0 });
        readiness
    }
}

impl SqsQueue {
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

/// Records one SQS call's latency and, when it failed, its error code.
fn observe<T>(
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
    let code = match error {
        SendError::Invalid { code, .. } | SendError::Failed { code, .. } => code.clone(),
        SendError::QueueMissing => "queue_missing".to_owned(),
        SendError::Timeout(_) => "timeout".to_owned(),
    };
    metrics::counter!(metric::SQS_ERRORS, "action" => action, "code" => code).increment(1);
}

fn string_attribute(value: String) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data_type is set")
}

/// How one entry of a `SendMessageBatch` call ended.
#[derive(Debug, Clone)]
pub enum EntryResult {
    Sent(Receipt),
    /// SQS's fault (`SenderFault: false`): worth another try with the same keys.
    Retry {
        code: String,
    },
    /// The entry itself was refused.
    Failed(SendError),
}

impl SqsQueue {
    /// The configured client (for `check-config`'s probes).
    #[must_use]
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// One `SendMessageBatch` call (at most 10 entries, 1 MiB in all; the caller sizes
    /// it). The outer error is the whole call failing; otherwise one result per message,
    /// in order.
    ///
    /// The call is abandoned at `deadline` (or after the forward timeout, if sooner): the
    /// latest of its entries' deadlines, after which every webhook in it has been answered
    /// `503`, and a call still running could only store events their senders will retry.
    pub async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
        deadline: std::time::Instant,
    ) -> Result<Vec<EntryResult>, SendError> {
        let count = messages.len();
        let entries = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body)
                    .message_group_id(m.group_id.as_str())
                    .message_deduplication_id(m.deduplication_id.as_str());
                for (name, value) in m.attributes {
                    entry = entry.message_attributes(name, string_attribute(value));
                }
                entry.build().expect("id and body are set")
            })
            .collect();
        let call = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send();
        let started = std::time::Instant::now();
        let deadline = deadline.min(started + self.forward_timeout);
        let answer = tokio::time::timeout_at(deadline.into(), call)
            .await
            .map_err(|_| SendError::Timeout(self.forward_timeout.as_millis()))
            .and_then(|r| r.map_err(|e| classify(&e, aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError::is_queue_does_not_exist)));
        let answer = observe("SendMessageBatch", started, answer)?;
        let mut results: Vec<Option<EntryResult>> = vec![None; count];
        for ok in answer.successful {
            if let Some(slot) = ok.id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *slot = Some(EntryResult::Sent(Receipt {
                    message_id: ok.message_id,
                    sequence_number: ok.sequence_number,
                }));
            }
        }
        for failed in answer.failed {
            if let Some(slot) = failed
                .id
                .parse::<usize>()
                .ok()
                .and_then(|i| results.get_mut(i))
            {
                if matches!(slot, Some(EntryResult::Sent(_))) {
                    // Listed as both: sent again with the same keys, SQS drops the copy
                    // if it stored the first, and stores it if it did not.
                    tracing::warn!(
                        code = failed.code,
                        "SQS listed a batch entry as both sent and failed; sending it again"
                    );
                    *slot = Some(EntryResult::Retry { code: failed.code });
                    continue;
                }
                let detail = failed.message.unwrap_or_default();
                *slot = Some(if failed.sender_fault {
                    EntryResult::Failed(classify_code(failed.code, detail))
                } else {
                    EntryResult::Retry { code: failed.code }
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(EntryResult::Retry {
                    code: "MissingFromAnswer".to_owned(),
                })
            })
            .collect())
    }
}

/// Sorts an SDK error into what the sender should be told. The SDK has already retried
/// what is retryable (throttling, timeouts, 5xx, dropped connections).
fn classify<E, R>(error: &SdkError<E, R>, queue_missing: impl Fn(&E) -> bool) -> SendError
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
        return SendError::Failed {
            code: "network".into(),
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
fn classify_code(code: String, detail: String) -> SendError {
    match code.as_str() {
        "InvalidMessageContents" => SendError::Invalid { code, detail },
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => SendError::QueueMissing,
        _ => SendError::Failed { code, detail },
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;

    /// SigV4 over a precomputed hash from [`super::sha256_hex`] signs exactly as SigV4 over
    /// the body itself: what `PayloadHash` relies on.
    #[test]
    fn a_precomputed_payload_hash_gives_the_same_signature() {
        let identity =
            aws_sdk_sqs::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test")
                .into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("sqs")
            .time(UNIX_EPOCH + Duration::from_secs(1_790_000_000))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let body = br#"{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/1/q.fifo","Entries":[{"Id":"0","MessageBody":"{\"msg_id\":\"\u00e9\"}"}]}"#;
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AmazonSQS.SendMessageBatch"),
            ("host", "sqs.eu-west-1.amazonaws.com"),
        ];
        let signature = |body: SignableBody<'_>| {
            let request = SignableRequest::new(
                "POST",
                "https://sqs.eu-west-1.amazonaws.com/",
                headers.iter().copied(),
                body,
            )
            .unwrap();
            sign(request, &params).unwrap().signature().to_owned()
        };
        let direct = signature(SignableBody::Bytes(body));
        assert_eq!(
            signature(SignableBody::Precomputed(super::sha256_hex(body))),
            direct
        );
        assert_ne!(
            signature(SignableBody::Precomputed(super::sha256_hex(b"other"))),
            direct,
            "the hash is part of the signature"
        );
    }
}
