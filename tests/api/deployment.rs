//! Native HTTPS and the source allow-list.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{SECRET, hmac_hex, spawn_app, workn_event};

#[tokio::test]
async fn with_a_certificate_the_bridge_serves_https_and_forwards() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("bridge-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    let app = spawn_app(&[
        ("BRIDGE_TLS_CERT", cert_path.to_str().unwrap()),
        ("BRIDGE_TLS_KEY", key_path.to_str().unwrap()),
    ])
    .await;
    let body = workn_event("over-tls");

    // A client that trusts only this certificate, speaking HTTP/1.1 over TLS.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls_pki_types::CertificateDer::from_pem_slice(certified.cert.pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake with the bridge");
    let request = format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Payload-Signature: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        hmac_hex(SECRET, body.as_bytes()),
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer).await;

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["status"], "accepted");
    let queued: Vec<String> = app.queued_bodies(1).await;
    assert_eq!(queued, vec![body]);
    // Plain HTTP to the TLS port does not get through.
    assert!(
        app.http
            .get(format!("http://127.0.0.1:{}/healthz", app.port))
            .send()
            .await
            .is_err_or_not_ok()
    );
    // The container health check speaks TLS to it when the configuration says so.
    // (Run without blocking: the bridge under test shares this test's runtime.)
    let mut healthcheck = crate::helpers::bridge_command();
    healthcheck.arg("healthcheck").envs([
        ("BRIDGE_LISTEN", format!("0.0.0.0:{}", app.port).as_str()),
        ("BRIDGE_TLS_CERT", cert_path.to_str().unwrap()),
    ]);
    let out = tokio::process::Command::from(healthcheck)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "https://127.0.0.1:{}/healthz answered 200",
            app.port
        )),
        "{said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The certificate the bridge presents in a fresh handshake, to a client that trusts
/// only `trusted`.
async fn presented_certificate(port: u16, trusted: &[&rcgen::CertifiedKey]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for certified in trusted {
        roots.add(certified.cert.der().clone()).unwrap();
    }
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(client)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake with the bridge");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A renewed certificate is served without a restart; files that can't be used are
/// refused and the certificate in use stays.
#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let generate = || rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("bridge-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    // Written beside and renamed into place, as renewal tools do.
    let install = |cert: &str, key: &str| {
        for (path, text) in [(&cert_path, cert), (&key_path, key)] {
            let fresh = path.with_extension("new");
            std::fs::write(&fresh, text).unwrap();
            std::fs::rename(&fresh, path).unwrap();
        }
    };
    let (first, renewed, other) = (generate(), generate(), generate());
    let trusted = [&first, &renewed, &other];
    install(&first.cert.pem(), &first.key_pair.serialize_pem());
    let app = spawn_app(&[
        ("BRIDGE_TLS_CERT", cert_path.to_str().unwrap()),
        ("BRIDGE_TLS_KEY", key_path.to_str().unwrap()),
        ("BRIDGE_TLS_RELOAD_S", "0"),
    ])
    .await;
    assert_eq!(
        presented_certificate(app.port, &trusted).await,
        first.cert.der().to_vec()
    );

    install(&renewed.cert.pem(), &renewed.key_pair.serialize_pem());
    assert_eq!(
        presented_certificate(app.port, &trusted).await,
        renewed.cert.der().to_vec()
    );

    // A key that does not match, then a certificate file that is not PEM: still the
    // renewed certificate.
    install(&renewed.cert.pem(), &other.key_pair.serialize_pem());
    assert_eq!(
        presented_certificate(app.port, &trusted).await,
        renewed.cert.der().to_vec()
    );
    install("not a certificate", &renewed.key_pair.serialize_pem());
    assert_eq!(
        presented_certificate(app.port, &trusted).await,
        renewed.cert.der().to_vec()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

trait NotOk {
    fn is_err_or_not_ok(&self) -> bool;
}

impl NotOk for reqwest::Result<reqwest::Response> {
    fn is_err_or_not_ok(&self) -> bool {
        self.as_ref().map_or(true, |r| !r.status().is_success())
    }
}

#[test]
fn unreadable_or_mismatched_tls_files_are_configuration_errors() {
    let queue = "http://127.0.0.1:4566/000000000000/q.fifo";
    let env = |pairs: Vec<(&'static str, String)>| {
        let mut map: std::collections::HashMap<&str, String> = [
            ("BRIDGE_QUEUE_URL", queue.to_owned()),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key".to_owned()),
        ]
        .into();
        map.extend(pairs);
        webhook_sqs_bridge::config::Config::from_sources(None, |n| map.get(n).cloned())
    };
    // Configuration only names the files; they are loaded as the server starts.
    let missing = env(vec![
        ("BRIDGE_TLS_CERT", "/nonexistent/cert.pem".into()),
        ("BRIDGE_TLS_KEY", "/nonexistent/key.pem".into()),
    ])
    .unwrap();
    let files = missing.tls.as_ref().expect("both files are named");
    let loaded = webhook_sqs_bridge::http::tls::server_config(files);
    assert_eq!(loaded.unwrap_err().setting, "BRIDGE_TLS_CERT");
    let half = env(vec![("BRIDGE_TLS_CERT", "/nonexistent/cert.pem".into())]);
    assert_eq!(half.unwrap_err().setting, "BRIDGE_TLS_KEY");
}

async fn status_of(app: &crate::helpers::TestApp, forwarded_for: Option<&str>, id: &str) -> u16 {
    let body = workn_event(id);
    let signature = hmac_hex(SECRET, body.as_bytes());
    let mut headers = vec![("X-Payload-Signature", signature.as_str())];
    if let Some(xff) = forwarded_for {
        headers.push(("X-Forwarded-For", xff));
    }
    app.post_with(&headers, body).await.status().as_u16()
}

#[tokio::test]
async fn sources_outside_the_allow_list_get_403_before_authentication() {
    // Only the vendor's documented address; requests come from 127.0.0.1.
    let closed = spawn_app(&[("BRIDGE_ALLOWED_SOURCES", "52.200.5.50")]).await;
    let response = closed.post_with(&[], "{}").await; // no credentials: 403 still comes first
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "forbidden");
    // A spoofed X-Forwarded-For from an untrusted peer is ignored.
    assert_eq!(
        status_of(&closed, Some("52.200.5.50"), "spoofed").await,
        403
    );
    assert_eq!(
        closed.get("/healthz").await.status(),
        200,
        "health stays reachable"
    );

    // Behind a trusted proxy (here: loopback), the forwarded vendor address is allowed
    // and anything else is not.
    let proxied = spawn_app(&[
        ("BRIDGE_ALLOWED_SOURCES", "52.200.5.50/32"),
        ("BRIDGE_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    assert_eq!(
        status_of(&proxied, Some("52.200.5.50"), "via-proxy").await,
        200
    );
    assert_eq!(
        status_of(&proxied, Some("198.51.100.7"), "other").await,
        403
    );
    assert_eq!(status_of(&proxied, None, "direct").await, 403);

    let queued: Vec<String> = proxied.queued_bodies(1).await;
    assert_eq!(queued, vec![workn_event("via-proxy")]);
    assert!(
        closed.drain(0).await.is_empty(),
        "nothing from refused sources is queued"
    );
}

/// With an allow-list, the webhook port shows `/metrics` and `/readyz`'s details only to
/// allowed sources; the metrics listener shows both to whoever can reach it.
#[tokio::test]
async fn only_allowed_sources_see_metrics_and_readiness_details() {
    // Requests come from 127.0.0.1, outside the list; authentication is off, which the
    // details would announce.
    let unauthenticated = [
        ("BRIDGE_ALLOWED_SOURCES", "52.200.5.50"),
        ("BRIDGE_SHARED_SECRETS", ""),
        ("BRIDGE_API_KEYS", ""),
        ("BRIDGE_ALLOW_UNAUTHENTICATED", "true"),
    ];
    let app = spawn_app(&unauthenticated).await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 403);
    let error: Value = metrics.json().await.unwrap();
    assert_eq!(error["error"], "forbidden");
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status(),
        200,
        "a load balancer's probe still sees the state"
    );
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready, serde_json::json!({ "status": "ready" }));

    let mut with_listener = unauthenticated.to_vec();
    with_listener.push(("BRIDGE_METRICS_LISTEN", "127.0.0.1:0"));
    let app = spawn_app(&with_listener).await;
    let private = app.metrics_address.clone().expect("metrics listener");
    let scraped = app
        .http
        .get(format!("{private}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("bridge_max_in_flight")
    );
    let details: Value = app
        .http
        .get(format!("{private}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(details["fifo"], true);
    assert!(
        details["warnings"][0]
            .as_str()
            .unwrap()
            .contains("AUTHENTICATION IS DISABLED")
    );

    // Allowed (here: through a trusted proxy), the webhook port shows both.
    let open = spawn_app(&[
        ("BRIDGE_ALLOWED_SOURCES", "52.200.5.50"),
        ("BRIDGE_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let via = |path: &'static str| {
        open.http
            .get(format!("{}{path}", open.address))
            .header("X-Forwarded-For", "52.200.5.50")
            .send()
    };
    assert_eq!(via("/metrics").await.unwrap().status(), 200);
    let ready: Value = via("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["fifo"], true);
}

/// `X-Request-Id` is echoed only from a trusted proxy: from anyone else it could forge
/// another request's log lines.
#[tokio::test]
async fn request_ids_are_taken_only_from_trusted_proxies() {
    let body = workn_event("request-id");
    let signature = hmac_hex(SECRET, body.as_bytes());
    let headers = [
        ("X-Payload-Signature", signature.as_str()),
        ("X-Request-Id", "chosen-by-the-caller"),
    ];
    let direct = spawn_app(&[]).await;
    let answer = direct.post_with(&headers, body.clone()).await;
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "chosen-by-the-caller");
    assert!(!id.is_empty());
    let proxied = spawn_app(&[("BRIDGE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let answer = proxied.post_with(&headers, body).await;
    assert_eq!(answer.headers()["x-request-id"], "chosen-by-the-caller");
}

/// Whether the bridge closes a fresh connection at once: its first read sees the end
/// (or a reset) instead of waiting for a request that was never sent.
async fn closed_at_once(mut client: tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(std::time::Duration::from_secs(2), client.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// Connections one address holds are capped as they are accepted; a place comes back
/// when one closes.
#[tokio::test]
async fn one_address_holds_at_most_its_connections_the_rest_closed_at_accept() {
    let app = spawn_app(&[("BRIDGE_MAX_CONNECTIONS_PER_SOURCE", "2")]).await;
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", app.port));
    // Each is admitted (answered) before the next: the workers take connections in turn,
    // and may admit them in another order than they were opened.
    let admitted = |mut client: tokio::net::TcpStream| async move {
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        let mut rest = vec![0u8; 4096];
        let _ = client.read(&mut rest).await;
        client
    };
    let first = admitted(connect().await.unwrap()).await;
    let second = admitted(connect().await.unwrap()).await;
    assert!(
        closed_at_once(connect().await.unwrap()).await,
        "a third one stays open"
    );
    drop(first);
    // The place comes back once the bridge has seen the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut client = connect().await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        if client.read_exact(&mut answer).await.is_ok() {
            assert_eq!(&answer, b"HTTP/1.1 200");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place never came back"
        );
    }
    drop(second);
    // Once the bridge has seen those close, a connection for the metrics fits again.
    let metrics = loop {
        if let Ok(answer) = app
            .http
            .get(format!("{}/metrics", app.address))
            .send()
            .await
        {
            break answer.text().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room for a new connection"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        metrics.contains(r#"bridge_connections_refused_total{reason="per_source_limit"}"#),
        "{metrics}"
    );
}

/// With an allow-list and no trusted proxy, a connection from outside the list is closed
/// as it is accepted, before its request is read. (From a non-loopback address of this
/// machine: loopback is let through to the per-request check, for the container's own
/// health check.)
#[tokio::test]
async fn outside_the_allow_list_a_connection_is_closed_as_it_is_accepted() {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let own = probe
        .connect("192.0.2.1:9")
        .and_then(|()| probe.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let Some(own) = own else {
        eprintln!("NOT RUN: this machine has no non-loopback address to connect from");
        return;
    };
    let app = spawn_app(&[
        ("BRIDGE_ALLOWED_SOURCES", "52.200.5.50"),
        ("BRIDGE_LISTEN", "0.0.0.0:0"),
    ])
    .await;
    let outside = tokio::net::TcpStream::connect((own, app.port))
        .await
        .unwrap();
    assert!(closed_at_once(outside).await);
    // Loopback still meets the per-request check: 403, and /healthz answers.
    assert_eq!(app.post_with(&[], "{}").await.status(), 403);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 403);
}
