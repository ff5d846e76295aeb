//! The lean reader: a body parsed as strictly as into a `serde_json::Value`, keeping only
//! the top-level keys the bridge reads (docs/BENCHMARKS.md, "The lean event parse").

use serde_json::{Map, Value};

/// The top-level keys `read_event` looks at. `Resource` is only tested for presence.
const READ_KEYS: [&str; 15] = [
    "mkt_id",
    "ent_id",
    "branch_id",
    "ext_customer_id",
    "ext_branch_id",
    "event_datetime",
    "msg_id",
    "EventName",
    "DeduplicationId",
    "CorrelationId",
    "event_type",
    "MessageGroupId",
    "MessageDeDuplicationId",
    "MessageDeduplicationId",
    "Resource",
];

/// A body parsed as strictly as into a [`Value`] (same grammar, escapes, surrogates,
/// number range and depth limit, same errors), but keeping only the keys the bridge reads:
/// the rest is checked without being allocated. Events are mostly payload the bridge
/// never looks at (docs/BENCHMARKS.md, "The lean event parse").
pub(super) enum TopLevel {
    Object {
        object: Map<String, Value>,
        /// The first of the keys read that appeared twice.
        duplicate: Option<&'static str>,
    },
    Other(&'static str),
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> serde::de::Visitor<'de> for TopVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut object = Map::new();
        let mut duplicate = None;
        while let Some(key) = map.next_key::<Key>()? {
            let (name, value) = match key.0 {
                Some("Resource") => {
                    map.next_value::<Checked>()?;
                    ("Resource", Value::Null)
                }
                Some(name) => (name, map.next_value::<Value>()?),
                None => {
                    map.next_value::<Checked>()?;
                    continue;
                }
            };
            if object.insert(name.to_owned(), value).is_some() {
                duplicate.get_or_insert(name);
            }
        }
        Ok(TopLevel::Object { object, duplicate })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<TopLevel, A::Error> {
        CheckedVisitor.visit_seq(seq)?;
        Ok(TopLevel::Other("an array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("a string"))
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other("null"))
    }
}

/// A top-level key: which of [`READ_KEYS`] it is, if any.
struct Key(Option<&'static str>);

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(Key(READ_KEYS.iter().copied().find(|k| *k == key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, fully checked, nothing kept.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
}
