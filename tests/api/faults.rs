//! Delivery guarantees under faults LocalStack can't produce, against the FAKE SQS in
//! `tests/support/fake_sqs.rs`: every `200` is stored exactly once, every event the sender
//! gave up on at most once, and failures are fast and honest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::fake_sqs::{FakeSqs, Fault};
use crate::helpers::{SECRET, TestApp, spawn_against, workn_event};
use crate::observability::Counts;

async fn app_on_fake(extra: &[(&str, &str)]) -> (FakeSqs, TestApp) {
    let fake = FakeSqs::start().await;
    let app = spawn_against(fake.client(), &fake.queue_url(), extra);
    (fake, app)
}

async fn status_and_error(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn transient_sqs_failures_are_retried_inside_the_budget_and_stored_once() {
    for batch in ["false", "true"] {
        for faults in [
            vec![Fault::Throttle, Fault::Throttle],
            vec![Fault::Internal, Fault::Unavailable],
            vec![Fault::Drop],
            vec![Fault::StoreThen500],
            vec![Fault::StoreThenDrop],
            vec![Fault::Latency(Duration::from_millis(900))],
        ] {
            let (fake, app) = app_on_fake(&[
                ("BRIDGE_BATCH", batch),
                ("BRIDGE_FORWARD_TIMEOUT_MS", "3000"),
            ])
            .await;
            fake.script(faults.clone());
            let body = workn_event("transient");

            let response = app.post_signed(&body).await;

            assert_eq!(response.status(), 200, "batch={batch} {faults:?}");
            let stored = fake.stored();
            assert_eq!(stored.len(), 1, "batch={batch} {faults:?}");
            assert_eq!(stored[0].body, body);
        }
    }
}

#[tokio::test]
async fn permanent_sqs_failures_are_not_retried_and_answer_503_at_once() {
    for batch in ["false", "true"] {
        for (fault, code) in [
            (Fault::AccessDenied, "sqs_unavailable"),
            (Fault::QueueMissing, "queue_missing"),
        ] {
            let (fake, app) = app_on_fake(&[("BRIDGE_BATCH", batch)]).await;
            fake.script([fault]);
            let started = Instant::now();

            let response = app.post_signed(&workn_event("permanent")).await;

            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{fault:?} took {:?}",
                started.elapsed()
            );
            assert!(response.headers().contains_key("retry-after"));
            assert_eq!(
                status_and_error(response).await,
                (503, code.to_owned()),
                "batch={batch}"
            );
            let action = if batch == "true" {
                "SendMessageBatch"
            } else {
                "SendMessage"
            };
            assert_eq!(fake.calls(action), 1, "{fault:?} must not be retried");
            assert!(fake.stored().is_empty());
        }
    }
}

#[tokio::test]
async fn during_an_outage_the_bridge_answers_503_in_time_and_recovers() {
    let (fake, app) = app_on_fake(&[("BRIDGE_FORWARD_TIMEOUT_MS", "1500")]).await;
    fake.set_outage(true);
    let started = Instant::now();

    let during = app.post_signed(&workn_event("outage-1")).await;

    assert!(
        started.elapsed() < Duration::from_millis(1500 + 700),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(during.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
    fake.set_outage(false);
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        app.post_signed(&workn_event("outage-2")).await.status(),
        200
    );
    assert_eq!(fake.stored().len(), 1);
}

/// Waits (bounded) until the fake has received `count` batch calls.
async fn batch_calls_reach(fake: &FakeSqs, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.calls("SendMessageBatch") < count {
        assert!(Instant::now() < deadline, "the fake never got call {count}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Group commit: while a call is in flight, a partial batch waits for it to end even with
/// a call slot free, and leaves as one call; a full batch takes the free slot at once.
#[tokio::test]
async fn while_a_call_is_in_flight_partial_batches_wait_and_full_ones_take_a_free_slot() {
    let (fake, app) = app_on_fake(&[
        ("BRIDGE_BATCH_CONCURRENCY", "2"),
        ("BRIDGE_FORWARD_TIMEOUT_MS", "10000"),
    ])
    .await;
    let answered_at = |name: String| {
        let app = &app;
        async move {
            let status = app.post_signed(&workn_event(&name)).await.status();
            assert_eq!(status, 200, "{name}");
            Instant::now()
        }
    };
    let slow = Fault::Latency(Duration::from_secs(2));

    // Three arrivals during a slow call: one batch, sent after the slow call ends. Each
    // waits about the slow call's remaining time; beside it, each would take a fast call's
    // few milliseconds. (Comparing answer instants across `join!` branches depends on the
    // order it polls them in when both are ready, which a loaded machine reorders.)
    fake.script([slow]);
    let (_, partial_waits) = tokio::join!(answered_at("slow-1".into()), async {
        batch_calls_reach(&fake, 1).await;
        let sent = Instant::now();
        join_all((0..3).map(|i| answered_at(format!("partial-{i}"))))
            .await
            .into_iter()
            .map(|done| done - sent)
            .collect::<Vec<_>>()
    });
    assert!(
        partial_waits
            .iter()
            .all(|wait| *wait > Duration::from_secs(1)),
        "a partial batch went out beside the call in flight: {partial_waits:?}"
    );
    assert_eq!(fake.calls("SendMessageBatch"), 2, "the three left together");

    // Ten arrivals during a slow call: a full batch, sent at once in the second slot.
    fake.script([slow]);
    let (slow_done, full_done) = tokio::join!(answered_at("slow-2".into()), async {
        batch_calls_reach(&fake, 3).await;
        join_all((0..10).map(|i| answered_at(format!("full-{i}")))).await
    });
    assert!(
        full_done.iter().all(|done| *done < slow_done),
        "a full batch waited for the call in flight"
    );
    assert_eq!(
        fake.calls("SendMessageBatch"),
        4,
        "the ten left as one call"
    );
    assert_eq!(fake.stored().len(), 15);
}

#[tokio::test]
async fn beyond_the_in_flight_cap_requests_get_503_at_once() {
    let (fake, app) =
        app_on_fake(&[("BRIDGE_MAX_IN_FLIGHT", "2"), ("BRIDGE_BATCH", "false")]).await;
    fake.script([
        Fault::Latency(Duration::from_millis(1500)),
        Fault::Latency(Duration::from_millis(1500)),
    ]);
    // With the raw secret, as the vendor sends it: known from the headers, so only the
    // in-flight cap applies (HMAC-only senders also share half of it while their bodies
    // are read, which `resilience::unverified_signatures_…` covers).
    let raw = [("X-Payload-Signature", SECRET)];
    let bodies: Vec<String> = (0..2).map(|i| workn_event(&format!("slow-{i}"))).collect();
    let slow = join_all(bodies.iter().map(|b| app.post_with(&raw, b.clone())));
    let probe = async {
        // Once both slow forwards have reached the fake, both permits are taken.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fake.calls("SendMessage") < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let rejected = app.post_with(&raw, workn_event("over-cap")).await;
        (started.elapsed(), rejected)
    };

    let (slow, (elapsed, rejected)) = tokio::join!(slow, probe);

    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    assert!(rejected.headers().contains_key("retry-after"));
    assert_eq!(
        status_and_error(rejected).await,
        (503, "overloaded".to_owned())
    );
    for response in slow {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(fake.stored().len(), 2);
}

/// The vendor's behaviour: on a non-2xx answer, retry at once, then after a minute
/// (compressed here), then at once, four attempts in all.
async fn vendor_delivers(app: &TestApp, body: String) -> bool {
    for attempt in 0..4 {
        if attempt == 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ok = app
            .http
            .post(app.webhook_url())
            .header("X-Payload-Signature", crate::helpers::SECRET)
            .body(body.clone())
            .send()
            .await
            .is_ok_and(|r| r.status() == 200 || r.status() == 201);
        if ok {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn under_every_fault_mix_acknowledged_events_are_stored_exactly_once() {
    let mixes: [(&str, Vec<(Fault, u32)>); 4] = [
        ("throttling", vec![(Fault::None, 6), (Fault::Throttle, 4)]),
        (
            "5xx and drops",
            vec![
                (Fault::None, 6),
                (Fault::Internal, 2),
                (Fault::Unavailable, 1),
                (Fault::Drop, 1),
            ],
        ),
        (
            "ambiguous: stored, answer lost",
            vec![
                (Fault::None, 5),
                (Fault::StoreThen500, 3),
                (Fault::StoreThenDrop, 2),
            ],
        ),
        (
            "everything",
            vec![
                (Fault::None, 10),
                (Fault::Throttle, 2),
                (Fault::Internal, 2),
                (Fault::Drop, 1),
                (Fault::StoreThen500, 2),
                (Fault::StoreThenDrop, 1),
                (Fault::Latency(Duration::from_millis(300)), 1),
                (Fault::EntryInternal, 2),
            ],
        ),
    ];
    for batch in ["false", "true"] {
        for (seed, (name, mix)) in mixes.iter().enumerate() {
            let (fake, app) = app_on_fake(&[
                ("BRIDGE_BATCH", batch),
                ("BRIDGE_FORWARD_TIMEOUT_MS", "1000"),
            ])
            .await;
            fake.random(seed as u64 + 7, mix);
            let bodies: Vec<String> = (0..40)
                .map(|i| workn_event(&format!("{name}-{i}")))
                .collect();

            let outcomes = join_all(bodies.iter().map(|b| vendor_delivers(&app, b.clone()))).await;

            let mut copies: HashMap<&str, usize> = HashMap::new();
            for stored in fake.stored() {
                let body = bodies
                    .iter()
                    .find(|b| **b == stored.body)
                    .expect("only sent events are stored");
                *copies.entry(body.as_str()).or_default() += 1;
            }
            for (body, delivered) in bodies.iter().zip(&outcomes) {
                let n = copies.get(body.as_str()).copied().unwrap_or(0);
                if *delivered {
                    assert_eq!(
                        n, 1,
                        "batch={batch} {name}: acknowledged event stored {n} times"
                    );
                } else {
                    assert!(
                        n <= 1,
                        "batch={batch} {name}: abandoned event stored {n} times"
                    );
                }
            }
            let acknowledged = outcomes.iter().filter(|d| **d).count();
            assert!(
                acknowledged >= 30,
                "batch={batch} {name}: only {acknowledged}/40 got through"
            );
        }
    }
}

/// What the dashboard's SQS panels read: call latency and errors by action (with batching
/// and without), and per-entry retries. Counted as differences, as the metrics recorder is
/// shared by every app in a process.
#[tokio::test]
async fn sqs_errors_and_entry_retries_are_counted_on_both_paths() {
    const SINGLE_CALLS: &str = r#"bridge_sqs_call_duration_seconds_count{action="SendMessage"}"#;
    const DENIED: &str = r#"bridge_sqs_errors_total{action="SendMessage",code="AccessDenied"}"#;
    const BATCH_CALLS: &str =
        r#"bridge_sqs_call_duration_seconds_count{action="SendMessageBatch"}"#;
    const ENTRY_RETRIES: &str = "bridge_sqs_entry_retries_total";
    const REFUSED: &str =
        r#"bridge_sqs_errors_total{action="SendMessageBatch",code="InvalidMessageContents"}"#;

    let (fake, app) = app_on_fake(&[("BRIDGE_BATCH", "false")]).await;
    let before = Counts::read(&app, &[SINGLE_CALLS, DENIED]).await;
    fake.script([Fault::AccessDenied]);
    assert_eq!(
        app.post_signed(&workn_event("single-1")).await.status(),
        503
    );
    assert_eq!(
        app.post_signed(&workn_event("single-2")).await.status(),
        200
    );
    let after = Counts::read(&app, &[SINGLE_CALLS, DENIED]).await;
    assert_eq!(
        after.minus(&before),
        vec![2, 1],
        "SendMessage calls, AccessDenied"
    );

    let (fake, app) = app_on_fake(&[("BRIDGE_BATCH", "true")]).await;
    let before = Counts::read(&app, &[BATCH_CALLS, ENTRY_RETRIES]).await;
    fake.script([Fault::EntryInternal]);
    assert_eq!(
        app.post_signed(&workn_event("batched-1")).await.status(),
        200
    );
    assert_eq!(fake.stored().len(), 1);
    let after = Counts::read(&app, &[BATCH_CALLS, ENTRY_RETRIES]).await;
    assert_eq!(
        after.minus(&before),
        vec![2, 1],
        "batch calls, entry retries"
    );

    let before = Counts::read(&app, &[REFUSED]).await;
    fake.script([Fault::EntryRefused]);
    assert_eq!(
        app.post_signed(&workn_event("batched-2")).await.status(),
        400
    );
    let after = Counts::read(&app, &[REFUSED]).await;
    assert_eq!(
        after.minus(&before),
        vec![1],
        "entries refused inside a batch answer"
    );
}

/// A batch call stops once every webhook in it has been answered `503`: carrying on could
/// only store events whose senders will send them again. Against a stand-in SQS that
/// accepts connections and never answers (the fake answers, slowly or not at all only
/// per scripted call).
#[tokio::test]
async fn a_batch_call_ends_when_the_last_of_its_webhooks_has_been_answered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const CALLS: &str = r#"bridge_sqs_call_duration_seconds_count{action="SendMessageBatch"}"#;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let app = spawn_against(
        crate::fake_sqs::client_for(&endpoint),
        &format!("{endpoint}/000000000000/hang.fifo"),
        &[("BRIDGE_FORWARD_TIMEOUT_MS", "1000")],
    );
    let before = Counts::read(&app, &[CALLS]).await;

    // The first event's call hangs; the second arrives meanwhile and waits for it, so its
    // own call starts with almost none of its time left.
    let (first_event, second_event) = (workn_event("hang-1"), workn_event("hang-2"));
    let (first, second) = tokio::join!(app.post_signed(&first_event), async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while connections.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the first call never connected");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Part of the scenario, not a wait for readiness: the second event then has
        // ~250 ms left when the first call ends and its own begins, so its call is sent
        // (not dropped as already answered) even if the dispatcher wakes late.
        tokio::time::sleep(Duration::from_millis(250)).await;
        app.post_signed(&second_event).await
    });
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (503, 503)
    );

    // Every call has ended by now (none outlives its webhooks' answers by a forward
    // timeout): within moments the count of ended calls stops moving. (An attempt that
    // hangs ends at a third of the budget and the dispatcher sends it again, so there are
    // a few.)
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut last = Counts::read(&app, &[CALLS]).await.minus(&before);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let calls = Counts::read(&app, &[CALLS]).await.minus(&before);
        if calls == last && calls[0] >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "calls still ending: {calls:?}");
        last = calls;
    }
}

/// `/readyz` is public: probes share one `GetQueueAttributes` call per
/// `BRIDGE_READY_CACHE_MS`, however many arrive (the fake counts the calls).
#[tokio::test]
async fn readiness_probes_share_one_sqs_call_while_it_is_fresh() {
    let (fake, app) = app_on_fake(&[("BRIDGE_READY_CACHE_MS", "60000")]).await;
    let probes = join_all((0..20).map(|_| app.get("/readyz"))).await;
    assert!(probes.iter().all(|p| p.status() == 200));
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(fake.calls("GetQueueAttributes"), 1);

    let (fake, app) = app_on_fake(&[("BRIDGE_READY_CACHE_MS", "0")]).await;
    for _ in 0..3 {
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    assert_eq!(fake.calls("GetQueueAttributes"), 3);
}

/// A queue smaller than SQS's 1 MiB (the fake refuses a batch whose bodies add up to more
/// than its `MaximumMessageSize`, as AWS is reported to): once a readiness check has read
/// the size, batches keep within it, so events that each fit are all accepted.
#[tokio::test]
async fn batches_keep_within_a_small_queues_message_size() {
    let (fake, app) = app_on_fake(&[("BRIDGE_BATCH_CONCURRENCY", "1")]).await;
    fake.set_max_message_size(3_000);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["max_message_bytes"], 3_000, "{ready}");
    // The first call is held, so the others gather behind it into batches.
    fake.script([Fault::Latency(Duration::from_millis(300))]);

    let events: Vec<String> = (0..8)
        .map(|n| {
            let event = workn_event(&format!("sized-{n}"));
            format!("{event}{}", " ".repeat(1_400 - event.len()))
        })
        .collect();
    let answers = join_all(events.iter().map(|body| app.post_signed(body))).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert_eq!(statuses, vec![200; 8]);
    assert_eq!(fake.stored_count(), 8);
    // At most two 1,400-byte events fit in 3,000 bytes: at least four calls.
    assert!(
        fake.calls("SendMessageBatch") >= 4,
        "{}",
        fake.calls("SendMessageBatch")
    );
}

/// A batch answer listing an entry both as sent and as failed: the entry is sent again
/// with the same keys, so SQS keeps one copy, and the webhook gets `200`.
#[tokio::test]
async fn an_entry_listed_as_both_sent_and_failed_is_sent_again_and_stored_once() {
    let (fake, app) = app_on_fake(&[]).await;
    fake.script([Fault::EntryListedTwice]);
    let body = workn_event("listed-twice");

    assert_eq!(app.post_signed(&body).await.status(), 200);
    assert_eq!(fake.calls("SendMessageBatch"), 2, "sent again");
    let stored = fake.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body, body);
}

/// A batch call SQS refuses whole for one entry's sake is sent again entry by entry: that
/// event gets its final `400`, its batch-mates are stored and answered `200`.
#[tokio::test]
async fn a_batch_refused_whole_fails_only_the_event_that_caused_it() {
    let (fake, app) = app_on_fake(&[("BRIDGE_BATCH_CONCURRENCY", "1")]).await;
    // A slow call first, so the five below wait and leave as one batch.
    fake.script([Fault::Latency(Duration::from_millis(500))]);
    let mut names: Vec<String> = (0..4).map(|i| format!("batch-mate-{i}")).collect();
    names.insert(2, crate::fake_sqs::REFUSES_CALL.to_owned());
    let slow_event = workn_event("slow");
    let (slow, answers) = tokio::join!(app.post_signed(&slow_event), async {
        batch_calls_reach(&fake, 1).await;
        join_all(names.iter().map(|name| async {
            status_and_error(app.post_signed(&workn_event(name)).await).await
        }))
        .await
    });
    assert_eq!(slow.status(), 200);
    for (name, (status, error)) in names.iter().zip(&answers) {
        if name == crate::fake_sqs::REFUSES_CALL {
            assert_eq!(
                (*status, error.as_str()),
                (400, "rejected_by_sqs"),
                "{name}"
            );
        } else {
            assert_eq!(*status, 200, "{name}: {error}");
        }
    }
    let stored: Vec<String> = fake.stored().into_iter().map(|m| m.body).collect();
    assert_eq!(stored.len(), 5, "the slow one and the four batch-mates");
    assert!(
        stored
            .iter()
            .all(|b| !b.contains(crate::fake_sqs::REFUSES_CALL))
    );
}
