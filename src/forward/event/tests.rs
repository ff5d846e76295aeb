//! The event checks against bodies the vendor sends, and against a full JSON parse.

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
        let lean = parse_text(body);
        if let Err(EventError::DuplicateField(field)) = lean {
            // Where a full parse keeps the last value, the bridge refuses the body.
            assert!(body.matches(&format!("\"{field}\"")).count() > 1, "{body}");
            continue;
        }
        assert_eq!(
            format!("{lean:?}"),
            format!("{:?}", parse_via_value(body)),
            "{body}"
        );
    }
}

#[test]
fn a_key_the_bridge_reads_given_twice_is_refused() {
    for (body, field) in [
        (r#"{"msg_id":"a","x":1,"msg_id":"b"}"#, "msg_id"),
        (
            r#"{"MessageGroupId":"g","MessageGroupId":"g"}"#,
            "MessageGroupId",
        ),
        (r#"{"Resource":{},"Resource":null}"#, "Resource"),
        (r#"{"msg\u005fid":"a","msg_id":"b"}"#, "msg_id"),
    ] {
        assert_eq!(
            err(body.as_bytes()),
            EventError::DuplicateField(field),
            "{body}"
        );
    }
    // Keys the bridge does not read pass as they are, and a broken body stays invalid JSON.
    assert!(parse(br#"{"worker":1,"worker":2,"msg_id":"a"}"#).is_ok());
    assert!(matches!(
        err(br#"{"msg_id":"a","msg_id":"b""#),
        EventError::Malformed(_)
    ));
}

#[test]
fn controls_and_bidi_marks_in_copied_values_are_refused() {
    for (value, codepoint) in [
        (r"a\nb", 0x0A),
        (r"a\rb", 0x0D),
        (r"a\tb", 0x09),
        (r"a\u0085b", 0x85),
        (r"a\u200Eb", 0x200E),
        (r"a\u202Eb", 0x202E),
        (r"a\u2067b", 0x2067),
        (r"a\u2028b", 0x2028),
        (r"a\u200Bb", 0x200B),
        (r"a\uFEFFb", 0xFEFF),
        (r"a\u061Cb", 0x061C),
    ] {
        for field in ["msg_id", "EventName", "event_type", "DeduplicationId"] {
            let body = format!(r#"{{"{field}":"{value}"}}"#);
            assert_eq!(
                err(body.as_bytes()),
                EventError::ControlCharacter { field, codepoint },
                "{body}"
            );
        }
    }
    // Elsewhere in the body they are the vendor's text, forwarded as sent.
    assert!(parse(br#"{"msg_id":"a","note":"line\nbreak \u202E"}"#).is_ok());
    assert!(parse("{\"msg_id\":\"caf\u{e9} \u{2014} ok\"}".as_bytes()).is_ok());
}

fn err(body: &[u8]) -> EventError {
    parse(body).expect_err("invalid event")
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
    let e =
        ok(r#"{"MessageDeDuplicationId":7,"MessageDeduplicationId":"2025-02-12T14:30:45.123"}"#);
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
