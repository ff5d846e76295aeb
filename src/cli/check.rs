//! `check-config`: what `serve` would run with — the settings, then the queue
//! (reachable, FIFO, its deduplication setting and size, permission to send) — without
//! putting anything on it.

use std::fmt::Write as _;

use aws_sdk_sqs::error::ProvideErrorMetadata as _;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::config::Config;
use crate::sqs::{Readiness, SqsQueue};

/// The outcome of `check-config`: a readable report, and whether anything is wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub text: String,
    pub problems: usize,
}

impl Report {
    fn ok(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.text, "  ok    {}", line.as_ref());
    }

    fn warn(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.text, "  warn  {}", line.as_ref());
    }

    fn fail(&mut self, line: impl AsRef<str>) {
        self.problems += 1;
        let _ = writeln!(self.text, "  FAIL  {}", line.as_ref());
    }
}

/// Checks what `serve` would run with: settings, then the queue (reachable, FIFO, the
/// deduplication setting, permission to send) — without putting anything on it.
pub async fn check_config(config: &Config) -> Report {
    let mut report = Report::default();
    report.text.push_str("configuration\n");
    report.ok(format!("queue URL {}", config.queue_url));
    report.ok(format!(
        "listening on {}{}, webhook path {}",
        config.listen,
        if config.tls.is_some() {
            " (HTTPS)"
        } else {
            " (plain HTTP)"
        },
        config.path
    ));
    report.ok(format!(
        "credentials: {} shared secret(s), {} API key(s)",
        config.shared_secrets.len(),
        config.api_keys.len()
    ));
    for warning in config
        .warnings()
        .into_iter()
        .chain(config.operator_warnings())
    {
        report.warn(warning);
    }
    match &config.event_setup_id {
        Some(id) => report.ok(format!(
            "events without a MessageGroupId go to {}",
            crate::forward::keys::MessageGroupId::for_event_setup(id).as_str()
        )),
        None => report.warn(
            "BRIDGE_EVENT_SETUP_ID is not set: events without their own MessageGroupId get 400",
        ),
    }
    report.ok(format!("deduplication mode {}", config.dedup.as_str()));
    let shared = matches!(
        config.event_memory.kind,
        crate::config::MemoryKind::DynamoDb { .. }
    );
    if config.dedup == crate::forward::dedup::DedupMode::Timestamp && !shared {
        report.warn(
            "timestamp deduplication is per process: run one replica, or use BRIDGE_DEDUP=event-id",
        );
    }
    if config.sources.allowed.is_empty() {
        report.ok("all source addresses allowed (BRIDGE_ALLOWED_SOURCES not set)");
    } else {
        report.ok(format!("allowed sources: {:?}", config.sources.allowed));
    }
    check_spool(config, &mut report);
    check_memory(config, &mut report).await;

    report.text.push_str("queue\n");
    let queue = SqsQueue::from_env(config.queue_url.clone(), config.forward_timeout).await;
    match queue.readiness().await {
        Readiness::NotReady { detail, .. } => {
            report.fail(detail);
            return report;
        }
        Readiness::Ready {
            content_based_deduplication,
            max_message_bytes,
        } => {
            report.ok("reachable, and a FIFO queue");
            if content_based_deduplication {
                report.warn("ContentBasedDeduplication is on: harmless (the bridge always sets the id), but identical bodies would be merged if it ever did not");
            } else {
                report.ok("ContentBasedDeduplication off (the bridge sets every deduplication id)");
            }
            // The attributes the bridge adds take at most this much beside the body.
            let room = max_message_bytes
                .map(|max| max.saturating_sub(crate::sqs::limits::ATTRIBUTE_RESERVE_BYTES));
            match (max_message_bytes, room) {
                (Some(max), Some(room)) if room < config.max_body_bytes => report.warn(format!(
                    "the queue takes messages of at most {max} bytes (MaximumMessageSize), less than BRIDGE_MAX_BODY_BYTES ({}) allows: larger events get 503 queue_too_small until it is raised (up to 1048576)",
                    config.max_body_bytes
                )),
                (Some(max), _) => report.ok(format!(
                    "MaximumMessageSize {max} bytes: room for BRIDGE_MAX_BODY_BYTES ({})",
                    config.max_body_bytes
                )),
                (None, _) => {}
            }
        }
    }
    check_queue_details(&queue, &mut report).await;
    report
}

/// The shared event memory, when set: its table must answer a read.
async fn check_memory(config: &Config, report: &mut Report) {
    let ttl = config.event_memory.ttl.as_secs();
    match &config.event_memory.kind {
        crate::config::MemoryKind::Local => {
            report.ok("events remembered for SQS's five minutes, in the process");
            return;
        }
        crate::config::MemoryKind::Process { max_events } => {
            report.ok(format!(
                "events remembered for {ttl} s in the process, at most {max_events}"
            ));
            return;
        }
        crate::config::MemoryKind::DynamoDb { .. } => {}
    }
    let Some(memory) = crate::startup::event_memory(config).await else {
        return;
    };
    match memory.probe().await {
        Ok(()) => report.ok(format!(
            "event memory: {} answers; events remembered for {ttl} s, `{}` when it can't be reached",
            memory.describe(),
            config.event_memory.on_error.as_str()
        )),
        Err(error) => report.fail(format!("event memory: {error}")),
    }
}

/// The spool directory, when set: it must take a file and sync it, as `serve` will.
fn check_spool(config: &Config, report: &mut Report) {
    let Some(spool) = &config.spool else {
        report.ok("no spool (BRIDGE_SPOOL_DIR not set): events SQS can't take get 503");
        return;
    };
    let dir = spool.dir.display();
    match crate::spool::probe(&spool.dir) {
        Ok(()) => report.ok(format!(
            "spool {dir}: writable and syncs; holds at most {} bytes",
            spool.max_bytes
        )),
        Err(e) => {
            report.fail(format!(
                "BRIDGE_SPOOL_DIR: can't write and sync a file in {dir}: {e}"
            ));
            return;
        }
    }
    match crate::spool::status::read(&spool.dir) {
        Ok(status) if status.events > 0 => report.warn(format!(
            "spool {dir}: {} events are waiting for SQS (`spool status` shows them)",
            status.events
        )),
        Ok(_) => {}
        Err(e) => report.fail(format!(
            "BRIDGE_SPOOL_DIR: can't read the spool in {dir}: {e}"
        )),
    }
}

async fn check_queue_details(queue: &SqsQueue, report: &mut Report) {
    let client = queue.client();
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue.url())
        .attribute_names(QueueAttributeName::All)
        .send()
        .await;
    if let Ok(answer) = attributes {
        let get =
            |name: QueueAttributeName| answer.attributes().and_then(|a| a.get(&name)).cloned();
        if get(QueueAttributeName::RedrivePolicy).is_some() {
            report.ok("dead-letter queue configured (RedrivePolicy)");
        } else {
            report.warn(
                "no dead-letter queue: events a consumer keeps failing on are never set aside",
            );
        }
        if get(QueueAttributeName::FifoThroughputLimit).as_deref() == Some("perMessageGroupId") {
            report.ok("high-throughput FIFO mode");
        }
    }
    // Permission to send, without sending: a FIFO queue refuses a message without a group
    // id *after* authorising the call, so "missing parameter" proves the permission and
    // stores nothing, while "access denied" shows it is missing.
    let probe = client
        .send_message()
        .queue_url(queue.url())
        .message_body("webhook-sqs-bridge check-config probe (never stored)")
        .send()
        .await;
    match probe {
        Ok(_) => report.warn("the permission probe was accepted: is this really a FIFO queue?"),
        Err(error) => {
            let code = error
                .as_service_error()
                .and_then(|e| e.code())
                .unwrap_or("network")
                .to_owned();
            if code.contains("AccessDenied")
                || code.contains("Unauthorized")
                || code.contains("Kms")
            {
                report.fail(format!("no permission to send: {code}"));
            } else if code.contains("MissingParameter") || code.contains("InvalidParameter") {
                report.ok("allowed to send (sqs:SendMessage)");
            } else {
                report.warn(format!("could not confirm permission to send ({code})"));
            }
        }
    }
}
