//! The gate's rules, against an in-memory channel standing in for the writer thread.

use std::sync::mpsc;

use super::*;
use crate::forward::keys::{DeduplicationId, MessageGroupId};

fn message(group: &str, id: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: format!(r#"{{"msg_id":"{id}"}}"#).into(),
        group_id: MessageGroupId::parse(group).unwrap(),
        deduplication_id: DeduplicationId::parse(id).unwrap(),
        attributes: Vec::new(),
    }
}

fn state(max_bytes: u64) -> (State, mpsc::Receiver<Append>) {
    let (writer, written) = mpsc::channel();
    let mut state = State::new(max_bytes, writer);
    state.parts.push(PartState {
        part: None,
        segments: BTreeMap::new(),
    });
    (state, written)
}

/// What the writer received so far, by deduplication id.
fn ids(written: &mpsc::Receiver<Append>) -> Vec<String> {
    written
        .try_iter()
        .map(|a| a.message.deduplication_id.as_str().to_owned())
        .collect()
}

/// The writer's part: a synced record of `append`.
fn sync(state: &mut State, append: &Append, seq: u64) -> Entry {
    let entry = Entry {
        key: Key {
            at_ms: 1,
            part: 0,
            seq,
        },
        segment: 1,
        offset: seq * 100,
        len: u32::try_from(append.len).unwrap(),
        size: 10,
    };
    state.appended(&append.group, entry);
    entry
}

#[test]
fn an_idle_group_goes_to_sqs_directly() {
    let (mut state, written) = state(1 << 20);
    assert!(matches!(
        state.route(message("g", "a")),
        Ok(Route::Direct(_))
    ));
    assert!(state.direct_ended("g", None).is_none());
    assert!(ids(&written).is_empty());
    assert!(!state.backlog().spooling);
}

#[test]
fn a_failed_send_goes_in_after_the_events_held_behind_it_and_opens_the_breaker() {
    let (mut state, written) = state(1 << 20);
    let Ok(Route::Direct(a)) = state.route(message("g", "a")) else {
        panic!("direct")
    };
    let Ok(Route::Direct(_)) = state.route(message("g", "b")) else {
        panic!("direct")
    };
    // `a` fails while `b` is still in flight: it waits for `b`.
    state.direct_ended("g", Some(a)).unwrap().unwrap();
    assert!(
        ids(&written).is_empty(),
        "written before the group's other send ended"
    );
    // The breaker is open: any group goes to the spool now.
    assert!(matches!(
        state.route(message("h", "x")),
        Ok(Route::Spooling(_))
    ));
    // A later event of `g` is held behind `a`.
    assert!(matches!(
        state.route(message("g", "c")),
        Ok(Route::Spooling(_))
    ));
    assert_eq!(ids(&written), ["x"]);
    // `b` reached SQS: what `g` held goes to the writer, in order.
    assert!(state.direct_ended("g", None).is_none());
    assert_eq!(ids(&written), ["a", "c"]);
}

#[test]
fn a_group_with_waiting_records_spools_until_they_are_drained() {
    let (mut state, written) = state(1 << 20);
    let Ok(Route::Direct(a)) = state.route(message("g", "a")) else {
        panic!("direct")
    };
    state.direct_ended("g", Some(a)).unwrap().unwrap();
    let append = written.try_recv().unwrap();
    let entry = sync(&mut state, &append, 0);
    state.close_breaker();
    // Another group goes direct again; `g` still has a record waiting.
    assert!(matches!(
        state.route(message("h", "x")),
        Ok(Route::Direct(_))
    ));
    assert!(matches!(
        state.route(message("g", "b")),
        Ok(Route::Spooling(_))
    ));
    let b = written.try_recv().unwrap();
    let b_entry = sync(&mut state, &b, 1);
    let batch = state.next_batch(10, 1 << 20, 1 << 20, false);
    assert_eq!(
        batch.iter().map(|(_, e)| e.key.seq).collect::<Vec<_>>(),
        [0, 1]
    );
    state.drained("g", entry);
    assert!(matches!(
        state.route(message("g", "c")),
        Ok(Route::Spooling(_))
    ));
    let c = written.try_recv().unwrap();
    let c_entry = sync(&mut state, &c, 2);
    state.drained("g", b_entry);
    state.drained("g", c_entry);
    assert!(matches!(
        state.route(message("g", "d")),
        Ok(Route::Direct(_))
    ));
    assert_eq!(state.backlog().events, 0);
}

#[test]
fn the_spool_refuses_what_would_exceed_its_bytes_and_takes_again_once_drained() {
    let one = super::super::record::encoded_len(&message("g", "a")) as u64;
    let (mut state, written) = state(2 * one);
    state.stop();
    assert!(state.enqueue(message("g", "a")).is_ok());
    assert!(state.enqueue(message("g", "b")).is_ok());
    assert!(matches!(
        state.enqueue(message("g", "c")),
        Err(SpoolError::Full { .. })
    ));
    assert!(state.backlog().full);
    let a = written.try_recv().unwrap();
    let entry = sync(&mut state, &a, 0);
    state.drained("g", entry);
    assert!(!state.backlog().full);
    assert!(state.enqueue(message("g", "c")).is_ok());
}

#[test]
fn a_failed_write_gives_back_its_bytes_and_reports_the_spool_failing() {
    let one = super::super::record::encoded_len(&message("g", "a")) as u64;
    let (mut state, written) = state(one);
    state.stop();
    state.enqueue(message("g", "a")).unwrap();
    let a = written.try_recv().unwrap();
    state.append_failed(&a.group, a.len, "No space left on device");
    assert_eq!(
        state.backlog().failing.as_deref(),
        Some("No space left on device")
    );
    assert!(state.enqueue(message("g", "b")).is_ok());
    let b = written.try_recv().unwrap();
    sync(&mut state, &b, 1);
    assert_eq!(state.backlog().failing, None);
}

#[test]
fn a_batch_takes_each_groups_records_in_order_and_a_failed_first_one_alone() {
    let (mut state, written) = state(1 << 20);
    state.stop();
    for (group, id) in [("g", "a"), ("h", "x"), ("g", "b"), ("h", "y")] {
        state.enqueue(message(group, id)).unwrap();
    }
    for (seq, append) in written.try_iter().enumerate() {
        sync(&mut state, &append, seq as u64);
    }
    let order = |batch: Vec<(Group, Entry)>| -> Vec<u64> {
        batch.into_iter().map(|(_, e)| e.key.seq).collect()
    };
    assert_eq!(
        order(state.next_batch(10, 1 << 20, 1 << 20, false)),
        [0, 2, 1, 3]
    );
    assert_eq!(
        order(state.next_batch(3, 1 << 20, 1 << 20, false)),
        [0, 2, 1]
    );
    state.entry_failed("g");
    assert_eq!(
        order(state.next_batch(10, 1 << 20, 1 << 20, false)),
        [0, 1, 3]
    );
    assert_eq!(order(state.next_batch(10, 1 << 20, 1 << 20, true)), [0]);
    // Too large for the queue: the group waits, the others go on.
    assert_eq!(
        order(state.next_batch(10, 1 << 20, 5, false)),
        Vec::<u64>::new()
    );
}
