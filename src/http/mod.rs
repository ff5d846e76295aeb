//! The HTTP side: what a request meets before its event reaches the pipeline, and the
//! answer it gets.
//!
//! - [`handlers`]: the endpoints; [`configure`] registers them.
//! - [`access`]: the source allow-list and trusted proxies, checked first.
//! - [`admission`]: forwarding slots, the body byte budget, reading the body.
//! - [`error`]: every refusal and what it gets (one table).
//! - [`request_log`]: the one log line and the metrics per webhook.
//! - [`tls`]: native HTTPS, with renewed certificates served without a restart.

pub mod access;
pub mod admission;
pub mod connections;
pub mod error;
mod handlers;
mod request_log;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::web;

pub use admission::{Admission, unverified_share};
pub use error::WebhookError;
pub use handlers::{Accepted, metrics_private, readyz_private};

use crate::forward::Pipeline;
use crate::forward::auth::Authenticator;
use crate::spool::Spool;
use crate::sqs::{ReadinessCache, Sender};
use access::SourcePolicy;

/// Everything a request needs. Each worker has its own copy, which may hold a sender of
/// its own; everything else in it is shared between the workers.
#[derive(Clone)]
pub struct AppState {
    pub authenticator: Authenticator,
    pub pipeline: Arc<Pipeline>,
    pub sender: Sender,
    pub admission: Arc<Admission>,
    /// Set on SIGTERM/SIGINT: new webhooks get `503`, answered connections are closed.
    pub draining: Arc<AtomicBool>,
    /// Shown on `/readyz` (e.g. authentication disabled).
    pub warnings: Arc<Vec<String>>,
    /// Source allow-list, checked before authentication.
    pub sources: SourcePolicy,
    /// The last `/readyz` answer, reused for `BRIDGE_READY_CACHE_MS`, and the queue's
    /// limits it read.
    pub readiness: Arc<ReadinessCache>,
    /// The durable spool, when `BRIDGE_SPOOL_DIR` is set.
    pub spool: Option<Spool>,
    /// The shared event memory, with `BRIDGE_EVENT_MEMORY=dynamodb`.
    pub memory: Option<crate::memory::EventMemory>,
    /// Open connections per source, checked as each is accepted.
    pub connections: Arc<connections::ConnectionGate>,
}

/// Registers the routes; the webhook at `path`, and `/metrics` unless it has a listener
/// of its own.
pub fn configure(cfg: &mut web::ServiceConfig, path: &str, with_metrics: bool) {
    // Resources (not `App::route`), so another method gets `405` with `Allow`.
    cfg.service(web::resource(path).route(web::post().to(handlers::webhook)))
        .service(web::resource("/healthz").route(web::get().to(handlers::healthz)))
        .service(web::resource("/readyz").route(web::get().to(handlers::readyz)));
    if with_metrics {
        cfg.service(web::resource("/metrics").route(web::get().to(handlers::metrics)));
    }
}
