//! The real binary: configuration errors stop it with a clear message, and SIGTERM ends it
//! with exit 0 after in-flight requests are answered.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{API_KEY, create_queue, endpoint, sqs, workn_event};

const BIN: &str = env!("CARGO_BIN_EXE_webhook-sqs-bridge");

fn bridge() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
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
                ("BRIDGE_API_KEYS", "k"),
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
    let mut child = bridge()
        .envs([
            ("BRIDGE_QUEUE_URL", queue_url.as_str()),
            ("BRIDGE_LISTEN", "127.0.0.1:0"),
            ("BRIDGE_EVENT_SETUP_ID", "9"),
            ("BRIDGE_API_KEYS", API_KEY),
            ("BRIDGE_LOG_FORMAT", "json"),
            ("AWS_ENDPOINT_URL", endpoint().as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The "listening" log line carries the port that was bound.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the bridge exited before listening")
            .unwrap();
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["message"] == "listening" {
            break entry["port"].as_u64().unwrap();
        }
    };
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

    let out = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = out.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, vec![body.as_str()]);
}
