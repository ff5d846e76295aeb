//! What one SQS call costs in CPU on this machine, sequentially, against the FAKE SQS
//! given as the first argument (`cargo run --release --example fake_sqs -- 127.0.0.1:19325`
//! first): the SDK's `SendMessage` (plain, and through the bridge's `SqsQueue`), its
//! `SendMessageBatch` of 10 × 1 KiB, the same batch
//! through the bridge's own `SqsQueue::send_batch` (the SDK with the bridge's settings and
//! body writer), and, as a reference only, the same batch as a bare request: signed with
//! `aws-sigv4` and posted with hyper, without the SDK's orchestration (no retries,
//! credential cache, endpoint resolution or interceptors). The numbers behind batching
//! and behind what is left of the SQS thread's time (docs/BENCHMARKS.md).

#[path = "../tests/support/fake_sqs.rs"]
mod fake_sqs;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use webhook_sqs_bridge::keys::{DeduplicationId, MessageGroupId};
use webhook_sqs_bridge::{EntryResult, OutgoingMessage, SendBatch as _, SqsQueue};

/// Calls per kind, unless the second argument says otherwise (e.g. fewer under
/// `valgrind --tool=callgrind`, where a third argument picks the kinds by label prefix).
const CALLS: u32 = 2000;

/// This process's CPU time so far, in µs.
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.split_whitespace().collect();
    (f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap()) * 10_000.0
}

#[derive(Clone, Copy)]
enum Mode {
    SendMessage,
    BridgeSingle,
    Batch,
    BridgeBatch,
    Bare,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let endpoint = std::env::args().nth(1).unwrap();
    let calls: u32 = std::env::args()
        .nth(2)
        .map_or(CALLS, |n| n.parse().unwrap());
    let only = std::env::args().nth(3).unwrap_or_default();
    let client = fake_sqs::client_for(&endpoint);
    let url = format!("{endpoint}/000000000000/x.fifo");
    let body = "x".repeat(1000) + "\"quoted\"";
    let bridge = SqsQueue::new(&client, url.clone(), Duration::from_secs(5));
    let bare = Bare::new(&endpoint);
    for (m, (label, mode)) in [
        ("send_message", Mode::SendMessage),
        ("send_message, bridge's SqsQueue", Mode::BridgeSingle),
        ("batch of 10", Mode::Batch),
        ("batch of 10, bridge's SqsQueue", Mode::BridgeBatch),
        ("batch of 10, bare signed request (reference)", Mode::Bare),
    ]
    .into_iter()
    .enumerate()
    .filter(|(_, (label, _))| label.starts_with(only.as_str()))
    {
        let c0 = cpu();
        let t0 = Instant::now();
        for i in 0..calls {
            let dedup = |j: usize| format!("m{m}-{i}-{j}");
            match mode {
                Mode::SendMessage => {
                    client
                        .send_message()
                        .queue_url(&url)
                        .message_body(&body)
                        .message_group_id("g")
                        .message_deduplication_id(dedup(0))
                        .send()
                        .await
                        .unwrap();
                }
                Mode::BridgeSingle => {
                    bridge
                        .send(OutgoingMessage {
                            body: body.as_str().into(),
                            group_id: MessageGroupId::parse("g").unwrap(),
                            deduplication_id: DeduplicationId::parse(&dedup(0)).unwrap(),
                            attributes: Vec::new(),
                        })
                        .await
                        .unwrap();
                }
                Mode::Batch => {
                    let entries = (0..10)
                        .map(|j| {
                            SendMessageBatchRequestEntry::builder()
                                .id(j.to_string())
                                .message_body(&body)
                                .message_group_id("g")
                                .message_deduplication_id(dedup(j))
                                .build()
                                .unwrap()
                        })
                        .collect();
                    client
                        .send_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .unwrap();
                }
                Mode::BridgeBatch => {
                    let messages = (0..10)
                        .map(|j| OutgoingMessage {
                            body: body.as_str().into(),
                            group_id: MessageGroupId::parse("g").unwrap(),
                            deduplication_id: DeduplicationId::parse(&dedup(j)).unwrap(),
                            attributes: Vec::new(),
                        })
                        .collect();
                    let results = bridge
                        .send_batch(messages, Instant::now() + Duration::from_secs(5))
                        .await
                        .unwrap();
                    assert!(results.iter().all(|r| matches!(r, EntryResult::Sent(_))));
                }
                Mode::Bare => bare.send_batch(&url, &body, &dedup).await,
            }
        }
        println!(
            "{label}: {:.0} us cpu/call (this process, fake elsewhere), {:.0} us wall/call",
            (cpu() - c0) / f64::from(calls),
            t0.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
        );
    }
}

/// The reference: one `SendMessageBatch` as SigV4 and the SQS JSON protocol define it.
struct Bare {
    endpoint: String,
    host: String,
    identity: aws_smithy_runtime_api::client::identity::Identity,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

impl Bare {
    fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            host: endpoint.trim_start_matches("http://").to_owned(),
            identity: aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "bench")
                .into(),
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
        }
    }

    async fn send_batch(&self, url: &str, body: &str, dedup: &dyn Fn(usize) -> String) {
        let entries: Vec<_> = (0..10)
            .map(|j| {
                serde_json::json!({"Id": j.to_string(), "MessageBody": body,
                    "MessageGroupId": "g", "MessageDeduplicationId": dedup(j)})
            })
            .collect();
        let payload =
            serde_json::to_vec(&serde_json::json!({"QueueUrl": url, "Entries": entries})).unwrap();
        let params = SigningParams::builder()
            .identity(&self.identity)
            .region("us-east-1")
            .name("sqs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AmazonSQS.SendMessageBatch"),
            ("host", self.host.as_str()),
        ];
        let signable = SignableRequest::new(
            "POST",
            &self.endpoint,
            headers.iter().copied(),
            SignableBody::Bytes(&payload),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder().method("POST").uri(&self.endpoint);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut request = request.body(Full::new(Bytes::from(payload))).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        let answer = self.http.request(request).await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        let answer: serde_json::Value =
            serde_json::from_slice(&answer.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(answer["Successful"].as_array().map(Vec::len), Some(10));
    }
}
