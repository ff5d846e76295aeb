//! Each credential form, each header mistake, and that no secret is ever shown.

use super::*;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

const BODY: &[u8] = br#"{"msg_id":"1"}"#;

fn secrets(values: &[&str]) -> Vec<SecretString> {
    values.iter().map(|v| SecretString::from(*v)).collect()
}

fn auth() -> Authenticator {
    Authenticator::new(
        &secrets(&["old-secret", "new-secret"]),
        &secrets(&["key-1", "key-2"]),
        false,
    )
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn check(a: &Authenticator, pairs: &[(&'static str, &str)]) -> Result<AuthMethod, AuthError> {
    let map = headers(pairs);
    let presented = Presented::from_headers(&map);
    let pending = a.check_headers(&presented)?;
    a.check_body(&presented, pending, BODY)
}

fn hmac_bytes(secret: &str) -> Vec<u8> {
    hex::decode(sign(secret.as_bytes(), BODY)).unwrap()
}

#[test]
fn every_documented_form_passes() {
    let a = auth();
    let hex_sig = sign(b"new-secret", BODY);
    let b64 = base64::engine::general_purpose::STANDARD.encode(hmac_bytes("old-secret"));
    for (value, method) in [
        ("old-secret".to_owned(), AuthMethod::SharedSecret),
        ("new-secret".to_owned(), AuthMethod::SharedSecret),
        (hex_sig.clone(), AuthMethod::Hmac),
        (hex_sig.to_uppercase(), AuthMethod::Hmac),
        (format!("sha256={hex_sig}"), AuthMethod::Hmac),
        (format!("SHA256={hex_sig}"), AuthMethod::Hmac),
        (b64.clone(), AuthMethod::Hmac),
        (b64.trim_end_matches('=').to_owned(), AuthMethod::Hmac),
        (format!("sha256={b64}"), AuthMethod::Hmac),
    ] {
        assert_eq!(
            check(&a, &[(SIGNATURE_HEADER, &value)]),
            Ok(method),
            "{value}"
        );
    }
    assert_eq!(
        check(&a, &[(API_KEY_HEADER, "key-1")]),
        Ok(AuthMethod::ApiKey)
    );
    assert_eq!(
        check(&a, &[(API_KEY_HEADER, "key-2")]),
        Ok(AuthMethod::ApiKey)
    );
    assert_eq!(
        check(
            &a,
            &[(API_KEY_HEADER, "key-2"), (SIGNATURE_HEADER, "old-secret")]
        ),
        Ok(AuthMethod::SharedSecret)
    );
}

#[test]
fn wrong_missing_duplicate_and_empty_credentials_fail() {
    let a = auth();
    let other = sign(b"other", BODY);
    for (pairs, expected) in [
        (
            vec![],
            AuthError::Missing("an X-api-key or X-Payload-Signature header"),
        ),
        (vec![(API_KEY_HEADER, "key-3")], AuthError::WrongApiKey),
        (vec![(API_KEY_HEADER, "key-1x")], AuthError::WrongApiKey),
        (
            vec![(SIGNATURE_HEADER, "old-secre")],
            AuthError::WrongSignature,
        ),
        (
            vec![(SIGNATURE_HEADER, other.as_str())],
            AuthError::WrongSignature,
        ),
        (
            vec![(SIGNATURE_HEADER, "sha256=")],
            AuthError::WrongSignature,
        ),
        (
            vec![(API_KEY_HEADER, "key-1"), (SIGNATURE_HEADER, "nope")],
            AuthError::WrongSignature,
        ),
        (
            vec![(API_KEY_HEADER, "nope"), (SIGNATURE_HEADER, "old-secret")],
            AuthError::WrongApiKey,
        ),
        (
            vec![(API_KEY_HEADER, "key-1"), (API_KEY_HEADER, "key-1")],
            AuthError::Duplicate("X-api-key"),
        ),
        (
            vec![(SIGNATURE_HEADER, "  ")],
            AuthError::Empty("X-Payload-Signature"),
        ),
    ] {
        assert_eq!(check(&a, &pairs), Err(expected), "{pairs:?}");
    }
    // A signature over another body fails.
    let map = headers(&[(SIGNATURE_HEADER, &sign(b"new-secret", BODY))]);
    let p = Presented::from_headers(&map);
    let pending = a.check_headers(&p).unwrap();
    assert_eq!(
        pending,
        Pending::Signature {
            key_verified: false
        }
    );
    assert_eq!(
        a.check_body(&p, pending, b"{}"),
        Err(AuthError::WrongSignature)
    );
}

#[test]
fn only_a_signature_shaped_like_a_tag_waits_for_the_body() {
    // The raw secret and anything that can't be an HMAC tag are settled from the
    // headers, before the bridge spends a forwarding slot on reading a body.
    let a = auth();
    let settled = |value: &str| {
        let map = headers(&[(SIGNATURE_HEADER, value)]);
        a.check_headers(&Presented::from_headers(&map))
    };
    assert_eq!(
        settled("new-secret"),
        Ok(Pending::Done(AuthMethod::SharedSecret))
    );
    for malformed in [
        "x",
        "old-secre",
        "sha256=zz",
        &"0".repeat(63),
        &"A".repeat(40),
    ] {
        assert_eq!(
            settled(malformed),
            Err(AuthError::WrongSignature),
            "{malformed}"
        );
    }
    let hmac_like = sign(b"unknown", b"other body");
    assert_eq!(
        settled(&hmac_like),
        Ok(Pending::Signature {
            key_verified: false
        })
    );
    assert_eq!(
        settled(&format!("sha256={hmac_like}")),
        Ok(Pending::Signature {
            key_verified: false
        })
    );
    // The API key is still checked when both are sent; when it matched, the sender is
    // known before the body.
    let map = headers(&[(API_KEY_HEADER, "nope"), (SIGNATURE_HEADER, "new-secret")]);
    assert_eq!(
        a.check_headers(&Presented::from_headers(&map)),
        Err(AuthError::WrongApiKey)
    );
    let map = headers(&[(API_KEY_HEADER, "key-1"), (SIGNATURE_HEADER, &hmac_like)]);
    assert_eq!(
        a.check_headers(&Presented::from_headers(&map)),
        Ok(Pending::Signature { key_verified: true })
    );
}

#[test]
fn unconfigured_kinds_are_ignored_and_open_mode_needs_nothing() {
    let keys_only = Authenticator::new(&[], &secrets(&["k"]), false);
    assert_eq!(
        check(
            &keys_only,
            &[(SIGNATURE_HEADER, "anything"), (API_KEY_HEADER, "k")]
        ),
        Ok(AuthMethod::ApiKey)
    );
    assert_eq!(
        check(&keys_only, &[(SIGNATURE_HEADER, "anything")]),
        Err(AuthError::Missing("an X-api-key header"))
    );
    // Malformed headers of a kind that is not configured are ignored too.
    assert_eq!(
        check(&keys_only, &[(SIGNATURE_HEADER, ""), (API_KEY_HEADER, "k")]),
        Ok(AuthMethod::ApiKey)
    );
    let open = Authenticator::new(&[], &[], true);
    assert!(open.is_open());
    assert_eq!(check(&open, &[]), Ok(AuthMethod::Unauthenticated));
    // The flag does not switch off credentials that are configured.
    let both = Authenticator::new(&[], &secrets(&["k"]), true);
    assert!(!both.is_open());
    assert!(check(&both, &[]).is_err());
}

#[test]
fn debug_output_holds_no_secret() {
    let a = auth();
    let text = format!("{a:?}");
    for secret in ["old-secret", "new-secret", "key-1", "key-2"] {
        assert!(!text.contains(secret), "{text}");
    }
    let map = headers(&[(API_KEY_HEADER, "key-1")]);
    let p = Presented::from_headers(&map);
    assert!(!format!("{p:?}").contains("key-1"));
}

#[test]
fn requiring_hmac_refuses_the_raw_secret_and_a_bare_api_key() {
    let a = auth().requiring_hmac(true);
    let hmac = sign(b"new-secret", BODY);
    assert_eq!(
        check(&a, &[("x-payload-signature", "new-secret")]),
        Err(AuthError::RawSecretRefused)
    );
    assert!(matches!(
        check(&a, &[("x-api-key", "key-1")]),
        Err(AuthError::Missing(_))
    ));
    assert_eq!(
        check(&a, &[("x-payload-signature", &hmac)]),
        Ok(AuthMethod::Hmac)
    );
    assert_eq!(
        check(
            &a,
            &[("x-api-key", "key-1"), ("x-payload-signature", &hmac)]
        ),
        Ok(AuthMethod::Hmac)
    );
    // Off (the default), the vendor's documented raw secret passes.
    assert_eq!(
        check(&auth(), &[("x-payload-signature", "new-secret")]),
        Ok(AuthMethod::SharedSecret)
    );
    assert!(
        !AuthError::RawSecretRefused
            .to_string()
            .contains("new-secret")
    );
}
