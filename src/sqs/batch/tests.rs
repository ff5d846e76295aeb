//! The dispatcher against an in-memory SQS ([`crate::sqs::fake::FakeBatchSink`]): the
//! group-commit rules of the module's doc, each observed from the calls it makes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::sync::oneshot;

use super::{Batch, Batcher, Pending};
use crate::forward::keys::{DeduplicationId, MessageGroupId};
use crate::sqs::fake::{Call, FakeBatchSink};
use crate::sqs::limits::{MAX_BATCH_BYTES, QueueLimits};
use crate::sqs::{EntryResult, OutgoingMessage, Receipt, SendError};

type Answer = oneshot::Receiver<Result<Receipt, SendError>>;

/// A waiting forward of `size` bytes, and its webhook's end (kept, or it is abandoned).
fn pending(size: usize) -> (Pending, Answer) {
    let (reply, answer) = oneshot::channel();
    let pending = Pending {
        message: OutgoingMessage {
            body: "x".repeat(size).into(),
            group_id: MessageGroupId::parse("g").unwrap(),
            deduplication_id: DeduplicationId::parse("d").unwrap(),
            attributes: Vec::new(),
        },
        size,
        deadline: Instant::now() + Duration::from_mins(1),
        reply,
        alone: false,
        attempts: 0,
    };
    (pending, answer)
}

/// A batch stays within its byte budget, which a small queue lowers below SQS's 1 MiB.
#[test]
fn a_batch_keeps_within_its_byte_budget() {
    let [(a, _a), (b, _b), (c, _c), (d, _d)] = [600; 4].map(pending);
    let mut carried = None;
    let mut batch = Batch::new(a, MAX_BATCH_BYTES);
    batch.push(b, &mut carried);
    assert_eq!(batch.entries.len(), 2);
    assert!(carried.is_none());

    let mut batch = Batch::new(c, 1024);
    batch.push(d, &mut carried);
    assert_eq!(batch.entries.len(), 1);
    assert!(
        batch.full(carried.is_some()),
        "the next one waits for the next batch"
    );
    assert_eq!(carried.map(|p| p.size), Some(600));
}

/// A message whose body names it, with a deduplication id of its own.
fn message(name: &str, size: usize) -> OutgoingMessage {
    let mut body = name.to_owned();
    body.push_str(&" ".repeat(size.saturating_sub(name.len())));
    OutgoingMessage {
        body: body.into(),
        group_id: MessageGroupId::parse("EventSetup_1").unwrap(),
        deduplication_id: DeduplicationId::parse(&format!("dedup-{name}")).unwrap(),
        attributes: Vec::new(),
    }
}

/// A batcher in front of a gated fake: each call waits until the test releases it.
fn batcher(
    concurrency: usize,
    timeout: Duration,
) -> (Batcher, Arc<FakeBatchSink>, Arc<QueueLimits>) {
    let fake = Arc::new(FakeBatchSink::gated());
    let limits = Arc::new(QueueLimits::default());
    let batcher = Batcher::start(Arc::clone(&fake), concurrency, timeout, Arc::clone(&limits));
    (batcher, fake, limits)
}

type Sending =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Receipt, SendError>> + Send>>;

/// Starts a send and polls it once, so its event is queued for the dispatcher before the
/// test goes on (the order of arrival is then the order of these calls).
fn submit(batcher: &Batcher, name: &str, size: usize) -> Sending {
    let batcher = batcher.clone();
    let message = message(name, size);
    let mut sending: Sending = Box::pin(async move { batcher.send(message).await });
    assert!(
        (&mut sending).now_or_never().is_none(),
        "answered before any call"
    );
    sending
}

const MINUTE: Duration = Duration::from_mins(1);

#[tokio::test]
async fn an_idle_batcher_sends_at_once_and_later_arrivals_wait_in_order() {
    let (batcher, fake, _) = batcher(2, MINUTE);
    let a = submit(&batcher, "a", 10);
    assert_eq!(fake.next_call().await.names(), ["a"], "no linger when idle");
    let (b, c, d) = (
        submit(&batcher, "b", 10),
        submit(&batcher, "c", 10),
        submit(&batcher, "d", 10),
    );
    // A partial batch waits while a call is in flight; nothing else leaves meanwhile.
    assert!(fake.no_call_starts().await);
    fake.release(1);
    assert!(a.await.is_ok());
    assert_eq!(
        fake.next_call().await.names(),
        ["b", "c", "d"],
        "arrival order"
    );
    fake.release(1);
    for answer in [b.await, c.await, d.await] {
        assert!(answer.is_ok(), "{answer:?}");
    }
}

#[tokio::test]
async fn a_full_batch_takes_a_second_slot_and_no_more_than_the_slots() {
    let (batcher, fake, _) = batcher(2, MINUTE);
    let first = submit(&batcher, "first", 10);
    assert_eq!(fake.next_call().await.names(), ["first"]);
    let full: Vec<Sending> = (0..10)
        .map(|i| submit(&batcher, &format!("f{i}"), 10))
        .collect();
    let second = fake.next_call().await;
    assert_eq!(
        second.names().len(),
        10,
        "a full batch does not wait for the first call"
    );
    assert_eq!(fake.in_flight(), 2);
    let more: Vec<Sending> = (0..10)
        .map(|i| submit(&batcher, &format!("m{i}"), 10))
        .collect();
    assert!(
        fake.no_call_starts().await,
        "both slots are taken: a full batch waits too"
    );
    fake.release(1);
    assert_eq!(fake.next_call().await.names().len(), 10);
    fake.release(2);
    assert!(first.await.is_ok());
    for answer in futures_util::future::join_all(full.into_iter().chain(more)).await {
        assert!(answer.is_ok(), "{answer:?}");
    }
    assert_eq!(fake.max_in_flight(), 2);
}

#[tokio::test]
async fn each_entry_gets_its_own_answer_and_a_retry_keeps_its_keys() {
    let (batcher, fake, _) = batcher(2, MINUTE);
    let hold = submit(&batcher, "hold", 10);
    assert_eq!(fake.next_call().await.names(), ["hold"]);
    // The next call to start (a, b, c together) gets these answers.
    fake.answer_next(Call::Entries(vec![
        EntryResult::Sent(Receipt {
            message_id: "m-a".into(),
            sequence_number: Some("1".into()),
        }),
        EntryResult::Failed(SendError::Invalid {
            code: "InvalidMessageContents".into(),
            detail: "no".into(),
        }),
        EntryResult::Retry {
            code: "InternalError".into(),
        },
    ]));
    let (a, b, c) = (
        submit(&batcher, "a", 10),
        submit(&batcher, "b", 10),
        submit(&batcher, "c", 10),
    );
    fake.release(1);
    assert!(hold.await.is_ok());
    let call = fake.next_call().await;
    assert_eq!(call.names(), ["a", "b", "c"]);
    fake.release(1);
    assert_eq!(a.await.unwrap().message_id, "m-a");
    assert!(matches!(b.await, Err(SendError::Invalid { .. })));
    let retry = fake.next_call().await;
    assert_eq!(
        retry.names(),
        ["c"],
        "only the entry SQS failed on its side"
    );
    assert_eq!(retry.deduplication_ids(), ["dedup-c"], "with the same keys");
    fake.release(1);
    assert!(c.await.is_ok());
}

#[tokio::test]
async fn a_call_refused_whole_is_sent_again_entry_by_entry() {
    let (batcher, fake, _) = batcher(1, MINUTE);
    let invalid = || {
        Call::Refused(SendError::Invalid {
            code: "InvalidMessageContents".into(),
            detail: "batch".into(),
        })
    };
    let hold = submit(&batcher, "hold", 10);
    fake.next_call().await;
    let (a, b, c) = (
        submit(&batcher, "a", 10),
        submit(&batcher, "b", 10),
        submit(&batcher, "c", 10),
    );
    fake.answer_next(invalid()); // a, b and c together
    fake.answer_next(Call::Sent); // a alone
    fake.answer_next(invalid()); // b alone: b was the cause
    fake.release(1);
    assert!(hold.await.is_ok());
    assert_eq!(fake.next_call().await.names(), ["a", "b", "c"]);
    fake.release(1);
    for alone in ["a", "b", "c"] {
        assert_eq!(
            fake.next_call().await.names(),
            [alone],
            "each in a call of its own"
        );
        fake.release(1);
    }
    assert!(a.await.is_ok());
    assert!(
        matches!(b.await, Err(SendError::Invalid { .. })),
        "final for its cause"
    );
    assert!(c.await.is_ok());
    // A refusal SQS could not owe to an entry is every entry's answer at once.
    let (first, second) = (submit(&batcher, "d", 10), submit(&batcher, "e", 10));
    fake.answer_next(Call::Refused(SendError::Failed {
        code: "AccessDenied".into(),
        detail: "role".into(),
    }));
    assert_eq!(fake.next_call().await.names(), ["d", "e"]);
    fake.release(1);
    assert!(matches!(first.await, Err(SendError::Failed { .. })));
    assert!(matches!(second.await, Err(SendError::Failed { .. })));
}

#[tokio::test]
async fn an_event_answered_503_while_waiting_is_never_sent() {
    let (batcher, fake, _) = batcher(1, Duration::from_millis(300));
    let hold = submit(&batcher, "hold", 10);
    fake.next_call().await;
    let late = submit(&batcher, "late", 10);
    // Its own deadline passes while the only slot is busy.
    assert!(matches!(late.await, Err(SendError::Timeout(300))));
    fake.release(1);
    // The call holding the slot ended after its webhook was answered, too.
    assert!(matches!(hold.await, Err(SendError::Timeout(300))));
    let next = submit(&batcher, "next", 10);
    assert_eq!(
        fake.next_call().await.names(),
        ["next"],
        "`late` was dropped"
    );
    fake.release(1);
    assert!(next.await.is_ok());
}

#[tokio::test]
async fn batches_keep_within_the_queues_size_limit() {
    let (batcher, fake, limits) = batcher(1, MINUTE);
    limits.set_max_message_bytes(1_500);
    let hold = submit(&batcher, "hold", 10);
    fake.next_call().await;
    let (b, c) = (submit(&batcher, "b", 1_000), submit(&batcher, "c", 1_000));
    fake.release(1);
    assert!(hold.await.is_ok());
    assert_eq!(fake.next_call().await.names(), ["b"]);
    fake.release(1);
    assert_eq!(
        fake.next_call().await.names(),
        ["c"],
        "together they exceed 1,500 bytes"
    );
    fake.release(1);
    assert!(b.await.is_ok() && c.await.is_ok());
}
