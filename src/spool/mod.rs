//! The durable spool (`BRIDGE_SPOOL_DIR`): events SQS can't take are kept on disk, in
//! order, and drained into SQS once it takes them again, so an SQS outage longer than
//! the vendor's one-minute retry window loses nothing.
//!
//! - [`state`]: what is waiting, per message group, and the gate (the ordering rule).
//! - [`writer`]: the thread that appends and syncs, a round of appends per sync.
//! - [`drain`]: the task that forwards waiting records and adopts parts of dead processes.
//! - [`part`]: the directory's layout, locks, acknowledgements and quarantine.
//! - [`record`]: one record's bytes (length, CRC32C) and reading a segment back.
//! - [`status`]: `spool status`, a read-only look at any spool directory.
//!
//! A webhook with the spool on: the gate picks SQS or the spool ([`Spool::forward`]).
//! An event sent to SQS that fails for any reason but its content (`Invalid`, answered
//! as without the spool) goes into the spool; it is answered `200` with `"spooled"`
//! once its record is synced, and `503` if the spool is full or the disk fails.

mod adopt;
mod drain;
mod part;
mod record;
mod state;
pub mod status;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};

use crate::sqs::{OutgoingMessage, QueueLimits, Receipt, SendError, Sender, SqsQueue};
pub use state::Backlog;
use state::{PartState, Route, State};

/// Where a webhook's event went.
#[derive(Debug)]
pub enum Delivery {
    /// SQS has it.
    Queued(Receipt),
    /// The spool has it, synced; the drainer will put it into SQS.
    Spooled,
}

/// Why an event is in neither SQS nor the spool.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full (BRIDGE_SPOOL_MAX_BYTES = {max_bytes})")]
    Full { max_bytes: u64 },
    #[error("the spool can't write to BRIDGE_SPOOL_DIR: {0}")]
    Disk(String),
}

/// Why a webhook's event was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum Undelivered {
    /// SQS refused it for good: answered as without the spool.
    #[error(transparent)]
    Refused(SendError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// The spool's settings.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// How often other processes' parts are looked at, to adopt those whose process is gone.
    pub adopt_interval: Duration,
}

/// Why the spool could not be opened: start-up stops (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("BRIDGE_SPOOL_DIR: can't use {}: {source}", dir.display())]
pub struct OpenError {
    pub dir: PathBuf,
    pub source: std::io::Error,
}

struct Inner {
    state: Arc<Mutex<State>>,
    settings: SpoolSettings,
    wake_drainer: Arc<Notify>,
    /// Set on shutdown: direct sends still in flight give up and spool their event.
    take_over: watch::Sender<bool>,
}

/// The handle every worker holds. Cheap to clone.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl Spool {
    /// Opens the directory: creates this process's part under its lock, takes over the
    /// parts of processes that are gone (their records are waiting before anything new),
    /// and starts the writer thread.
    pub fn open(settings: &SpoolSettings) -> Result<Self, OpenError> {
        let fail = |source| OpenError {
            dir: settings.dir.clone(),
            source,
        };
        part::create_private_dir(&settings.dir).map_err(fail)?;
        let own = part::Part::create(&settings.dir).map_err(fail)?;
        let own_path = own.path.clone();
        let (appends, receive) = std::sync::mpsc::channel();
        let mut state = State::new(settings.max_bytes, appends);
        state.parts.push(PartState {
            part: Some(own),
            segments: std::collections::BTreeMap::new(),
        });
        let state = Arc::new(Mutex::new(state));
        adopt::adopt_all(&settings.dir, &state).map_err(fail)?;
        let wake_drainer = Arc::new(Notify::new());
        let writer =
            writer::Writer::new(own_path, 0, Arc::clone(&state), Arc::clone(&wake_drainer));
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(&receive))
            .map_err(fail)?;
        let (take_over, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                state,
                settings: settings.clone(),
                wake_drainer,
                take_over,
            }),
        })
    }

    /// Starts the drainer on the current Tokio runtime; it marks each event it drains
    /// `sent` in `memory`, if any.
    pub fn start_draining(
        &self,
        queue: SqsQueue,
        limits: Arc<QueueLimits>,
        forward_timeout: Duration,
        memory: Option<crate::memory::EventMemory>,
    ) {
        tokio::spawn(drain::run(drain::Drainer {
            state: Arc::clone(&self.inner.state),
            root: self.inner.settings.dir.clone(),
            adopt_interval: self.inner.settings.adopt_interval,
            wake: Arc::clone(&self.inner.wake_drainer),
            queue,
            limits,
            forward_timeout,
            memory,
        }));
    }

    /// Sends `message` through `sender`, or spools it, as the gate says.
    pub async fn forward(
        &self,
        sender: &Sender,
        message: OutgoingMessage,
    ) -> Result<Delivery, Undelivered> {
        let route = self.lock().route(message)?;
        let message = match route {
            Route::Spooling(synced) => return Ok(synced_or(synced).await?),
            Route::Direct(message) => message,
        };
        let group = message.group_id.clone();
        // Ends the direct send in the gate even if this future is dropped (the client
        // went away): a send counted forever would hold the group's spooled events back.
        let mut in_flight = DirectSend {
            spool: self,
            group: Some(group.as_str()),
        };
        let mut stopping = self.inner.take_over.subscribe();
        let kept = message.clone();
        let sent = tokio::select! {
            sent = sender.send(message) => sent,
            _ = stopping.wait_for(|stop| *stop) => Err(SendError::stopped("shutting down")),
        };
        let failed = match &sent {
            Ok(_) | Err(SendError::Invalid { .. }) => None,
            Err(error) => {
                tracing::warn!(error = %error, group = group.as_str(), "SQS did not take the event; spooling it");
                Some(kept)
            }
        };
        in_flight.group = None;
        let spooled = self.lock().direct_ended(group.as_str(), failed);
        match (sent, spooled) {
            (Ok(receipt), _) => Ok(Delivery::Queued(receipt)),
            (Err(error), None) => Err(Undelivered::Refused(error)),
            (Err(_), Some(Err(error))) => Err(error.into()),
            (Err(_), Some(Ok(synced))) => Ok(synced_or(synced).await?),
        }
    }

    /// Spools `message` without trying SQS (it is larger than the queue takes now).
    pub async fn spool(&self, message: OutgoingMessage) -> Result<Delivery, SpoolError> {
        let synced = self.lock().enqueue(message)?;
        synced_or(synced).await
    }

    /// What is waiting, for `/readyz` and `/metrics`.
    #[must_use]
    pub fn backlog(&self) -> Backlog {
        self.lock().backlog()
    }

    /// Shutdown: events still being forwarded, and any new ones, go into the spool.
    pub fn take_over(&self) {
        self.lock().stop();
        self.inner.take_over.send_replace(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("spool state")
    }
}

/// A direct send the gate counts; ended in the gate when dropped unanswered.
struct DirectSend<'a> {
    spool: &'a Spool,
    group: Option<&'a str>,
}

impl Drop for DirectSend<'_> {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            self.spool.lock().direct_ended(group, None);
        }
    }
}

async fn synced_or(
    synced: oneshot::Receiver<Result<(), SpoolError>>,
) -> Result<Delivery, SpoolError> {
    match synced.await {
        Ok(Ok(())) => Ok(Delivery::Spooled),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(SpoolError::Disk("the spool's writer has stopped".into())),
    }
}

/// Whether `dir` can hold the spool: created if missing, and a file in it can be
/// written, synced and removed (`check-config`).
pub fn probe(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let written = file
        .write_all(b"webhook-sqs-bridge check-config probe\n")
        .and_then(|()| file.sync_data())
        .and_then(|()| part::sync_dir(dir));
    let removed = std::fs::remove_file(&path);
    written.and(removed)
}

/// Milliseconds since the Unix epoch: when a record was spooled.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
