//! The SQS side: everything between an [`OutgoingMessage`] and SQS's answer.
//!
//! - [`client`]: the SDK client as the bridge configures it ([`SqsQueue`]).
//! - [`send`]: the `SendMessage` and `SendMessageBatch` calls, and the [`SendBatch`] seam.
//! - [`batch`]: group commit of concurrent sends into batch calls ([`Batcher`]).
//! - [`classify`]: SQS's errors sorted into what the sender is told ([`SendError`]).
//! - [`readiness`]: `/readyz`'s check and its cache; [`limits`]: SQS's and the queue's
//!   size limits.
//! - [`wire`]: what bypasses the SDK's own code on the hot path (request writer, payload
//!   hash, JSON escaping).
//!
//! [`Sender`] is what a request handler holds: direct or batching, chosen once.

pub mod batch;
pub mod classify;
pub mod client;
#[cfg(test)]
mod fake;
pub mod limits;
pub mod message;
pub mod readiness;
pub mod send;
pub(crate) mod wire;

pub use batch::Batcher;
pub use classify::SendError;
pub use client::SqsQueue;
pub use limits::QueueLimits;
pub use message::{EntryResult, OutgoingMessage, Receipt};
pub use readiness::{Readiness, ReadinessCache};
pub use send::SendBatch;

/// How a worker's events reach SQS.
#[derive(Clone)]
pub enum Sender {
    /// One `SendMessage` call per event, made in the request handler over the worker's
    /// own connection pool ([`SqsQueue::with_own_connections`]).
    Direct(SqsQueue),
    /// Group commit through the one dispatcher every worker shares.
    Batching(Batcher),
}

impl Sender {
    /// The sender for one more worker: a connection pool of its own when sending directly
    /// (a connection is driven by the runtime that opened it), the shared dispatcher
    /// otherwise.
    #[must_use]
    pub fn for_worker(&self) -> Self {
        match self {
            Self::Direct(queue) => Self::Direct(queue.with_own_connections()),
            Self::Batching(batcher) => Self::Batching(batcher.clone()),
        }
    }

    /// Resolves only once the queue has the message, or with why it does not.
    pub async fn send(&self, message: OutgoingMessage) -> Result<Receipt, SendError> {
        match self {
            Self::Direct(queue) => queue.send(message).await,
            Self::Batching(batcher) => batcher.send(message).await,
        }
    }
}
