//! Logging: `tracing` events as readable text, or JSON lines with `BRIDGE_LOG_FORMAT=json`.
//! `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Prometheus metric names (the Grafana dashboard in docs/ relies on them).
pub mod metric {
    pub const WEBHOOK_REQUESTS: &str = "bridge_webhook_requests_total";
    pub const WEBHOOK_DURATION: &str = "bridge_webhook_request_duration_seconds";
    pub const AUTH_FAILURES: &str = "bridge_auth_failures_total";
    pub const SQS_CALL_DURATION: &str = "bridge_sqs_call_duration_seconds";
    pub const SQS_ERRORS: &str = "bridge_sqs_errors_total";
    pub const SQS_ENTRY_RETRIES: &str = "bridge_sqs_entry_retries_total";
    pub const SQS_BATCH_SIZE: &str = "bridge_sqs_batch_size";
    pub const FORWARDS_IN_FLIGHT: &str = "bridge_forwards_in_flight";
    pub const MAX_IN_FLIGHT: &str = "bridge_max_in_flight";
    pub const READY: &str = "bridge_ready";
    pub const DEDUP_REMEMBERED: &str = "bridge_dedup_remembered_events";
    pub const BUILD_INFO: &str = "bridge_build_info";
}

static PROMETHEUS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use) and its handle for
/// rendering `/metrics`.
pub fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PROMETHEUS
        .get_or_init(|| {
            let latency = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let sizes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(metric::SQS_BATCH_SIZE.into()), &sizes)
                })
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; ours then stays unused.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            metrics::gauge!(metric::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
