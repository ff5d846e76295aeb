//! Building and running the HTTP server, as zero-to-production does: bind first (port 0
//! in tests), read back the real port, then run until stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use crate::config::{Config, ConfigError};
use crate::forward::Pipeline;
use crate::forward::auth::Authenticator;
use crate::forward::dedup::{Deduplicator, SQS_DEDUP_WINDOW};
use crate::forward::keys::MessageGroupId;
use crate::http::admission::BodyLimits;
use crate::http::connections::ConnectionGate;
use crate::http::{self, Admission, AppState};
use crate::memory::{EventMemory, MemoryKind, Table};
use crate::spool::Spool;
use crate::sqs::{Batcher, QueueLimits, ReadinessCache, Sender, SqsQueue};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("BRIDGE_LISTEN: can't listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("BRIDGE_METRICS_LISTEN: can't listen on {addr}: {source}")]
    BindMetrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The TLS files can't be used: a configuration error, named as one.
    #[error(transparent)]
    Tls(#[from] ConfigError),
    /// `BRIDGE_SPOOL_DIR` can't be used: also a configuration error.
    #[error(transparent)]
    Spool(#[from] crate::spool::OpenError),
    #[error("BRIDGE_EVENT_MEMORY=dynamodb is built only by Application::build")]
    SharedMemoryNeedsBuild,
}

/// The server's TLS configuration from the files configuration names, if any.
pub fn load_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    config
        .tls
        .as_ref()
        .map(http::tls::server_config)
        .transpose()
}

/// How events reach `queue`, as configured.
///
/// Batched (group commit): one dispatcher on the current Tokio runtime, shared by every
/// worker, with an adaptive number of calls in flight, at most `BRIDGE_BATCH_CONCURRENCY`
/// (`sqs::batch`'s limit); the SDK's work stays
/// on that runtime's thread (docs/BENCHMARKS.md, "The SQS side on one thread"). Must run
/// inside a Tokio runtime.
///
/// One call per event: the calls run in the request handlers, and each worker gets a
/// connection pool of its own ([`Sender::for_worker`]).
fn sender(config: &Config, queue: SqsQueue, limits: &Arc<QueueLimits>) -> Sender {
    if config.batch {
        Sender::Batching(Batcher::start(
            Arc::new(queue),
            config.batch_concurrency,
            config.forward_timeout,
            Arc::clone(limits),
        ))
    } else {
        Sender::Direct(queue)
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on `BRIDGE_METRICS_LISTEN`, when set.
    metrics_server: Option<Server>,
    metrics_port: Option<u16>,
    /// Shared state, for the drain and the start-up readiness report.
    state: web::Data<AppState>,
    shutdown_timeout: Duration,
}

/// After the drain, how long actix waits for connections to finish writing before it
/// drops them (idle keep-alive connections would otherwise hold it for the full time).
const FLUSH_SECONDS: u64 = 2;

/// Idle keep-alive: longer than common load balancers' 60 s idle timeout behind one (so
/// they close first), short when clients connect directly and each idle connection is
/// one of theirs held open.
const KEEP_ALIVE_BEHIND_PROXY: Duration = Duration::from_secs(75);
const KEEP_ALIVE_DIRECT: Duration = Duration::from_secs(15);

impl Application {
    /// Builds the bridge against the SQS queue from configuration and the AWS chain.
    /// The TLS files, if any, are read first: files that can't be used stop start-up
    /// before anything else is loaded or opened.
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let tls = load_tls(config)?;
        let queue = SqsQueue::from_env(config.queue_url.clone(), config.forward_timeout).await;
        let memory = event_memory(config).await;
        Self::assemble(config, queue, memory, tls)
    }

    /// Builds the bridge in front of `queue` (tests point its client at LocalStack or
    /// at a fake SQS), with an event memory in the process: a configuration naming the
    /// shared one is refused (it is built by [`Self::build`], for the binary).
    pub fn build_with_queue(config: &Config, queue: SqsQueue) -> Result<Self, StartupError> {
        if matches!(config.event_memory.kind, MemoryKind::DynamoDb { .. }) {
            return Err(StartupError::SharedMemoryNeedsBuild);
        }
        Self::assemble(config, queue, in_process_memory(config), load_tls(config)?)
    }

    fn assemble(
        config: &Config,
        queue: SqsQueue,
        memory: Option<EventMemory>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, StartupError> {
        let bind_error = |source| StartupError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let limits = Arc::new(QueueLimits::default());
        let readiness = Arc::new(ReadinessCache::new(
            queue.clone(),
            config.ready_cache,
            Arc::clone(&limits),
        ));
        // Before the spool's recovery, which counts what it finds.
        crate::telemetry::prometheus();
        let spool = config
            .spool
            .as_ref()
            .map(|settings| {
                let spool = Spool::open(settings)?;
                spool.start_draining(
                    queue.clone(),
                    Arc::clone(&limits),
                    config.forward_timeout,
                    memory.clone(),
                );
                Ok::<_, StartupError>(spool)
            })
            .transpose()?;
        let template = AppState {
            authenticator: Authenticator::new(
                &config.shared_secrets,
                &config.api_keys,
                config.allow_unauthenticated,
            )
            .requiring_hmac(config.require_hmac),
            pipeline: Arc::new(Pipeline {
                // SQS's window starts when it accepts a message, up to a forward timeout
                // after the id was chosen: remembered that much longer, an id is never
                // given out again while SQS may still hold it.
                deduplicator: Arc::new(Deduplicator::with_window(
                    config.dedup,
                    SQS_DEDUP_WINDOW + config.forward_timeout,
                )),
                default_group: config
                    .event_setup_id
                    .as_ref()
                    .map(MessageGroupId::for_event_setup),
                group_by: config.group_by,
            }),
            sender: sender(config, queue, &limits),
            admission: Arc::new(Admission::new(
                config.max_in_flight,
                config.max_buffered_bytes,
                BodyLimits {
                    max_body_bytes: config.max_body_bytes,
                    read_timeout: config.body_read_timeout,
                    split_unverified: !(config.require_hmac && config.api_keys.is_empty()),
                },
            )),
            readiness,
            draining: Arc::new(AtomicBool::new(false)),
            warnings: Arc::new(config.warnings()),
            sources: config.sources.clone(),
            spool,
            memory,
            connections: Arc::new(ConnectionGate::new(
                config.sources.clone(),
                config.max_connections_per_source,
            )),
        };
        let shared = web::Data::new(template.clone());
        let path = config.path.clone();
        let metrics_here = config.metrics_listen.is_none();
        let gate = Arc::clone(&template.connections);
        let keep_alive = if config.sources.trusted_proxies.is_empty() {
            KEEP_ALIVE_DIRECT
        } else {
            KEEP_ALIVE_BEHIND_PROXY
        };
        let server = HttpServer::new(move || {
            let state = AppState {
                sender: template.sender.for_worker(),
                ..template.clone()
            };
            App::new()
                .app_data(web::Data::new(state))
                .configure(|cfg| http::configure(cfg, &path, metrics_here))
        })
        .workers(config.workers)
        // Signals are handled in `run_until_stopped`, which drains in-flight forwards
        // first; actix then only needs a moment to flush the last answers.
        .disable_signals()
        .shutdown_timeout(FLUSH_SECONDS)
        // Request head must arrive within 5 s (slow-loris).
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(keep_alive)
        // BRIDGE_MAX_CONNECTIONS over the workers (actix counts per worker), and the cap
        // per source and the allow-list as each connection is accepted.
        .max_connections(config.max_connections.div_ceil(config.workers.max(1)))
        .on_connect(move |io, extensions| gate.on_connect(io, extensions));
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, Arc::unwrap_or_clone(tls)),
            None => server.listen(listener),
        }
        .map_err(bind_error)?
        .run();
        let (metrics_server, metrics_port) = match config.metrics_listen {
            None => (None, None),
            Some(addr) => {
                let metrics_error = |source| StartupError::BindMetrics { addr, source };
                let listener = TcpListener::bind(addr).map_err(metrics_error)?;
                let port = listener.local_addr().map_err(metrics_error)?.port();
                let state = shared.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .route("/metrics", web::get().to(http::metrics_private))
                        .route("/readyz", web::get().to(http::readyz_private))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .map_err(metrics_error)?
                .run();
                (Some(server), Some(port))
            }
        };
        Ok(Self {
            port,
            server,
            metrics_server,
            metrics_port,
            state: shared,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// The port actually bound (useful with port 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when `BRIDGE_METRICS_LISTEN` is set.
    #[must_use]
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Stops the server from another task (tests; SIGTERM/SIGINT are handled already).
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Logs whether the queue is ready, without holding up start-up: an SQS outage at
    /// deploy time must not stop the bridge from serving `/healthz`.
    pub fn report_readiness(&self) {
        let cache = Arc::clone(&self.state.readiness);
        tokio::spawn(async move {
            // The cache logs this first answer, and each later change `/readyz` sees.
            cache.get().await;
        });
    }

    /// Serves until SIGTERM/SIGINT (or [`Application::handle`]) stops it.
    ///
    /// On a signal: stop accepting connections, answer new webhooks on open connections
    /// with `503`, wait up to `BRIDGE_SHUTDOWN_TIMEOUT_S` for every in-flight forward to
    /// finish (each is answered honestly), then stop. With the spool, forwards still
    /// waiting for SQS halfway through that time are spooled and answered `200`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let state = self.state;
        let timeout = self.shutdown_timeout;
        let drain = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received: finishing in-flight forwards");
            state.draining.store(true, Ordering::SeqCst);
            handle.pause().await;
            if let Some(spool) = state.spool.clone() {
                // Half the time for forwards to end on their own (SQS may be fine); then
                // whatever is still waiting for SQS goes into the spool, for the next
                // process to drain.
                tokio::spawn(async move {
                    tokio::time::sleep(timeout / 2).await;
                    spool.take_over();
                });
            }
            let all = state.admission.all_answered();
            match tokio::time::timeout(timeout, all).await {
                Ok(()) => tracing::info!("every in-flight forward has been answered"),
                Err(_) => tracing::warn!(
                    still_in_flight = state.admission.slots_in_use().0,
                    "BRIDGE_SHUTDOWN_TIMEOUT_S passed with forwards still in flight; their senders will retry"
                ),
            }
            handle.stop(true).await;
        });
        let metrics_handle = self.metrics_server.as_ref().map(Server::handle);
        if let Some(server) = self.metrics_server {
            tokio::spawn(server);
        }
        let result = self.server.await;
        drain.abort();
        if let Some(handle) = metrics_handle {
            handle.stop(false).await;
        }
        result
    }
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "can't listen for SIGTERM; only SIGINT stops the bridge");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The event memory, unless `BRIDGE_EVENT_MEMORY=local` without a TTL or a bound. The
/// table's calls get the forward budget: they come before the SQS call, which has its own.
pub async fn event_memory(config: &Config) -> Option<EventMemory> {
    let settings = &config.event_memory;
    let MemoryKind::DynamoDb { table } = &settings.kind else {
        return in_process_memory(config);
    };
    let table = Table::from_env(table.clone(), config.forward_timeout).await;
    Some(EventMemory::shared(
        table,
        settings.ttl,
        config.forward_timeout,
        settings.on_error,
    ))
}

/// The event memory in the process, with `local` and a TTL or a bound.
fn in_process_memory(config: &Config) -> Option<EventMemory> {
    let MemoryKind::Process { max_events } = config.event_memory.kind else {
        return None;
    };
    Some(EventMemory::in_process(
        max_events,
        config.event_memory.ttl,
        config.forward_timeout,
    ))
}
