//! Rule 2: bad bodies get a specific 4xx with a JSON error, and nothing is forwarded.

use serde_json::Value;

use crate::helpers::{SECRET, spawn_app, workn_event};

#[tokio::test]
async fn bad_bodies_get_specific_errors_and_are_not_forwarded() {
    let app = spawn_app(&[("BRIDGE_MAX_BODY_BYTES", "4096")]).await;
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "array",
            b"[1,2,3]".to_vec(),
            400,
            "not_an_object",
            "JSON object",
        ),
        (
            "string",
            b"\"hello\"".to_vec(),
            400,
            "not_an_object",
            "JSON object",
        ),
        (
            "truncated",
            b"{\"msg_id\":".to_vec(),
            400,
            "invalid_json",
            "not valid JSON",
        ),
        ("empty", Vec::new(), 400, "invalid_json", "not valid JSON"),
        (
            "deep nesting",
            deep.into_bytes(),
            400,
            "invalid_json",
            "recursion limit",
        ),
        (
            "invalid utf-8",
            b"{\"a\":\"\xff\xfe\"}".to_vec(),
            400,
            "invalid_utf8",
            "UTF-8",
        ),
        (
            "U+FFFF",
            "{\"a\":\"\u{FFFF}\"}".as_bytes().to_vec(),
            400,
            "forbidden_character",
            "U+FFFF",
        ),
        (
            "raw control byte",
            b"{\"a\":1}\x0b".to_vec(),
            400,
            "forbidden_character",
            "U+000B",
        ),
        (
            "mkt_id as string",
            br#"{"mkt_id":"12"}"#.to_vec(),
            400,
            "invalid_field",
            "`mkt_id` must be an integer",
        ),
        (
            "bad event_datetime",
            br#"{"event_datetime":"12/02/2025"}"#.to_vec(),
            400,
            "invalid_field",
            "`event_datetime`",
        ),
        (
            "empty msg_id",
            br#"{"msg_id":""}"#.to_vec(),
            400,
            "invalid_field",
            "`msg_id`",
        ),
        (
            "ent_id float",
            br#"{"ent_id":1.5}"#.to_vec(),
            400,
            "invalid_field",
            "`ent_id`",
        ),
        (
            "branch_id string",
            br#"{"branch_id":"3"}"#.to_vec(),
            400,
            "invalid_field",
            "`branch_id`",
        ),
        (
            "ext_customer_id number",
            br#"{"ext_customer_id":7}"#.to_vec(),
            400,
            "invalid_field",
            "`ext_customer_id`",
        ),
        (
            "ext_branch_id bool",
            br#"{"ext_branch_id":true}"#.to_vec(),
            400,
            "invalid_field",
            "`ext_branch_id`",
        ),
        (
            "NUL in msg_id",
            br#"{"msg_id":"a\u0000b"}"#.to_vec(),
            400,
            "invalid_field",
            "`msg_id`",
        ),
        (
            "msg_id twice",
            br#"{"msg_id":"first","event_type":1,"msg_id":"second"}"#.to_vec(),
            400,
            "duplicate_field",
            "`msg_id` appears more than once",
        ),
        (
            "line break in msg_id",
            br#"{"msg_id":"a\r\nforged: log line"}"#.to_vec(),
            400,
            "control_character",
            "`msg_id` contains U+000D",
        ),
        (
            "bidi override in EventName",
            br#"{"EventName":"\u202Egnp.exe"}"#.to_vec(),
            400,
            "control_character",
            "`EventName` contains U+202E",
        ),
        (
            "too large",
            format!("{{\"pad\":\"{}\"}}", "x".repeat(5000)).into_bytes(),
            413,
            "too_large",
            "4096",
        ),
    ];
    for (name, body, status, code, detail) in cases {
        let signature = webhook_sqs_bridge::auth::sign(SECRET.as_bytes(), &body);
        let response = app
            .post_with(
                &[
                    ("Content-Type", "application/json"),
                    ("X-Payload-Signature", &signature),
                ],
                body,
            )
            .await;
        assert_eq!(response.status(), status, "{name}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], code, "{name}: {error}");
        assert!(
            error["detail"].as_str().unwrap().contains(detail),
            "{name}: {error}"
        );
    }

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
    ] {
        let body = workn_event("ct");
        let response = app
            .post_with(
                &[
                    ("Content-Type", content_type),
                    ("X-Payload-Signature", SECRET),
                ],
                body,
            )
            .await;
        assert_eq!(response.status(), 415, "{content_type}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "unsupported_media_type");
    }

    let good = workn_event("valid-after-bad");
    let response = app
        .post_with(
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Payload-Signature", SECRET),
            ],
            good.clone(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let queued: Vec<String> = app.queued_bodies(1).await;
    assert_eq!(queued, vec![good]);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_while_reading() {
    let app = spawn_app(&[("BRIDGE_MAX_BODY_BYTES", "4096")]).await;
    // No Content-Length: the stream itself must be stopped at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));

    let response = app
        .http
        .post(app.webhook_url())
        .header("X-Payload-Signature", SECRET)
        .body(body)
        .send()
        .await;

    // The bridge answers 413 and closes the connection at the limit; the client may see
    // the answer or, if it was still writing, the connection cut. Never a 200.
    match response {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(error) => assert!(error.is_request(), "{error}"),
    }
    let small: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"msg_id\":".to_vec()), Ok(b"\"chunked-1\"}".to_vec())];
    // A new client: the pooled connection may be the one the bridge just closed, and a
    // request written into it before the close is seen fails without reaching the bridge.
    let response = reqwest::Client::new()
        .post(app.webhook_url())
        .header("X-Payload-Signature", SECRET)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            small,
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let queued: Vec<String> = app.queued_bodies(1).await;
    assert_eq!(queued, vec!["{\"msg_id\":\"chunked-1\"}".to_owned()]);
}

/// A queue that takes less than the bridge accepts (queues made before 2025 may take only
/// 256 KiB) is the deployment's to fix: a larger event gets `503`, so the vendor retries,
/// never a `4xx` that would end it, and nothing is queued. Once a readiness check has read
/// the queue's `MaximumMessageSize` the bridge says so without calling SQS, measuring the
/// message as SQS does (body and attributes); events that fit are forwarded.
#[tokio::test]
async fn events_larger_than_the_queue_takes_get_503_until_it_is_raised() {
    // Batched and not: SQS refuses a batch entry and a single message differently.
    for batch in ["true", "false"] {
        larger_than_the_queue_takes(batch).await;
    }
}

async fn larger_than_the_queue_takes(batch: &str) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = crate::helpers::sqs().await;
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("test-{}.fifo", uuid::Uuid::new_v4().simple()))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::MaximumMessageSize, "4096")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let app = crate::helpers::spawn_app_on(sqs, queue_url, &[("BRIDGE_BATCH", batch)]).await;
    let padded = |id: &str, size: usize| {
        let event = workn_event(id);
        format!("{event}{}", " ".repeat(size - event.len()))
    };
    let refused = |answer: reqwest::Response, code: &'static str| async move {
        assert_eq!(answer.status(), 503, "batch {batch}");
        assert_eq!(answer.headers()["retry-after"], "5");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"], code, "batch {batch}: {body}");
        body
    };

    // Not yet known to the bridge: SQS refuses it, and the vendor is told to retry.
    refused(
        app.post_signed(&padded("before-readiness", 5_000)).await,
        "sqs_unavailable",
    )
    .await;

    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["max_message_bytes"], 4096, "{ready}");

    // The attributes (`event_id` and `event_type` here) count: 4,090 bytes of body do
    // not fit in 4,096, 4,000 do.
    let body = refused(
        app.post_signed(&padded("too-large", 4_090)).await,
        "queue_too_small",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("MaximumMessageSize (4096)"),
        "{body}"
    );
    let fits = padded("fits", 4_000);
    assert_eq!(app.post_signed(&fits).await.status(), 200, "batch {batch}");
    assert_eq!(app.queued_bodies(1).await, vec![fits]);

    // Raised: the next larger event finds it out for itself, without a probe of /readyz.
    app.sqs
        .set_queue_attributes()
        .queue_url(&app.queue_url)
        .attributes(QueueAttributeName::MaximumMessageSize, "1048576")
        .send()
        .await
        .unwrap();
    let large = padded("after-raising", 4_090);
    assert_eq!(app.post_signed(&large).await.status(), 200, "batch {batch}");
    assert_eq!(app.queued_bodies(1).await, vec![large]);
}
