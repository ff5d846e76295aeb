//! webhook-sqs-bridge: authenticates vendor webhook events and forwards them, byte for
//! byte, into an Amazon SQS FIFO queue, answering only once SQS has accepted them.
//!
//! Layout (see ARCHITECTURE.md for the full map):
//! - [`config`]: settings from file and environment, validated once.
//! - [`access`]: source allow-list and trusted proxies.
//! - [`auth`]: `X-api-key` / `X-Payload-Signature` checks.
//! - [`event`]: body checks and the FIFO key newtypes.
//! - [`dedup`]: choosing deduplication ids.
//! - [`queue`]: the `EventQueue` seam and its SQS implementation.
//! - [`batch`]: group commit of concurrent forwards into `SendMessageBatch`.
//! - [`routes`]: the HTTP handlers; [`startup`]: the server; [`tls`]: native HTTPS.
//! - [`telemetry`]: logging and Prometheus metrics; [`json`]: JSON string escaping for
//!   the log lines and the SQS request bodies.
//! - [`cli`]: the command line; [`toolbox`]: `send-test-event` and `check-config`.

pub mod access;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod event;
pub mod json;
pub mod queue;
pub mod routes;
pub mod sqs_json;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod toolbox;
