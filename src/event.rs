//! What an incoming event is: the checks the vendor's documentation implies, and the FIFO
//! keys and routing attributes derived from it.
//!
//! The body itself is never rewritten: [`parse`] only reads it, so what reaches SQS is the
//! exact bytes the vendor sent.

use serde_json::{Map, Value};

/// SQS counts message attributes against the 1 MiB message limit. The bridge adds at most
/// two attributes whose values are capped at this length, so a fixed reserve fits them.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 512;

/// The largest message SQS accepts (body plus attributes).
pub const SQS_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// Room kept for the attributes the bridge adds: names, type names and capped values.
pub const ATTRIBUTE_RESERVE_BYTES: usize = 2_048;

/// The largest body the bridge can forward, and the default for `BRIDGE_MAX_BODY_BYTES`.
pub const MAX_BODY_BYTES: usize = SQS_MAX_MESSAGE_BYTES - ATTRIBUTE_RESERVE_BYTES;

/// Attribute names consumers can route on without parsing the body.
pub const ATTR_EVENT_ID: &str = "event_id";
pub const ATTR_EVENT_TYPE: &str = "event_type";

/// Why a string is not a valid `MessageGroupId` or `MessageDeduplicationId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FifoKeyError {
    #[error("is empty")]
    Empty,
    #[error("is not a string")]
    NotAString,
    #[error("is {0} characters long; SQS allows at most 128")]
    TooLong(usize),
    #[error("contains {0:?}; SQS allows only ASCII letters, digits and punctuation")]
    InvalidCharacter(char),
}

/// SQS's rule for both FIFO keys: 1 to 128 characters, ASCII alphanumerics and punctuation.
fn check_fifo_key(s: &str) -> Result<(), FifoKeyError> {
    if s.is_empty() {
        return Err(FifoKeyError::Empty);
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(FifoKeyError::InvalidCharacter(c));
    }
    if s.len() > 128 {
        return Err(FifoKeyError::TooLong(s.len()));
    }
    Ok(())
}

/// A `MessageGroupId` SQS will accept. Only [`MessageGroupId::parse`] and
/// [`MessageGroupId::for_event_setup`] make one, so an invalid id never reaches SQS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageGroupId(String);

impl MessageGroupId {
    pub fn parse(s: &str) -> Result<Self, FifoKeyError> {
        check_fifo_key(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The vendor's format for events of one setup: `EventSetup_<id>`.
    #[must_use]
    pub fn for_event_setup(id: &EventSetupId) -> Self {
        Self(format!("EventSetup_{}", id.0))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `MessageDeduplicationId` SQS will accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeduplicationId(String);

impl DeduplicationId {
    pub fn parse(s: &str) -> Result<Self, FifoKeyError> {
        check_fifo_key(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The Unix time in milliseconds of an id in the vendor's format, if it is one.
    #[must_use]
    pub fn unix_millis(&self) -> Option<i64> {
        if self.0.len() != "2025-02-12T14:30:45.123".len() {
            return None;
        }
        chrono::NaiveDateTime::parse_from_str(&self.0, "%Y-%m-%dT%H:%M:%S%.3f")
            .ok()
            .map(|t| t.and_utc().timestamp_millis())
    }

    /// The vendor's format, `YYYY-MM-DDTHH:MM:SS.mmm` in UTC, for a Unix time in milliseconds.
    #[must_use]
    pub fn from_unix_millis(ms: i64) -> Self {
        use chrono::{Datelike as _, Timelike as _};
        // Written out rather than through a strftime string, which is parsed on every call.
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        Self(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis()
        ))
    }

    /// A SHA-256 digest in lowercase hex: 64 characters, always valid.
    #[must_use]
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        Self(hex::encode(digest))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The WorkN Event Setup ID from configuration, checked so that `EventSetup_<id>` is a
/// valid group id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSetupId(String);

impl EventSetupId {
    pub fn parse(s: &str) -> Result<Self, FifoKeyError> {
        check_fifo_key(s)?;
        let max = 128 - "EventSetup_".len();
        if s.len() > max {
            return Err(FifoKeyError::TooLong(s.len() + "EventSetup_".len()));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Why a body can't be forwarded. Each variant becomes a `400` that names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("the body contains U+{codepoint:04X} at byte offset {offset}, which SQS refuses")]
    ForbiddenCharacter { offset: usize, codepoint: u32 },
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    #[error("the body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("`{field}` must be {expected}")]
    Field {
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "`{field}` is {len} bytes long; the bridge forwards ids and types of at most {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
    )]
    TooLong { field: &'static str, len: usize },
}

impl EventError {
    /// A stable, machine-readable code for the `error` field of the answer.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotUtf8(_) => "invalid_utf8",
            Self::ForbiddenCharacter { .. } => "forbidden_character",
            Self::Malformed(_) => "invalid_json",
            Self::NotAnObject(_) => "not_an_object",
            Self::Field { .. } => "invalid_field",
            Self::TooLong { .. } => "field_too_long",
        }
    }
}

/// Which of the vendor's two event shapes a body has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    /// WorkN events: `msg_id`, `mkt_id`, `event_datetime`, ...
    WorkN,
    /// BOLD front- and back-office events: `EventName`, `CorrelationId`, `Resource`, ...
    Bold,
    /// Neither: accepted as any JSON object.
    Other,
}

/// The event's own id, where it has one, and the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId {
    pub field: &'static str,
    pub value: String,
}

impl EventId {
    /// Whether the id names one event, and so can stand for its identity in
    /// deduplication. A `CorrelationId` does not: it may be shared by the events of one
    /// operation (a placement started and then updated), and two events given one
    /// deduplication id are one to SQS, which would drop the second. Such events are
    /// identified by their body, which a retry repeats byte for byte.
    #[must_use]
    pub fn identifies_one_event(&self) -> bool {
        self.field != "CorrelationId"
    }
}

/// What the bridge reads from a valid event. The body itself stays untouched.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub shape: EventShape,
    /// The event's own `MessageGroupId`, when it carries a valid one.
    pub group_id: Option<MessageGroupId>,
    /// The event's own `MessageDeDuplicationId`, when it carries a valid one.
    pub deduplication_id: Option<DeduplicationId>,
    /// `msg_id`, `DeduplicationId` or `CorrelationId`, in that order of preference.
    pub id: Option<EventId>,
    /// `event_type` (WorkN, an integer) or `EventName` (BOLD), as text.
    pub event_type: Option<String>,
    /// A FIFO key the event carried but that SQS would refuse; logged, then replaced.
    pub ignored_keys: Vec<(&'static str, FifoKeyError)>,
}

impl ParsedEvent {
    /// The message attributes the bridge adds, so consumers can route without parsing.
    #[must_use]
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = Vec::with_capacity(2);
        if let Some(id) = &self.id {
            attributes.push((ATTR_EVENT_ID, id.value.clone()));
        }
        if let Some(event_type) = &self.event_type {
            attributes.push((ATTR_EVENT_TYPE, event_type.clone()));
        }
        attributes
    }
}

/// SHA-256 of the raw body: the identity of an event without an id, and `content` dedup.
#[must_use]
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    sha256(body)
}

/// SHA-256 through aws-lc-rs: about 1.6× the `sha2` crate's speed on CPUs without SHA
/// extensions (docs/BENCHMARKS.md), and it runs on every request.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Checks a body and reads what the bridge needs from it.
pub fn parse(body: &[u8]) -> Result<ParsedEvent, EventError> {
    let text = std::str::from_utf8(body).map_err(|e| EventError::NotUtf8(e.valid_up_to()))?;
    parse_text(text)
}

/// [`parse`] for a body already known to be UTF-8.
pub fn parse_text(text: &str) -> Result<ParsedEvent, EventError> {
    check_sqs_characters(text.as_bytes())?;
    let top: TopLevel =
        serde_json::from_str(text).map_err(|e| EventError::Malformed(e.to_string()))?;
    match top {
        TopLevel::Object(object) => read_event(&object),
        TopLevel::Other(kind) => Err(EventError::NotAnObject(kind)),
    }
}

/// The top-level keys [`read_event`] looks at. `Resource` is only tested for presence.
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
/// never looks at, so this halves the parse cost.
enum TopLevel {
    Object(Map<String, Value>),
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
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                Some("Resource") => {
                    map.next_value::<Checked>()?;
                    object.insert("Resource".to_owned(), Value::Null);
                }
                Some(name) => {
                    object.insert(name.to_owned(), map.next_value::<Value>()?);
                }
                None => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(TopLevel::Object(object))
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

/// SQS accepts `#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF`. In valid UTF-8
/// (no surrogates) that leaves the C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF.
fn check_sqs_characters(bytes: &[u8]) -> Result<(), EventError> {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            return Err(EventError::ForbiddenCharacter {
                offset: i,
                codepoint: u32::from(b),
            });
        }
        // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
        if b == 0xEF
            && bytes.get(i + 1) == Some(&0xBF)
            && let Some(&last @ (0xBE | 0xBF)) = bytes.get(i + 2)
        {
            return Err(EventError::ForbiddenCharacter {
                offset: i,
                codepoint: 0xFFC0 | u32::from(last & 0x3F),
            });
        }
        i += 1;
    }
    Ok(())
}

/// Whether a decoded string may travel as an SQS attribute value.
fn sqs_allows(s: &str) -> bool {
    s.chars().all(|c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

/// A field's value, with JSON `null` read as absent: the vendor marks the enterprise and
/// branch fields as present only "if there is" one.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

/// A whole number, as JSON Schema counts one: `4` and `4.0` both are.
fn integral(n: &serde_json::Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        return Some(n.to_string());
    }
    let f = n.as_f64()?;
    #[allow(clippy::cast_possible_truncation)] // checked whole and in range just before
    (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| (f as i64).to_string())
}

fn integer(object: &Map<String, Value>, name: &'static str) -> Result<(), EventError> {
    match field(object, name) {
        None => Ok(()),
        Some(Value::Number(n)) if integral(n).is_some() => Ok(()),
        Some(_) => Err(EventError::Field {
            field: name,
            expected: "an integer",
        }),
    }
}

fn string<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    non_empty: bool,
) -> Result<Option<&'a str>, EventError> {
    match field(object, name) {
        None => Ok(None),
        Some(Value::String(s)) if !(non_empty && s.is_empty()) => Ok(Some(s)),
        Some(_) => Err(EventError::Field {
            field: name,
            expected: if non_empty {
                "a non-empty string"
            } else {
                "a string"
            },
        }),
    }
}

/// A value that will travel as a message attribute: bounded, and in SQS's character set.
fn attribute_value(name: &'static str, value: &str) -> Result<String, EventError> {
    if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
        return Err(EventError::TooLong {
            field: name,
            len: value.len(),
        });
    }
    if !sqs_allows(value) {
        return Err(EventError::Field {
            field: name,
            expected: "free of characters SQS refuses (control characters, U+FFFE, U+FFFF)",
        });
    }
    Ok(value.to_owned())
}

fn read_event(object: &Map<String, Value>) -> Result<ParsedEvent, EventError> {
    // WorkN common parameters, checked where present.
    integer(object, "mkt_id")?;
    integer(object, "ent_id")?;
    integer(object, "branch_id")?;
    string(object, "ext_customer_id", false)?;
    string(object, "ext_branch_id", false)?;
    if let Some(when) = string(object, "event_datetime", false)? {
        let valid = when.len() == 19
            && chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%S").is_ok();
        if !valid {
            return Err(EventError::Field {
                field: "event_datetime",
                expected: "a UTC date and time formatted YYYY-MM-DDTHH:MM:SS",
            });
        }
    }
    let msg_id = string(object, "msg_id", true)?;

    // BOLD fields that feed the id and type.
    let event_name = string(object, "EventName", true)?;
    let dedup_field = string(object, "DeduplicationId", true)?;
    let correlation_id = string(object, "CorrelationId", true)?;

    let id = [
        ("msg_id", msg_id),
        ("DeduplicationId", dedup_field),
        ("CorrelationId", correlation_id),
    ]
    .into_iter()
    .find_map(|(name, value)| value.map(|v| (name, v)))
    .map(|(field, value)| attribute_value(field, value).map(|value| EventId { field, value }))
    .transpose()?;

    let event_type = match field(object, "event_type") {
        None => event_name
            .map(|name| attribute_value("EventName", name))
            .transpose()?,
        Some(Value::Number(n)) if integral(n).is_some() => integral(n),
        Some(Value::String(s)) if !s.is_empty() => Some(attribute_value("event_type", s)?),
        Some(_) => {
            return Err(EventError::Field {
                field: "event_type",
                expected: "an integer (or a non-empty string)",
            });
        }
    };

    let mut ignored_keys = Vec::new();
    let group_id = own_key(
        object,
        &["MessageGroupId"],
        MessageGroupId::parse,
        &mut ignored_keys,
    );
    let deduplication_id = own_key(
        object,
        &["MessageDeDuplicationId", "MessageDeduplicationId"],
        DeduplicationId::parse,
        &mut ignored_keys,
    );

    let shape = if msg_id.is_some() || object.contains_key("mkt_id") {
        EventShape::WorkN
    } else if event_name.is_some() || object.contains_key("Resource") {
        EventShape::Bold
    } else {
        EventShape::Other
    };

    Ok(ParsedEvent {
        shape,
        group_id,
        deduplication_id,
        id,
        event_type,
        ignored_keys,
    })
}

/// Reads a FIFO key the event carries, under the first of its spellings that holds a
/// valid one. Invalid ones are noted and ignored: without a valid one the bridge derives
/// the key itself, as for an event without one.
fn own_key<T>(
    object: &Map<String, Value>,
    names: &[&'static str],
    parse: fn(&str) -> Result<T, FifoKeyError>,
    ignored: &mut Vec<(&'static str, FifoKeyError)>,
) -> Option<T> {
    names.iter().find_map(|name| {
        let parsed = match field(object, name)? {
            Value::String(s) => parse(s),
            _ => Err(FifoKeyError::NotAString),
        };
        parsed.map_err(|e| ignored.push((name, e))).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> ParsedEvent {
        parse(body.as_bytes()).expect("valid event")
    }

    /// The reference: the whole body into a `Value`, as before the lean top-level reader.
    fn parse_via_value(text: &str) -> Result<ParsedEvent, EventError> {
        fn json_kind(value: &Value) -> &'static str {
            match value {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        }
        check_sqs_characters(text.as_bytes())?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| EventError::Malformed(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(EventError::NotAnObject(json_kind(&value)));
        };
        read_event(&object)
    }

    #[test]
    fn the_lean_reader_agrees_with_a_full_parse() {
        let mut bodies: Vec<String> = [
            r#"{"msg_id":"a","event_type":5,"mkt_id":1.0,"x":{"deep":[1,2,{"y":null}]}}"#,
            r#"{"msg_id":"a","msg_id":"b","EventName":"e","Resource":{"Id":1}}"#,
            r#"{"Resource":null,"EventName":"x","DeduplicationId":"d","CorrelationId":"c"}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":"\ud83d\ude00","msg_id":"\u00e9"}"#,
            r#"{"x":1e400}"#,
            r#"{"x":-0,"y":18446744073709551616,"z":[true,false,null]}"#,
            r#"{"x":"\q"}"#,
            r#"{"x":[1,2,]}"#,
            r#"{"x":1} trailing"#,
            r#"{"mkt_id":"12"}"#,
            r#"{"MessageGroupId":"g 1","MessageDeduplicationId":"ok"}"#,
            r#"{"event_type":null,"msg_id":null}"#,
            r#"[1,{"a":2}]"#,
            r#""text""#,
            "12",
            "true",
            "null",
            "",
            "{",
            r#"{"a":"#,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        bodies.push(format!("{}{}", "[".repeat(200), "]".repeat(200)));
        bodies.push(format!("{{\"x\":{}1{}}}", "[".repeat(126), "]".repeat(126)));
        bodies.push(format!("{{\"x\":{}1{}}}", "[".repeat(127), "]".repeat(127)));
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        for entry in std::fs::read_dir(corpus).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            if let Ok(text) = String::from_utf8(bytes) {
                bodies.push(text);
            }
        }
        for body in &bodies {
            assert_eq!(
                format!("{:?}", parse_text(body)),
                format!("{:?}", parse_via_value(body)),
                "{body}"
            );
        }
    }

    fn err(body: &[u8]) -> EventError {
        parse(body).expect_err("invalid event")
    }

    #[test]
    fn fifo_keys_follow_sqs_rules() {
        assert!(MessageGroupId::parse("EventSetup_42").is_ok());
        assert_eq!(MessageGroupId::parse(""), Err(FifoKeyError::Empty));
        assert_eq!(
            MessageGroupId::parse("a b"),
            Err(FifoKeyError::InvalidCharacter(' '))
        );
        assert_eq!(
            DeduplicationId::parse("é"),
            Err(FifoKeyError::InvalidCharacter('é'))
        );
        assert!(DeduplicationId::parse(&"x".repeat(128)).is_ok());
        assert_eq!(
            DeduplicationId::parse(&"x".repeat(129)),
            Err(FifoKeyError::TooLong(129))
        );
        assert!(DeduplicationId::parse(r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##).is_ok());
        assert!(EventSetupId::parse(&"1".repeat(117)).is_ok());
        assert!(EventSetupId::parse(&"1".repeat(118)).is_err());
    }

    #[test]
    fn timestamp_ids_use_the_vendor_format() {
        // 2025-02-12T14:30:45.123Z
        let id = DeduplicationId::from_unix_millis(1_739_370_645_123);
        assert_eq!(id.as_str(), "2025-02-12T14:30:45.123");
        assert_eq!(id.unix_millis(), Some(1_739_370_645_123));
        for other in [
            "2025-02-12T14:30:45",
            "m-1",
            "2025-02-12T14:30:45.1234",
            "2025-02-30T14:30:45.123",
        ] {
            assert_eq!(
                DeduplicationId::parse(other).unwrap().unix_millis(),
                None,
                "{other}"
            );
        }
        assert_eq!(
            DeduplicationId::from_unix_millis(1_739_370_645_000).as_str(),
            "2025-02-12T14:30:45.000"
        );
    }

    #[test]
    fn workn_event_yields_id_type_and_keys() {
        let e = ok(
            r#"{"mkt_id":1,"event_datetime":"2025-02-12T14:30:45","msg_id":"m-1",
            "event_type":4,"ent_id":7,"ext_customer_id":"C7","branch_id":null,
            "MessageGroupId":"EventSetup_9","MessageDeDuplicationId":"2025-02-12T14:30:45.123"}"#,
        );
        assert_eq!(e.shape, EventShape::WorkN);
        assert_eq!(
            e.id,
            Some(EventId {
                field: "msg_id",
                value: "m-1".into()
            })
        );
        assert_eq!(e.event_type.as_deref(), Some("4"));
        assert_eq!(e.group_id.unwrap().as_str(), "EventSetup_9");
        assert_eq!(
            e.deduplication_id.unwrap().as_str(),
            "2025-02-12T14:30:45.123"
        );
    }

    #[test]
    fn bold_event_uses_event_name_and_prefers_deduplication_id() {
        let e = ok(r#"{"EventName":"placement_updated","CorrelationId":"c-1",
            "DeduplicationId":"d-1","Resource":"{\"Id\":1}","FrontOfficeTenantId":3}"#);
        assert_eq!(e.shape, EventShape::Bold);
        assert_eq!(e.id.as_ref().unwrap().field, "DeduplicationId");
        assert_eq!(e.event_type.as_deref(), Some("placement_updated"));
        assert_eq!(
            e.attributes(),
            vec![
                (ATTR_EVENT_ID, "d-1".to_owned()),
                (ATTR_EVENT_TYPE, "placement_updated".to_owned())
            ]
        );
    }

    #[test]
    fn whole_floats_count_as_integers() {
        let e = ok(r#"{"mkt_id":12.0,"ent_id":-3.0,"event_type":4.0}"#);
        assert_eq!(e.event_type.as_deref(), Some("4"));
    }

    #[test]
    fn invalid_own_keys_are_ignored_not_fatal() {
        let e = ok(r#"{"MessageGroupId":"has space","MessageDeDuplicationId":7}"#);
        assert!(e.group_id.is_none() && e.deduplication_id.is_none());
        assert_eq!(e.ignored_keys.len(), 2);
        assert_eq!(e.ignored_keys[1].1, FifoKeyError::NotAString);
        assert_eq!(e.shape, EventShape::Other);
        // An invalid value under one spelling does not hide a valid one under the other.
        let e = ok(
            r#"{"MessageDeDuplicationId":7,"MessageDeduplicationId":"2025-02-12T14:30:45.123"}"#,
        );
        assert_eq!(
            e.deduplication_id.as_ref().map(DeduplicationId::as_str),
            Some("2025-02-12T14:30:45.123")
        );
        assert_eq!(e.ignored_keys.len(), 1);
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (body, field) in [
            (r#"{"mkt_id":"1"}"#, "mkt_id"),
            (r#"{"mkt_id":1.5}"#, "mkt_id"),
            (r#"{"mkt_id":1e300}"#, "mkt_id"),
            (r#"{"ent_id":true}"#, "ent_id"),
            (r#"{"branch_id":"x"}"#, "branch_id"),
            (r#"{"msg_id":""}"#, "msg_id"),
            (r#"{"msg_id":5}"#, "msg_id"),
            (r#"{"ext_customer_id":5}"#, "ext_customer_id"),
            (r#"{"ext_branch_id":[]}"#, "ext_branch_id"),
            (
                r#"{"event_datetime":"2025-02-12 14:30:45"}"#,
                "event_datetime",
            ),
            (
                r#"{"event_datetime":"2025-02-12T14:30:45.123"}"#,
                "event_datetime",
            ),
            (
                r#"{"event_datetime":"2025-02-30T14:30:45"}"#,
                "event_datetime",
            ),
            (r#"{"event_type":{}}"#, "event_type"),
            (r#"{"EventName":1}"#, "EventName"),
        ] {
            match err(body.as_bytes()) {
                EventError::Field { field: f, .. } => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn bodies_sqs_refuses_or_that_are_not_objects_are_rejected() {
        assert_eq!(err(b"[1,2]"), EventError::NotAnObject("an array"));
        assert_eq!(err(b"\"x\""), EventError::NotAnObject("a string"));
        assert_eq!(err(b"{\"a\":\xff}"), EventError::NotUtf8(5));
        assert!(matches!(err(b"{\"a\":"), EventError::Malformed(_)));
        assert!(matches!(err(b""), EventError::Malformed(_)));
        assert_eq!(
            err("{\"a\":\"\u{FFFF}\"}".as_bytes()),
            EventError::ForbiddenCharacter {
                offset: 6,
                codepoint: 0xFFFF
            }
        );
        assert_eq!(
            err(b"{\"a\":1}\x01"),
            EventError::ForbiddenCharacter {
                offset: 7,
                codepoint: 1
            }
        );
        // An escaped NUL is fine in the body, but not as an attribute value.
        assert!(ok(r#"{"a":"\u0000"}"#).id.is_none());
        assert!(matches!(
            err(br#"{"msg_id":"a\u0000"}"#),
            EventError::Field {
                field: "msg_id",
                ..
            }
        ));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(matches!(
            err(format!("{{\"a\":{deep}}}").as_bytes()),
            EventError::Malformed(_)
        ));
        assert!(matches!(
            err(format!(r#"{{"msg_id":"{}"}}"#, "x".repeat(513)).as_bytes()),
            EventError::TooLong {
                field: "msg_id",
                len: 513
            }
        ));
    }
}
