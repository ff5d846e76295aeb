//! The event memory's settings (`BRIDGE_EVENT_MEMORY*`): which memory, how long it keeps
//! events, how many the process may hold, and what happens when the table can't answer.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::settings::Layered;
use super::validate::number;
use super::{ConfigError, MemoryKind, MemorySettings, OnError};
use crate::forward::dedup::SQS_DEDUP_WINDOW;

/// Records the process holds by default with `local` and a TTL: at a few hundred bytes
/// each, a few dozen MiB at the bound (README, "Exactly once for hours").
const DEFAULT_MAX_EVENTS: NonZeroUsize = NonZeroUsize::new(100_000).unwrap();

/// A table is required with `dynamodb`. With `local`, a TTL or a bound turns on the
/// records in the process; without either, the deduplicator's five minutes alone
/// (today's behaviour). The TTL is at least SQS's five minutes, at most a year.
pub(super) fn event_memory(layers: &Layered) -> Result<MemorySettings, ConfigError> {
    let (value, source) = layers.or_default("BRIDGE_EVENT_MEMORY", |s| &s.event_memory);
    let table = layers.given("BRIDGE_EVENT_MEMORY_TABLE", |s| {
        s.event_memory_table.as_ref()
    });
    let ttl = layers
        .given("BRIDGE_EVENT_MEMORY_TTL", |s| s.event_memory_ttl.as_ref())
        .map(|given| duration(&given))
        .transpose()?;
    let max_events = layers.given("BRIDGE_EVENT_MEMORY_MAX_EVENTS", |s| {
        s.event_memory_max_events.as_ref()
    });
    let kind = match (value.as_str(), table) {
        ("local", Some((_, source))) => {
            return Err(ConfigError::new(
                source,
                "is set, but BRIDGE_EVENT_MEMORY is `local`; set it to `dynamodb` to use the table",
            ));
        }
        ("local", None) => match (&max_events, ttl) {
            (None, None) => MemoryKind::Local,
            (Some(given), _) => MemoryKind::Process {
                max_events: bound(given)?,
            },
            (None, Some(_)) => MemoryKind::Process {
                max_events: DEFAULT_MAX_EVENTS,
            },
        },
        ("dynamodb", Some((table, source))) => {
            if let Some((_, source)) = max_events {
                return Err(ConfigError::new(
                    source,
                    "applies to BRIDGE_EVENT_MEMORY=local only (the table's records end with \
                     their TTL)",
                ));
            }
            let valid = (3..=255).contains(&table.len())
                && table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err(ConfigError::new(
                    source,
                    "must be a DynamoDB table name: 3 to 255 of A-Z, a-z, 0-9, `_`, `-`, `.`",
                ));
            }
            MemoryKind::DynamoDb { table }
        }
        ("dynamodb", None) => {
            return Err(ConfigError::new(
                "BRIDGE_EVENT_MEMORY_TABLE",
                "is required with BRIDGE_EVENT_MEMORY=dynamodb",
            ));
        }
        (other, _) => {
            return Err(ConfigError::new(
                source,
                format!("must be `local` or `dynamodb`, got `{other}`"),
            ));
        }
    };
    let ttl = ttl.unwrap_or(match kind {
        MemoryKind::DynamoDb { .. } => Duration::from_hours(24),
        MemoryKind::Local | MemoryKind::Process { .. } => SQS_DEDUP_WINDOW,
    });
    let (value, source) =
        layers.or_default("BRIDGE_EVENT_MEMORY_ON_ERROR", |s| &s.event_memory_on_error);
    let on_error = match value.as_str() {
        "refuse" => OnError::Refuse,
        "forward" => OnError::Forward,
        other => {
            return Err(ConfigError::new(
                source,
                format!("must be `refuse` or `forward`, got `{other}`"),
            ));
        }
    };
    Ok(MemorySettings {
        kind,
        ttl,
        on_error,
    })
}

fn duration((text, source): &(String, String)) -> Result<Duration, ConfigError> {
    let ttl = humantime::parse_duration(text).map_err(|_| {
        ConfigError::new(
            source,
            format!("must be a duration such as `24h` or `90m`, got `{text}`"),
        )
    })?;
    if ttl < SQS_DEDUP_WINDOW || ttl > Duration::from_hours(24 * 366) {
        return Err(ConfigError::new(
            source,
            "must be between 5m (SQS's own window) and 366d",
        ));
    }
    Ok(ttl)
}

fn bound(given: &(String, String)) -> Result<NonZeroUsize, ConfigError> {
    let max = number(given, 1, 10_000_000)?;
    Ok(NonZeroUsize::new(max).unwrap_or(NonZeroUsize::MIN))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{QUEUE, load, setting_of};
    use crate::memory::{MemoryKind, OnError};

    #[test]
    fn the_event_memory_is_local_unless_a_table_is_named() {
        let base = [
            ("BRIDGE_QUEUE_URL", QUEUE),
            ("BRIDGE_API_KEYS", "key-aaaa-aaaa-aaaa"),
        ];
        let local = load(&base).unwrap().event_memory;
        assert_eq!(local.kind, MemoryKind::Local);
        assert_eq!(local.on_error, OnError::Refuse);

        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            pairs
        };
        let shared = load(&with(&[
            ("BRIDGE_EVENT_MEMORY", "dynamodb"),
            ("BRIDGE_EVENT_MEMORY_TABLE", "bridge-events"),
            ("BRIDGE_EVENT_MEMORY_TTL", "90m"),
            ("BRIDGE_EVENT_MEMORY_ON_ERROR", "forward"),
        ]))
        .unwrap()
        .event_memory;
        assert_eq!(
            shared.kind,
            MemoryKind::DynamoDb {
                table: "bridge-events".into()
            }
        );
        assert_eq!(shared.ttl, std::time::Duration::from_mins(90));
        assert_eq!(shared.on_error, OnError::Forward);
        let default_ttl = load(&with(&[
            ("BRIDGE_EVENT_MEMORY", "dynamodb"),
            ("BRIDGE_EVENT_MEMORY_TABLE", "bridge-events"),
        ]))
        .unwrap()
        .event_memory
        .ttl;
        assert_eq!(default_ttl, std::time::Duration::from_hours(24));

        // `local` with a TTL or a bound: records in the process, 5 minutes by default.
        let timed = load(&with(&[("BRIDGE_EVENT_MEMORY_TTL", "2h")]))
            .unwrap()
            .event_memory;
        let bounded = load(&with(&[("BRIDGE_EVENT_MEMORY_MAX_EVENTS", "50")]))
            .unwrap()
            .event_memory;
        let events = |n| MemoryKind::Process {
            max_events: std::num::NonZeroUsize::new(n).unwrap(),
        };
        assert_eq!(
            (timed.kind, timed.ttl),
            (events(100_000), std::time::Duration::from_hours(2))
        );
        assert_eq!(
            (bounded.kind, bounded.ttl),
            (events(50), std::time::Duration::from_mins(5))
        );

        for (bad, setting) in [
            (
                vec![("BRIDGE_EVENT_MEMORY", "redis")],
                "BRIDGE_EVENT_MEMORY",
            ),
            (
                vec![("BRIDGE_EVENT_MEMORY", "dynamodb")],
                "BRIDGE_EVENT_MEMORY_TABLE",
            ),
            (
                vec![("BRIDGE_EVENT_MEMORY_TABLE", "t-1")],
                "BRIDGE_EVENT_MEMORY_TABLE",
            ),
            (
                vec![
                    ("BRIDGE_EVENT_MEMORY", "dynamodb"),
                    ("BRIDGE_EVENT_MEMORY_TABLE", "no spaces"),
                ],
                "BRIDGE_EVENT_MEMORY_TABLE",
            ),
            (
                vec![
                    ("BRIDGE_EVENT_MEMORY", "dynamodb"),
                    ("BRIDGE_EVENT_MEMORY_TABLE", "t-1"),
                    ("BRIDGE_EVENT_MEMORY_TTL", "1m"),
                ],
                "BRIDGE_EVENT_MEMORY_TTL",
            ),
            (
                vec![("BRIDGE_EVENT_MEMORY_TTL", "1 fortnight")],
                "BRIDGE_EVENT_MEMORY_TTL",
            ),
            (
                vec![("BRIDGE_EVENT_MEMORY_MAX_EVENTS", "0")],
                "BRIDGE_EVENT_MEMORY_MAX_EVENTS",
            ),
            (
                vec![("BRIDGE_EVENT_MEMORY_MAX_EVENTS", "lots")],
                "BRIDGE_EVENT_MEMORY_MAX_EVENTS",
            ),
            (
                vec![
                    ("BRIDGE_EVENT_MEMORY", "dynamodb"),
                    ("BRIDGE_EVENT_MEMORY_TABLE", "t-1"),
                    ("BRIDGE_EVENT_MEMORY_MAX_EVENTS", "1000"),
                ],
                "BRIDGE_EVENT_MEMORY_MAX_EVENTS",
            ),
            (
                vec![("BRIDGE_EVENT_MEMORY_ON_ERROR", "ignore")],
                "BRIDGE_EVENT_MEMORY_ON_ERROR",
            ),
        ] {
            assert_eq!(setting_of(&with(&bad)), setting, "{bad:?}");
        }
    }
}
