//! Rule 1: every credential form passes; every wrong one is 401 with nothing queued.

use base64::Engine as _;
use serde_json::Value;

use crate::helpers::{API_KEY, API_KEY_2, SECRET, SECRET_2, hmac_hex, spawn_app, workn_event};

type Headers = Vec<(&'static str, String)>;
/// (case, the headers it sends for a body)
type GoodCase = (&'static str, Box<dyn Fn(&str) -> Headers>);
/// (case, headers, a phrase the error's detail must contain)
type BadCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

fn base64_hmac(secret: &str, body: &str) -> String {
    let tag = hex::decode(hmac_hex(secret, body.as_bytes())).unwrap();
    base64::engine::general_purpose::STANDARD.encode(tag)
}

#[tokio::test]
async fn each_credential_form_is_accepted() {
    let app = spawn_app(&[]).await;
    let cases: Vec<GoodCase> = vec![
        (
            "raw shared secret",
            Box::new(|_| vec![("X-Payload-Signature", SECRET.to_owned())]),
        ),
        (
            "rotated second secret",
            Box::new(|_| vec![("X-Payload-Signature", SECRET_2.to_owned())]),
        ),
        (
            "hmac hex",
            Box::new(|b| vec![("X-Payload-Signature", hmac_hex(SECRET, b.as_bytes()))]),
        ),
        (
            "hmac hex upper case",
            Box::new(|b| {
                vec![(
                    "X-Payload-Signature",
                    hmac_hex(SECRET_2, b.as_bytes()).to_uppercase(),
                )]
            }),
        ),
        (
            "hmac base64",
            Box::new(|b| vec![("X-Payload-Signature", base64_hmac(SECRET, b))]),
        ),
        (
            "sha256= prefix",
            Box::new(|b| {
                vec![(
                    "X-Payload-Signature",
                    format!("sha256={}", hmac_hex(SECRET, b.as_bytes())),
                )]
            }),
        ),
        (
            "api key",
            Box::new(|_| vec![("X-api-key", API_KEY.to_owned())]),
        ),
        (
            "rotated second api key",
            Box::new(|_| vec![("X-api-key", API_KEY_2.to_owned())]),
        ),
    ];
    let mut sent = Vec::new();
    for (i, (name, headers)) in cases.iter().enumerate() {
        let body = workn_event(&format!("auth-ok-{i}"));
        let headers = headers(&body);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = app.post_with(&pairs, body.clone()).await;
        assert_eq!(response.status(), 200, "{name}");
        sent.push(body);
    }
    let mut queued = app.queued_bodies(sent.len()).await;
    queued.sort();
    sent.sort();
    assert_eq!(queued, sent);
}

#[tokio::test]
async fn wrong_missing_duplicate_or_empty_credentials_get_401_and_nothing_is_queued() {
    let app = spawn_app(&[]).await;
    let body = workn_event("auth-bad");
    let other_body_sig = hmac_hex(SECRET, b"{\"other\":1}");
    let wrong_key_sig = hmac_hex("not-the-secret", body.as_bytes());
    let cases: Vec<BadCase> = vec![
        ("no credentials", vec![], "missing"),
        ("wrong api key", vec![("X-api-key", "nope")], "X-api-key"),
        (
            "api key prefix",
            vec![("X-api-key", "test-api-key")],
            "X-api-key",
        ),
        (
            "wrong raw secret",
            vec![("X-Payload-Signature", "test-shared-secret-3")],
            "X-Payload-Signature",
        ),
        (
            "hmac of another body",
            vec![("X-Payload-Signature", &other_body_sig)],
            "X-Payload-Signature",
        ),
        (
            "hmac under another key",
            vec![("X-Payload-Signature", &wrong_key_sig)],
            "X-Payload-Signature",
        ),
        (
            "empty signature",
            vec![("X-Payload-Signature", "")],
            "empty",
        ),
        (
            "duplicate api key",
            vec![("X-api-key", API_KEY), ("X-api-key", API_KEY)],
            "more than once",
        ),
        (
            "good key, bad signature",
            vec![("X-api-key", API_KEY), ("X-Payload-Signature", "bad")],
            "X-Payload-Signature",
        ),
    ];
    for (name, headers, detail) in cases {
        let response = app.post_with(&headers, body.clone()).await;
        assert_eq!(response.status(), 401, "{name}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "unauthorized", "{name}");
        assert!(
            error["detail"].as_str().unwrap().contains(detail),
            "{name}: {error}"
        );
        assert!(
            !error.to_string().contains(SECRET),
            "{name}: the answer leaks the secret"
        );
    }
    let good = workn_event("auth-good");
    assert_eq!(app.post_signed(&good).await.status(), 200);
    assert_eq!(app.queued_bodies(1).await, vec![good]);
}

#[tokio::test]
async fn unauthenticated_mode_lets_requests_through_and_says_so_on_readyz() {
    let app = spawn_app(&[
        ("BRIDGE_SHARED_SECRETS", ""),
        ("BRIDGE_API_KEYS", ""),
        ("BRIDGE_ALLOW_UNAUTHENTICATED", "true"),
    ])
    .await;
    let body = workn_event("open-1");

    let response = app.post_with(&[], body.clone()).await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(
        ready["warnings"][0]
            .as_str()
            .unwrap()
            .contains("AUTHENTICATION IS DISABLED")
    );
    assert_eq!(app.queued_bodies(1).await, vec![body]);
}

/// A signature that is neither a configured secret nor shaped like an HMAC tag is refused
/// from the headers: the bridge does not wait for (or hold a forwarding slot for) a body
/// that could not change the answer.
#[tokio::test]
async fn a_signature_that_cannot_be_valid_is_refused_before_the_body_arrives() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let app = spawn_app(&[("BRIDGE_BODY_READ_TIMEOUT_MS", "20000")]).await;
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    client
        .write_all(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              X-Payload-Signature: not-the-secret\r\nContent-Length: 1000\r\n\r\n{\"msg_id\":",
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.read_exact(&mut head),
    )
    .await;
    assert!(read.is_ok(), "no answer before the body was complete");
    assert_eq!(&head, b"HTTP/1.1 401");
}

/// `BRIDGE_REQUIRE_HMAC=true`: the raw secret (which, once seen, signs any body) and an
/// API key alone are refused; a signed event is queued.
#[tokio::test]
async fn requiring_hmac_refuses_the_raw_secret() {
    let app = spawn_app(&[("BRIDGE_REQUIRE_HMAC", "true")]).await;
    let raw = app
        .post_with(&[("X-Payload-Signature", SECRET)], workn_event("raw-1"))
        .await;
    assert_eq!(raw.status(), 401);
    let error: Value = raw.json().await.unwrap();
    assert_eq!(error["error"], "unauthorized");
    assert!(!error["detail"].as_str().unwrap().contains(SECRET));
    let key_only = app
        .post_with(&[("X-api-key", API_KEY)], workn_event("key-1"))
        .await;
    assert_eq!(key_only.status(), 401);
    let signed = workn_event("signed-1");
    assert_eq!(app.post_signed(&signed).await.status(), 200);
    assert_eq!(app.queued_bodies(1).await, vec![signed]);
}
