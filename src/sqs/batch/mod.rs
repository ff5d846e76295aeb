//! Group commit: concurrent forwards share `SendMessageBatch` calls.
//!
//! An event is sent at once when no call is in flight; events that arrive while a call is
//! in flight wait in a queue and leave together when it ends, up to 10 entries and 1 MiB
//! (or the queue's `MaximumMessageSize`, once a readiness check has read a smaller one).
//! A batch that is already full does not wait: it takes the next free call slot
//! (`BRIDGE_BATCH_CONCURRENCY`). There is no linger timer, so an idle bridge adds no
//! latency, and under load the SDK's per-call cost is shared by up to ten events.
//!
//! Each webhook still gets its own entry's result: a failed entry is retried (same keys,
//! so SQS deduplicates a copy it already stored) or answered alone, while its batch-mates
//! are answered `200`. A call that fails whole for SQS's reasons (throttling, 5xx, the
//! network) is sent again by the dispatcher, within its events' budget: batch calls have
//! no SDK retries, so that throttling reaches [`limit`], which adapts how many calls are
//! in flight.

mod limit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use limit::{Limit, Signal};

use super::limits::{MAX_BATCH_ENTRIES, QueueLimits};
use super::send::SendBatch;
use super::{EntryResult, OutgoingMessage, Receipt, SendError};
use crate::telemetry::metric;

/// Back-off before an entry SQS failed on its side goes out again.
const ENTRY_RETRY_DELAY: Duration = Duration::from_millis(50);

/// One waiting forward.
struct Pending {
    message: OutgoingMessage,
    /// What SQS counts against the batch size: body plus attribute names, types, values.
    size: usize,
    /// After this the webhook has been answered `503`; the entry is not sent any more.
    deadline: Instant,
    reply: oneshot::Sender<Result<Receipt, SendError>>,
    /// Sent in a call of its own: its batch was refused whole, which may have been its
    /// doing (see [`refused_for_an_entry`]).
    alone: bool,
    /// Whole calls it was in that failed for a passing reason (see [`MAX_CALL_RETRIES`]).
    attempts: u32,
}

impl Pending {
    fn abandoned(&self) -> bool {
        self.reply.is_closed() || Instant::now() >= self.deadline
    }
}

/// The handle to the dispatcher: coalesces concurrent sends into batch calls. Cheap to
/// clone; every worker holds one.
#[derive(Clone)]
pub struct Batcher {
    submit: mpsc::UnboundedSender<Pending>,
    forward_timeout: Duration,
}

impl Batcher {
    /// Starts the dispatcher on the current Tokio runtime, in front of `sink`. At most
    /// `concurrency` batch calls are in flight at once; batches keep within `limits`.
    #[must_use]
    pub fn start<S: SendBatch>(
        sink: Arc<S>,
        concurrency: usize,
        forward_timeout: Duration,
        limits: Arc<QueueLimits>,
    ) -> Self {
        let (submit, receive) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(
            sink,
            receive,
            submit.clone(),
            concurrency.max(1),
            limits,
        ));
        Self {
            submit,
            forward_timeout,
        }
    }

    /// Resolves once SQS has the message, or with why not, within the forward timeout.
    pub async fn send(&self, message: OutgoingMessage) -> Result<Receipt, SendError> {
        let (reply, answer) = oneshot::channel();
        let size = message.size();
        let deadline = Instant::now() + self.forward_timeout;
        let pending = Pending {
            message,
            size,
            deadline,
            reply,
            alone: false,
            attempts: 0,
        };
        if self.submit.send(pending).is_err() {
            return Err(SendError::stopped("the batch dispatcher is not running"));
        }
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            // Dropped as past its deadline (its budget is spent), or the dispatcher is gone.
            Ok(Err(_)) if Instant::now() >= deadline => {
                Err(SendError::Timeout(self.forward_timeout.as_millis()))
            }
            Ok(Err(_)) => Err(SendError::stopped("the batch dispatcher dropped the event")),
            Err(_) => Err(SendError::Timeout(self.forward_timeout.as_millis())),
        }
    }
}

/// Takes waiting forwards off the channel in arrival order and sends them in batches.
///
/// A batch goes out at once when no call is in flight (an idle bridge adds no latency).
/// While calls are in flight, a partial batch waits for them to end, collecting later
/// arrivals; a full one (10 entries or 1 MiB) takes any free slot, up to the adaptive
/// limit (at most `concurrency`). So another call slot is only spent on a full batch:
/// slow SQS calls get more concurrency, and a fast SQS gets fewer, fuller calls.
async fn dispatch<S: SendBatch>(
    sink: Arc<S>,
    mut receive: mpsc::UnboundedReceiver<Pending>,
    resubmit: mpsc::UnboundedSender<Pending>,
    concurrency: usize,
    limits: Arc<QueueLimits>,
) {
    let control = Arc::new(std::sync::Mutex::new(Limit::new(concurrency)));
    let in_flight =
        |control: &std::sync::Mutex<Limit>| control.lock().expect("limit").in_flight > 0;
    let call_ended = Arc::new(Notify::new());
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match receive.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        if first.abandoned() {
            continue;
        }
        let mut batch = Batch::new(first, limits.max_batch_bytes());
        batch.fill(&mut receive, &mut carried);
        // A partial batch waits while any call is in flight, taking arrivals as they come.
        while !batch.full(carried.is_some()) && in_flight(&control) {
            tokio::select! {
                () = call_ended.notified() => {}
                next = receive.recv() => match next {
                    Some(next) => batch.push(next, &mut carried),
                    None => break,
                },
            }
            batch.fill(&mut receive, &mut carried);
        }
        // A free call slot, under the adaptive limit.
        let limited = loop {
            let ended = call_ended.notified();
            {
                let mut control = control.lock().expect("limit");
                let allowed = control.allowed();
                if control.in_flight < allowed {
                    control.in_flight += 1;
                    break control.in_flight >= allowed;
                }
            }
            ended.await;
        };
        batch.fill(&mut receive, &mut carried);
        // A partial batch may have waited a whole call: drop what was answered meanwhile.
        batch.entries.retain(|p| !p.abandoned());
        if batch.entries.is_empty() {
            control.lock().expect("limit").in_flight -= 1;
            call_ended.notify_one();
            continue;
        }
        let full = batch.full(carried.is_some());
        let sink = Arc::clone(&sink);
        let resubmit = resubmit.clone();
        let call_ended = Arc::clone(&call_ended);
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            let started = Instant::now();
            let (answer, again) = send(sink.as_ref(), batch.entries, &resubmit).await;
            let signal = match (answer, full) {
                (Answer::Congested, _) => Signal::Congested,
                (Answer::Failed, _) => Signal::Failed,
                (Answer::Taken, true) => Signal::Full,
                (Answer::Taken, false) => Signal::Partial,
            };
            {
                let mut control = control.lock().expect("limit");
                control.in_flight -= 1;
                control.record(started.elapsed(), signal, limited);
            }
            call_ended.notify_one();
            // After a short pause, so a throttled queue is not hammered; the call's slot
            // is free meanwhile. Each keeps its deduplication id, so a copy SQS did store
            // is dropped.
            if !again.is_empty() {
                tokio::time::sleep(ENTRY_RETRY_DELAY).await;
                for pending in again {
                    let _ = resubmit.send(pending);
                }
            }
        });
    }
}

/// A batch being formed: entries in arrival order and their size in SQS's terms.
struct Batch {
    entries: Vec<Pending>,
    size: usize,
    /// At most SQS's batch limit; see [`QueueLimits::max_batch_bytes`].
    max_bytes: usize,
}

impl Batch {
    fn new(first: Pending, max_bytes: usize) -> Self {
        Self {
            size: first.size,
            entries: vec![first],
            max_bytes,
        }
    }

    /// Full when it has 10 entries, the next waiting one would not fit, or its entry is to
    /// go alone.
    fn full(&self, next_waiting: bool) -> bool {
        self.entries.len() >= MAX_BATCH_ENTRIES || next_waiting || self.entries[0].alone
    }

    /// Adds one arrival, or sets it aside (`carried`) for the next batch if it would not
    /// fit. Abandoned entries are dropped.
    fn push(&mut self, next: Pending, carried: &mut Option<Pending>) {
        if next.abandoned() {
            return;
        }
        if next.alone || self.size + next.size > self.max_bytes {
            *carried = Some(next);
            return;
        }
        self.size += next.size;
        self.entries.push(next);
    }

    /// Takes what is already waiting, without waiting, until the batch is full.
    fn fill(
        &mut self,
        receive: &mut mpsc::UnboundedReceiver<Pending>,
        carried: &mut Option<Pending>,
    ) {
        while !self.full(carried.is_some()) {
            let Ok(next) = receive.try_recv() else { break };
            self.push(next, carried);
        }
    }
}

/// Whether SQS refusing a whole batch call may be one entry's doing: content it finds
/// invalid, which alone is a final `400` (not throttling, access, a missing queue, SQS's
/// faults, which a lone resend would only repeat).
fn refused_for_an_entry(error: &SendError) -> bool {
    matches!(error, SendError::Invalid { .. })
}

/// What a batch call's answer says about SQS, for [`limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// SQS answered the call (entries may still have failed for their own reasons).
    Taken,
    /// It throttled the call or an entry, or failed it on its side (5xx).
    Congested,
    /// No answer from SQS (the network, a timeout) or one that says nothing about its
    /// load (access, a missing queue): its latency and rate are not SQS's.
    Failed,
}

/// One batch call, and each entry's answer: what it says about SQS, and the entries to
/// send again after a pause.
async fn send<S: SendBatch>(
    sink: &S,
    batch: Vec<Pending>,
    resubmit: &mpsc::UnboundedSender<Pending>,
) -> (Answer, Vec<Pending>) {
    let messages = batch.iter().map(|p| p.message.clone()).collect();
    let deadline = batch
        .iter()
        .map(|p| p.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    #[allow(clippy::cast_precision_loss)] // at most 10
    metrics::histogram!(metric::SQS_BATCH_SIZE).record(batch.len() as f64);
    match sink.send_batch(messages, deadline).await {
        Err(error) if batch.len() > 1 && refused_for_an_entry(&error) => {
            // Which of several events SQS objects to can't be told from the answer: each
            // goes again in a call of its own, so only the one that caused it fails, and
            // its batch-mates are stored.
            tracing::debug!(
                code = error.code(),
                "SQS refused a batch call whole; sending its entries one by one"
            );
            for mut pending in batch {
                pending.alone = true;
                let _ = resubmit.send(pending);
            }
            (Answer::Taken, Vec::new())
        }
        Err(error) if retryable(&error) => {
            // SQS's trouble, not the events': again, with the same keys, while their
            // budget lasts (the dispatcher drops those past their deadline).
            let congested = congested(&error);
            let mut again = Vec::with_capacity(batch.len());
            for mut pending in batch {
                // Throttling and SQS's own faults are retried for as long as the budget
                // lasts; a network failure or a timeout only a few times.
                if !congested {
                    pending.attempts += 1;
                }
                if pending.attempts > MAX_CALL_RETRIES {
                    let _ = pending.reply.send(Err(error.clone()));
                } else {
                    again.push(pending);
                }
            }
            let answer = if congested {
                Answer::Congested
            } else {
                Answer::Failed
            };
            (answer, again)
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
            (Answer::Failed, Vec::new())
        }
        Ok(results) => {
            let mut congested = false;
            let mut retries = Vec::new();
            for (pending, result) in batch.into_iter().zip(results) {
                match result {
                    EntryResult::Sent(receipt) => {
                        let _ = pending.reply.send(Ok(receipt));
                    }
                    EntryResult::Failed(error) => {
                        super::classify::count_error("SendMessageBatch", &error);
                        let _ = pending.reply.send(Err(error));
                    }
                    EntryResult::Retry { code } => {
                        congested |= super::classify::is_throttling(&code);
                        metrics::counter!(metric::SQS_ENTRY_RETRIES).increment(1);
                        tracing::debug!(
                            code,
                            "SQS failed one batch entry on its side; retrying it"
                        );
                        retries.push(pending);
                    }
                }
            }
            let answer = if congested {
                Answer::Congested
            } else {
                Answer::Taken
            };
            (answer, retries)
        }
    }
}

/// Whole-call network failures or timeouts an event's entry is sent again after, at
/// most (as the SDK's retries were, before batch calls had none).
const MAX_CALL_RETRIES: u32 = 5;

/// A whole call that failed for a passing reason: throttling, SQS's own fault, the
/// network, an attempt's timeout — what the SDK would have retried. Worth sending again
/// within the budget. Not access or KMS errors, nor a missing queue (the deployment's to
/// fix: the senders retry), nor the budget being spent.
fn retryable(error: &SendError) -> bool {
    match error {
        SendError::Failed { code, .. } => {
            congested(error) || matches!(code.as_str(), "network" | "timeout")
        }
        _ => false,
    }
}

/// Whether a failed call says SQS is overloaded: throttling, or its own 5xx.
fn congested(error: &SendError) -> bool {
    match error {
        SendError::Failed { code, .. } => {
            super::classify::is_throttling(code) || super::classify::is_server_fault(code)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
