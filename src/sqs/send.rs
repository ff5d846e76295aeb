//! The two calls that put events into SQS: `SendMessage` (batching off) and
//! `SendMessageBatch` (the batcher's [`SendBatch`]), each bounded by the forward budget.

use std::future::Future;
use std::time::Instant;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::classify::{classify, classify_code, observe};
use super::wire::Bodies;
use super::{EntryResult, OutgoingMessage, Receipt, SendError, SqsQueue};

/// What the batcher needs from SQS: one `SendMessageBatch` call. The seam the batcher is
/// generic over, so its dispatcher is unit-tested against an in-memory fake.
pub trait SendBatch: Send + Sync + 'static {
    /// Sends at most 10 entries (1 MiB in all; the caller sizes the batch). The outer
    /// error is the whole call failing; otherwise one result per message, in order.
    ///
    /// The call is abandoned at `deadline`: the latest of its entries' deadlines, after
    /// which every webhook in it has been answered `503`, and a call still running could
    /// only store events their senders will retry.
    fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<EntryResult>, SendError>> + Send;
}

impl SqsQueue {
    /// One `SendMessage` call: resolves only once SQS has the message, or with why not.
    pub async fn send(&self, message: OutgoingMessage) -> Result<Receipt, SendError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            // Written from `Bodies`, not from the input: see `wire::Bodies`.
            .message_body("")
            .message_group_id(message.group_id.as_str())
            .message_deduplication_id(message.deduplication_id.as_str());
        for (name, value) in message.attributes {
            request = request.message_attributes(name, string_attribute(value));
        }
        let started = std::time::Instant::now();
        let request = request
            .customize()
            .interceptor(Bodies::new(vec![message.body]));
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
}

impl SendBatch for SqsQueue {
    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
        deadline: Instant,
    ) -> Result<Vec<EntryResult>, SendError> {
        let count = messages.len();
        let bodies = Bodies::new(messages.iter().map(|m| m.body.clone()).collect());
        let entries = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body("") // written from `bodies`: see `wire::Bodies`
                    .message_group_id(m.group_id.as_str())
                    .message_deduplication_id(m.deduplication_id.as_str());
                for (name, value) in m.attributes {
                    entry = entry.message_attributes(name, string_attribute(value));
                }
                entry.build().expect("id and body are set")
            })
            .collect();
        let call = self
            .batch_client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .customize()
            .interceptor(bodies)
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

fn string_attribute(value: String) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data_type is set")
}
