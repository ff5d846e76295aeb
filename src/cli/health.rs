//! `healthcheck`: asks the bridge's own listener, as the container's health check does.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};

use super::send::HttpClient;
use crate::config::Listener;

/// Why `healthcheck` found the bridge unhealthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("BRIDGE_LISTEN has port 0: the port the bridge chose is not known here")]
    NoPort,
    #[error("no answer from {url} within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u128 },
    #[error("no answer from {url}: {source}")]
    Transport {
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the answer from {url} could not be read: {source}")]
    Body { url: String, source: hyper::Error },
}

/// Asks the bridge that `listener` describes for `/healthz` (or `/readyz`): what a
/// container's health check runs, with no curl in the image and whatever the port or TLS
/// setting. A wildcard address is asked on loopback (`[::]` on `::1`, then on
/// `127.0.0.1`, for containers without IPv6); a specific one at that address. Returns
/// the URL that answered.
pub async fn healthcheck(
    listener: Listener,
    ready: bool,
    timeout: Duration,
) -> Result<String, HealthError> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let port = listener.addr.port();
    if port == 0 {
        return Err(HealthError::NoPort);
    }
    let candidates: Vec<IpAddr> = match listener.addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => vec![Ipv4Addr::LOCALHOST.into()],
        IpAddr::V6(ip) if ip.is_unspecified() => {
            vec![Ipv6Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()]
        }
        ip => vec![ip],
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::http::tls::loopback_client_config())
        .https_or_http()
        .enable_http1()
        .build();
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let scheme = if listener.tls { "https" } else { "http" };
    let path = if ready { "/readyz" } else { "/healthz" };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    for ip in candidates {
        let url = format!("{scheme}://{}{path}", std::net::SocketAddr::new(ip, port));
        let asked = tokio::time::timeout_at(deadline, ask(&client, &url))
            .await
            .unwrap_or_else(|_| {
                Err(HealthError::Timeout {
                    url: url.clone(),
                    timeout_ms: timeout.as_millis(),
                })
            });
        match asked {
            Ok(()) => return Ok(url),
            // Nothing listens there: the next address may be the one.
            Err(e @ HealthError::Transport { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("there is at least one address to ask"))
}

/// One `GET`; `Ok` only for `200`.
async fn ask(client: &HttpClient, url: &str) -> Result<(), HealthError> {
    let request = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("a URL built from an address is valid");
    let response = client
        .request(request)
        .await
        .map_err(|source| HealthError::Transport {
            url: url.to_owned(),
            source,
        })?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| HealthError::Body {
            url: url.to_owned(),
            source,
        })?
        .to_bytes();
    if status == 200 {
        Ok(())
    } else {
        Err(HealthError::Status {
            url: url.to_owned(),
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
