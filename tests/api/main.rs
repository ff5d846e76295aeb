//! Integration tests: the app over HTTP against a real LocalStack SQS, reading every
//! message back from the queue.

#[path = "../support/fake_sqs.rs"]
mod fake_sqs;

mod auth;
mod binary;
mod deployment;
mod faults;
mod forwarding;
mod health;
mod helpers;
mod memory;
mod observability;
mod resilience;
mod spool;
mod throughput;
mod validation;
