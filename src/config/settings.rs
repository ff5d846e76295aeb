//! Every setting in one struct, [`Settings`], with its default, and its loading from
//! the layers (see `sources`): the defaults, the TOML file, the environment, each over
//! the one before. figment merges them and remembers which layer gave each value, so
//! that an error can name the setting as the operator wrote it: `BRIDGE_PATH`, or
//! `path (in /etc/bridge.toml)`.
//!
//! Values stay text here, as the environment gives them; `validate` parses them, so a
//! value gets the same checks and messages whichever layer it came from.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use figment::{Figment, Profile};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::sources::{Environment, TomlFile, key_of, without_value};
use super::{ConfigError, DEFAULT_MAX_BUFFERED_BYTES};
use crate::sqs::limits::MAX_BODY_BYTES;

/// One value: text from the environment, or a TOML string, integer or boolean, kept as
/// the text the environment would give.
#[derive(Clone)]
pub(super) struct Scalar(String);

impl Scalar {
    fn trimmed(&self) -> &str {
        self.0.trim()
    }
}

impl<T: fmt::Display> From<T> for Scalar {
    fn from(value: T) -> Self {
        Self(value.to_string())
    }
}

/// A list: one text (comma-separated; for credentials also a JSON array), or a TOML
/// array of strings, whose items stay whole.
#[derive(Clone)]
pub(super) enum List {
    Text(String),
    Items(Vec<String>),
}

impl List {
    /// The environment's form: items joined with `,` (the file has refused items that
    /// hold one, except in credential lists, which are read from [`List::Items`]).
    pub(super) fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Text(text) => Cow::Borrowed(text),
            Self::Items(items) => Cow::Owned(items.join(",")),
        }
    }
}

/// Every setting, by its file key (its variable's name without `BRIDGE_`, lower case),
/// in the order of [`SETTINGS`](super::SETTINGS). `None`: no default.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Settings {
    /// The FIFO queue's URL; required.
    pub queue_url: Option<Scalar>,
    /// Gives events without a `MessageGroupId` the group `EventSetup_<id>`.
    pub event_setup_id: Option<Scalar>,
    /// How those events are grouped within it.
    pub group_by: Scalar,
    /// HMAC secrets; several allow rotation.
    pub shared_secrets: Option<List>,
    /// API keys; several allow rotation.
    pub api_keys: Option<List>,
    /// Start without any credential (local use only).
    pub allow_unauthenticated: Scalar,
    /// Accept only HMAC-signed requests.
    pub require_hmac: Scalar,
    /// The webhook's address and port.
    pub listen: Scalar,
    /// The webhook's URL path.
    pub path: Scalar,
    /// Largest body accepted.
    pub max_body_bytes: Scalar,
    /// How deduplication ids are chosen.
    pub dedup: Scalar,
    /// Time SQS gets for one event, retries included.
    pub forward_timeout_ms: Scalar,
    /// `text` or `json` log lines.
    pub log_format: Scalar,
    /// Time in-flight forwards get after SIGTERM.
    pub shutdown_timeout_s: Scalar,
    /// HTTP worker threads.
    pub workers: Scalar,
    /// Forwards at once.
    pub max_in_flight: Scalar,
    /// Bytes of bodies held at once.
    pub max_buffered_bytes: Scalar,
    /// Open connections in all.
    pub max_connections: Scalar,
    /// Open connections per source address.
    pub max_connections_per_source: Scalar,
    /// Time a client gets to send its body.
    pub body_read_timeout_ms: Scalar,
    /// How long one `/readyz` answer is reused.
    pub ready_cache_ms: Scalar,
    /// Coalesce forwards into `SendMessageBatch` calls.
    pub batch: Scalar,
    /// Batch calls in flight at once.
    pub batch_concurrency: Scalar,
    /// Serve `/metrics` on this address instead.
    pub metrics_listen: Option<Scalar>,
    /// IPs/CIDRs allowed to call; unset: all.
    pub allowed_sources: Option<List>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<List>,
    /// PEM certificate chain, for HTTPS.
    pub tls_cert: Option<Scalar>,
    /// PEM private key, for HTTPS.
    pub tls_key: Option<Scalar>,
    /// How often (at most) the TLS files are looked at again.
    pub tls_reload_s: Scalar,
    /// Keep events SQS can't take on disk here; unset: they get `503`.
    pub spool_dir: Option<Scalar>,
    /// Most bytes the spool holds.
    pub spool_max_bytes: Scalar,
    /// How often parts of processes that are gone are looked for.
    pub spool_adopt_interval_s: Scalar,
    /// `local` or `dynamodb`.
    pub event_memory: Scalar,
    /// The DynamoDB table, with `dynamodb`.
    pub event_memory_table: Option<Scalar>,
    /// How long events are remembered (default 24 h with `dynamodb`, 5 min with `local`).
    pub event_memory_ttl: Option<Scalar>,
    /// Most events remembered in the process (`local` with a TTL; default 100,000).
    pub event_memory_max_events: Option<Scalar>,
    /// `refuse` or `forward` when the memory can't be reached.
    pub event_memory_on_error: Scalar,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            queue_url: None,
            event_setup_id: None,
            group_by: "event-setup".into(),
            shared_secrets: None,
            api_keys: None,
            allow_unauthenticated: false.into(),
            require_hmac: false.into(),
            listen: "0.0.0.0:8080".into(),
            path: "/webhook".into(),
            max_body_bytes: MAX_BODY_BYTES.into(),
            dedup: "timestamp".into(),
            forward_timeout_ms: 10_000.into(),
            log_format: "text".into(),
            shutdown_timeout_s: 30.into(),
            // One per CPU: found at start-up, so the README gives the rule, not a value.
            workers: std::thread::available_parallelism()
                .map_or(2, std::num::NonZero::get)
                .into(),
            max_in_flight: 1024.into(),
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES.into(),
            max_connections: 2048.into(),
            max_connections_per_source: 1024.into(),
            body_read_timeout_ms: 15_000.into(),
            ready_cache_ms: 1000.into(),
            batch: true.into(),
            batch_concurrency: 32.into(),
            metrics_listen: None,
            allowed_sources: None,
            trusted_proxies: None,
            tls_cert: None,
            tls_key: None,
            tls_reload_s: 60.into(),
            spool_dir: None,
            spool_max_bytes: (1u64 << 30).into(),
            spool_adopt_interval_s: 10.into(),
            event_memory: "local".into(),
            event_memory_table: None,
            event_memory_ttl: None,
            event_memory_max_events: None,
            event_memory_on_error: "refuse".into(),
        }
    }
}

/// The settings as layered, their defaults, and figment's record of where each came from.
pub(super) struct Layered {
    pub settings: Settings,
    defaults: Settings,
    figment: Figment,
}

impl Settings {
    /// Defaults, then the file, then the environment (`env` reads one variable).
    pub(super) fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Layered, ConfigError> {
        let (defaults, figment) = Self::layers(file, env)?;
        let settings = figment.extract().map_err(|e| without_value(&e))?;
        Ok(Layered {
            settings,
            defaults,
            figment,
        })
    }

    /// [`Settings::load`] reading only the listener settings (`listen`, `tls_cert`): a
    /// value another setting can't take doesn't stop `healthcheck` (see
    /// [`Listener`](super::Listener)).
    pub(super) fn load_listener(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Layered, ConfigError> {
        let (defaults, figment) = Self::layers(file, env)?;
        let read = |key: &str| match figment.find_value(key) {
            Ok(value) => value
                .deserialize::<Option<Scalar>>()
                .map_err(|e| without_value(&e.with_path(key))),
            Err(_) => Ok(None),
        };
        let settings = Self {
            listen: read("listen")?.unwrap_or_else(|| defaults.listen.clone()),
            tls_cert: read("tls_cert")?,
            ..defaults.clone()
        };
        Ok(Layered {
            settings,
            defaults,
            figment,
        })
    }

    fn layers(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, Figment), ConfigError> {
        let defaults = Self::default();
        let mut figment = Figment::from(defaults.clone());
        if let Some(path) = file {
            figment = figment.merge(TomlFile::read(path)?);
        }
        Ok((defaults, figment.merge(Environment::read(env))))
    }
}

impl Layered {
    /// How the operator gave `name`'s value: `BRIDGE_X` from the environment (or by
    /// default), `x (in FILE)` from the file.
    fn source(&self, name: &str) -> String {
        let key = key_of(name);
        self.figment.find_metadata(&key).map_or_else(
            || name.to_owned(),
            |m| m.interpolate(&Profile::Default, &[key]),
        )
    }

    /// A value, trimmed, and where it came from; `None` when unset or blank (a blank
    /// value, even over a file's, counts as unset).
    pub(super) fn given(
        &self,
        name: &str,
        field: impl Fn(&Settings) -> Option<&Scalar>,
    ) -> Option<(String, String)> {
        let value = field(&self.settings)?.trimmed();
        (!value.is_empty()).then(|| (value.to_owned(), self.source(name)))
    }

    /// As [`Layered::given`], with the default, named by the setting itself, when unset.
    pub(super) fn or_default(
        &self,
        name: &str,
        field: impl Fn(&Settings) -> &Scalar,
    ) -> (String, String) {
        self.given(name, |s| Some(field(s)))
            .unwrap_or_else(|| (field(&self.defaults).trimmed().to_owned(), name.to_owned()))
    }

    /// A list and where it came from; `None` when unset or blank.
    pub(super) fn list(
        &self,
        name: &str,
        field: impl Fn(&Settings) -> Option<&List>,
    ) -> Option<(&List, String)> {
        let list = field(&self.settings)?;
        (!list.text().trim().is_empty()).then(|| (list, self.source(name)))
    }
}

/// Reads what either layer gives for one value; a list also takes an array of strings.
/// What it expects is all an error says: never the value.
struct ValueVisitor {
    list: bool,
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = List;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.list {
            "a string, number, boolean or list of strings"
        } else {
            "a string, number or boolean"
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<List, E> {
        Ok(List::Text(v.to_owned()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<List, E> {
        Ok(List::Text(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<List, E> {
        Ok(List::Text(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<List, E> {
        Ok(List::Text(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
        if !self.list {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(List::Items(items))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(ValueVisitor { list: false })? {
            List::Text(text) => Ok(Self(text)),
            List::Items(_) => unreachable!("refused by the visitor"),
        }
    }
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor { list: true })
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for List {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => s.serialize_str(text),
            Self::Items(items) => s.collect_seq(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::value::Value;

    use super::Settings;
    use crate::config::SETTINGS;

    #[test]
    fn settings_has_a_field_for_every_setting() {
        let defaults = Value::serialize(Settings::default())
            .unwrap()
            .into_dict()
            .unwrap();
        let mut fields: Vec<String> = defaults
            .keys()
            .map(|k| format!("BRIDGE_{}", k.to_ascii_uppercase()))
            .collect();
        let mut names: Vec<String> = SETTINGS.iter().map(|n| (*n).to_owned()).collect();
        fields.sort();
        names.sort();
        assert_eq!(fields, names);
    }

    /// Defaults found at start-up, for which the README gives the rule (`CPU count`).
    const FOUND_AT_START_UP: &[&str] = &["BRIDGE_WORKERS"];

    #[test]
    fn the_readme_lists_every_setting_with_its_default() {
        const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        // `| `BRIDGE_A`, `BRIDGE_B` | default | meaning |`: names, then the default column.
        let rows: Vec<(Vec<&str>, &str)> = README
            .lines()
            .filter(|line| line.starts_with("| `BRIDGE_"))
            .map(|line| {
                let columns: Vec<&str> = line.split('|').collect();
                let names = columns[1].split('`').skip(1).step_by(2).collect();
                (names, columns[2])
            })
            .collect();
        let row = |name: &str| {
            rows.iter()
                .find(|(names, _)| names.contains(&name))
                .map(|(_, default)| *default)
        };
        for name in SETTINGS {
            assert!(row(name).is_some(), "README.md has no row for {name}");
        }
        let defaults = Value::serialize(Settings::default())
            .unwrap()
            .into_dict()
            .unwrap();
        for (key, value) in &defaults {
            let name = format!("BRIDGE_{}", key.to_ascii_uppercase());
            let Some(default) = value.as_str() else {
                assert!(matches!(value, Value::Empty(..)), "{name}: {value:?}");
                continue; // no default
            };
            if FOUND_AT_START_UP.contains(&name.as_str()) {
                continue;
            }
            let column = row(&name).unwrap();
            assert!(
                column.contains(&format!("`{default}`")),
                "README.md gives {name} the default {column:?}, but it is `{default}`"
            );
        }
    }
}
