use std::num::NonZeroUsize;
use std::time::Duration;

use super::{Claimed, Decision, EventKey, EventMemory, Mark, RecordState, Records, Stored, decide};
use crate::forward::keys::DeduplicationId;
use crate::sqs::Receipt;

const STALE: Duration = Duration::from_secs(6);

fn receipt() -> Receipt {
    Receipt {
        message_id: "m-1".into(),
        sequence_number: Some("7".into()),
    }
}

fn record(body: &str, claimed_at_ms: i64, sent: bool) -> Stored {
    Stored {
        deduplication_id: "2025-02-12T14:30:45.123".into(),
        body_sha256: body.into(),
        claimed_at_ms,
        state: if sent {
            RecordState::Sent(receipt())
        } else {
            RecordState::InProgress
        },
    }
}

#[test]
fn no_record_is_a_fresh_event() {
    assert_eq!(decide(None, "b", 0, STALE), Decision::Fresh);
}

#[test]
fn a_sent_record_with_the_same_body_is_a_duplicate_with_the_first_answer() {
    let decision = decide(Some(&record("b", 0, true)), "b", 1_000_000, STALE);
    assert_eq!(
        decision,
        Decision::Duplicate {
            deduplication_id: "2025-02-12T14:30:45.123".into(),
            receipt: Some(receipt()),
        }
    );
}

#[test]
fn a_spooled_record_is_a_duplicate_without_a_message_id() {
    let mut spooled = record("b", 0, false);
    spooled.state = RecordState::Spooled;
    assert_eq!(
        decide(Some(&spooled), "b", 1_000_000, STALE),
        Decision::Duplicate {
            deduplication_id: "2025-02-12T14:30:45.123".into(),
            receipt: None,
        }
    );
}

#[test]
fn an_unfinished_record_is_sent_again_under_its_id_and_stale_once_its_holder_is_done() {
    let live = decide(Some(&record("b", 10_000, false)), "b", 15_000, STALE);
    assert_eq!(
        live,
        Decision::Resend {
            deduplication_id: "2025-02-12T14:30:45.123".into(),
            stale: false
        }
    );
    let stale = decide(Some(&record("b", 10_000, false)), "b", 16_001, STALE);
    assert!(matches!(stale, Decision::Resend { stale: true, .. }));
}

#[test]
fn a_different_body_is_a_conflict_naming_the_first_event() {
    let sent = decide(Some(&record("b", 0, true)), "other", 1, STALE);
    assert_eq!(
        sent,
        Decision::Conflict {
            first: "m-1".into()
        }
    );
    let unfinished = decide(Some(&record("b", 0, false)), "other", 1, STALE);
    assert_eq!(
        unfinished,
        Decision::Conflict {
            first: "2025-02-12T14:30:45.123".into()
        }
    );
}

#[test]
fn a_conflicting_body_gets_a_key_of_its_own_stable_for_its_retries() {
    let key = EventKey([1; 32]);
    let own = key.with_body(&[2; 32]);
    assert_ne!(own, key);
    assert_eq!(own, key.with_body(&[2; 32]));
    assert_ne!(own, key.with_body(&[3; 32]));
}

const TTL: Duration = Duration::from_mins(5);

fn records(max: usize) -> Records {
    Records::new(NonZeroUsize::new(max).unwrap())
}

#[test]
fn the_process_keeps_a_record_until_its_ttl_after_the_last_write() {
    let records = records(10);
    let key = EventKey([1; 32]);
    assert_eq!(records.claim(&key, "id-1", "b", 0, TTL), None);
    let found = records.claim(&key, "id-2", "b", 1_000, TTL).unwrap();
    assert_eq!(
        (found.deduplication_id.as_str(), found.claimed_at_ms),
        ("id-1", 0),
        "a claim that finds a record changes nothing"
    );
    // Marked sent at 200 s: kept until 500 s, not 300 s.
    records.mark(&key, Mark::Sent(&receipt()), 200_000, TTL);
    let found = records.claim(&key, "id-3", "b", 499_999, TTL).unwrap();
    assert_eq!(found.state, RecordState::Sent(receipt()));
    assert_eq!(records.claim(&key, "id-3", "b", 500_000, TTL), None);
}

#[test]
fn a_full_process_memory_drops_its_least_recently_written_record() {
    let records = records(2);
    let (a, b, c) = (EventKey([1; 32]), EventKey([2; 32]), EventKey([3; 32]));
    records.claim(&a, "a", "b", 0, TTL);
    records.claim(&b, "b", "b", 1, TTL);
    // Writing `a` again makes `b` the oldest.
    records.mark(&a, Mark::Sent(&receipt()), 2, TTL);
    records.claim(&c, "c", "b", 3, TTL);
    assert_eq!(records.len(), 2);
    assert!(records.claim(&a, "x", "b", 4, TTL).is_some());
    assert!(records.claim(&c, "x", "b", 4, TTL).is_some());
    assert_eq!(records.claim(&b, "b2", "b", 5, TTL), None, "b was dropped");
}

#[test]
fn a_spool_never_overrides_sqs_answer_and_a_takeover_needs_the_stale_claim() {
    let records = records(4);
    let key = EventKey([1; 32]);
    records.claim(&key, "id", "b", 0, TTL);
    records.take_over(&key, 5, 10, TTL);
    assert_eq!(
        records
            .claim(&key, "x", "b", 11, TTL)
            .unwrap()
            .claimed_at_ms,
        0
    );
    records.take_over(&key, 0, 10, TTL);
    assert_eq!(
        records
            .claim(&key, "x", "b", 11, TTL)
            .unwrap()
            .claimed_at_ms,
        10
    );
    records.mark(&key, Mark::Sent(&receipt()), 12, TTL);
    records.mark(&key, Mark::Spooled, 13, TTL);
    assert_eq!(
        records.claim(&key, "x", "b", 14, TTL).unwrap().state,
        RecordState::Sent(receipt())
    );
}

#[tokio::test]
async fn the_memory_in_the_process_answers_repeats_as_the_table_does() {
    let memory = EventMemory::in_process(NonZeroUsize::new(8).unwrap(), TTL, STALE);
    let key = EventKey([7; 32]);
    let first = DeduplicationId::parse("first-id").unwrap();
    let second = DeduplicationId::parse("second-id").unwrap();
    assert_eq!(
        memory.claim(&key, &[1; 32], &first).await.unwrap(),
        Claimed::Forward(first.clone())
    );
    // Unfinished: forwarded again under the first attempt's id.
    assert_eq!(
        memory.claim(&key, &[1; 32], &second).await.unwrap(),
        Claimed::Forward(first.clone())
    );
    memory.sent(&key, &receipt()).await.unwrap();
    assert_eq!(
        memory.claim(&key, &[1; 32], &second).await.unwrap(),
        Claimed::Duplicate {
            deduplication_id: first.clone(),
            receipt: Some(receipt()),
        }
    );
    let Claimed::Conflict {
        key: own,
        deduplication_id,
        first: named,
    } = memory.claim(&key, &[2; 32], &second).await.unwrap()
    else {
        panic!("a different body is a conflict");
    };
    assert_eq!(
        (own.clone(), named.as_str()),
        (key.with_body(&[2; 32]), "m-1")
    );
    memory.spooled(&own).await.unwrap();
    assert_eq!(
        memory.claim(&key, &[2; 32], &second).await.unwrap(),
        Claimed::Duplicate {
            deduplication_id,
            receipt: None,
        },
        "the conflicting event's retry finds its own record"
    );
    assert_eq!(memory.records_held(), Some(2));
}
