//! Hostile input and hard stops: a property test over parsing and authentication (with a
//! checked-in corpus of nasty bodies), a slow-loris client, and the real binary stopped
//! under load by SIGTERM and by `kill -9`.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use webhook_sqs_bridge::auth::{Authenticator, Presented, sign};
use webhook_sqs_bridge::event;

use crate::helpers::{API_KEY, SECRET, create_queue, spawn_app, sqs, workn_event};

/// The request path without HTTP: headers → authentication → body → event. Returns
/// whether the event would be forwarded.
fn pipeline(
    auth: &Authenticator,
    signature: Option<&[u8]>,
    api_key: Option<&[u8]>,
    body: &[u8],
) -> bool {
    let mut headers = HeaderMap::new();
    for (name, value) in [("x-payload-signature", signature), ("x-api-key", api_key)] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let presented = Presented::from_headers(&headers);
    let Ok(pending) = auth.check_headers(&presented) else {
        return false;
    };
    if auth.check_body(&presented, pending, body).is_err() {
        return false;
    }
    event::parse(body).is_ok()
}

fn authenticator() -> Authenticator {
    Authenticator::new(
        &[secrecy::SecretString::from("prop-secret")],
        &[secrecy::SecretString::from("prop-key")],
        false,
    )
}

#[test]
fn the_checked_in_corpus_is_handled_without_panics() {
    let auth = authenticator();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let body = std::fs::read(entry.unwrap().path()).unwrap();
        let signature = sign(b"prop-secret", &body);
        // Signed correctly, the verdict is the parser's; it must be an answer, not a panic.
        let forwarded = pipeline(&auth, Some(signature.as_bytes()), None, &body);
        assert_eq!(forwarded, event::parse(&body).is_ok());
        assert!(
            !pipeline(&auth, Some(b"prop-secre"), None, &body),
            "a wrong secret never passes"
        );
        seen += 1;
    }
    assert!(seen >= 10, "the corpus has {seen} files");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, .. ProptestConfig::default() })]

    /// Arbitrary bytes with arbitrary credentials: never a panic, and never forwarded
    /// unless a credential is actually valid.
    #[test]
    fn random_requests_never_panic_or_pass_without_a_valid_credential(
        body in prop::collection::vec(any::<u8>(), 0..512),
        signature in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
        api_key in prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
    ) {
        let auth = authenticator();
        let forwarded = pipeline(&auth, signature.as_deref(), api_key.as_deref(), &body);
        if forwarded {
            let good_sig = signature.as_deref().is_some_and(|s| s == b"prop-secret" || s == sign(b"prop-secret", &body).as_bytes());
            let good_key = api_key.as_deref() == Some(b"prop-key");
            prop_assert!(good_sig || good_key);
        }
    }

    /// JSON-shaped bodies (objects with WorkN-like fields of random types): the parser
    /// accepts exactly those whose documented fields have their documented types.
    #[test]
    fn json_objects_are_judged_by_field_types(
        mkt_id in prop_oneof![Just("1".to_owned()), Just("\"1\"".to_owned()), Just("1.5".to_owned()), Just("null".to_owned())],
        msg_id in prop_oneof![Just("\"m\"".to_owned()), Just("\"\"".to_owned()), Just("3".to_owned())],
        extra in "[a-z]{0,8}",
    ) {
        let body = format!(r#"{{"mkt_id":{mkt_id},"msg_id":{msg_id},"x":"{extra}"}}"#);
        let valid = matches!(mkt_id.as_str(), "1" | "null") && msg_id == "\"m\"";
        prop_assert_eq!(event::parse(body.as_bytes()).is_ok(), valid, "{}", body);
    }
}

#[tokio::test]
async fn a_slow_loris_client_is_cut_off_while_others_are_served() {
    let app = spawn_app(&[]).await;
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    slow.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();

    // Others are served meanwhile.
    let body = workn_event("not-slow");
    assert_eq!(app.post_signed(&body).await.status(), 200);

    // The slow client never finishes its head: the server closes on it (5 s head timeout).
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was not closed");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&rest);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(app.drain(1).await.len(), 1);
}

/// Requests whose HMAC-shaped signature waits for a body that never comes hold at most
/// half of the forwarding slots: a sender the headers authenticate (the raw secret, as the
/// vendor documents it) is still served.
#[tokio::test]
async fn unverified_signatures_cannot_take_every_forwarding_slot() {
    let app = spawn_app(&[("BRIDGE_MAX_IN_FLIGHT", "4")]).await;
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Payload-Signature: {}\r\nContent-Length: 1000\r\n\r\n{{",
        sign(b"not-a-configured-secret", b"{}")
    );
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .unwrap();
        client.write_all(head.as_bytes()).await.unwrap();
        slow.push(client);
    }

    // From one address, one waits for its body (a quarter of the unverified half of the
    // four slots, rounded up); the other three are refused. The one that waits is cut off
    // once its body pauses for 2 s (408). (Each read gives up after 3 s.)
    let answers = futures_util::future::join_all(slow.iter_mut().map(|client| async {
        let mut answer = [0u8; 12];
        match tokio::time::timeout(Duration::from_secs(3), client.read_exact(&mut answer)).await {
            Ok(Ok(_)) => String::from_utf8_lossy(&answer).into_owned(),
            Ok(Err(e)) => format!("read error: {e}"),
            Err(_) => "waiting".to_owned(),
        }
    }))
    .await;
    let refused = answers.iter().filter(|a| *a == "HTTP/1.1 503").count();
    assert_eq!(refused, 3, "{answers:?}");
    let too_slow = answers.iter().filter(|a| *a == "HTTP/1.1 408").count();
    assert_eq!(too_slow, 1, "{answers:?}");

    let body = workn_event("while-others-wait");
    let served = app
        .post_with(&[("X-Payload-Signature", SECRET)], body.clone())
        .await;
    assert_eq!(served.status(), 200);
    assert_eq!(app.queued_bodies(1).await, vec![body]);
}

/// Fires requests from `workers` loops at the real binary until it stops answering;
/// returns the msg_ids that got `200`.
async fn load_until_down(
    port: u16,
    workers: usize,
    label: String,
    stop: Arc<AtomicBool>,
) -> HashSet<String> {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let client = client.clone();
            let stop = Arc::clone(&stop);
            let label = label.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let id = format!("{label}-{w}-{n}");
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/webhook"))
                        .header("X-api-key", API_KEY)
                        .body(workn_event(&id))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => acked.push(id),
                        Ok(_) => {}
                        Err(_) => break, // the bridge is gone
                    }
                }
                acked
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn queued_ids(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return ids;
        }
        for m in out.messages() {
            let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            ids.push(body["msg_id"].as_str().unwrap().to_owned());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Concurrent senders in `stop_under_load`.
const LOADERS: usize = 16;

async fn stop_under_load(signal: &str) -> (Option<i32>, HashSet<String>, Vec<String>) {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let (mut child, port, lines) = crate::helpers::start_bridge(&queue_url, &[]);
    std::thread::spawn(move || lines.map_while(Result::ok).count());
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(load_until_down(
        port,
        LOADERS,
        signal.trim_start_matches('-').to_lowercase(),
        Arc::clone(&stop),
    ));
    // Let load build up: wait until some events are in the queue. At most `LOADERS`
    // requests are in flight, so that many stored events may still await their answer:
    // `50 + LOADERS` stored means at least 50 acknowledged.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        let queued: u64 = attrs
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if queued >= 50 + LOADERS as u64 || Instant::now() > deadline {
            break;
        }
    }
    let pid = child.id().to_string();
    Command::new("kill").args([signal, &pid]).status().unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let acked = load.await.unwrap();
    let queued = queued_ids(&sqs, &queue_url).await;
    (exit.code(), acked, queued)
}

#[tokio::test]
async fn sigterm_under_load_exits_0_with_every_acknowledged_event_queued() {
    let (code, acked, queued) = stop_under_load("-TERM").await;

    assert_eq!(code, Some(0));
    assert!(acked.len() >= 50, "only {} acknowledged", acked.len());
    let queued_set: HashSet<String> = queued.iter().cloned().collect();
    let lost: Vec<_> = acked.difference(&queued_set).collect();
    assert!(lost.is_empty(), "acknowledged but not queued: {lost:?}");
    assert_eq!(queued.len(), queued_set.len(), "an event was queued twice");
}

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    let (code, acked, queued) = stop_under_load("-KILL").await;

    assert_eq!(code, None, "killed by a signal");
    assert!(acked.len() >= 50, "only {} acknowledged", acked.len());
    let queued_set: HashSet<String> = queued.iter().cloned().collect();
    let lost: Vec<_> = acked.difference(&queued_set).collect();
    assert!(lost.is_empty(), "acknowledged but not queued: {lost:?}");
    assert_eq!(queued.len(), queued_set.len(), "an event was queued twice");
}

/// The bytes of bodies still arriving or waiting for SQS, from `/metrics`.
async fn buffered_bytes(app: &crate::helpers::TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("bridge_buffered_body_bytes "))
        .expect("the gauge is on /metrics")
        .trim()
        .parse()
        .unwrap()
}

/// Polls `/metrics` until the held bytes satisfy `done`.
async fn wait_for_buffered(app: &crate::helpers::TestApp, done: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = buffered_bytes(app).await;
        if done(now) {
            return;
        }
        assert!(Instant::now() < deadline, "still {now} bytes held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection that sends a request head declaring `length` bytes and no body.
async fn declare_body(
    port: u16,
    credential: (&str, &str),
    length: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         {}: {}\r\nContent-Length: {length}\r\n\r\n",
        credential.0, credential.1
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&vec![b' '; sent]).await.unwrap();
    client
}

/// Bodies still arriving or waiting for SQS hold `BRIDGE_MAX_BUFFERED_BYTES` between
/// them, counted from their declared length for senders the headers authenticate and
/// from what arrived for the others: past it a webhook gets `503 overloaded` at once.
/// Senders known only once the body's HMAC is checked hold at most half of it, so
/// senders the headers authenticate keep the rest; the bytes come back when a request ends.
#[tokio::test]
async fn bodies_held_at_once_are_capped_in_bytes() {
    let app = spawn_app(&[
        ("BRIDGE_MAX_BODY_BYTES", "32768"),
        ("BRIDGE_MAX_BUFFERED_BYTES", "65536"),
    ])
    .await;
    let with_key = [("Content-Type", "application/json"), ("X-Api-Key", API_KEY)];
    let event_of = |id: &str, size: usize| {
        let event = workn_event(id);
        format!("{event}{}", " ".repeat(size - event.len()))
    };
    // An API-key sender declares 30,000 bytes and sends none; an HMAC-only sender sends
    // 20,000 bytes of a body and pauses (for less than the 2 s it may).
    let known = declare_body(app.port, ("X-Api-Key", API_KEY), 30_000, 0).await;
    let hmac_shaped = sign(b"not-a-configured-secret", b"{}");
    let unknown = declare_body(
        app.port,
        ("X-Payload-Signature", &hmac_shaped),
        25_000,
        20_000,
    )
    .await;
    wait_for_buffered(&app, |n| n >= 50_000.0).await;

    let refused_with = |answer: reqwest::Response| async move {
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "1");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "overloaded");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("BRIDGE_MAX_BUFFERED_BYTES"), "{body}");
    };
    // A signed 15,000-byte event would take the HMAC-only half past 32,768: refused.
    refused_with(app.post_signed(&event_of("hmac-only", 15_000)).await).await;
    // The same size with an API key fits (65,000 of 65,536 bytes) ...
    let fits = event_of("fits", 15_000);
    assert_eq!(app.post_with(&with_key, fits.clone()).await.status(), 200);
    // ... and 16,000 bytes would not.
    let large = event_of("too-large-for-now", 16_000);
    refused_with(app.post_with(&with_key, large.clone()).await).await;
    assert_eq!(app.queued_bodies(1).await, vec![fits]);

    // The waiting senders go away; their bytes come back and the large event fits.
    drop((known, unknown));
    wait_for_buffered(&app, |n| n == 0.0).await;
    assert_eq!(app.post_with(&with_key, large.clone()).await.status(), 200);
    assert_eq!(app.queued_bodies(1).await, vec![large]);
}
