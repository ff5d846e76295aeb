//! The id rules, with the clock passed in where expiry matters.

use super::identity::Who;
use super::*;
use crate::forward::event::parse;

fn group(s: &str) -> MessageGroupId {
    MessageGroupId::parse(s).unwrap()
}

fn key(n: u8) -> Identity {
    key_in("g", n)
}

fn key_in(g: &str, n: u8) -> Identity {
    Identity {
        group: group(g),
        who: Who::Body([n; 32]),
    }
}

#[test]
fn same_millisecond_events_get_distinct_increasing_ids() {
    let d = Deduplicator::new(DedupMode::Timestamp);
    let t = Instant::now();
    let ids: Vec<i64> = (0..100)
        .map(|n| d.timestamp_for(key(n), 1_000, t))
        .collect();
    assert_eq!(ids, (1_000..1_100).collect::<Vec<_>>());
    // The clock going backwards does not produce a repeat either.
    assert_eq!(d.timestamp_for(key(200), 500, t), 1_100);
}

#[test]
fn events_of_different_groups_never_share_an_id() {
    // SQS's default deduplication scope is the queue: the same id in two groups is
    // one event to it, and the second would be dropped.
    let d = Deduplicator::new(DedupMode::Timestamp);
    let t = Instant::now();
    let first = d.timestamp_for(key_in("EventSetup_1", 1), 1_000, t);
    let other_group = d.timestamp_for(key_in("EventSetup_2", 1), 1_000, t);
    let same_group = d.timestamp_for(key_in("EventSetup_1", 2), 1_000, t);
    assert_eq!((first, other_group, same_group), (1_000, 1_001, 1_002));
    // Retries still get their own first id back, in each group.
    assert_eq!(
        d.timestamp_for(key_in("EventSetup_2", 1), 1_000, t),
        other_group
    );
}

#[test]
fn own_ids_and_ids_made_here_never_meet() {
    let d = Deduplicator::new(DedupMode::Timestamp);
    let t = Instant::now();
    // An own id seen first is kept, and no id made here repeats it.
    assert_eq!(d.own_timestamp(key(1), 1_000, 1_000, t), None);
    assert_eq!(d.timestamp_for(key(2), 1_000, t), 1_001);
    assert_eq!(d.timestamp_for(key(3), 1_000, t), 1_002);
    // An own id equal to one already given to another event gets a new one, and
    // keeps it for its retries.
    let replaced = d.own_timestamp(key(4), 1_001, 1_000, t);
    assert_eq!(replaced, Some(1_003));
    assert_eq!(d.own_timestamp(key(4), 1_001, 1_500, t), replaced);
    // The retry of an event whose own id was kept keeps it too.
    assert_eq!(d.own_timestamp(key(1), 1_000, 1_500, t), None);
    // A far-off own id does not drag the sequence along.
    assert_eq!(d.own_timestamp(key(5), 9_000_000, 2_000, t), None);
    assert_eq!(d.timestamp_for(key(6), 2_000, t), 2_000);
}

#[test]
fn own_ids_are_reserved_for_the_window_only() {
    let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
    let t0 = Instant::now();
    assert_eq!(d.own_timestamp(key(1), 1_000, 1_000, t0), None);
    assert_eq!(d.timestamp_for(key(2), 1_000, t0), 1_001);
    // Five minutes on, SQS has forgotten both: the millisecond may be used again.
    let later = t0 + Duration::from_mins(5);
    assert_eq!(d.timestamp_for(key(3), 1_000, later), 1_002);
    assert_eq!(d.own_timestamp(key(4), 1_001, 1_000, later), None);

    // An own id reserved at t0 is free again a window later...
    let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
    assert_eq!(d.own_timestamp(key(1), 2_000, 2_000, t0), None);
    assert_eq!(d.remembered(), 1);
    let free = t0 + Duration::from_mins(5);
    assert_eq!(d.timestamp_for(key(2), 2_000, free), 2_000);
    // ...unless it was seen again meanwhile: each sighting reserves it for a window.
    let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
    assert_eq!(d.own_timestamp(key(1), 2_000, 2_000, t0), None);
    let again = t0 + Duration::from_mins(1);
    assert_eq!(d.own_timestamp(key(1), 2_000, 2_000, again), None);
    assert_eq!(d.timestamp_for(key(2), 2_000, free), 2_001);
    let d2 = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
    assert_eq!(d2.own_timestamp(key(1), 2_000, 2_000, t0), None);
    assert_eq!(d2.own_timestamp(key(1), 2_000, 2_000, again), None);
    assert_eq!(
        d2.timestamp_for(key(2), 2_000, again + Duration::from_mins(5)),
        2_000
    );
}

#[test]
fn an_events_own_id_wins_through_assign() {
    let d = Deduplicator::new(DedupMode::Timestamp);
    let g = group("g");
    let now = chrono::Utc::now().timestamp_millis();
    let own = DeduplicationId::from_unix_millis(now + 60_000);
    let body = format!(
        r#"{{"msg_id":"a","MessageDeDuplicationId":"{}"}}"#,
        own.as_str()
    );
    let event = parse(body.as_bytes()).unwrap();
    assert_eq!(d.assign(&g, &event, body.as_bytes()), own);
    let plain = br#"{"msg_id":"b"}"#;
    assert_ne!(d.assign(&g, &parse(plain).unwrap(), plain), own);
}

#[test]
fn a_retry_within_the_window_gets_the_first_id_and_after_it_a_new_one() {
    let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
    let t0 = Instant::now();
    let first = d.timestamp_for(key(1), 1_000, t0);
    let retry = d.timestamp_for(key(1), 61_000, t0 + Duration::from_mins(1));
    assert_eq!(first, retry);
    let late = d.timestamp_for(key(1), 301_000, t0 + Duration::from_mins(5));
    assert_eq!(late, 301_000);
    assert_eq!(d.remembered(), 1, "expired entries are dropped");
}

#[test]
fn identity_is_the_id_field_else_the_body() {
    let g = group("g");
    let a = br#"{"msg_id":"m1","x":1}"#;
    let b = br#"{"msg_id":"m1","x":2}"#;
    let c = br#"{"x":1}"#;
    let key_of = |body: &[u8]| identity_key(&g, &parse(body).unwrap(), body);
    assert_eq!(key_of(a), key_of(b));
    assert_ne!(key_of(a), key_of(c));
    assert_ne!(key_of(c), key_of(br#"{"x":2}"#));
    assert_ne!(key_of(a), identity_key(&group("h"), &parse(a).unwrap(), a));
}

#[test]
fn a_shared_correlation_id_does_not_make_two_events_one() {
    let g = group("g");
    let started = br#"{"EventName":"placement_started","CorrelationId":"c-1","Resource":"{}"}"#;
    let updated = br#"{"EventName":"placement_updated","CorrelationId":"c-1","Resource":"{}"}"#;
    let key_of = |body: &[u8]| identity_key(&g, &parse(body).unwrap(), body);
    assert_ne!(key_of(started), key_of(updated));
    assert_eq!(key_of(started), key_of(started), "a retry repeats the body");
    let by_id = Deduplicator::new(DedupMode::EventId);
    let assign = |body: &[u8]| by_id.assign(&g, &parse(body).unwrap(), body);
    assert_ne!(assign(started), assign(updated));
    assert_eq!(assign(started).as_str(), hex::encode(body_digest(started)));
    // A back-office `DeduplicationId` does name one event.
    let own = br#"{"EventName":"x","DeduplicationId":"d-1","CorrelationId":"c-1"}"#;
    assert_eq!(assign(own).as_str(), "d-1");
}

#[test]
fn modes_choose_as_documented() {
    let g = group("g");
    let body = br#"{"msg_id":"m-1","MessageGroupId":"x"}"#;
    let event = parse(body).unwrap();
    let by_id = Deduplicator::new(DedupMode::EventId).assign(&g, &event, body);
    assert_eq!(by_id.as_str(), "m-1");
    let content = Deduplicator::new(DedupMode::Content).assign(&g, &event, body);
    assert_eq!(content.as_str(), hex::encode(body_digest(body)));
    // An id SQS would refuse as a key is hashed instead.
    let spaced = br#"{"msg_id":"m 1"}"#;
    let id = Deduplicator::new(DedupMode::EventId).assign(&g, &parse(spaced).unwrap(), spaced);
    assert_eq!(id.as_str().len(), 64);
    // The event's own key wins in every mode.
    let own = br#"{"MessageDeDuplicationId":"2025-02-12T14:30:45.123"}"#;
    for mode in [DedupMode::Timestamp, DedupMode::EventId, DedupMode::Content] {
        let id = Deduplicator::new(mode).assign(&g, &parse(own).unwrap(), own);
        assert_eq!(id.as_str(), "2025-02-12T14:30:45.123");
    }
    let ts = Deduplicator::new(DedupMode::Timestamp).assign(&g, &event, body);
    assert_eq!(ts.as_str().len(), "2025-02-12T14:30:45.123".len());
}

/// Two events with distinct identities never share an id, whatever their bodies
/// carry; each event's retries keep the id it got.
#[test]
fn distinct_events_are_never_given_one_id() {
    let g = group("g");
    let own =
        |msg: &str, key: &str| format!(r#"{{"msg_id":"{msg}","MessageDeDuplicationId":"{key}"}}"#);
    for mode in [DedupMode::Timestamp, DedupMode::EventId, DedupMode::Content] {
        for key in ["2025-02-12T14:30:45.123", "not-the-vendor-format"] {
            let d = Deduplicator::new(mode);
            let assign = |body: &str| {
                d.assign(&g, &parse(body.as_bytes()).unwrap(), body.as_bytes())
                    .as_str()
                    .to_owned()
            };
            let (a, b) = (own("m-a", key), own("m-b", key));
            let first = assign(&a);
            assert_eq!(first, key, "{mode:?}: the first keeps its own id");
            let second = assign(&b);
            assert_ne!(second, first, "{mode:?} {key}: the second is not dropped");
            assert_eq!(assign(&a), first, "{mode:?}: retries keep their id");
            assert_eq!(assign(&b), second, "{mode:?}: the replacement is stable");
        }
    }
    // `event-id`: the same id in two groups is two events to SQS's queue-wide scope.
    let d = Deduplicator::new(DedupMode::EventId);
    let body = br#"{"msg_id":"m-1"}"#;
    let event = parse(body).unwrap();
    let one = d.assign(&group("g1"), &event, body);
    let two = d.assign(&group("g2"), &event, body);
    assert_eq!(one.as_str(), "m-1");
    assert_ne!(two, one);
    assert_eq!(d.assign(&group("g2"), &event, body), two);
    // Another replica resolves the same conflict the same way.
    let other = Deduplicator::new(DedupMode::EventId);
    other.assign(&group("g1"), &event, body);
    assert_eq!(other.assign(&group("g2"), &event, body), two);
}

/// Two attempts of one event that both chose their id before either claimed it (a
/// retry racing the first attempt) still get one id, and a resolved id outlives the
/// hold of the event it was resolved against.
#[test]
fn a_resolved_id_is_the_events_for_every_attempt() {
    let own = |msg: &str| format!(r#"{{"msg_id":"{msg}","MessageDeDuplicationId":"k-1"}}"#);
    let (a, b) = (own("m-a"), own("m-b"));
    for mode in [DedupMode::Timestamp, DedupMode::EventId, DedupMode::Content] {
        let d = Deduplicator::new(mode);
        let t = Instant::now();
        let claim = |body: &str, at: Instant| {
            let event = parse(body.as_bytes()).unwrap();
            let key = identity_key(&group("g"), &event, body.as_bytes());
            let candidate = d.candidate(&key, &event, body.as_bytes());
            (candidate, key, at)
        };
        let (id, key, at) = claim(&a, t);
        assert_eq!(d.claim(id, key, at).as_str(), "k-1");
        let first = claim(&b, t + Duration::from_secs(1));
        let racing = claim(&b, t + Duration::from_secs(1));
        let one = d.claim(first.0, first.1, first.2);
        let two = d.claim(racing.0, racing.1, racing.2);
        assert_eq!(one, two, "{mode:?}: racing attempts, one id");
        assert_ne!(one.as_str(), "k-1");
        // `a`'s hold has lapsed; `b`'s retry within its own window keeps its id.
        let (id, key, _) = claim(&b, t);
        let late = t + SQS_DEDUP_WINDOW + Duration::from_millis(500);
        assert_eq!(d.claim(id, key, late), one, "{mode:?}");
    }
}
