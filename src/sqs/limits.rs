//! SQS's size limits, the bridge's own limits derived from them, and the queue's
//! `MaximumMessageSize` as last read: one place, which the readiness check writes and
//! the handler and the batcher read.

use std::sync::atomic::{AtomicUsize, Ordering};

/// SQS counts message attributes against the 1 MiB message limit. The bridge adds at most
/// two attributes whose values are capped at this length, so a fixed reserve fits them.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 512;

/// The largest message SQS accepts (body plus attributes).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// Room kept for the attributes the bridge adds: names, type names and capped values.
pub const ATTRIBUTE_RESERVE_BYTES: usize = 2_048;

/// The largest body the bridge can forward, and the default for `BRIDGE_MAX_BODY_BYTES`.
pub const MAX_BODY_BYTES: usize = SQS_MAX_MESSAGE_BYTES - ATTRIBUTE_RESERVE_BYTES;

/// Entries in one `SendMessageBatch` call.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Bytes in one `SendMessageBatch` call, all entries together.
pub const MAX_BATCH_BYTES: usize = SQS_MAX_MESSAGE_BYTES;

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

/// The queue's `MaximumMessageSize` (attributes included) as the last readiness check
/// read it; SQS's 1 MiB until one has. Queues made before 2025 may take only 256 KiB.
///
/// Shared by the readiness cache (which writes it), the handler (a larger event gets
/// `503 queue_too_small` without a call) and the batcher (a batch keeps within it: such a
/// queue may refuse a larger batch whole, failing every event in it).
#[derive(Debug)]
pub struct QueueLimits {
    max_message_bytes: AtomicUsize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: AtomicUsize::new(SQS_MAX_MESSAGE_BYTES),
        }
    }
}

impl QueueLimits {
    /// The largest message the queue takes, as last seen.
    #[must_use]
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes.load(Ordering::Relaxed)
    }

    /// A batch call's byte budget: the smaller of SQS's and the queue's limit.
    #[must_use]
    pub fn max_batch_bytes(&self) -> usize {
        self.max_message_bytes().min(MAX_BATCH_BYTES)
    }

    /// Records what a readiness check read.
    pub fn set_max_message_bytes(&self, bytes: usize) {
        self.max_message_bytes.store(bytes, Ordering::Relaxed);
    }
}
