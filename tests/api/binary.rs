//! The real binary: configuration errors stop it with a clear message, and SIGTERM ends it
//! with exit 0 after in-flight requests are answered.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{
    API_KEY, bridge_command, create_queue, drain_queue, localstack_env, sqs, start_bridge,
    workn_event,
};

fn bridge() -> Command {
    bridge_command()
}

#[test]
fn invalid_configuration_exits_non_zero_naming_the_setting() {
    for (env, setting) in [
        (vec![], "BRIDGE_QUEUE_URL"),
        (
            vec![("BRIDGE_QUEUE_URL", "http://h/0/q.fifo")],
            "BRIDGE_SHARED_SECRETS/BRIDGE_API_KEYS",
        ),
        (
            vec![
                ("BRIDGE_QUEUE_URL", "http://h/0/q.fifo"),
                ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
                ("BRIDGE_DEDUP", "nope"),
            ],
            "BRIDGE_DEDUP",
        ),
    ] {
        let out = bridge().envs(env).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{setting}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("configuration error: {setting}")),
            "{stderr}"
        );
    }
}

#[test]
fn sign_prints_the_hmac_of_standard_input() {
    use std::io::Write as _;
    let mut child = bridge()
        .args(["sign", "--secret", "s3cret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{\"a\":1}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        webhook_sqs_bridge::auth::sign(b"s3cret", b"{\"a\":1}")
    );
}

#[tokio::test]
async fn the_binary_forwards_with_the_aws_chain_and_exits_0_on_sigterm() {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let (mut child, port, lines) = start_bridge(&queue_url, &[]);
    let logs = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let http = reqwest::Client::new();
    let body = workn_event("binary-1");

    let response = http
        .post(format!("http://127.0.0.1:{port}/webhook"))
        .header("X-api-key", API_KEY)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let pid = i32::try_from(child.id()).unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .expect("exits within the shutdown timeout")
    .unwrap()
    .unwrap();
    assert_eq!(exit.code(), Some(0));
    let logs = logs.join().unwrap().join("\n");
    assert!(!logs.contains(API_KEY), "the API key appears in the logs");
    assert!(logs.contains("webhook accepted"), "{logs}");

    let queued = drain_queue(&sqs, &queue_url, 1).await;
    let bodies: Vec<&str> = queued.iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, vec![body.as_str()]);
}

#[tokio::test]
async fn check_config_reports_a_good_queue_and_fails_on_a_missing_one() {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;

    let mut good = bridge();
    localstack_env(good.arg("check-config"), &queue_url);
    let out = good.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("reachable, and a FIFO queue"), "{report}");
    assert!(report.contains("allowed to send"), "{report}");
    assert!(!report.contains(API_KEY), "the report shows a credential");

    // The spool directory: one that takes and syncs a file, then one that can't exist.
    let spool = std::env::temp_dir().join(format!("check-spool-{}", uuid::Uuid::new_v4()));
    let mut with_spool = bridge();
    localstack_env(with_spool.arg("check-config"), &queue_url);
    let out = with_spool.env("BRIDGE_SPOOL_DIR", &spool).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("writable and syncs"), "{report}");
    std::fs::remove_dir_all(&spool).unwrap();
    let file = std::env::temp_dir().join(format!("check-spool-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, "a file, not a directory").unwrap();
    let mut unusable = bridge();
    localstack_env(unusable.arg("check-config"), &queue_url);
    let out = unusable
        .env("BRIDGE_SPOOL_DIR", file.join("spool"))
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL  BRIDGE_SPOOL_DIR"), "{report}");

    let missing = queue_url.replace("test-", "missing-");
    let mut bad = bridge();
    localstack_env(bad.arg("check-config"), &missing);
    let out = bad.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL") && report.contains("does not exist"),
        "{report}"
    );
    // Nothing was put on the good queue by the permission probe.
    let left = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(left.messages().is_empty());
}

#[tokio::test]
async fn send_test_event_posts_distinct_signed_events_that_arrive() {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let secret = "send-test-secret";
    let (mut child, port, _lines) = start_bridge(&queue_url, &[("BRIDGE_SHARED_SECRETS", secret)]);
    let url = format!("http://127.0.0.1:{port}/webhook");
    let run = |args: &[&str]| {
        let out = bridge()
            .args(["send-test-event", "--url", &url])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let workn = run(&["--secret", secret, "--event", "workn", "--count", "3"]);
    let bold = run(&["--api-key", API_KEY, "--event", "bold", "--count", "3"]);
    let refused = run(&["--api-key", "wrong"]);
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(workn.0, Some(0), "{}", workn.1);
    assert!(
        workn.1.contains("sent 3/3: 3 accepted, 0 not"),
        "{}",
        workn.1
    );
    assert_eq!(bold.0, Some(0), "{}", bold.1);
    assert_eq!(refused.0, Some(1));
    assert!(refused.1.starts_with("401 "), "{}", refused.1);
    let bodies: Vec<serde_json::Value> = drain_queue(&sqs, &queue_url, 6)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 6);
    assert_eq!(bodies.iter().filter(|b| b["msg_id"].is_string()).count(), 3);
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b["EventName"] == "placement_updated")
            .count(),
        3
    );
}

#[tokio::test]
async fn request_logs_carry_the_facts_and_never_a_secret_signature_or_body() {
    let sqs = sqs().await;
    let queue_url = create_queue(&sqs).await;
    let secret = "log-test-secret-9f8e7d";
    let (mut child, port, lines) = start_bridge(&queue_url, &[("BRIDGE_SHARED_SECRETS", secret)]);
    let logs = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let url = format!("http://127.0.0.1:{port}/webhook");
    let http = reqwest::Client::new();
    let body = workn_event("log-check-secret-body-marker");
    let signature = crate::helpers::hmac_hex(secret, body.as_bytes());
    let attempts: Vec<(&str, String)> = vec![
        ("X-Payload-Signature", signature.clone()),
        ("X-Payload-Signature", secret.to_owned()),
        ("X-api-key", API_KEY.to_owned()),
        ("X-api-key", "wrong-key-value-123".to_owned()),
        (
            "X-Payload-Signature",
            "wrong-signature-value-456".to_owned(),
        ),
    ];
    for (header, value) in &attempts {
        http.post(&url)
            .header(*header, value)
            .body(body.clone())
            .send()
            .await
            .unwrap();
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let logs = logs.join().unwrap();
    let text = logs.join("\n");

    for leaked in [
        secret,
        API_KEY,
        signature.as_str(),
        "wrong-key-value-123",
        "wrong-signature-value-456",
        "Zoë",
    ] {
        assert!(!text.contains(leaked), "the logs contain {leaked:?}");
    }
    let request_lines: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["request_id"].is_string())
        .collect();
    assert_eq!(request_lines.len(), attempts.len(), "one line per request");
    let accepted = request_lines
        .iter()
        .find(|e| e["outcome"] == "accepted")
        .unwrap();
    for field in [
        "request_id",
        "status",
        "latency_ms",
        "event_id",
        "event_type",
        "group_id",
        "deduplication_id",
        "message_id",
        "client",
    ] {
        assert!(
            !accepted[field].is_null(),
            "accepted line lacks {field}: {accepted}"
        );
    }
    assert!(
        request_lines
            .iter()
            .any(|e| e["outcome"] == "unauthorized" && e["status"] == 401)
    );
}

/// `healthcheck` asks the bridge its own configuration describes: 0 while it serves (and,
/// with --ready, while its queue answers), 1 with the reason once it is gone.
#[tokio::test]
async fn healthcheck_follows_the_configuration_and_fails_when_the_bridge_is_gone() {
    let queue_url = create_queue(&sqs().await).await;
    let (mut child, port, _logs) = start_bridge(&queue_url, &[]);
    let listen = format!("127.0.0.1:{port}");
    let check = |args: &[&str]| {
        let mut command = bridge();
        localstack_env(command.arg("healthcheck").args(args), &queue_url);
        let out = command.env("BRIDGE_LISTEN", &listen).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (code, said) = check(&[]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        said.trim(),
        format!("healthy: http://{listen}/healthz answered 200")
    );
    let (code, said) = check(&["--ready"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("/readyz answered 200"), "{said}");

    child.kill().unwrap();
    child.wait().unwrap();
    let (code, said) = check(&["--timeout-ms", "1000"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.starts_with("unhealthy: no answer from"), "{said}");

    // Only the listener settings are read: a configuration `serve` would now refuse
    // (here: no queue, no credential, TLS files that can't be read) does not make a
    // running bridge look dead. With TLS files set, it asks over HTTPS.
    let (mut second, port, _logs) = start_bridge(&queue_url, &[]);
    let out = bridge()
        .args(["healthcheck", "--timeout-ms", "1000"])
        .env("BRIDGE_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let out = bridge()
        .args(["healthcheck", "--timeout-ms", "1000"])
        .env("BRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("BRIDGE_TLS_CERT", "/nonexistent/cert.pem")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "plain HTTP is not HTTPS: {said}"
    );
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}/healthz")),
        "{said}"
    );
    second.kill().unwrap();
    second.wait().unwrap();

    // A listener setting it can't read: exit 1 (Docker reserves 2), naming the setting.
    let out = bridge()
        .arg("healthcheck")
        .env("BRIDGE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with("unhealthy: configuration error: BRIDGE_LISTEN"),
        "{said}"
    );
}
