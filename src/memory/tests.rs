use std::time::Duration;

use super::{Decision, EventKey, Stored, decide};
use crate::sqs::Receipt;

const STALE: Duration = Duration::from_secs(6);

fn record(body: &str, claimed_at_ms: i64, sent: bool) -> Stored {
    Stored {
        deduplication_id: "2025-02-12T14:30:45.123".into(),
        body_sha256: body.into(),
        claimed_at_ms,
        receipt: sent.then(|| Receipt {
            message_id: "m-1".into(),
            sequence_number: Some("7".into()),
        }),
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
            receipt: Receipt {
                message_id: "m-1".into(),
                sequence_number: Some("7".into()),
            },
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
