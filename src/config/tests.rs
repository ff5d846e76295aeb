//! The configuration's behaviour end to end: defaults, errors and warnings; helpers
//! for the tests of the layers beside their code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret as _;

use super::settings::Settings;
use super::{Config, ConfigError, DEFAULT_MAX_BUFFERED_BYTES, TlsFiles, validate};
use crate::forward::dedup::DedupMode;
use crate::sqs::limits::MAX_BODY_BYTES;

pub(super) const QUEUE: &str = "http://127.0.0.1:4566/000000000000/events.fifo";

pub(super) fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_sources(None, |name| env.get(name).cloned())
}

pub(super) fn setting_of(pairs: &[(&str, &str)]) -> String {
    load(pairs).expect_err("invalid").setting
}

#[test]
fn defaults_apply() {
    let c = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "key-aaaa-aaaa-aaaa, key-bbbb-bbbb-bbbb,"),
    ])
    .unwrap();
    assert_eq!(c.api_keys.len(), 2);
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.path, "/webhook");
    assert_eq!(c.max_body_bytes, MAX_BODY_BYTES);
    assert_eq!(c.dedup, DedupMode::Timestamp);
    assert_eq!(c.forward_timeout, Duration::from_secs(10));
    assert!(c.event_setup_id.is_none());
    assert!(c.warnings().is_empty());
}

#[test]
fn errors_name_the_setting() {
    let base = [
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
    ];
    let with = |extra: (&'static str, &'static str)| {
        let mut v = base.to_vec();
        v.push(extra);
        setting_of(&v)
    };
    assert_eq!(
        setting_of(&[("BRIDGE_API_KEYS", "a-long-enough-api-key")]),
        "BRIDGE_QUEUE_URL"
    );
    assert_eq!(
        setting_of(&[
            ("BRIDGE_QUEUE_URL", "http://h/1/q"),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key")
        ]),
        "BRIDGE_QUEUE_URL"
    );
    assert_eq!(
        setting_of(&[("BRIDGE_QUEUE_URL", QUEUE)]),
        "BRIDGE_SHARED_SECRETS/BRIDGE_API_KEYS"
    );
    assert_eq!(with(("BRIDGE_LISTEN", "8080")), "BRIDGE_LISTEN");
    assert_eq!(with(("BRIDGE_PATH", "webhook")), "BRIDGE_PATH");
    assert_eq!(with(("BRIDGE_PATH", "/healthz")), "BRIDGE_PATH");
    assert_eq!(
        with(("BRIDGE_MAX_BODY_BYTES", "2000000")),
        "BRIDGE_MAX_BODY_BYTES"
    );
    assert_eq!(with(("BRIDGE_DEDUP", "random")), "BRIDGE_DEDUP");
    assert_eq!(
        with(("BRIDGE_FORWARD_TIMEOUT_MS", "soon")),
        "BRIDGE_FORWARD_TIMEOUT_MS"
    );
    assert_eq!(
        with(("BRIDGE_EVENT_SETUP_ID", "has space")),
        "BRIDGE_EVENT_SETUP_ID"
    );
    assert_eq!(with(("BRIDGE_LOG_FORMAT", "xml")), "BRIDGE_LOG_FORMAT");
    assert_eq!(
        with(("BRIDGE_ALLOW_UNAUTHENTICATED", "maybe")),
        "BRIDGE_ALLOW_UNAUTHENTICATED"
    );
}

#[test]
fn unauthenticated_mode_must_be_asked_for_and_warns() {
    let c = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_ALLOW_UNAUTHENTICATED", "true"),
    ])
    .unwrap();
    assert!(c.warnings()[0].contains("AUTHENTICATION IS DISABLED"));
}

#[test]
fn short_credentials_stop_start_up_without_being_shown() {
    let e = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        (
            "BRIDGE_SHARED_SECRETS",
            r#"["tiny-1", "a-long-enough-random-secret"]"#,
        ),
        ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "BRIDGE_SHARED_SECRETS: 1 value(s) are shorter than 16 characters: easy to guess; use \
         long random values (e.g. `openssl rand -hex 32`)"
    );
    let e = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "fifteen-chars-k"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "BRIDGE_API_KEYS");
    assert!(!e.to_string().contains("fifteen"), "{e}");
    assert!(
        load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "sixteen-chars-ok")
        ])
        .is_ok()
    );
}

#[test]
fn a_blank_allow_list_and_a_drain_shorter_than_a_forward_are_warned_about() {
    let c = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
    ])
    .unwrap();
    assert!(
        c.operator_warnings().is_empty(),
        "defaults: 15 s + 10 s within 30 s"
    );
    let c = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
        ("BRIDGE_ALLOWED_SOURCES", " "),
        ("BRIDGE_SHUTDOWN_TIMEOUT_S", "20"),
    ])
    .unwrap();
    assert!(c.sources.allowed.is_empty());
    let warnings = c.operator_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("BRIDGE_ALLOWED_SOURCES is set but empty"));
    assert!(
        warnings[1].contains("(20 s) is shorter than"),
        "{}",
        warnings[1]
    );
    assert!(warnings[1].contains("(25000 ms)"), "{}", warnings[1]);
    assert!(c.warnings().is_empty(), "not on /readyz");
    for name in ["BRIDGE_ALLOWED_SOURCES", "BRIDGE_TRUSTED_PROXIES"] {
        let e = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
            (name, " , "),
        ])
        .unwrap_err();
        assert_eq!(e.setting, name);
        assert!(e.problem.starts_with("names no address"), "{e}");
    }
}

#[test]
fn the_buffer_budget_must_hold_the_largest_body() {
    let with = with_defaults;
    assert_eq!(
        with(&[]).unwrap().max_buffered_bytes,
        DEFAULT_MAX_BUFFERED_BYTES
    );
    let e = with(&[("BRIDGE_MAX_BUFFERED_BYTES", "65536")]).unwrap_err();
    assert_eq!(e.setting, "BRIDGE_MAX_BUFFERED_BYTES");
    assert!(
        e.problem.contains("less than twice BRIDGE_MAX_BODY_BYTES"),
        "{e}"
    );
    let e = with(&[
        ("BRIDGE_MAX_BUFFERED_BYTES", "65535"),
        ("BRIDGE_MAX_BODY_BYTES", "32768"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "BRIDGE_MAX_BUFFERED_BYTES");
    let c = with(&[
        ("BRIDGE_MAX_BUFFERED_BYTES", "65536"),
        ("BRIDGE_MAX_BODY_BYTES", "32768"),
    ])
    .unwrap();
    assert_eq!(c.max_buffered_bytes, 65536);
}

#[test]
fn a_secret_holding_a_comma_is_never_split_into_shorter_credentials() {
    let with = |value: &str| {
        load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_SHARED_SECRETS", value),
        ])
    };
    // Split plainly, `Xk9q2mPz,7` would make `7` a valid credential.
    let e = with("Xk9q2mPz,7").unwrap_err();
    assert!(e.problem.contains("JSON array"), "{e}");
    assert!(!e.to_string().contains("Xk9q2mPz"), "{e}");
    let c = with(r#"["Xk9q2mPz,7-and-more", "second-secret-value"]"#).unwrap();
    assert_eq!(c.shared_secrets.len(), 2);
    assert_eq!(c.shared_secrets[0].expose_secret(), "Xk9q2mPz,7-and-more");
    let e = with(r#"{"hmac": "Xk9q2mPz"}"#).unwrap_err();
    assert!(e.problem.contains("JSON object"), "{e}");
    assert!(!e.to_string().contains("Xk9q2mPz"), "{e}");
    assert!(with(r#"["unterminated"#).is_err());
    // Rotation lists of ordinary values still load.
    assert_eq!(
        with("first-shared-secret,second-shared-secret")
            .unwrap()
            .shared_secrets
            .len(),
        2
    );
}

#[test]
fn errors_and_debug_never_show_secrets() {
    let c = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_SHARED_SECRETS", "s3cr3t-value-long"),
    ])
    .unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-value-long"));
    let e = load(&[("BRIDGE_SHARED_SECRETS", "s3cr3t-value-long")]).unwrap_err();
    assert!(!e.to_string().contains("s3cr3t-value-long"));
}

#[test]
fn file_settings_are_overridden_by_the_environment() {
    let dir = std::env::temp_dir().join(format!("bridge-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.toml");
    std::fs::write(
        &path,
        format!("queue_url = \"{QUEUE}\"\napi_keys = [\"first-long-api-key\", \"second-long-api-key\"]\nforward_timeout_ms = 2000\npath = \"/in\"\n"),
    )
    .unwrap();
    let env: HashMap<&str, &str> = [("BRIDGE_PATH", "/hook")].into();
    let c = Config::from_sources(Some(&path), |n| env.get(n).map(|v| (*v).to_owned())).unwrap();
    assert_eq!(c.api_keys.len(), 2);
    assert_eq!(c.forward_timeout, Duration::from_secs(2));
    assert_eq!(c.path, "/hook");

    // Credentials in a TOML list stay whole, commas and all; other lists can't hold one.
    std::fs::write(
        &path,
        format!("queue_url = \"{QUEUE}\"\nshared_secrets = [\"a,b-kept-whole-1\", \"another-long-secret\"]\n"),
    )
    .unwrap();
    let c = Config::from_sources(Some(&path), |_| None).unwrap();
    assert_eq!(c.shared_secrets[0].expose_secret(), "a,b-kept-whole-1");
    assert_eq!(c.shared_secrets.len(), 2);
    std::fs::write(
        &path,
        format!(
            "queue_url = \"{QUEUE}\"\napi_keys = \"a-long-enough-api-key\"\nallowed_sources = [\"10.0.0.1,10.0.0.2\"]\n"
        ),
    )
    .unwrap();
    let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
    assert!(e.problem.contains("contains `,`"), "{e}");
    std::fs::write(&path, "queue_url = \"x\"\nqueue = 1\n").unwrap();
    let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
    assert!(e.problem.contains("unknown setting `queue`"), "{e}");
    std::fs::write(
        &path,
        format!("queue_url = \"{QUEUE}\"\napi_keys = \"a-long-enough-api-key\"\nworkers = 0\n"),
    )
    .unwrap();
    let e = Config::from_sources(Some(&path), |_| None).unwrap_err();
    assert!(e.setting.starts_with("workers (in "), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file of settings, in a folder of this test's own.
pub(super) fn config_file(test: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-config-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.toml");
    std::fs::write(&path, contents).unwrap();
    path
}

/// [`load`] with a queue and an API key, and `pairs` on top.
fn with_defaults(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut all = vec![
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
    ];
    all.extend_from_slice(pairs);
    load(&all)
}

pub(super) fn load_with(file: &Path, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<&str, &str> = pairs.iter().copied().collect();
    Config::from_sources(Some(file), |n| env.get(n).map(|v| (*v).to_owned()))
}

#[test]
fn tls_files_are_named_not_loaded() {
    let with = with_defaults;
    let c = with(&[
        ("BRIDGE_TLS_CERT", " /nonexistent/cert.pem "),
        ("BRIDGE_TLS_KEY", "/nonexistent/key.pem"),
    ])
    .unwrap();
    assert_eq!(
        c.tls,
        Some(TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            reload: Duration::from_mins(1),
        })
    );
    assert!(with(&[]).unwrap().tls.is_none());
    let e = with(&[("BRIDGE_TLS_CERT", "/c.pem")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "BRIDGE_TLS_KEY: is required with BRIDGE_TLS_CERT"
    );
    let e = with(&[("BRIDGE_TLS_KEY", "/k.pem")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "BRIDGE_TLS_CERT: is required with BRIDGE_TLS_KEY"
    );
}

#[test]
fn the_listener_reads_only_its_own_settings() {
    let listener = |pairs: &[(&str, &str)]| {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        let layers = Settings::load_listener(None, |n| env.get(n).map(|v| (*v).to_owned()))?;
        validate::listener(&layers)
    };
    // No queue, no credential, TLS files that don't exist: still a listener.
    let l = listener(&[
        ("BRIDGE_TLS_CERT", "/nonexistent/cert.pem"),
        ("BRIDGE_LISTEN", "127.0.0.1:9"),
    ])
    .unwrap();
    assert_eq!(l.addr.to_string(), "127.0.0.1:9");
    assert!(l.tls);
    let l = listener(&[("BRIDGE_TLS_CERT", " ")]).unwrap();
    assert_eq!(l.addr.to_string(), "0.0.0.0:8080");
    assert!(!l.tls);
    let e = listener(&[("BRIDGE_LISTEN", "not-an-address")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "BRIDGE_LISTEN: must be an address and port such as 0.0.0.0:8080, got `not-an-address`"
    );
    // A file `serve` would refuse (a list where one value goes) still gives the listener.
    let dir = std::env::temp_dir().join(format!("bridge-listener-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:7\"\npath = [\"/a\"]\n").unwrap();
    assert!(Settings::load(Some(&path), |_| None).is_err());
    let layers = Settings::load_listener(Some(&path), |_| None).unwrap();
    assert_eq!(
        validate::listener(&layers).unwrap().addr.to_string(),
        "127.0.0.1:7"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn requiring_hmac_needs_a_shared_secret() {
    let e = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
        ("BRIDGE_REQUIRE_HMAC", "true"),
    ])
    .unwrap_err();
    assert_eq!(e.setting, "BRIDGE_REQUIRE_HMAC");
    let c = load(&[
        ("BRIDGE_QUEUE_URL", QUEUE),
        ("BRIDGE_SHARED_SECRETS", "a-long-enough-secret"),
        ("BRIDGE_REQUIRE_HMAC", "yes"),
    ])
    .unwrap();
    assert!(c.require_hmac);
    assert!(
        !load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key")
        ])
        .unwrap()
        .require_hmac
    );
}

#[test]
fn an_allow_list_without_a_metrics_listener_is_warned_about() {
    let warned = |pairs: &[(&str, &str)]| {
        with_defaults(pairs)
            .unwrap()
            .operator_warnings()
            .iter()
            .any(|w| w.contains("scraper elsewhere gets 403"))
    };
    assert!(warned(&[("BRIDGE_ALLOWED_SOURCES", "52.200.5.50")]));
    assert!(!warned(&[
        ("BRIDGE_ALLOWED_SOURCES", "52.200.5.50"),
        ("BRIDGE_METRICS_LISTEN", "127.0.0.1:9090"),
    ]));
    assert!(!warned(&[]));
}
