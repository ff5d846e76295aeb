//! The event memory: "queued exactly once" for hours, where SQS drops a repeated
//! deduplication id only within five minutes. Shared by every replica and restart with
//! `BRIDGE_EVENT_MEMORY=dynamodb` ([`Table`]); in the process with `local` and a TTL or
//! a bound ([`Records`]). Without either, only the deduplicator's five minutes
//! ([`crate::forward::dedup`]) apply.
//!
//! The idempotency-record pattern, one record per event identity (the identity
//! `event-id` mode uses, [`EventKey`]):
//! - [`EventMemory::claim`] writes `in-progress` with the deduplication id chosen for the
//!   event, on condition that no live record exists; when one does, the write's failure
//!   returns it, so a claim is one call either way.
//! - [`EventMemory::sent`] marks it `sent` with SQS's message id once SQS has the event;
//!   [`EventMemory::spooled`] marks it held by the spool when SQS could not take it.
//!
//! What a repeat gets is decided in one place, [`decide`]; `docs/RELIABILITY.md`, "The
//! shared event memory", argues each choice.

mod dynamo;
mod local;
mod store;
#[cfg(test)]
mod tests;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::forward::event::{ATTR_CONFLICTS_WITH, ParsedEvent, body_digest, sha256};
use crate::forward::keys::{DeduplicationId, MessageGroupId};
use crate::sqs::{OutgoingMessage, Receipt};
use crate::telemetry::metric;

pub use dynamo::{MemoryError, Table};
pub use local::Records;
use store::Store;

/// Which memory remembers events (`BRIDGE_EVENT_MEMORY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryKind {
    /// The deduplicator's five minutes only, [`crate::forward::dedup`] (the default).
    Local,
    /// `local` with a TTL or a bound: records in the process ([`Records`]).
    Process { max_events: NonZeroUsize },
    /// A DynamoDB table every replica shares.
    DynamoDb { table: String },
}

/// What happens to an event when the shared memory can't be reached
/// (`BRIDGE_EVENT_MEMORY_ON_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// `503 event_memory_unavailable`: the vendor retries.
    Refuse,
    /// Forwarded with SQS's five-minute deduplication only.
    Forward,
}

impl OnError {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::Forward => "forward",
        }
    }
}

/// The memory's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySettings {
    pub kind: MemoryKind,
    /// How long an event is remembered after its last attempt (`dynamodb`, `Process`).
    pub ttl: Duration,
    pub on_error: OnError,
}

/// Who an event is, across replicas: SHA-256 of its group and its id (or body), as
/// `event-id` mode derives it. Hex in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey(pub [u8; 32]);

impl EventKey {
    #[must_use]
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key of an event in `group`: its identity.
    #[must_use]
    pub fn of(group: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> Self {
        Self(crate::forward::dedup::identity_digest(group, event, body))
    }

    /// The key a message's record has, found again from the message alone (for the
    /// spool's drainer): its identity, and its body too when it was queued as a conflict.
    /// `None` for a body that no longer parses (the bridge parsed it on arrival).
    #[must_use]
    pub fn of_message(message: &OutgoingMessage) -> Option<Self> {
        let body = message.body.as_bytes();
        let parsed = crate::forward::event::parse(body).ok()?;
        let key = Self::of(&message.group_id, &parsed, body);
        let conflict = message
            .attributes
            .iter()
            .any(|(name, _)| *name == ATTR_CONFLICTS_WITH);
        Some(if conflict {
            key.with_body(&body_digest(body))
        } else {
            key
        })
    }

    /// The key of an event whose identity another body already holds: its identity
    /// and its own body, so its retries find it again and it has a record of its own.
    #[must_use]
    pub fn with_body(&self, body_sha256: &[u8; 32]) -> Self {
        let mut bytes = Vec::with_capacity(65);
        bytes.extend_from_slice(&self.0);
        bytes.push(b'c');
        bytes.extend_from_slice(body_sha256);
        Self(sha256(&bytes))
    }
}

/// A record as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub deduplication_id: String,
    pub body_sha256: String,
    pub claimed_at_ms: i64,
    pub state: RecordState,
}

/// Where a record's event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// An attempt is forwarding it (or ended without saying how).
    InProgress,
    /// A replica's spool holds it, synced, and will send it.
    Spooled,
    /// SQS has it.
    Sent(Receipt),
}

/// What a record is marked with once its attempt knows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark<'a> {
    Sent(&'a Receipt),
    Spooled,
}

impl Mark<'_> {
    fn operation(self) -> &'static str {
        match self {
            Self::Sent(_) => "sent",
            Self::Spooled => "spooled",
        }
    }
}

/// What an event's claim found, and so what the bridge does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No live record: this attempt holds the event now. Forward it.
    Fresh,
    /// SQS has it already (`receipt`: the first answer), or a spool does (`None`):
    /// answer `200 "duplicate"`, queue nothing.
    Duplicate {
        deduplication_id: String,
        receipt: Option<Receipt>,
    },
    /// Another attempt holds it (another replica forwarding it now, or one that failed
    /// or died: `stale`): forward it again under the *same* deduplication id, so SQS
    /// keeps one of the two.
    Resend {
        deduplication_id: String,
        stale: bool,
    },
    /// The identity is held by a different body: a distinct event. Queued as itself,
    /// under its own key, flagged with the first one's message id (or id).
    Conflict { first: String },
}

/// What a claim that found `existing` means for an event with `body_sha256`. An
/// in-progress record older than `stale_after` belongs to an attempt that has ended
/// without marking it (its sender was answered `503`, or its process died).
#[must_use]
pub fn decide(
    existing: Option<&Stored>,
    body_sha256: &str,
    now_ms: i64,
    stale_after: Duration,
) -> Decision {
    let Some(stored) = existing else {
        return Decision::Fresh;
    };
    if stored.body_sha256 != body_sha256 {
        return Decision::Conflict {
            first: match &stored.state {
                RecordState::Sent(receipt) => receipt.message_id.clone(),
                _ => stored.deduplication_id.clone(),
            },
        };
    }
    match &stored.state {
        RecordState::Sent(receipt) => Decision::Duplicate {
            deduplication_id: stored.deduplication_id.clone(),
            receipt: Some(receipt.clone()),
        },
        RecordState::Spooled => Decision::Duplicate {
            deduplication_id: stored.deduplication_id.clone(),
            receipt: None,
        },
        RecordState::InProgress => Decision::Resend {
            deduplication_id: stored.deduplication_id.clone(),
            stale: now_ms.saturating_sub(stored.claimed_at_ms)
                > i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX),
        },
    }
}

/// The memory: where its records live and how long it keeps them.
#[derive(Debug, Clone)]
pub struct EventMemory {
    store: Store,
    ttl: Duration,
    /// An in-progress record older than this has no live holder.
    stale_after: Duration,
    pub on_error: OnError,
}

/// What [`EventMemory::claim`] tells the forwarding path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Forward under this deduplication id (the one given, or the first attempt's).
    Forward(DeduplicationId),
    /// Already in SQS (or in a spool: no receipt): answer with these.
    Duplicate {
        deduplication_id: DeduplicationId,
        receipt: Option<Receipt>,
    },
    /// A distinct event whose identity another body holds: forward under `key` (its own
    /// record) and this id, flagged with `first`.
    Conflict {
        key: EventKey,
        deduplication_id: DeduplicationId,
        first: String,
    },
}

impl EventMemory {
    /// The memory every replica shares, in `table`.
    #[must_use]
    pub fn shared(
        table: Table,
        ttl: Duration,
        forward_timeout: Duration,
        on_error: OnError,
    ) -> Self {
        Self::new(Store::Table(table), ttl, forward_timeout, on_error)
    }

    /// The memory in this process, of at most `max_events` records (it can't fail, so
    /// `BRIDGE_EVENT_MEMORY_ON_ERROR` has nothing to say).
    #[must_use]
    pub fn in_process(max_events: NonZeroUsize, ttl: Duration, forward_timeout: Duration) -> Self {
        let records = Arc::new(Records::new(max_events));
        Self::new(Store::Local(records), ttl, forward_timeout, OnError::Refuse)
    }

    fn new(store: Store, ttl: Duration, forward_timeout: Duration, on_error: OnError) -> Self {
        Self {
            store,
            ttl,
            // The holder has answered by the end of its budget; a second of slack.
            stale_after: forward_timeout + Duration::from_secs(1),
            on_error,
        }
    }

    /// Claims `key` for an event with `body_sha256`, proposing `proposed` as its id.
    ///
    /// # Errors
    /// The table could not be reached or answered an error (counted).
    pub async fn claim(
        &self,
        key: &EventKey,
        body_sha256: &[u8; 32],
        proposed: &DeduplicationId,
    ) -> Result<Claimed, MemoryError> {
        let body_hex = hex::encode(body_sha256);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let existing = self
            .store
            .claim(key, proposed.as_str(), &body_hex, now_ms, self.ttl)
            .await?;
        let decision = decide(existing.as_ref(), &body_hex, now_ms, self.stale_after);
        Ok(match decision {
            Decision::Fresh => Claimed::Forward(proposed.clone()),
            Decision::Duplicate {
                deduplication_id,
                receipt,
            } => {
                hit("duplicate");
                Claimed::Duplicate {
                    deduplication_id: stored_id(&deduplication_id, proposed),
                    receipt,
                }
            }
            Decision::Resend {
                deduplication_id,
                stale,
            } => {
                if stale {
                    hit("takeover");
                    let old = existing.as_ref().map_or(0, |s| s.claimed_at_ms);
                    // Lost to another taker: it forwards under the same id, harmless.
                    self.store.take_over(key, old, now_ms, self.ttl).await?;
                }
                Claimed::Forward(stored_id(&deduplication_id, proposed))
            }
            Decision::Conflict { first } => {
                hit("conflict");
                let own = key.with_body(body_sha256);
                let id = DeduplicationId::from_digest(&own.0);
                tracing::warn!(
                    first = first.as_str(),
                    deduplication_id = id.as_str(),
                    "an event's identity is held by a different body in the event memory; \
                     queued as a distinct event"
                );
                // Its own record, so its retries are found again.
                match Box::pin(self.claim(&own, body_sha256, &id)).await? {
                    Claimed::Forward(deduplication_id) => Claimed::Conflict {
                        key: own,
                        deduplication_id,
                        first,
                    },
                    other => other,
                }
            }
        })
    }

    /// Records that SQS has the event under `key`.
    ///
    /// # Errors
    /// The table could not be reached (counted; the event is in SQS all the same).
    pub async fn sent(&self, key: &EventKey, receipt: &Receipt) -> Result<(), MemoryError> {
        self.mark(key, Mark::Sent(receipt)).await
    }

    /// Records that a spool holds the event under `key`, synced: a repeat is answered
    /// `duplicate` rather than sent again (to be queued twice when the drain comes more
    /// than five minutes later).
    ///
    /// # Errors
    /// The table could not be reached (counted; the spool has the event all the same).
    pub async fn spooled(&self, key: &EventKey) -> Result<(), MemoryError> {
        self.mark(key, Mark::Spooled).await
    }

    async fn mark(&self, key: &EventKey, mark: Mark<'_>) -> Result<(), MemoryError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.store.mark(key, mark, now_ms, self.ttl).await
    }

    /// Where the records are, for `check-config` and logs.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.store {
            Store::Table(table) => format!("table {}", table.name()),
            Store::Local(_) => "this process".to_owned(),
        }
    }

    /// How many records the process holds (`None`: they are in the table).
    #[must_use]
    pub fn records_held(&self) -> Option<usize> {
        match &self.store {
            Store::Table(_) => None,
            Store::Local(records) => Some(records.len()),
        }
    }

    /// Whether the table answers (for `check-config`).
    ///
    /// # Errors
    /// Why it does not.
    pub async fn probe(&self) -> Result<(), MemoryError> {
        self.store.probe().await
    }
}

/// A stored id parses (the bridge wrote it); one that doesn't keeps this attempt's.
fn stored_id(stored: &str, proposed: &DeduplicationId) -> DeduplicationId {
    DeduplicationId::parse(stored).unwrap_or_else(|_| proposed.clone())
}

fn hit(result: &'static str) {
    metrics::counter!(metric::EVENT_MEMORY_HITS, "result" => result).increment(1);
}
