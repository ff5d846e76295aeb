//! The SQS client as the bridge configures it: its timeouts and retries inside the
//! forward budget, the request writer and payload hash of [`super::wire`], and a
//! connection pool per worker when batching is off.

use std::time::Duration;

/// The SQS FIFO queue, through `aws-sdk-sqs`.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    pub(super) client: aws_sdk_sqs::Client,
    /// The same, without the SDK's retries, for `SendMessageBatch`: the batcher retries
    /// failed calls itself, so that throttling reaches its adaptive limit instead of
    /// being hidden in an SDK back-off.
    pub(super) batch_client: aws_sdk_sqs::Client,
    pub(super) queue_url: String,
    pub(super) forward_timeout: Duration,
}

impl SqsQueue {
    /// Loads the standard AWS configuration chain (environment, profile, container and
    /// instance credentials, `AWS_ENDPOINT_URL[_SQS]`).
    pub async fn from_env(queue_url: String, forward_timeout: Duration) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::new(
            &aws_sdk_sqs::Client::new(&config),
            queue_url,
            forward_timeout,
        )
    }

    /// Wraps a client, replacing its timeouts and retries with the bridge's: retries
    /// happen inside the forward budget, and each attempt gets a third of it so a hung
    /// connection is abandoned in time for another try.
    ///
    /// Stalled-stream protection is off: its grace period (20 s) is longer than any
    /// attempt the bridge allows (at most 5 s), so it could never fire first, and it
    /// costs timers and throughput bookkeeping on every call.
    #[must_use]
    pub fn new(client: &aws_sdk_sqs::Client, queue_url: String, forward_timeout: Duration) -> Self {
        let attempt =
            (forward_timeout / 3).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .operation_timeout(forward_timeout)
            .operation_attempt_timeout(attempt)
            .connect_timeout(attempt.min(Duration::from_secs(2)))
            .build();
        let retries = aws_sdk_sqs::config::retry::RetryConfig::standard()
            .with_max_attempts(5)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(2));
        let config = client
            .config()
            .to_builder()
            .timeout_config(timeouts)
            .retry_config(retries)
            .stalled_stream_protection(
                aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled(),
            )
            .interceptor(super::wire::PayloadHash)
            .interceptor(super::wire::SqsJson::default())
            .build();
        Self::with_config(config, queue_url, forward_timeout)
    }

    fn with_config(
        config: aws_sdk_sqs::Config,
        queue_url: String,
        forward_timeout: Duration,
    ) -> Self {
        let batch = config
            .to_builder()
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(config),
            batch_client: aws_sdk_sqs::Client::from_conf(batch),
            queue_url,
            forward_timeout,
        }
    }
}

impl SqsQueue {
    /// The same queue and settings over a connection pool of its own.
    ///
    /// With batching off, each actix worker makes its SDK calls in its request handlers.
    /// A connection is driven by the runtime that opened it, so with one pool shared by
    /// all workers, a call often goes out on a connection another worker's thread drives,
    /// and crosses threads twice. The client is built as the SDK builds its default
    /// (rustls with aws-lc, proxy settings from the environment), through the same
    /// `build_with_connector_fn`; that function is doc-hidden upstream, so check it on
    /// SDK upgrades (the batching-off tests drive this path against LocalStack).
    #[must_use]
    pub fn with_own_connections(&self) -> Self {
        use aws_smithy_http_client::{Connector, proxy::ProxyConfig, tls};

        let http = aws_smithy_http_client::Builder::new().build_with_connector_fn(
            |settings, components| {
                let mut connector = Connector::builder().tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ));
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            },
        );
        let config = self.client.config().to_builder().http_client(http).build();
        Self::with_config(config, self.queue_url.clone(), self.forward_timeout)
    }
}

impl SqsQueue {
    /// The configured client (for `check-config`'s probes).
    #[must_use]
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    #[must_use]
    pub fn url(&self) -> &str {
        &self.queue_url
    }
}
