//! The SigV4 payload hash, computed by the bridge instead of by the SDK.

/// Hands SigV4 the SHA-256 of the request body, computed with aws-lc-rs.
///
/// SigV4 hashes every request body; the SDK does it with the `sha2` crate, slower than
/// aws-lc-rs on CPUs without SHA extensions, and a full batch is a large body
/// (docs/BENCHMARKS.md, "SigV4 payload hash").
/// The signature is unchanged: SigV4 takes a precomputed payload hash in place of the
/// body (the same hook S3 uses), and a test compares both signatures.
#[derive(Debug)]
pub struct PayloadHash;

impl aws_sdk_sqs::config::Intercept for PayloadHash {
    fn name(&self) -> &'static str {
        "PayloadHash"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_sqs::config::RuntimeComponents,
        cfg: &mut aws_sdk_sqs::config::ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        use aws_runtime::auth::SigV4OperationSigningConfig;
        use aws_sigv4::http_request::SignableBody;

        let Some(body) = context.request().body().bytes() else {
            return Ok(()); // a streaming body: SigV4 decides
        };
        let Some(signing) = cfg.load::<SigV4OperationSigningConfig>() else {
            return Ok(());
        };
        if signing.signing_options.payload_override.is_some() {
            return Ok(()); // set already: by an earlier attempt, or by the SDK itself
        }
        let mut signing = signing.clone();
        signing.signing_options.payload_override =
            Some(SignableBody::Precomputed(sha256_hex(body)));
        cfg.interceptor_state().store_put(signing);
        Ok(())
    }
}

/// Lowercase hex SHA-256, as SigV4 writes a payload hash.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(crate::forward::event::sha256(bytes))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;

    /// SigV4 over a precomputed hash from [`super::sha256_hex`] signs exactly as SigV4 over
    /// the body itself: what `PayloadHash` relies on.
    #[test]
    fn a_precomputed_payload_hash_gives_the_same_signature() {
        let identity =
            aws_sdk_sqs::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test")
                .into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("sqs")
            .time(UNIX_EPOCH + Duration::from_secs(1_790_000_000))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let body = br#"{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/1/q.fifo","Entries":[{"Id":"0","MessageBody":"{\"msg_id\":\"\u00e9\"}"}]}"#;
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AmazonSQS.SendMessageBatch"),
            ("host", "sqs.eu-west-1.amazonaws.com"),
        ];
        let signature = |body: SignableBody<'_>| {
            let request = SignableRequest::new(
                "POST",
                "https://sqs.eu-west-1.amazonaws.com/",
                headers.iter().copied(),
                body,
            )
            .unwrap();
            sign(request, &params).unwrap().signature().to_owned()
        };
        let direct = signature(SignableBody::Bytes(body));
        assert_eq!(
            signature(SignableBody::Precomputed(super::sha256_hex(body))),
            direct
        );
        assert_ne!(
            signature(SignableBody::Precomputed(super::sha256_hex(b"other"))),
            direct,
            "the hash is part of the signature"
        );
    }
}
