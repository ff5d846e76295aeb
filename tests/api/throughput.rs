//! The adaptive call concurrency against SQS's throughput quota, as the FAKE SQS models it
//! (`set_quota`: a token bucket of calls per second, throttling beyond it, spelled both
//! ways SQS spells it): LocalStack has no quota.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;

use crate::fake_sqs::FakeSqs;
use crate::helpers::{spawn_against, workn_event};
use crate::observability::sample;

/// A throttling storm: many more events than the quota takes at once. Every one is
/// answered `200` within its budget (throttled entries go again with their keys), each
/// is queued once, the limit came down from its maximum, and once it settled most calls
/// get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttling_storm_is_absorbed_without_503_or_duplicates() {
    let fake = FakeSqs::start().await;
    // Two calls in flight (where the limit starts) take 20 calls/s: the limit must grow
    // past the 3 in flight the quota allows, and come back down. Long calls and a low
    // quota, so that the offered load does not depend on this machine's speed: a loaded
    // debug build could not offer the 150 calls/s of an earlier version.
    fake.set_latency(Some(Duration::from_millis(100)));
    fake.set_quota(Some(30), false);
    let app = spawn_against(
        fake.client(),
        &fake.queue_url(),
        &[("BRIDGE_FORWARD_TIMEOUT_MS", "20000")],
    );
    // 100 senders, 15 events each, one after another per sender: 1,500 events, offered
    // faster than 30 calls/s (300 events/s in full batches) take them.
    let senders = (0..100).map(|s| {
        let app = &app;
        async move {
            let mut statuses = Vec::new();
            for i in 0..15 {
                let response = app
                    .post_signed(&workn_event(&format!("storm-{s}-{i}")))
                    .await;
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    });
    let statuses: Vec<u16> = join_all(senders).await.into_iter().flatten().collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let stored = fake.stored();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for message in &stored {
        *copies
            .entry(message.attributes["event_id"].as_str())
            .or_default() += 1;
    }
    assert_eq!(copies.len(), 1500);
    assert!(
        copies.values().all(|n| *n == 1),
        "an event was queued twice"
    );
    assert!(
        fake.throttled() > 0,
        "the quota never bit: the test proves nothing"
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    let throttled: u64 = sample(&metrics, "bridge_sqs_throttled_total")
        .parse()
        .unwrap();
    assert!(throttled > 0, "{metrics}");
    let limit: u64 = sample(&metrics, "bridge_sqs_concurrency_limit")
        .parse()
        .unwrap();
    // 30 calls/s of 100 ms take 3 calls in flight: the limit stays near that.
    assert!(
        limit <= 10,
        "the limit did not come down to the quota: {limit}"
    );
    let calls = fake.calls("SendMessageBatch");
    eprintln!(
        "{} of {calls} calls throttled; limit {limit}, {throttled} throttled calls seen",
        fake.throttled()
    );
    // Without the limit coming down, far more are (it would double to its maximum).
    assert!(
        fake.throttled() * 3 < calls,
        "{} of {calls} calls throttled",
        fake.throttled()
    );
}

/// With many calls in flight and entries throttled and sent again, an event answered
/// before another of its group was received is still queued before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_order_holds_with_many_calls_in_flight_and_throttling() {
    let fake = FakeSqs::start().await;
    fake.set_latency(Some(Duration::from_millis(10)));
    fake.set_quota(Some(100), false);
    let app = spawn_against(
        fake.client(),
        &fake.queue_url(),
        &[("BRIDGE_FORWARD_TIMEOUT_MS", "20000")],
    );
    let ordered = async {
        for i in 0..40 {
            let body = format!(r#"{{"msg_id":"order-{i}","MessageGroupId":"ordered"}}"#);
            assert_eq!(app.post_signed(&body).await.status(), 200);
        }
    };
    let noise = join_all((0..60).map(|s| {
        let app = &app;
        async move {
            for i in 0..5 {
                let _ = app
                    .post_signed(&workn_event(&format!("noise-{s}-{i}")))
                    .await;
            }
        }
    }));
    tokio::join!(ordered, noise);
    let sequence: Vec<String> = fake
        .stored()
        .iter()
        .filter(|m| m.group_id == "ordered")
        .map(|m| m.attributes["event_id"].clone())
        .collect();
    let expected: Vec<String> = (0..40).map(|i| format!("order-{i}")).collect();
    assert_eq!(sequence, expected);
}
