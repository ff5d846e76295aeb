//! `send-test-event`: realistic sample events, signed or keyed like the vendor's, sent
//! over HTTP(S) to a running bridge.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use secrecy::{ExposeSecret as _, SecretString};

/// Which of the vendor's event shapes to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleEvent {
    /// A WorkN "worker assigned" event with every common parameter.
    Workn,
    /// A BOLD `placement_updated` event.
    Bold,
}

/// A realistic event, unique per `n` (its id), as the vendor would send it.
#[must_use]
pub fn sample_event(kind: SampleEvent, n: u64) -> String {
    let now = chrono::Utc::now();
    let id = format!("test-{}-{}-{n}", std::process::id(), now.timestamp_millis());
    match kind {
        SampleEvent::Workn => serde_json::json!({
            "mkt_id": 12,
            "event_datetime": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "msg_id": id,
            "event_type": 12,
            "ext_customer_id": "CUST-1001",
            "ent_id": 1001,
            "ext_branch_id": "BR-7",
            "branch_id": 7,
            "worker_id": 99_001,
            "job_id": 55_012,
        }),
        SampleEvent::Bold => serde_json::json!({
            "EventName": "placement_updated",
            "FrontOfficeTenantId": 42,
            "Resource": serde_json::json!({ "PlacementId": 7_771, "Status": "Active" }).to_string(),
            "ResourceModelType": "Avionte.Bold.FrontOffice.Placement",
            "CorrelationId": id,
        }),
    }
    .to_string()
}

/// How a test event is authenticated. Held as secrets, so `Debug` shows no value.
#[derive(Debug, Clone)]
pub enum Credential {
    /// HMAC-SHA256 of the body under this shared secret (hex).
    Secret(SecretString),
    ApiKey(SecretString),
}

/// One answer from the bridge.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// The HTTP(S) client both tools speak through.
pub(super) type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A small HTTP(S) client (system trust roots) for posting test events.
pub struct Sender {
    client: HttpClient,
    url: String,
    credential: Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum SendTestError {
    #[error("can't load the system's trusted certificates: {0}")]
    Roots(std::io::Error),
    #[error("invalid request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer from {url}: {source}")]
    Transport {
        url: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("the answer could not be read: {0}")]
    Body(#[from] hyper::Error),
}

impl Sender {
    pub fn new(url: String, credential: Credential) -> Result<Self, SendTestError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(SendTestError::Roots)?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self {
            client,
            url,
            credential,
        })
    }

    /// Posts one body, signed or with the API key, and reads the answer.
    pub async fn post(&self, body: String) -> Result<Answer, SendTestError> {
        let mut request =
            hyper::Request::post(&self.url).header("Content-Type", "application/json");
        request = match &self.credential {
            Credential::Secret(secret) => request.header(
                "X-Payload-Signature",
                crate::forward::auth::sign(secret.expose_secret().as_bytes(), body.as_bytes()),
            ),
            Credential::ApiKey(key) => request.header("X-api-key", key.expose_secret()),
        };
        let request = request.body(Full::new(Bytes::from(body)))?;
        let started = Instant::now();
        let response =
            self.client
                .request(request)
                .await
                .map_err(|source| SendTestError::Transport {
                    url: self.url.clone(),
                    source,
                })?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Credential;

    #[test]
    fn credentials_do_not_show_in_debug_output() {
        for credential in [
            Credential::Secret("secret-value-1".to_owned().into()),
            Credential::ApiKey("api-key-value-1".to_owned().into()),
        ] {
            let text = format!("{credential:?}");
            assert!(!text.contains("value-1"), "{text}");
        }
    }
}
