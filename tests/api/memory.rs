//! The event memory. Shared (`BRIDGE_EVENT_MEMORY=dynamodb`): real bridge processes
//! sharing one table in moto's DynamoDB server (open source; LocalStack's DynamoDB is
//! Amazon's DynamoDB Local, whose licence we can't use) and one queue in LocalStack
//! (or, where an SQS call must hang or fail, the FAKE SQS). In the process (`local` with a
//! TTL and a bound): the bridge against LocalStack.

use std::io::BufRead as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use serde_json::Value;

use crate::fake_sqs::FakeSqs;
use crate::helpers::{
    API_KEY, bridge_command, create_queue, drain_queue, localstack_env, message_attribute,
    spawn_app, sqs, start_bridge, workn_event,
};

const TABLE: &str = "bridge-events";

/// moto's server on a port of its own, with the event table; stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Self {
        let server = std::env::var("BRIDGE_MOTO_SERVER").unwrap_or_else(|_| {
            format!(
                "{}/.tools/moto-venv/bin/moto_server",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        assert!(
            std::path::Path::new(&server).exists(),
            "{server} is missing: run `infra/moto.sh install` (scripts/test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Ready when it answers a real call.
        let client = moto.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.list_tables().send().await.is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client
            .create_table()
            .table_name(TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        moto
    }

    fn client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Every record's `dedup_id` and `state`.
    async fn records(&self) -> Vec<(String, String)> {
        let items = self
            .client()
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        items
            .iter()
            .map(|i| (text(i, "dedup_id"), text(i, "state")))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bridge process with the shared memory on `moto`; its log drained in the background.
struct Bridge {
    child: Child,
    port: u16,
}

impl Bridge {
    fn on_localstack(queue_url: &str, dynamodb: &str, extra: &[(&str, &str)]) -> Self {
        let mut settings = memory_settings(dynamodb);
        settings.extend_from_slice(extra);
        let (child, port, lines) = start_bridge(queue_url, &settings);
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Self { child, port }
    }

    fn on_fake(fake: &FakeSqs, dynamodb: &str, extra: &[(&str, &str)]) -> Self {
        let mut command = bridge_command();
        localstack_env(&mut command, &fake.queue_url());
        let endpoint = fake.endpoint();
        let mut child = command
            .envs([
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("BRIDGE_LISTEN", "127.0.0.1:0"),
                ("BRIDGE_LOG_FORMAT", "json"),
            ])
            .envs(memory_settings(dynamodb))
            .envs(extra.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("the bridge exited").unwrap();
            if let Ok(entry) = serde_json::from_str::<Value>(&line)
                && entry["message"] == "listening"
            {
                break u16::try_from(entry["port"].as_u64().unwrap()).unwrap();
            }
        };
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Self { child, port }
    }

    async fn post(&self, body: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/webhook", self.port))
            .header("Content-Type", "application/json")
            .header("X-API-Key", API_KEY)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn metric(&self, name: &str) -> String {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn memory_settings(dynamodb: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("BRIDGE_EVENT_MEMORY", "dynamodb"),
        ("BRIDGE_EVENT_MEMORY_TABLE", TABLE),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
    ]
}

/// In `timestamp` mode, across two replicas and a restart: the first answer's message id
/// and vendor-format deduplication id every time, `"duplicate"`, one message queued.
#[tokio::test]
async fn a_repeat_on_another_replica_or_after_a_restart_is_a_duplicate_queued_once() {
    let moto = Moto::start().await;
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let timestamp = [("BRIDGE_DEDUP", "timestamp")];
    let mut first = Bridge::on_localstack(&queue_url, &moto.endpoint, &timestamp);
    let second = Bridge::on_localstack(&queue_url, &moto.endpoint, &timestamp);
    let event = workn_event("memory-replicas");

    let (status, answer) = first.post(&event).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let dedup = answer["deduplication_id"].as_str().unwrap().to_owned();
    assert!(
        chrono::NaiveDateTime::parse_from_str(&dedup, "%Y-%m-%dT%H:%M:%S%.3f").is_ok(),
        "the vendor's format: {dedup}"
    );

    let (status, again) = second.post(&event).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(again["message_id"], answer["message_id"]);
    assert_eq!(again["deduplication_id"], answer["deduplication_id"]);
    assert!(
        second
            .metric("bridge_event_memory_hits_total")
            .await
            .contains("result=\"duplicate\"} 1"),
        "counted"
    );

    first.kill9();
    let restarted = Bridge::on_localstack(&queue_url, &moto.endpoint, &timestamp);
    let (status, replay) = restarted.post(&event).await;
    assert_eq!(
        (status, replay["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(replay["deduplication_id"], answer["deduplication_id"]);

    let messages = drain_queue(&sqs, &queue_url, 1).await;
    assert_eq!(messages.len(), 1, "queued once");
    assert_eq!(moto.records().await, [(dedup, "sent".to_owned())]);
}

/// A process killed after its claim and before SQS answered: the sender's retry, on the
/// other replica, goes under the same (vendor-format) id, and SQS keeps one copy.
#[tokio::test]
async fn a_kill_between_the_claim_and_the_sqs_answer_leaves_one_message_after_the_retry() {
    let moto = Moto::start().await;
    let fake = FakeSqs::start().await;
    let settings = [
        ("BRIDGE_DEDUP", "timestamp"),
        ("BRIDGE_FORWARD_TIMEOUT_MS", "5000"),
    ];
    let mut first = Bridge::on_fake(&fake, &moto.endpoint, &settings);
    let second = Bridge::on_fake(&fake, &moto.endpoint, &settings);
    let event = workn_event("memory-kill");

    let delay = Duration::from_millis(1500);
    fake.set_latency(Some(delay));
    let url = format!("http://127.0.0.1:{}/webhook", first.port);
    let body = event.clone();
    let attempt = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-API-Key", API_KEY)
            .body(body)
            .send()
            .await
    });
    // The claim is written before the call: once SQS has the call, kill the process.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.calls("SendMessageBatch") == 0 {
        assert!(Instant::now() < deadline, "the first attempt reached SQS");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent_at = Instant::now();
    first.kill9();
    assert!(attempt.await.unwrap().is_err(), "its sender got no answer");
    let claimed = moto.records().await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].1, "in-progress");

    fake.set_latency(None);
    let (status, answer) = second.post(&event).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["deduplication_id"].as_str(),
        Some(claimed[0].0.as_str())
    );
    // The killed process's call still completes in the fake after its delay.
    tokio::time::sleep(delay.saturating_sub(sent_at.elapsed()) + Duration::from_millis(300)).await;
    let stored = fake.stored();
    assert_eq!(stored.len(), 1, "one copy: {stored:?}");
    assert_eq!(stored[0].deduplication_id, claimed[0].0);
}

/// A different body under an identity the memory holds: a distinct event, queued with an
/// id of its own and the first one's message id, never merged; its retry is a duplicate.
#[tokio::test]
async fn a_different_body_with_a_held_identity_is_queued_as_a_second_flagged_event() {
    let moto = Moto::start().await;
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let mode = [("BRIDGE_DEDUP", "event-id")];
    let first = Bridge::on_localstack(&queue_url, &moto.endpoint, &mode);
    let second = Bridge::on_localstack(&queue_url, &moto.endpoint, &mode);
    let original = workn_event("memory-conflict");
    let other = original.replacen('{', r#"{"note":"another body","#, 1);

    let (_, a) = first.post(&original).await;
    let (status, b) = second.post(&other).await;
    assert_eq!((status, b["status"].as_str()), (200, Some("accepted")));
    assert_ne!(b["deduplication_id"], a["deduplication_id"]);
    let (_, retry) = first.post(&other).await;
    assert_eq!(retry["status"], "duplicate");
    assert_eq!(retry["message_id"], b["message_id"]);

    let messages = drain_queue(&sqs, &queue_url, 2).await;
    assert_eq!(messages.len(), 2);
    let flagged = messages
        .iter()
        .find(|m| m.body() == Some(other.as_str()))
        .expect("the second body is queued");
    assert_eq!(
        message_attribute(flagged, "bridge_conflicts_with").as_deref(),
        a["message_id"].as_str()
    );
    assert!(
        second
            .metric("bridge_event_memory_hits_total")
            .await
            .contains("result=\"conflict\"} 1")
    );
}

/// The memory unreachable: `refuse` answers `503` and queues nothing; `forward` queues
/// the event with SQS's own deduplication only. Each counted.
#[tokio::test]
async fn an_unreachable_memory_refuses_or_forwards_as_configured() {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let timeout = [("BRIDGE_FORWARD_TIMEOUT_MS", "1000")];
    let refusing = Bridge::on_localstack(&queue_url, &closed, &timeout);
    let (status, answer) = refusing.post(&workn_event("memory-down-1")).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "event_memory_unavailable");
    assert!(
        refusing
            .metric("bridge_event_memory_unavailable_events_total")
            .await
            .contains("action=\"refused\"} 1")
    );

    let forwarding = Bridge::on_localstack(
        &queue_url,
        &closed,
        &[
            ("BRIDGE_FORWARD_TIMEOUT_MS", "1000"),
            ("BRIDGE_EVENT_MEMORY_ON_ERROR", "forward"),
        ],
    );
    let (status, answer) = forwarding.post(&workn_event("memory-down-2")).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
    let messages = drain_queue(&sqs, &queue_url, 1).await;
    assert_eq!(messages.len(), 1, "only the forwarded one");
    assert!(messages[0].body().unwrap().contains("memory-down-2"));
}

/// A spooled event's record says so: a repeat on another replica is answered
/// `duplicate` without calling SQS (during the outage it would have got `503`), the
/// drain queues the event once and marks the record sent, and a repeat then gets SQS's
/// message id.
#[tokio::test]
async fn a_spooled_event_is_a_duplicate_on_every_replica_and_queued_once_by_the_drain() {
    let moto = Moto::start().await;
    let fake = FakeSqs::start().await;
    let dir = std::env::temp_dir().join(format!("bridge-memory-{}", uuid::Uuid::new_v4()));
    let spool = dir.to_str().unwrap().to_owned();
    let settings = [
        ("BRIDGE_DEDUP", "event-id"),
        ("BRIDGE_FORWARD_TIMEOUT_MS", "1000"),
    ];
    let mut spooling = settings.to_vec();
    spooling.push(("BRIDGE_SPOOL_DIR", spool.as_str()));
    let first = Bridge::on_fake(&fake, &moto.endpoint, &spooling);
    let second = Bridge::on_fake(&fake, &moto.endpoint, &settings);
    let event = workn_event("memory-spooled");

    fake.set_outage(true);
    let (status, spooled) = first.post(&event).await;
    assert_eq!(
        (status, spooled["status"].as_str()),
        (200, Some("spooled")),
        "{spooled}"
    );
    let dedup = spooled["deduplication_id"].as_str().unwrap().to_owned();
    assert_eq!(
        moto.records().await,
        [(dedup.clone(), "spooled".to_owned())]
    );
    let calls = fake.calls("SendMessage") + fake.calls("SendMessageBatch");
    let (status, again) = second.post(&event).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("duplicate")),
        "{again}"
    );
    assert_eq!(again["deduplication_id"].as_str(), Some(dedup.as_str()));
    assert!(
        again["message_id"].is_null(),
        "SQS has not answered for it yet"
    );
    assert_eq!(
        fake.calls("SendMessage") + fake.calls("SendMessageBatch"),
        calls,
        "the repeat was not sent"
    );

    fake.set_outage(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.stored_count() == 0 {
        assert!(Instant::now() < deadline, "the spool was not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The drainer marks the record sent: a repeat now gets SQS's message id.
    let deadline = Instant::now() + Duration::from_secs(10);
    while moto.records().await != [(dedup.clone(), "sent".to_owned())] {
        assert!(
            Instant::now() < deadline,
            "the drainer did not mark the record sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, after) = second.post(&event).await;
    assert_eq!(after["status"], "duplicate");
    let stored = fake.stored();
    assert_eq!(stored.len(), 1, "queued once: {stored:?}");
    assert_eq!(stored[0].deduplication_id, dedup);
    assert_eq!(
        after["message_id"].as_str(),
        Some(stored[0].message_id.as_str()),
        "{after}"
    );
    drop((first, second));
    let _ = std::fs::remove_dir_all(dir);
}

/// One replica, the memory in the process (`local` with a TTL and a bound): a repeat is
/// answered `duplicate` without SQS; once the bound drops its record (counted), a repeat
/// goes to SQS again under its id, and SQS drops the copy.
#[tokio::test]
async fn the_memory_in_the_process_answers_repeats_and_evicts_its_oldest_record_when_full() {
    let app = spawn_app(&[
        ("BRIDGE_EVENT_MEMORY_TTL", "2h"),
        ("BRIDGE_EVENT_MEMORY_MAX_EVENTS", "2"),
        ("BRIDGE_DEDUP", "event-id"),
    ])
    .await;
    let post = |body: String| {
        let app = &app;
        async move {
            let response = app.post_signed(&body).await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let metrics = || async { app.get("/metrics").await.text().await.unwrap() };
    let (status, first) = post(workn_event("local-a")).await;
    assert_eq!((status, first["status"].as_str()), (200, Some("accepted")));
    let (status, repeat) = post(workn_event("local-a")).await;
    assert_eq!(
        (status, repeat["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(repeat["message_id"], first["message_id"]);
    assert_eq!(repeat["deduplication_id"], first["deduplication_id"]);

    // Two more events: `local-a`'s record is the least recently written and goes.
    post(workn_event("local-b")).await;
    post(workn_event("local-c")).await;
    let text = metrics().await;
    assert!(
        text.contains("bridge_event_memory_evictions_total 1"),
        "{text}"
    );
    assert!(text.contains("bridge_event_memory_records 2"), "{text}");
    let (status, resent) = post(workn_event("local-a")).await;
    assert_eq!((status, resent["status"].as_str()), (200, Some("accepted")));
    assert_eq!(resent["deduplication_id"], first["deduplication_id"]);

    let bodies = app.queued_bodies(3).await;
    assert_eq!(bodies.len(), 3, "a, b and c once each: {bodies:?}");
}
