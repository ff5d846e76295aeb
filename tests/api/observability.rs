//! Metrics and logs an operator relies on.

use crate::helpers::{API_KEY, TestApp, spawn_app, workn_event};

/// A series' value as rendered (counters are whole numbers), or "absent".
pub(crate) fn sample<'a>(metrics: &'a str, series: &str) -> &'a str {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{series} ")))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("absent")
}

/// Some counters' values from `/metrics` (absent counts as 0). Tests compare them before
/// and after, as the metrics recorder is shared by every app in a process (all of them
/// under `cargo test`; nextest runs each test in a process of its own).
pub(crate) struct Counts(Vec<u64>);

impl Counts {
    pub(crate) async fn read(app: &TestApp, series: &[&str]) -> Self {
        let text = app.get("/metrics").await.text().await.unwrap();
        Self(
            series
                .iter()
                .map(|s| sample(&text, s).parse().unwrap_or(0))
                .collect(),
        )
    }

    pub(crate) fn minus(&self, before: &Self) -> Vec<u64> {
        self.0.iter().zip(&before.0).map(|(a, b)| a - b).collect()
    }
}

#[tokio::test]
async fn metrics_count_outcomes_auth_failures_and_sqs_calls() {
    const COUNTED: [&str; 4] = [
        r#"bridge_webhook_requests_total{outcome="accepted"}"#,
        r#"bridge_webhook_requests_total{outcome="unauthorized"}"#,
        r#"bridge_webhook_requests_total{outcome="invalid"}"#,
        r#"bridge_auth_failures_total{reason="wrong_api_key"}"#,
    ];
    let app = spawn_app(&[]).await;
    let before = Counts::read(&app, &COUNTED).await;
    for i in 0..3 {
        assert_eq!(
            app.post_signed(&workn_event(&format!("m-{i}")))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        app.post_with(&[("X-api-key", "wrong")], "{}")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_with(&[("X-api-key", API_KEY)], "[]")
            .await
            .status(),
        400
    );

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();

    assert_eq!(
        Counts::read(&app, &COUNTED).await.minus(&before),
        vec![3, 1, 1, 1],
        "{COUNTED:?}: {text}"
    );
    let calls: u64 = sample(
        &text,
        r#"bridge_sqs_call_duration_seconds_count{action="SendMessageBatch"}"#,
    )
    .parse()
    .unwrap();
    assert!(calls >= 1, "{text}");
    assert!(
        sample(&text, "bridge_sqs_batch_size_count")
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(sample(&text, "bridge_forwards_in_flight"), "0");
    assert!(text.contains("bridge_build_info{version="));
    assert!(text.contains("bridge_webhook_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let app = spawn_app(&[("BRIDGE_METRICS_LISTEN", "127.0.0.1:0")]).await;
    let metrics = app.metrics_address.clone().expect("metrics listener");

    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not exposed with the webhook"
    );
    let separate = app
        .http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(separate.status(), 200);
    assert!(separate.text().await.unwrap().contains("bridge_build_info"));
}
