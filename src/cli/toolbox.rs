//! Operator tools behind the command line: send realistic test events, and check a
//! configuration and its queue end to end without writing code.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::ProvideErrorMetadata as _;
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use secrecy::{ExposeSecret as _, SecretString};

use crate::config::{Config, Listener};
use crate::sqs::{Readiness, SqsQueue};

/// Which of the vendor's event shapes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleEvent {
    /// A WorkN "worker assigned" event with every common parameter.
    Workn,
    /// A BOLD `placement_updated` event.
    Bold,
}

/// A realistic event, unique per `n` (its id), as the vendor would send it.
#[must_use]
pub fn sample_event(kind: SampleEvent, n: u64) -> String {
    let now = chrono::Utc::now();
    let id = format!("test-{}-{}-{n}", std::process::id(), now.timestamp_millis());
    match kind {
        SampleEvent::Workn => serde_json::json!({
            "mkt_id": 12,
            "event_datetime": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "msg_id": id,
            "event_type": 12,
            "ext_customer_id": "CUST-1001",
            "ent_id": 1001,
            "ext_branch_id": "BR-7",
            "branch_id": 7,
            "worker_id": 99_001,
            "job_id": 55_012,
        }),
        SampleEvent::Bold => serde_json::json!({
            "EventName": "placement_updated",
            "FrontOfficeTenantId": 42,
            "Resource": serde_json::json!({ "PlacementId": 7_771, "Status": "Active" }).to_string(),
            "ResourceModelType": "Avionte.Bold.FrontOffice.Placement",
            "CorrelationId": id,
        }),
    }
    .to_string()
}

/// How a test event is authenticated. Held as secrets, so `Debug` shows no value.
#[derive(Debug, Clone)]
pub enum Credential {
    /// HMAC-SHA256 of the body under this shared secret (hex).
    Secret(SecretString),
    ApiKey(SecretString),
}

/// One answer from the bridge.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A small HTTP(S) client (system trust roots) for posting test events.
pub struct Sender {
    client: HttpClient,
    url: String,
    credential: Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum SendTestError {
    #[error("can't load the system's trusted certificates: {0}")]
    Roots(std::io::Error),
    #[error("invalid request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer from {url}: {source}")]
    Transport {
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("the answer could not be read: {0}")]
    Body(#[from] hyper::Error),
}

impl Sender {
    pub fn new(url: String, credential: Credential) -> Result<Self, SendTestError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(SendTestError::Roots)?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self {
            client,
            url,
            credential,
        })
    }

    /// Posts one body, signed or with the API key, and reads the answer.
    pub async fn post(&self, body: String) -> Result<Answer, SendTestError> {
        let mut request =
            hyper::Request::post(&self.url).header("Content-Type", "application/json");
        request = match &self.credential {
            Credential::Secret(secret) => request.header(
                "X-Payload-Signature",
                crate::forward::auth::sign(secret.expose_secret().as_bytes(), body.as_bytes()),
            ),
            Credential::ApiKey(key) => request.header("X-api-key", key.expose_secret()),
        };
        let request = request.body(Full::new(Bytes::from(body)))?;
        let started = Instant::now();
        let response =
            self.client
                .request(request)
                .await
                .map_err(|source| SendTestError::Transport {
                    url: self.url.clone(),
                    source,
                })?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        })
    }
}

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
    if config.dedup == crate::forward::dedup::DedupMode::Timestamp {
        report.warn(
            "timestamp deduplication is per process: run one replica, or use BRIDGE_DEDUP=event-id",
        );
    }
    if config.sources.allowed.is_empty() {
        report.ok("all source addresses allowed (BRIDGE_ALLOWED_SOURCES not set)");
    } else {
        report.ok(format!("allowed sources: {:?}", config.sources.allowed));
    }

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

#[cfg(test)]
mod tests {
    use super::Credential;

    #[test]
    fn credentials_do_not_show_in_debug_output() {
        for credential in [
            Credential::Secret("secret-value-1".to_owned().into()),
            Credential::ApiKey("api-key-value-1".to_owned().into()),
        ] {
            let text = format!("{credential:?}");
            assert!(!text.contains("value-1"), "{text}");
        }
    }
}

/// Why `healthcheck` found the bridge unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("BRIDGE_LISTEN has port 0: the port the bridge chose is not known here")]
    NoPort,
    #[error("no answer from {url} within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u128 },
    #[error("no answer from {url}: {source}")]
    Transport {
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the answer from {url} could not be read: {source}")]
    Body { url: String, source: hyper::Error },
}

/// Asks the bridge that `listener` describes for `/healthz` (or `/readyz`): what a
/// container's health check runs, with no curl in the image and whatever the port or TLS
/// setting. A wildcard address is asked on loopback (`[::]` on `::1`, then on
/// `127.0.0.1`, for containers without IPv6); a specific one at that address. Returns
/// the URL that answered.
pub async fn healthcheck(
    listener: Listener,
    ready: bool,
    timeout: Duration,
) -> Result<String, HealthError> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let port = listener.addr.port();
    if port == 0 {
        return Err(HealthError::NoPort);
    }
    let candidates: Vec<IpAddr> = match listener.addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => vec![Ipv4Addr::LOCALHOST.into()],
        IpAddr::V6(ip) if ip.is_unspecified() => {
            vec![Ipv6Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()]
        }
        ip => vec![ip],
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::http::tls::loopback_client_config())
        .https_or_http()
        .enable_http1()
        .build();
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let scheme = if listener.tls { "https" } else { "http" };
    let path = if ready { "/readyz" } else { "/healthz" };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    for ip in candidates {
        let url = format!("{scheme}://{}{path}", std::net::SocketAddr::new(ip, port));
        let asked = tokio::time::timeout_at(deadline, ask(&client, &url))
            .await
            .unwrap_or_else(|_| {
                Err(HealthError::Timeout {
                    url: url.clone(),
                    timeout_ms: timeout.as_millis(),
                })
            });
        match asked {
            Ok(()) => return Ok(url),
            // Nothing listens there: the next address may be the one.
            Err(e @ HealthError::Transport { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("there is at least one address to ask"))
}

/// One `GET`; `Ok` only for `200`.
async fn ask(client: &HttpClient, url: &str) -> Result<(), HealthError> {
    let request = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a URL built from an address is valid");
    let response = client
        .request(request)
        .await
        .map_err(|source| HealthError::Transport {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| HealthError::Body {
            url: url.to_owned(),
            source,
        })?
        .to_bytes();
    if status == 200 {
        Ok(())
    } else {
        Err(HealthError::Status {
            url: url.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
