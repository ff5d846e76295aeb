//! Logging: `tracing` events as readable text, or JSON lines with `BRIDGE_LOG_FORMAT=json`.
//! `RUST_LOG` filters (default `info`).

use std::fmt::{self, Write as _};

use chrono::{Datelike, Timelike};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::sqs::wire::escape::write_string;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// One JSON object per line: `timestamp` (RFC 3339, UTC, microseconds), `level`,
/// `target`, then the event's own fields, `message` among them.
///
/// Written straight into the line buffer instead of through `serde`: this runs once per
/// webhook (docs/BENCHMARKS.md, "JSON log lines").
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events from the `log` crate carry their real target in fields.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let now = chrono::Utc::now();
        write!(
            writer,
            "{{\"timestamp\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\",\"level\":\"{}\",\"target\":",
            now.year(),
            now.month(),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            // A leap second shows as 1_000_000 µs and more.
            now.timestamp_subsec_micros().min(999_999),
            metadata.level(),
        )?;
        write_string(&mut writer, metadata.target())?;
        let mut fields = JsonFields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// Appends `,"name":value` for each field.
struct JsonFields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self
            .out
            .write_char(',')
            .and_then(|()| write_string(self.out, field.name()))
            .and_then(|()| self.out.write_char(':'))
            .and_then(|()| value(self.out));
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| write_string(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// Escapes what is written through it for the inside of a JSON string.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::sqs::wire::escape::write_escaped(self.0, s)
    }
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
    pub const BUFFERED_BODY_BYTES: &str = "bridge_buffered_body_bytes";
    pub const MAX_BUFFERED_BODY_BYTES: &str = "bridge_max_buffered_body_bytes";
    pub const READY: &str = "bridge_ready";
    pub const DEDUP_REMEMBERED: &str = "bridge_dedup_remembered_events";
    /// Events whose deduplication id another event held: given one of their own.
    pub const DEDUP_CONFLICTS: &str = "bridge_dedup_conflicts_total";
    pub const BUILD_INFO: &str = "bridge_build_info";
    /// Batch calls allowed in flight now (adaptive, up to `BRIDGE_BATCH_CONCURRENCY`), and
    /// calls SQS throttled or failed on its side.
    pub const SQS_CONCURRENCY_LIMIT: &str = "bridge_sqs_concurrency_limit";
    pub const SQS_THROTTLED: &str = "bridge_sqs_throttled_total";
    /// Connections open, and connections closed as they were accepted, by `reason`
    /// (`not_allowed`, `per_source_limit`).
    pub const OPEN_CONNECTIONS: &str = "bridge_open_connections";
    pub const CONNECTIONS_REFUSED: &str = "bridge_connections_refused_total";
    /// The spool (`BRIDGE_SPOOL_DIR`): what waits in it, sampled when `/metrics` is read.
    pub const SPOOL_EVENTS: &str = "bridge_spool_events";
    pub const SPOOL_BYTES: &str = "bridge_spool_bytes";
    pub const SPOOL_OLDEST_AGE: &str = "bridge_spool_oldest_event_age_seconds";
    /// Events answered `200` `"spooled"`, and events the drainer put into SQS.
    pub const SPOOLED_EVENTS: &str = "bridge_spooled_events_total";
    pub const SPOOL_DRAINED_EVENTS: &str = "bridge_spool_drained_events_total";
    /// Damaged records found in the spool, kept in its quarantine folder.
    pub const SPOOL_CORRUPT_RECORDS: &str = "bridge_spool_corrupt_records_total";
    /// Spooled events SQS refused for good, kept in the quarantine folder.
    pub const SPOOL_REFUSED_EVENTS: &str = "bridge_spool_refused_events_total";
    /// Events the shared event memory recognised (`result`: `duplicate`, `conflict`,
    /// `takeover`).
    pub const EVENT_MEMORY_HITS: &str = "bridge_event_memory_hits_total";
    /// Calls to the shared event memory that failed (`operation`).
    pub const EVENT_MEMORY_ERRORS: &str = "bridge_event_memory_errors_total";
    /// Each call to the shared event memory (`operation`: `claim`, `take_over`, `sent`,
    /// `spooled`).
    pub const EVENT_MEMORY_SECONDS: &str = "bridge_event_memory_call_duration_seconds";
    /// Events met while the memory could not be reached (`action`: `refused`,
    /// `forwarded`, as `BRIDGE_EVENT_MEMORY_ON_ERROR` says).
    pub const EVENT_MEMORY_UNAVAILABLE: &str = "bridge_event_memory_unavailable_events_total";
    /// Records the in-process event memory holds, and those it dropped before their TTL
    /// because it held `BRIDGE_EVENT_MEMORY_MAX_EVENTS`.
    pub const EVENT_MEMORY_RECORDS: &str = "bridge_event_memory_records";
    pub const EVENT_MEMORY_EVICTIONS: &str = "bridge_event_memory_evictions_total";
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::JsonLines;

    /// Formats the events `emit` logs, one parsed JSON object per line.
    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_object_with_its_fields() {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} Zoë";
        let out = lines(|| {
            tracing::info!(
                text = tricky,
                count = 3u64,
                delta = -2i64,
                ok = true,
                ms = 1.5,
                "hello {}",
                "world"
            );
            tracing::warn!(shown = ?Some("x\"y"), nan = f64::NAN, "second");
        });
        assert_eq!(out.len(), 2);
        let first = &out[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["message"], "hello world");
        assert_eq!(first["text"], tricky);
        assert_eq!(first["count"], 3);
        assert_eq!(first["delta"], -2);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ms"], 1.5);
        let stamp = first["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert!(stamp.ends_with('Z') && stamp.len() == "2026-01-01T00:00:00.000000Z".len());
        assert_eq!(out[1]["level"], "WARN");
        assert_eq!(out[1]["shown"], "Some(\"x\\\"y\")");
        assert!(out[1]["nan"].is_null());
    }
}
