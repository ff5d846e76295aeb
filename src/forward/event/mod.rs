//! What an incoming event is: the checks the vendor's documentation implies, and the FIFO
//! keys and routing attributes derived from it.
//!
//! The body itself is never rewritten: [`parse`] only reads it, so what reaches SQS is the
//! exact bytes the vendor sent.

use serde_json::{Map, Value};

use reader::TopLevel;

use super::keys::{DeduplicationId, FifoKeyError, MessageGroupId};
use crate::sqs::limits::MAX_ATTRIBUTE_VALUE_BYTES;

mod reader;

/// Attribute names consumers can route on without parsing the body.
pub const ATTR_EVENT_ID: &str = "event_id";
pub const ATTR_EVENT_TYPE: &str = "event_type";
/// On an event queued as distinct although the shared memory holds its identity for
/// another body: the first one's message id (or deduplication id, if not yet queued).
pub const ATTR_CONFLICTS_WITH: &str = "bridge_conflicts_with";

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
    #[error(
        "`{0}` appears more than once; send it once (a consumer's parser may read another \
         of the values than the bridge did)"
    )]
    DuplicateField(&'static str),
    #[error(
        "`{field}` contains U+{codepoint:04X}, a control or bidirectional formatting \
         character; ids and types the bridge copies into message attributes must be plain text"
    )]
    ControlCharacter { field: &'static str, codepoint: u32 },
}

impl EventError {
    /// Where the body stops being UTF-8.
    #[must_use]
    pub fn not_utf8(error: &std::str::Utf8Error) -> Self {
        Self::NotUtf8(error.valid_up_to())
    }

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
            Self::DuplicateField(_) => "duplicate_field",
            Self::ControlCharacter { .. } => "control_character",
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
    /// WorkN `ent_id` and `branch_id`, as their integers' text: for `BRIDGE_GROUP_BY`.
    pub enterprise: Option<String>,
    pub branch: Option<String>,
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

/// SHA-256 through aws-lc-rs, faster than the `sha2` crate on CPUs without SHA
/// extensions, and it runs on every request (docs/BENCHMARKS.md, "SHA-256 through
/// aws-lc-rs").
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Checks a body and reads what the bridge needs from it.
pub fn parse(body: &[u8]) -> Result<ParsedEvent, EventError> {
    let text = std::str::from_utf8(body).map_err(|e| EventError::not_utf8(&e))?;
    parse_text(text)
}

/// [`parse`] for a body already known to be UTF-8.
pub fn parse_text(text: &str) -> Result<ParsedEvent, EventError> {
    check_sqs_characters(text.as_bytes())?;
    let top: TopLevel =
        serde_json::from_str(text).map_err(|e| EventError::Malformed(e.to_string()))?;
    match top {
        TopLevel::Object {
            duplicate: Some(field),
            ..
        } => Err(EventError::DuplicateField(field)),
        TopLevel::Object { object, .. } => read_event(&object),
        TopLevel::Other(kind) => Err(EventError::NotAnObject(kind)),
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

fn integer(object: &Map<String, Value>, name: &'static str) -> Result<Option<String>, EventError> {
    match field(object, name) {
        None => Ok(None),
        Some(Value::Number(n)) if integral(n).is_some() => Ok(integral(n)),
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

/// Whether `c` is a C0 or C1 control, a line or paragraph separator, a bidirectional
/// formatting character or an invisible one: in an id or attribute they can split a log
/// line, or show one value as another.
fn disguising(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// A value that will travel as a message attribute: bounded, plain text, and in SQS's
/// character set.
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
    if let Some(c) = value.chars().find(|c| disguising(*c)) {
        return Err(EventError::ControlCharacter {
            field: name,
            codepoint: u32::from(c),
        });
    }
    Ok(value.to_owned())
}

/// `YYYY-MM-DDTHH:MM:SS`, a real date and time. The format is parsed once: chrono's
/// `parse_from_str` parses its format string on every call (measured in `perf`).
fn is_utc_datetime(text: &str) -> bool {
    use chrono::format::{Item, Parsed, StrftimeItems, parse};
    static ITEMS: std::sync::LazyLock<Vec<Item<'static>>> =
        std::sync::LazyLock::new(|| StrftimeItems::new("%Y-%m-%dT%H:%M:%S").collect());
    let mut parsed = Parsed::new();
    parse(&mut parsed, text, ITEMS.iter()).is_ok()
        && parsed.to_naive_datetime_with_offset(0).is_ok()
}

fn read_event(object: &Map<String, Value>) -> Result<ParsedEvent, EventError> {
    // WorkN common parameters, checked where present.
    integer(object, "mkt_id")?;
    let enterprise = integer(object, "ent_id")?;
    let branch = integer(object, "branch_id")?;
    string(object, "ext_customer_id", false)?;
    string(object, "ext_branch_id", false)?;
    if let Some(when) = string(object, "event_datetime", false)? {
        let valid = when.len() == 19 && is_utc_datetime(when);
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
        enterprise,
        branch,
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
mod tests;
