//! The layers as figment providers, each naming its values as the operator wrote them:
//! the defaults and the environment as `BRIDGE_PATH`, the file as `path (in FILE)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::Serialized;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::settings::Settings;
use super::{ConfigError, SETTINGS};

/// `BRIDGE_PATH` → `path`.
pub(super) fn key_of(name: &str) -> String {
    name.strip_prefix("BRIDGE_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// `path` → `BRIDGE_PATH`: how the defaults and the environment name a value.
fn env_name(_: &Profile, keys: &[&str]) -> String {
    format!("BRIDGE_{}", keys.join(".").to_ascii_uppercase())
}

/// A figment error as a [`ConfigError`] naming the setting. figment's own text is not
/// used: it quotes the value, which may be a secret.
pub(super) fn without_value(e: &figment::Error) -> ConfigError {
    let setting = match (&e.metadata, e.path.first()) {
        (Some(metadata), Some(_)) => metadata.interpolate(&Profile::Default, &e.path),
        (None, Some(key)) => env_name(&Profile::Default, &[key]),
        (_, None) => "configuration".to_owned(),
    };
    let problem = match &e.kind {
        Kind::InvalidType(_, expected) => format!("must be {expected}"),
        _ => "can't be read as a setting".to_owned(),
    };
    ConfigError::new(setting, problem)
}

/// The bottom layer: the defaults, named as the settings themselves.
impl Provider for Settings {
    fn metadata(&self) -> Metadata {
        Metadata::named("default").interpolater(env_name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

/// The `BRIDGE_*` variables, each value the plain text it is: figment's own `Env` would
/// read `007` as 7 or `[a]` as a list, changing secrets and error messages.
pub(super) struct Environment(Dict);

impl Environment {
    pub(super) fn read(env: impl Fn(&str) -> Option<String>) -> Self {
        Self(
            SETTINGS
                .iter()
                .filter_map(|name| Some((key_of(name), Value::from(env(name)?))))
                .collect(),
        )
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment").interpolater(env_name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// The settings of a TOML file, read with the `toml` crate so that an error never quotes
/// the file's text (it may hold a secret).
pub(super) struct TomlFile {
    path: PathBuf,
    values: Dict,
    /// Each key as the file spells it, for error messages.
    spelled: BTreeMap<String, String>,
}

/// The lists whose items are credentials, kept whole: a TOML array is their way to give
/// a value holding `,`.
const CREDENTIAL_LISTS: [&str; 2] = ["BRIDGE_SHARED_SECRETS", "BRIDGE_API_KEYS"];

impl TomlFile {
    pub(super) fn read(path: &Path) -> Result<Self, ConfigError> {
        let setting = format!("--config {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&setting, format!("can't read the file: {e}")))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(&setting, format!("is not valid TOML: {}", e.message()))
        })?;
        let mut file = Self {
            path: path.to_owned(),
            values: Dict::new(),
            spelled: BTreeMap::new(),
        };
        for (key, value) in table {
            let Some(name) = SETTINGS
                .iter()
                .find(|n| key_of(n) == key.to_ascii_lowercase())
            else {
                let known: Vec<String> = SETTINGS.iter().map(|n| key_of(n)).collect();
                return Err(ConfigError::new(
                    &setting,
                    format!("unknown setting `{key}`; known: {}", known.join(", ")),
                ));
            };
            let source = format!("{key} (in {})", path.display());
            let value = match value {
                toml::Value::String(s) => Value::from(s),
                toml::Value::Integer(i) => Value::from(i),
                toml::Value::Boolean(b) => Value::from(b),
                toml::Value::Array(items) => {
                    let items = items
                        .into_iter()
                        .map(|item| match item {
                            toml::Value::String(s) => Ok(s),
                            _ => Err(ConfigError::new(&source, "list items must be strings")),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if !CREDENTIAL_LISTS.contains(name) && items.iter().any(|s| s.contains(',')) {
                        // Other lists are read in the environment's comma-separated form,
                        // where an item holding a comma would silently become two values.
                        return Err(ConfigError::new(
                            &source,
                            "a list item contains `,`, which separates values (as in the environment variable)",
                        ));
                    }
                    Value::from(items)
                }
                _ => {
                    return Err(ConfigError::new(
                        &source,
                        "must be a string, number, boolean or list of strings",
                    ));
                }
            };
            file.spelled.insert(key_of(name), key);
            file.values.insert(key_of(name), value);
        }
        Ok(file)
    }
}

impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        let (path, spelled) = (self.path.display().to_string(), self.spelled.clone());
        Metadata::from("TOML file", self.path.as_path()).interpolater(move |_, keys| {
            let key = keys.join(".");
            format!("{} (in {path})", spelled.get(&key).unwrap_or(&key))
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret as _;

    use crate::config::DEFAULT_MAX_BUFFERED_BYTES;
    use crate::config::tests::{QUEUE, config_file, load, load_with, setting_of};
    use crate::sqs::limits::MAX_BODY_BYTES;

    #[test]
    fn environment_values_are_taken_as_the_text_they_are() {
        let c = load(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "0070000000000000"),
            (
                "BRIDGE_SHARED_SECRETS",
                r#"["a,b-kept-whole-1", "1234567890123456"]"#,
            ),
        ])
        .unwrap();
        // Figment's own parser would read these as numbers, the first without its zeros.
        assert_eq!(c.api_keys[0].expose_secret(), "0070000000000000");
        assert_eq!(c.shared_secrets[0].expose_secret(), "a,b-kept-whole-1");
        assert_eq!(c.shared_secrets[1].expose_secret(), "1234567890123456");
        let e = setting_of(&[
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "a-long-enough-api-key"),
            ("BRIDGE_WORKERS", "[1]"),
        ]);
        assert_eq!(e, "BRIDGE_WORKERS");
    }

    #[test]
    fn a_blank_value_counts_as_unset_even_over_the_file() {
        let path = config_file(
            "blank",
            &format!(
                "queue_url = \"{QUEUE}\"\napi_keys = \"a-long-enough-api-key\"\npath = \"/in\"\nworkers = 0\nlisten = \"\"\n"
            ),
        );
        let c = load_with(&path, &[("BRIDGE_PATH", ""), ("BRIDGE_WORKERS", " ")]).unwrap();
        assert_eq!(c.path, "/webhook");
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert!(c.workers >= 1);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn errors_name_the_setting_as_it_was_given() {
        let path = config_file(
            "named",
            &format!(
                "queue_url = \"{QUEUE}\"\napi_keys = \"a-long-enough-api-key\"\nWorkers = 0\n"
            ),
        );
        let e = load_with(&path, &[]).unwrap_err();
        assert_eq!(e.setting, format!("Workers (in {})", path.display()));
        assert_eq!(e.problem, "must be a whole number from 1 to 256, got `0`");
        let e = load_with(&path, &[("BRIDGE_WORKERS", "300")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BRIDGE_WORKERS: must be a whole number from 1 to 256, got `300`"
        );
        // A default is named by the setting itself, as is a blank value that gave way to it.
        let e = load_with(
            &path,
            &[
                ("BRIDGE_WORKERS", ""),
                ("BRIDGE_MAX_BODY_BYTES", "40000000"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.setting, "BRIDGE_MAX_BODY_BYTES");
        let c = load_with(
            &path,
            &[("BRIDGE_WORKERS", "2"), ("BRIDGE_MAX_BODY_BYTES", "")],
        )
        .unwrap();
        assert_eq!(c.max_body_bytes, MAX_BODY_BYTES);
        let c = load_with(
            &path,
            &[
                ("BRIDGE_WORKERS", "2"),
                ("BRIDGE_MAX_BODY_BYTES", "1000000"),
                ("BRIDGE_MAX_BUFFERED_BYTES", ""),
            ],
        )
        .unwrap();
        assert_eq!(c.max_buffered_bytes, DEFAULT_MAX_BUFFERED_BYTES);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn file_errors_never_quote_the_file() {
        let secret = "s3cr3t-in-the-file";
        let cases = [
            // Not TOML (an unterminated string).
            (
                format!("api_keys = \"{secret}\nqueue_url = 1\n"),
                "is not valid TOML",
                true,
            ),
            (
                format!("api_keys = [\"{secret}\", 1]\n"),
                "list items must be strings",
                false,
            ),
            (
                format!("api_keys = \"{secret}\"\nworkers = 1.5\n"),
                "must be a string, number, boolean or list of strings",
                false,
            ),
            (
                format!("api_keys = \"{secret}\"\npath = [\"{secret}\"]\n"),
                "must be a string, number or boolean",
                false,
            ),
        ];
        for (n, (text, problem, whole_file)) in cases.iter().enumerate() {
            let path = config_file(&format!("quote-{n}"), text);
            let e = load_with(&path, &[]).unwrap_err();
            assert!(e.problem.starts_with(problem), "{e}");
            assert!(!e.to_string().contains(secret), "{e}");
            if *whole_file {
                assert_eq!(e.setting, format!("--config {}", path.display()));
            } else {
                assert!(
                    e.setting.ends_with(&format!(" (in {})", path.display())),
                    "{e}"
                );
            }
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
        // A list for a single value: figment's refusal, without its quote of the value.
        let path = config_file("list", &format!("path = [\"{secret}\"]\n"));
        let e = load_with(&path, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "path (in {}): must be a string, number or boolean",
                path.display()
            )
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        let missing = Path::new("/nonexistent/bridge.toml");
        let e = load_with(missing, &[]).unwrap_err();
        assert_eq!(e.setting, "--config /nonexistent/bridge.toml");
        assert!(e.problem.starts_with("can't read the file: "), "{e}");
    }
}
