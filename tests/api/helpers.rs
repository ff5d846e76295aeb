//! Shared test plumbing: a real LocalStack SQS, a fresh FIFO queue per test, and the app
//! spawned on port 0 from the library (as zero-to-production does).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::OnceCell;
use webhook_sqs_bridge::SqsQueue;
use webhook_sqs_bridge::config::Config;
use webhook_sqs_bridge::startup::Application;

pub const SECRET: &str = "test-shared-secret-1";
pub const SECRET_2: &str = "test-shared-secret-2";
pub const API_KEY: &str = "test-api-key-0001";
pub const API_KEY_2: &str = "test-api-key-0002";
pub const SETUP_ID: &str = "4242";

/// LocalStack's endpoint: `LOCALSTACK_ENDPOINT`, else the default port.
pub fn endpoint() -> String {
    std::env::var("LOCALSTACK_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
}

static LOCALSTACK: OnceCell<()> = OnceCell::const_new();

/// Reuses a healthy LocalStack, or starts one with the project's script (which installs
/// it if needed and serialises parallel callers with a lock).
pub async fn ensure_localstack() {
    LOCALSTACK
        .get_or_init(|| async {
            if healthy().await {
                return;
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/localstack.sh");
            let status = tokio::process::Command::new("bash")
                .arg(script)
                .arg("ensure")
                .status()
                .await
                .expect("run infra/localstack.sh");
            assert!(status.success(), "infra/localstack.sh ensure failed");
            assert!(healthy().await, "LocalStack is not healthy after start");
        })
        .await;
}

async fn healthy() -> bool {
    let url = format!("{}/_localstack/health", endpoint());
    match reqwest::get(url).await {
        Ok(r) => r.text().await.is_ok_and(|t| {
            t.contains("\"sqs\": \"running\"") || t.contains("\"sqs\": \"available\"")
        }),
        Err(_) => false,
    }
}

/// An SQS client for LocalStack, for arranging queues and reading messages back.
pub async fn sqs() -> aws_sdk_sqs::Client {
    ensure_localstack().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// A fresh, randomly named FIFO queue (content-based deduplication off, as in infra/).
pub async fn create_queue(sqs: &aws_sdk_sqs::Client) -> String {
    let name = format!("test-{}.fifo", uuid::Uuid::new_v4().simple());
    sqs.create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

/// Settings for a test app: the test credentials, port 0, and `extra` on top.
pub fn test_config(queue_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = [
        ("BRIDGE_QUEUE_URL", queue_url),
        ("BRIDGE_LISTEN", "127.0.0.1:0"),
        ("BRIDGE_EVENT_SETUP_ID", SETUP_ID),
        ("BRIDGE_SHARED_SECRETS", &format!("{SECRET},{SECRET_2}")),
        ("BRIDGE_API_KEYS", &format!("{API_KEY},{API_KEY_2}")),
        ("BRIDGE_WORKERS", "2"),
        ("BRIDGE_FORWARD_TIMEOUT_MS", "5000"),
        // Tests watch readiness change from one probe to the next.
        ("BRIDGE_READY_CACHE_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_sources(None, |name| env.get(name).cloned()).expect("valid test config")
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// `http://127.0.0.1:PORT` of the separate metrics listener, when configured.
    pub metrics_address: Option<String>,
    pub queue_url: String,
    pub sqs: aws_sdk_sqs::Client,
    pub http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(tokio::spawn(async move { handle.stop(false).await }));
    }
}

/// The bridge in front of a fresh LocalStack FIFO queue.
pub async fn spawn_app(extra: &[(&str, &str)]) -> TestApp {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    spawn_app_on(sqs, queue_url, extra).await
}

/// The bridge in front of a given queue URL (which may not exist).
pub async fn spawn_app_on(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    extra: &[(&str, &str)],
) -> TestApp {
    let config = test_config(&queue_url, extra);
    let queue = SqsQueue::new(&sqs, queue_url.clone(), config.forward_timeout);
    spawn_with_queue(&config, queue, sqs, queue_url)
}

/// The bridge with its SQS client pointed somewhere other than LocalStack (a fake, a
/// closed port); `sqs` in the result is that client.
pub fn spawn_against(
    client: aws_sdk_sqs::Client,
    queue_url: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    let config = test_config(queue_url, extra);
    let queue = SqsQueue::new(&client, queue_url.to_owned(), config.forward_timeout);
    spawn_with_queue(&config, queue, client, queue_url.to_owned())
}

/// The bridge in front of the given queue.
pub fn spawn_with_queue(
    config: &Config,
    queue: SqsQueue,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
) -> TestApp {
    let app = Application::build_with_queue(config, queue).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let port = app.port();
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let handle = app.handle();
    drop(tokio::spawn(app.run_until_stopped()));
    TestApp {
        address,
        port,
        metrics_address,
        queue_url,
        sqs,
        http: reqwest::Client::new(),
        handle,
    }
}

/// A WorkN event with its common parameters and a unique `msg_id`.
pub fn workn_event(msg_id: &str) -> String {
    format!(
        r#"{{"mkt_id":12,"event_datetime":"2025-02-12T14:30:45","msg_id":"{msg_id}","event_type":5,"ent_id":7,"ext_customer_id":"CUST-7","branch_id":3,"ext_branch_id":"BR-3","worker":{{"id":991,"name":"Zoë Ångström"}}}}"#
    )
}

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    webhook_sqs_bridge::auth::sign(secret.as_bytes(), body)
}

impl TestApp {
    pub fn webhook_url(&self) -> String {
        format!("{}/webhook", self.address)
    }

    /// Posts a body signed with the first shared secret (HMAC, hex).
    pub async fn post_signed(&self, body: &str) -> reqwest::Response {
        self.http
            .post(self.webhook_url())
            .header("Content-Type", "application/json")
            .header("X-Payload-Signature", hmac_hex(SECRET, body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// Posts a body with the given headers and nothing else.
    pub async fn post_with(
        &self,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.webhook_url());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    /// [`drain_queue`] on this app's queue.
    pub async fn drain(&self, expected: usize) -> Vec<Message> {
        drain_queue(&self.sqs, &self.queue_url, expected).await
    }

    /// The bodies [`TestApp::drain`] received.
    pub async fn queued_bodies(&self, expected: usize) -> Vec<String> {
        self.drain(expected)
            .await
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    }
}

/// Receives (and deletes) messages until `expected` have arrived and one more receive
/// comes back empty, or 30 s pass: so a test sees extra copies, not just enough.
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut messages = Vec::new();
    loop {
        let wait = if messages.len() >= expected { 1 } else { 2 };
        let got = receive_batch(sqs, queue_url, wait).await;
        let empty = got.is_empty();
        messages.extend(got);
        if (empty && messages.len() >= expected) || Instant::now() > deadline {
            return messages;
        }
    }
}

async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    wait_seconds: i32,
) -> Vec<Message> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let messages = out.messages.unwrap_or_default();
    // FIFO groups stay locked while received messages are undeleted.
    for m in &messages {
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .expect("delete");
    }
    messages
}

pub fn system_attribute(m: &Message, name: &MessageSystemAttributeName) -> String {
    m.attributes()
        .and_then(|a| a.get(name))
        .cloned()
        .unwrap_or_default()
}

pub fn message_attribute(m: &Message, name: &str) -> Option<String> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value().map(str::to_owned))
}

/// The real binary with an empty environment but `PATH`.
pub fn bridge_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_webhook-sqs-bridge"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// The settings every binary test needs: the queue, the test API key, LocalStack.
pub fn localstack_env(command: &mut std::process::Command, queue_url: &str) {
    let endpoint = endpoint();
    command.envs([
        ("BRIDGE_QUEUE_URL", queue_url),
        ("BRIDGE_API_KEYS", API_KEY),
        ("BRIDGE_EVENT_SETUP_ID", "9"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]);
}

pub type LogLines = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

/// Starts the real binary on `queue_url` with JSON logs on port 0; returns the child, the
/// port it announced in its "listening" line, and its remaining log lines.
pub fn start_bridge(
    queue_url: &str,
    extra: &[(&str, &str)],
) -> (std::process::Child, u16, LogLines) {
    use std::io::BufRead as _;
    let mut command = bridge_command();
    localstack_env(&mut command, queue_url);
    let mut child = command
        .envs([
            ("BRIDGE_LISTEN", "127.0.0.1:0"),
            ("BRIDGE_LOG_FORMAT", "json"),
        ])
        .envs(extra.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the bridge exited before listening")
            .unwrap();
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["message"] == "listening" {
            break u16::try_from(entry["port"].as_u64().unwrap()).unwrap();
        }
    };
    (child, port, lines)
}
