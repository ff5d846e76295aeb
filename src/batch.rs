//! Group commit: concurrent forwards share `SendMessageBatch` calls.
//!
//! An event is sent at once when a call slot is free; events that arrive while every slot
//! is busy wait in a queue and leave together, up to 10 entries and 1 MiB, as soon as a
//! slot frees. There is no linger timer, so an idle bridge adds no latency, and under load
//! the SDK's per-call cost is shared by up to ten events.
//!
//! Each webhook still gets its own entry's result: a failed entry is retried (same keys,
//! so SQS deduplicates a copy it already stored) or answered alone, while its batch-mates
//! are answered `200`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::queue::{
    EntryResult, EventQueue, OutgoingMessage, Readiness, Receipt, SendError, SqsQueue,
};
use crate::telemetry::metric;

/// SQS's limits for one `SendMessageBatch` call.
pub const MAX_ENTRIES: usize = 10;
pub const MAX_BATCH_BYTES: usize = 1_048_576;

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
}

impl Pending {
    fn abandoned(&self) -> bool {
        self.reply.is_closed() || Instant::now() >= self.deadline
    }
}

/// An [`EventQueue`] that coalesces concurrent sends into batches.
pub struct BatchingQueue {
    queue: Arc<SqsQueue>,
    submit: mpsc::UnboundedSender<Pending>,
    forward_timeout: Duration,
}

impl BatchingQueue {
    /// Starts the dispatcher on the current Tokio runtime. At most `concurrency` batch
    /// calls are in flight at once.
    #[must_use]
    pub fn start(queue: SqsQueue, concurrency: usize, forward_timeout: Duration) -> Self {
        let queue = Arc::new(queue);
        let (submit, receive) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(
            Arc::clone(&queue),
            receive,
            submit.clone(),
            Arc::new(Semaphore::new(concurrency.max(1))),
        ));
        Self {
            queue,
            submit,
            forward_timeout,
        }
    }
}

#[async_trait]
impl EventQueue for BatchingQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<Receipt, SendError> {
        let (reply, answer) = oneshot::channel();
        let size = message.body.len()
            + message
                .attributes
                .iter()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>();
        let deadline = Instant::now() + self.forward_timeout;
        let pending = Pending {
            message,
            size,
            deadline,
            reply,
        };
        if self.submit.send(pending).is_err() {
            return Err(SendError::Failed {
                code: "dispatcher_stopped".into(),
                detail: "the batch dispatcher is not running".into(),
            });
        }
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SendError::Failed {
                code: "dispatcher_stopped".into(),
                detail: "the batch dispatcher dropped the event".into(),
            }),
            Err(_) => Err(SendError::Timeout(self.forward_timeout.as_millis())),
        }
    }

    async fn readiness(&self) -> Readiness {
        self.queue.readiness().await
    }
}

/// Takes waiting forwards off the channel in arrival order and sends them in batches.
async fn dispatch(
    queue: Arc<SqsQueue>,
    mut receive: mpsc::UnboundedReceiver<Pending>,
    resubmit: mpsc::UnboundedSender<Pending>,
    slots: Arc<Semaphore>,
) {
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
        // While every slot is busy, later arrivals queue up behind `first`: that queue is
        // the next batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut size = first.size;
        let mut batch = vec![first];
        while batch.len() < MAX_ENTRIES {
            let Ok(next) = receive.try_recv() else { break };
            if next.abandoned() {
                continue;
            }
            if size + next.size > MAX_BATCH_BYTES {
                carried = Some(next);
                break;
            }
            size += next.size;
            batch.push(next);
        }
        let queue = Arc::clone(&queue);
        let resubmit = resubmit.clone();
        tokio::spawn(async move {
            send(&queue, batch, &resubmit).await;
            drop(slot);
        });
    }
}

/// One batch call, and each entry's answer.
async fn send(queue: &SqsQueue, batch: Vec<Pending>, resubmit: &mpsc::UnboundedSender<Pending>) {
    let messages = batch.iter().map(|p| p.message.clone()).collect();
    #[allow(clippy::cast_precision_loss)] // at most 10
    metrics::histogram!(metric::SQS_BATCH_SIZE).record(batch.len() as f64);
    match queue.send_batch(messages).await {
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
        Ok(results) => {
            let mut retries = Vec::new();
            for (pending, result) in batch.into_iter().zip(results) {
                match result {
                    EntryResult::Sent(receipt) => {
                        let _ = pending.reply.send(Ok(receipt));
                    }
                    EntryResult::Failed(error) => {
                        let _ = pending.reply.send(Err(error));
                    }
                    EntryResult::Retry { code } => {
                        tracing::debug!(
                            code,
                            "SQS failed one batch entry on its side; retrying it"
                        );
                        retries.push(pending);
                    }
                }
            }
            if !retries.is_empty() {
                // A short pause, so a throttled queue is not hammered; the entry keeps its
                // deduplication id, so a copy SQS did store is dropped.
                tokio::time::sleep(ENTRY_RETRY_DELAY).await;
                for pending in retries {
                    let _ = resubmit.send(pending);
                }
            }
        }
    }
}
