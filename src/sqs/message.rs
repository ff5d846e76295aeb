//! What goes to SQS and what comes back.

use std::sync::Arc;

use crate::forward::keys::{DeduplicationId, MessageGroupId};

/// An event's body as received, shared rather than copied: the handler waiting for its
/// answer, the batch call (and each retry of it), and the spool's copy for a failed
/// direct send all point at the one buffer the body was read into.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageBody(Arc<String>);

impl MessageBody {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for MessageBody {
    /// Takes the buffer as it is: no copy.
    fn from(body: String) -> Self {
        Self(Arc::new(body))
    }
}

impl From<&str> for MessageBody {
    fn from(body: &str) -> Self {
        Self::from(body.to_owned())
    }
}

impl std::ops::Deref for MessageBody {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// One message, ready for SQS: every field already valid.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// The received body, unchanged.
    pub body: MessageBody,
    pub group_id: MessageGroupId,
    pub deduplication_id: DeduplicationId,
    /// String attributes (`event_id`, `event_type`).
    pub attributes: Vec<(&'static str, String)>,
}

impl OutgoingMessage {
    /// What SQS counts against its size limits: see [`super::limits::message_bytes`].
    #[must_use]
    pub fn size(&self) -> usize {
        super::limits::message_bytes(&self.body, &self.attributes)
    }
}

/// What SQS answered for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub sequence_number: Option<String>,
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
    Failed(super::SendError),
}
