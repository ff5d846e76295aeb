//! What goes to SQS and what comes back.

use crate::forward::keys::{DeduplicationId, MessageGroupId};

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
