//! An in-memory [`SendBatch`] for unit tests: records each call, holds it until the test
//! releases it, and answers as scripted (every entry sent, by default). What the
//! integration tests' fake SQS server does over HTTP, without a socket.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};

use super::{EntryResult, OutgoingMessage, Receipt, SendBatch, SendError};

/// How the fake answers one call.
pub enum Call {
    /// Every entry sent (what an unscripted call answers).
    Sent,
    /// One result per entry, in order.
    Entries(Vec<EntryResult>),
    /// The whole call fails.
    Refused(SendError),
}

/// What a call carried, as the test sees it.
pub struct Started(Vec<OutgoingMessage>);

impl Started {
    /// Each entry's body, trimmed: the tests' bodies start with their name.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|m| m.body.trim_end()).collect()
    }

    pub fn deduplication_ids(&self) -> Vec<&str> {
        self.0.iter().map(|m| m.deduplication_id.as_str()).collect()
    }
}

pub struct FakeBatchSink {
    started: mpsc::UnboundedSender<Vec<OutgoingMessage>>,
    calls: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<OutgoingMessage>>>,
    /// A call waits for a permit here before answering.
    gate: Semaphore,
    script: Mutex<VecDeque<Call>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeBatchSink {
    /// A fake whose calls wait for [`FakeBatchSink::release`].
    pub fn gated() -> Self {
        let (started, calls) = mpsc::unbounded_channel();
        Self {
            started,
            calls: tokio::sync::Mutex::new(calls),
            gate: Semaphore::new(0),
            script: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    /// The answer for the next call to start (later ones answer "all sent").
    pub fn answer_next(&self, call: Call) {
        self.script.lock().unwrap().push_back(call);
    }

    /// Lets `calls` waiting calls answer.
    pub fn release(&self, calls: usize) {
        self.gate.add_permits(calls);
    }

    /// The next call to start, in the order they started.
    pub async fn next_call(&self) -> Started {
        Started(
            self.calls
                .lock()
                .await
                .recv()
                .await
                .expect("the fake is alive"),
        )
    }

    /// Whether no call starts once every task that can run has run: on the tests'
    /// current-thread runtime, yielding lets the dispatcher reach its next wait, so this
    /// needs no timer.
    pub async fn no_call_starts(&self) -> bool {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        self.calls.lock().await.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

impl SendBatch for FakeBatchSink {
    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
        _deadline: Instant,
    ) -> Result<Vec<EntryResult>, SendError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let script = self.script.lock().unwrap().pop_front();
        let _ = self.started.send(messages.clone());
        let permit = self.gate.acquire().await.expect("the gate stays open");
        permit.forget();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match script {
            Some(Call::Refused(error)) => Err(error),
            Some(Call::Entries(results)) => Ok(results),
            None | Some(Call::Sent) => Ok(messages
                .iter()
                .map(|m| {
                    EntryResult::Sent(Receipt {
                        message_id: format!("id-{}", m.body.trim_end()),
                        sequence_number: None,
                    })
                })
                .collect()),
        }
    }
}
