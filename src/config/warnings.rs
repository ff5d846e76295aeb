//! What a configuration allows but an operator should hear about.

use super::Config;

impl Config {
    /// Lines worth a warning at start-up and on `/readyz`.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let no_credentials = self.shared_secrets.is_empty() && self.api_keys.is_empty();
        if self.allow_unauthenticated && no_credentials {
            warnings.push(
                "AUTHENTICATION IS DISABLED (BRIDGE_ALLOW_UNAUTHENTICATED=true): anyone who can \
                 reach this endpoint can put messages on the queue; for local use only"
                    .to_owned(),
            );
        } else if self.allow_unauthenticated {
            warnings.push(
                "BRIDGE_ALLOW_UNAUTHENTICATED=true has no effect: credentials are configured and enforced"
                    .to_owned(),
            );
        }
        warnings
    }

    /// Warnings for the start-up log and `check-config`, not for `/readyz`, which anyone
    /// can read: an allow-list that allows everyone, timeouts that let a drain cut
    /// forwards short.
    #[must_use]
    pub fn operator_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.allowed_sources_blank {
            warnings.push(
                "BRIDGE_ALLOWED_SOURCES is set but empty, so every source address is allowed; \
                 give the vendor's addresses, or unset it to allow all on purpose"
                    .to_owned(),
            );
        }
        if !self.sources.allowed.is_empty() && self.metrics_listen.is_none() {
            warnings.push(
                "BRIDGE_ALLOWED_SOURCES is set and BRIDGE_METRICS_LISTEN is not: /metrics on the \
                 webhook's port answers only allowed sources, so a scraper elsewhere gets 403; \
                 give metrics a listener of their own"
                    .to_owned(),
            );
        }
        // A request holds its slot while its body arrives and then while SQS answers; the
        // drain after SIGTERM waits BRIDGE_SHUTDOWN_TIMEOUT_S for every slot.
        let longest = self.body_read_timeout + self.forward_timeout;
        if longest > self.shutdown_timeout {
            warnings.push(format!(
                "BRIDGE_SHUTDOWN_TIMEOUT_S ({} s) is shorter than BRIDGE_BODY_READ_TIMEOUT_MS + \
                 BRIDGE_FORWARD_TIMEOUT_MS ({} ms): a forward in progress at SIGTERM can be cut \
                 off after SQS stored its event, and the sender's retry may then be queued again",
                self.shutdown_timeout.as_secs(),
                longest.as_millis()
            ));
        }
        warnings
    }
}
