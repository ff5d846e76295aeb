//! The event memory's table in DynamoDB: three calls, each one request.
//!
//! Items: `id` (the [`EventKey`] in hex, the partition key), `state` (`in-progress`,
//! `spooled` or `sent`), `dedup_id`, `body_sha256`, `claimed_at_ms`, `expires_at` (epoch seconds:
//! the table's TTL attribute), and once sent `message_id` and `sequence_number`.
//! DynamoDB deletes expired items lazily (up to days late), so a claim treats an item
//! past `expires_at` as absent.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{EventKey, Mark, RecordState, Stored};
use crate::sqs::Receipt;
use crate::telemetry::metric;

/// Why the memory could not answer. Never carries a credential: SDK errors are reduced to
/// their code and message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MemoryError {
    #[error("the event memory did not answer in time ({0} ms)")]
    Timeout(u128),
    #[error("the event memory could not be reached: {0}")]
    Unreachable(String),
    #[error("the event memory answered {code}: {message}")]
    Service { code: String, message: String },
}

/// The table and its client.
#[derive(Debug, Clone)]
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
    /// Each call's whole budget, retries included.
    timeout: Duration,
}

const IN_PROGRESS: &str = "in-progress";
const SPOOLED: &str = "spooled";
const SENT: &str = "sent";

impl Table {
    /// The table `name` through the standard AWS configuration chain
    /// (`AWS_ENDPOINT_URL_DYNAMODB` points it elsewhere, as the tests do).
    pub async fn from_env(name: String, timeout: Duration) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let attempt = (timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(2));
        let config = aws_sdk_dynamodb::config::Builder::from(&config)
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .operation_attempt_timeout(attempt)
                    .connect_timeout(attempt)
                    .build(),
            )
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(20)),
            )
            .build();
        Self {
            client: aws_sdk_dynamodb::Client::from_conf(config),
            name,
            timeout,
        }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes an `in-progress` record unless a live one exists; returns that one if so.
    pub(super) async fn claim(
        &self,
        key: &EventKey,
        deduplication_id: &str,
        body_sha256: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<Option<Stored>, MemoryError> {
        let call = self
            .client
            .put_item()
            .table_name(&self.name)
            .item("id", s(key.hex()))
            .item("state", s(IN_PROGRESS))
            .item("dedup_id", s(deduplication_id))
            .item("body_sha256", s(body_sha256))
            .item("claimed_at_ms", n(now_ms))
            .item("expires_at", n(expires_at(now_ms, ttl)))
            .condition_expression("attribute_not_exists(id) OR expires_at < :now")
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send();
        match self.bounded("claim", call).await {
            Ok(_) => Ok(None),
            Err(Failure::Condition(item)) => Ok(item.as_ref().and_then(stored)),
            Err(Failure::Error(e)) => Err(e),
        }
    }

    /// Moves a stale `in-progress` record to this attempt (unless another got it first).
    pub(super) async fn take_over(
        &self,
        key: &EventKey,
        claimed_at_ms: i64,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), MemoryError> {
        let call = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("id", s(key.hex()))
            .update_expression("SET claimed_at_ms = :now, expires_at = :exp")
            .condition_expression("#state = :progress AND claimed_at_ms = :old")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":exp", n(expires_at(now_ms, ttl)))
            .expression_attribute_values(":progress", s(IN_PROGRESS))
            .expression_attribute_values(":old", n(claimed_at_ms))
            .send();
        match self.bounded("take_over", call).await {
            Ok(_) | Err(Failure::Condition(_)) => Ok(()),
            Err(Failure::Error(e)) => Err(e),
        }
    }

    /// Marks the record `sent` with SQS's answer, or held by a spool (only while it is
    /// `in-progress`: a spool's copy never overrides SQS's answer), for another TTL.
    pub(super) async fn mark(
        &self,
        key: &EventKey,
        mark: Mark<'_>,
        now_ms: i64,
        ttl: Duration,
    ) -> Result<(), MemoryError> {
        let call = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("id", s(key.hex()))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":exp", n(expires_at(now_ms, ttl)));
        let operation = mark.operation();
        let call = match mark {
            Mark::Sent(receipt) => {
                let mut update =
                    "SET #state = :sent, message_id = :mid, expires_at = :exp".to_owned();
                let mut call = call
                    .condition_expression("attribute_exists(id)")
                    .expression_attribute_values(":sent", s(SENT))
                    .expression_attribute_values(":mid", s(&receipt.message_id));
                if let Some(seq) = &receipt.sequence_number {
                    update.push_str(", sequence_number = :seq");
                    call = call.expression_attribute_values(":seq", s(seq));
                }
                call.update_expression(update)
            }
            Mark::Spooled => call
                .condition_expression("#state = :progress")
                .update_expression("SET #state = :spooled, expires_at = :exp")
                .expression_attribute_values(":progress", s(IN_PROGRESS))
                .expression_attribute_values(":spooled", s(SPOOLED)),
        };
        match self.bounded(operation, call.send()).await {
            // Condition: the record expired meanwhile, or SQS's answer is there already.
            Ok(_) | Err(Failure::Condition(_)) => Ok(()),
            Err(Failure::Error(e)) => Err(e),
        }
    }

    /// One read of a key no event has: the table exists and the credentials may read it.
    pub(super) async fn probe(&self) -> Result<(), MemoryError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("id", s("check-config-probe"))
            .send();
        match self.bounded("probe", call).await {
            Ok(_) | Err(Failure::Condition(_)) => Ok(()),
            Err(Failure::Error(e)) => Err(e),
        }
    }

    /// Runs one call inside the budget, timing it and counting failures.
    async fn bounded<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<T, Failure>
    where
        E: ProvideErrorMetadata + ConditionFailed + std::error::Error + 'static,
    {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, call).await;
        metrics::histogram!(metric::EVENT_MEMORY_SECONDS, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        let failure = match answer {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => MemoryError::Timeout(self.timeout.as_millis()),
            Ok(Err(SdkError::ServiceError(e))) => {
                let error = e.into_err();
                if let Some(failed) = error.condition_failed() {
                    return Err(failed);
                }
                MemoryError::Service {
                    code: error.code().unwrap_or("Unknown").to_owned(),
                    message: error.message().unwrap_or_default().to_owned(),
                }
            }
            Ok(Err(e)) => MemoryError::Unreachable(
                aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            ),
        };
        metrics::counter!(metric::EVENT_MEMORY_ERRORS, "operation" => operation).increment(1);
        Err(Failure::Error(failure))
    }
}

enum Failure {
    /// The condition did not hold; the item it found, when the call returns it.
    Condition(Option<HashMap<String, AttributeValue>>),
    Error(MemoryError),
}

/// The conditional-check failure of each operation, as a [`Failure::Condition`] with the
/// item it returns.
trait ConditionFailed {
    fn condition_failed(&self) -> Option<Failure>;
}

impl ConditionFailed for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn condition_failed(&self) -> Option<Failure> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(Failure::Condition(e.item.clone())),
            _ => None,
        }
    }
}

impl ConditionFailed for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failed(&self) -> Option<Failure> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(Failure::Condition(e.item.clone())),
            _ => None,
        }
    }
}

impl ConditionFailed for aws_sdk_dynamodb::operation::get_item::GetItemError {
    fn condition_failed(&self) -> Option<Failure> {
        None
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn expires_at(now_ms: i64, ttl: Duration) -> i64 {
    now_ms / 1000 + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

/// A record read back; `None` for an item the bridge did not write.
fn stored(item: &HashMap<String, AttributeValue>) -> Option<Stored> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let state = match text("state")?.as_str() {
        SENT => RecordState::Sent(Receipt {
            message_id: text("message_id")?,
            sequence_number: text("sequence_number"),
        }),
        SPOOLED => RecordState::Spooled,
        _ => RecordState::InProgress,
    };
    Some(Stored {
        deduplication_id: text("dedup_id")?,
        body_sha256: text("body_sha256")?,
        claimed_at_ms: number("claimed_at_ms").unwrap_or(0),
        state,
    })
}
