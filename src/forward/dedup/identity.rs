//! Who an event is, for deduplication.

use crate::forward::event::{ParsedEvent, body_digest, sha256};
use crate::forward::keys::MessageGroupId;

/// Who an event is, within its group: its id field when it has one that names one event,
/// else its body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Identity {
    pub(super) group: MessageGroupId,
    pub(super) who: Who,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Who {
    Id(String),
    /// SHA-256 of the body: collision-resistant, so distinct bodies are never merged.
    Body([u8; 32]),
}

impl Identity {
    /// SHA-256 of the group and the id or body digest, with separators no id can hold.
    pub(super) fn digest(&self) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(200);
        bytes.extend_from_slice(self.group.as_str().as_bytes());
        bytes.push(0);
        match &self.who {
            Who::Id(id) => {
                bytes.push(b'i');
                bytes.extend_from_slice(id.as_bytes());
            }
            Who::Body(digest) => {
                bytes.push(b'b');
                bytes.extend_from_slice(digest);
            }
        }
        sha256(&bytes)
    }
}

pub(super) fn identity_key(group: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> Identity {
    Identity {
        group: group.clone(),
        who: match event.id.as_ref().filter(|id| id.identifies_one_event()) {
            Some(id) => Who::Id(id.value.clone()),
            None => Who::Body(body_digest(body)),
        },
    }
}
