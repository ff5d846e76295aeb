//! Liveness, readiness, and honest 503s when the queue is missing or SQS does not answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{create_queue, spawn_app, spawn_app_on, sqs, workn_event};

#[tokio::test]
async fn ready_when_the_queue_exists_and_503_once_it_is_deleted() {
    let app = spawn_app(&[]).await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["fifo"], true);

    app.sqs
        .delete_queue()
        .queue_url(&app.queue_url)
        .send()
        .await
        .unwrap();
    let not_ready = app.get("/readyz").await;
    assert_eq!(not_ready.status(), 503);
    let body: Value = not_ready.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    // Anyone can ask: the queue URL (and so the account id) is for the log only.
    let account = app.queue_url.split('/').nth(3).unwrap();
    assert!(!body.to_string().contains(account), "{body}");

    let webhook = app.post_signed(&workn_event("after-delete")).await;
    assert_eq!(webhook.status(), 503);
    assert!(webhook.headers().contains_key("retry-after"));
    let error: Value = webhook.json().await.unwrap();
    assert_eq!(error["error"], "queue_missing");
}

#[tokio::test]
async fn a_bridge_started_before_its_queue_serves_once_the_queue_appears() {
    let sqs = sqs().await;
    let other = create_queue(&sqs).await;
    let name = format!("late-{}.fifo", uuid::Uuid::new_v4().simple());
    let url = other
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/{name}"))
        .unwrap();
    let app = spawn_app_on(sqs.clone(), url.clone(), &[]).await;

    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(
        app.post_signed(&workn_event("too-early")).await.status(),
        503
    );

    sqs.create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
    let body = workn_event("on-time");
    assert_eq!(app.post_signed(&body).await.status(), 200);
    let queued: Vec<String> = app.queued_bodies(1).await;
    assert_eq!(queued, vec![body]);
}

#[tokio::test]
async fn when_sqs_is_unreachable_the_bridge_stays_live_and_answers_503_in_time() {
    // Nothing listens on this port: connections are refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/000000000000/nowhere.fifo");
    let client = crate::fake_sqs::client_for(&format!("http://127.0.0.1:{port}"));
    let app = crate::helpers::spawn_against(client, &url, &[("BRIDGE_FORWARD_TIMEOUT_MS", "1500")]);

    let started = Instant::now();
    let webhook = app.post_signed(&workn_event("outage")).await;
    let elapsed = started.elapsed();

    assert_eq!(webhook.status(), 503);
    assert!(webhook.headers().contains_key("retry-after"));
    assert!(
        elapsed < Duration::from_millis(1500 + 1000),
        "took {elapsed:?}"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
}

#[tokio::test]
async fn an_sqs_that_never_answers_gets_503_within_the_forward_timeout() {
    // A fake "black hole" SQS: accepts connections, reads, never answers. LocalStack
    // can't be made to hang, so this one fault needs a stand-in.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("http://127.0.0.1:{port}/000000000000/hang.fifo");
    let client = crate::fake_sqs::client_for(&format!("http://127.0.0.1:{port}"));
    let app = crate::helpers::spawn_against(client, &url, &[("BRIDGE_FORWARD_TIMEOUT_MS", "1200")]);

    let started = Instant::now();
    let webhook = app.post_signed(&workn_event("hang")).await;
    let elapsed = started.elapsed();

    assert_eq!(webhook.status(), 503);
    let error: Value = webhook.json().await.unwrap();
    assert!(
        error["error"] == "sqs_timeout" || error["error"] == "sqs_unavailable",
        "{error}"
    );
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
        "took {elapsed:?}"
    );
}
