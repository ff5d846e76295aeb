//! The forwarding pipeline: from an authenticated body to the [`OutgoingMessage`] SQS
//! gets — the checks and choices the vendor's conventions imply, independent of HTTP.
//!
//! - [`auth`]: who sent it (`X-api-key`, `X-Payload-Signature`).
//! - [`event`]: what it is (body checks, ids, attributes); [`keys`]: FIFO key newtypes.
//! - [`dedup`]: which deduplication id it gets.
//! - [`group`]: which group it goes to (`BRIDGE_GROUP_BY`); [`Pipeline`]: that, and
//!   the message it becomes.

pub mod auth;
pub mod dedup;
pub mod event;
pub mod group;
pub mod keys;

use std::sync::Arc;

use dedup::Deduplicator;
use event::{EventError, ParsedEvent};
use keys::MessageGroupId;

use crate::sqs::OutgoingMessage;

/// An event whose body passed every check: its text, unchanged, and what was read from
/// it.
pub struct Event {
    pub body: String,
    pub parsed: ParsedEvent,
}

impl Event {
    /// Checks a body (UTF-8, SQS's characters, a JSON object, the vendor's field types).
    /// The same string is checked, hashed and sent: one copy-free conversion.
    pub fn parse(body: Vec<u8>) -> Result<Self, EventError> {
        let body = String::from_utf8(body).map_err(|e| EventError::not_utf8(&e.utf8_error()))?;
        let parsed = event::parse_text(&body)?;
        for (field, problem) in &parsed.ignored_keys {
            tracing::warn!(field, %problem, "ignoring the event's own FIFO key: SQS would refuse it");
        }
        Ok(Self { body, parsed })
    }
}

/// The event has no group: none of its own, and no `BRIDGE_EVENT_SETUP_ID`.
#[derive(Debug)]
pub struct NoGroup;

/// Group and deduplication choices, shared by every worker.
pub struct Pipeline {
    pub deduplicator: Arc<Deduplicator>,
    /// `EventSetup_<BRIDGE_EVENT_SETUP_ID>`, for events without their own group id.
    pub default_group: Option<MessageGroupId>,
    /// How those events are grouped within it.
    pub group_by: group::GroupBy,
}

impl Pipeline {
    /// The event's own `MessageGroupId` wins, in every `BRIDGE_GROUP_BY` mode (the
    /// sender chose it); else the Event Setup's group, as `group_by` refines it.
    pub fn group(&self, event: &Event) -> Result<MessageGroupId, NoGroup> {
        if let Some(own) = &event.parsed.group_id {
            return Ok(own.clone());
        }
        let setup = self.default_group.as_ref().ok_or(NoGroup)?;
        Ok(self
            .group_by
            .group(setup, &event.parsed, event.body.as_bytes()))
    }

    /// The event's identity across replicas (as `event-id` mode derives it) and its
    /// body's SHA-256: what the shared event memory keys and compares.
    #[must_use]
    pub fn identity(
        &self,
        group_id: &MessageGroupId,
        event: &Event,
    ) -> (crate::memory::EventKey, [u8; 32]) {
        let body = event.body.as_bytes();
        (
            crate::memory::EventKey::of(group_id, &event.parsed, body),
            event::body_digest(body),
        )
    }

    /// The message: the body as received, its group, and its deduplication id (chosen
    /// here, so the checks before it can still refuse without reserving one).
    #[must_use]
    pub fn message(
        &self,
        event: Event,
        group_id: MessageGroupId,
        attributes: Vec<(&'static str, String)>,
    ) -> OutgoingMessage {
        let deduplication_id =
            self.deduplicator
                .assign(&group_id, &event.parsed, event.body.as_bytes());
        OutgoingMessage {
            body: event.body.into(),
            group_id,
            deduplication_id,
            attributes,
        }
    }
}
