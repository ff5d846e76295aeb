//! Integration tests: the app over HTTP against a real LocalStack SQS, reading every
//! message back from the queue.

mod auth;
mod binary;
mod forwarding;
mod health;
mod helpers;
mod validation;
