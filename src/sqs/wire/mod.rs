//! The parts of an SQS call the bridge writes itself instead of the SDK: each measured
//! to matter on the hot path (docs/BENCHMARKS.md, "Hand-written parts and the
//! choices measured"), each tested
//! against the SDK's own result.
//!
//! - [`request`]: `SendMessage`/`SendMessageBatch` bodies written in one pass.
//! - [`bodies`]: each call's message bodies, carried beside the SDK's input.
//! - [`payload_hash`]: the SigV4 payload hash through aws-lc-rs.
//! - [`escape`]: JSON string escaping with the SDK's escapes, shared with the log lines.

mod bodies;
pub(crate) mod escape;
mod payload_hash;
mod request;

pub(crate) use bodies::Bodies;
pub(crate) use payload_hash::PayloadHash;
pub(crate) use request::SqsJson;
