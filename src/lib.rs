//! webhook-sqs-bridge: authenticates vendor webhook events and forwards them, byte for
//! byte, into an Amazon SQS FIFO queue, answering only once SQS has accepted them.
//!
//! Layout (ARCHITECTURE.md has the full map), in the order a request meets it:
//! - [`http`]: the endpoints; source policy, admission (slots, body bytes), the error
//!   table, the request log, native TLS.
//! - `forward`: the pipeline from an authenticated body to an outgoing message:
//!   [`auth`], [`event`] and its FIFO [`keys`], [`dedup`], the group choice.
//! - `sqs`: the SQS side: client, the two send calls, group-commit batching behind the
//!   `SendBatch` seam, error classification, readiness, size limits, and `wire` (what
//!   the bridge writes itself instead of the SDK: request bodies, the payload hash).
//! - `spool`: the durable spool (`BRIDGE_SPOOL_DIR`) for events SQS can't take: the gate
//!   that keeps each group's order, the writer (group commit to disk), the drainer.
//! - `memory`: the shared event memory (`BRIDGE_EVENT_MEMORY=dynamodb`): exactly once
//!   across replicas and beyond SQS's five minutes.
//! - [`config`]: settings, layered and validated once; [`startup`]: building and running
//!   the server, and the drain on shutdown; [`telemetry`]: logs and metrics.
//! - [`cli`]: the command line and its tools (`send-test-event`, `check-config`,
//!   `healthcheck`), a file each.

pub mod cli;
pub mod config;
mod forward;
pub mod http;
mod memory;
mod spool;
mod sqs;
pub mod startup;
pub mod telemetry;

pub use forward::{Event, Pipeline, auth, dedup, event, keys};
pub use sqs::{
    Batcher, EntryResult, OutgoingMessage, QueueLimits, Readiness, Receipt, SendBatch, SendError,
    Sender, SqsQueue,
};
