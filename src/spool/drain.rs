//! The drainer: forwards waiting records to SQS in order, batched as live traffic is,
//! with back-off while SQS fails; a record leaves the spool only once SQS has it (and
//! that is written down). Between calls it adopts the parts of processes that are gone
//! ([`super::adopt`]).
//!
//! It makes one call at a time, on its own: live traffic keeps its own call slots, and
//! one call in flight keeps each group's records in order.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::part;
use super::record;
use super::state::{Entry, Group, State};
use crate::memory::{EventKey, EventMemory};
use crate::sqs::limits::MAX_BATCH_ENTRIES;
use crate::sqs::{
    EntryResult, OutgoingMessage, QueueLimits, Receipt, SendBatch, SendError, SqsQueue,
};
use crate::telemetry::metric;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct Drainer {
    pub state: Arc<Mutex<State>>,
    pub root: PathBuf,
    pub adopt_interval: Duration,
    pub wake: Arc<Notify>,
    pub queue: SqsQueue,
    pub limits: Arc<QueueLimits>,
    pub forward_timeout: Duration,
    /// Told when a spooled event reaches SQS, so a repeat gets SQS's answer.
    pub memory: Option<EventMemory>,
}

/// A record read back for sending.
struct Loaded {
    group: Group,
    entry: Entry,
    part_path: PathBuf,
    part_id: String,
    /// `None`: the record no longer reads back intact.
    message: Option<OutgoingMessage>,
    raw: Vec<u8>,
}

pub(super) async fn run(drainer: Drainer) {
    let mut backoff = MIN_BACKOFF;
    // After a whole call was refused as invalid: this many calls carry one record each,
    // to find the record SQS refuses.
    let mut alone_calls = 0usize;
    let mut next_adopt = Instant::now() + drainer.adopt_interval;
    loop {
        if Instant::now() >= next_adopt {
            let (root, state) = (drainer.root.clone(), Arc::clone(&drainer.state));
            match tokio::task::spawn_blocking(move || super::adopt::adopt_all(&root, &state)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "spool: can't look for other processes' parts");
                }
                Err(e) => tracing::warn!(error = %e, "spool: the adoption scan stopped"),
            }
            next_adopt = Instant::now() + drainer.adopt_interval;
        }
        let batch = drainer.state.lock().expect("spool state").next_batch(
            if alone_calls > 0 {
                1
            } else {
                MAX_BATCH_ENTRIES
            },
            drainer.limits.max_batch_bytes(),
            drainer.limits.max_message_bytes(),
            alone_calls > 0,
        );
        if batch.is_empty() {
            drainer.state.lock().expect("spool state").close_breaker();
            let _ = tokio::time::timeout_at(next_adopt.into(), drainer.wake.notified()).await;
            continue;
        }
        let loaded = load(&drainer.state, batch).await;
        if loaded.is_empty() {
            // Nothing could be read (each group is held a while): don't spin.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        let (intact, damaged): (Vec<_>, Vec<_>) =
            loaded.into_iter().partition(|l| l.message.is_some());
        let mut done = Vec::new();
        for record in damaged {
            if quarantine(&drainer.root, &record, "corrupt").await {
                metrics::counter!(metric::SPOOL_CORRUPT_RECORDS).increment(1);
                done.push(record);
            } else {
                hold(&drainer.state, &record.group);
            }
        }
        if intact.is_empty() {
            finish(&drainer, done).await;
            continue;
        }
        let messages = intact
            .iter()
            .filter_map(|l| l.message.clone())
            .collect::<Vec<_>>();
        let count = messages.len();
        let deadline = Instant::now() + drainer.forward_timeout;
        alone_calls = alone_calls.saturating_sub(1);
        match drainer.queue.send_batch(messages, deadline).await {
            Ok(results) => {
                let mut sent = 0u64;
                for (record, result) in intact.into_iter().zip(results) {
                    match result {
                        EntryResult::Sent(receipt) => {
                            sent += 1;
                            if let (Some(memory), Some(message)) =
                                (&drainer.memory, &record.message)
                            {
                                mark_sent(memory, message, receipt);
                            }
                            done.push(record);
                        }
                        EntryResult::Failed(SendError::Invalid { code, .. }) => {
                            if refused(&drainer.root, &record, &code).await {
                                done.push(record);
                            } else {
                                hold(&drainer.state, &record.group);
                            }
                        }
                        EntryResult::Retry { .. } | EntryResult::Failed(_) => {
                            drainer
                                .state
                                .lock()
                                .expect("spool state")
                                .entry_failed(&record.group);
                        }
                    }
                }
                metrics::counter!(metric::SPOOL_DRAINED_EVENTS).increment(sent);
                if sent > 0 {
                    drainer.state.lock().expect("spool state").close_breaker();
                    backoff = MIN_BACKOFF;
                } else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                finish(&drainer, done).await;
            }
            Err(SendError::Invalid { code, .. }) if count == 1 => {
                if refused(&drainer.root, &intact[0], &code).await {
                    done.extend(intact);
                } else {
                    hold(&drainer.state, &intact[0].group);
                }
                finish(&drainer, done).await;
            }
            Err(SendError::Invalid { .. }) => {
                alone_calls = count;
                finish(&drainer, done).await;
            }
            Err(error) => {
                finish(&drainer, done).await;
                tracing::warn!(error = %error, waiting = drainer.state.lock().expect("spool state").backlog().events,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "spool: SQS does not take waiting events yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Marks a drained event's record in the event memory `sent` (in the background: the
/// drain does not wait on the table). On failure it stays `spooled`, logged: a repeat is
/// still answered `duplicate`, only without SQS's ids.
fn mark_sent(memory: &EventMemory, message: &OutgoingMessage, receipt: Receipt) {
    let Some(key) = EventKey::of_message(message) else {
        return;
    };
    let memory = memory.clone();
    tokio::spawn(async move {
        if let Err(error) = memory.sent(&key, &receipt).await {
            tracing::warn!(error = %error, "spool: could not record a drained event in the event memory");
        }
    });
}

/// How long a group waits after one of its records could not be read or kept.
const HOLD: Duration = Duration::from_secs(30);

/// Leaves `group` alone for [`HOLD`]: its first record can't be handled now, and its
/// later records must not go before it; other groups go on.
fn hold(state: &Arc<Mutex<State>>, group: &str) {
    state.lock().expect("spool state").hold(group, HOLD);
}

/// Reads the batch's records from their segments. A record that can't be read (an I/O
/// error) holds its group and is left out; the others go on.
async fn load(state: &Arc<Mutex<State>>, batch: Vec<(Group, Entry)>) -> Vec<Loaded> {
    let located: Vec<_> = {
        let state = state.lock().expect("spool state");
        batch
            .into_iter()
            .filter_map(|(group, entry)| {
                let part = state.parts.get(entry.key.part as usize)?.part.as_ref()?;
                Some((group, entry, part.path.clone(), part.id.clone()))
            })
            .collect()
    };
    let groups: Vec<Group> = located.iter().map(|(g, ..)| Arc::clone(g)).collect();
    let read = tokio::task::spawn_blocking(move || {
        let mut files: BTreeMap<PathBuf, std::fs::File> = BTreeMap::new();
        let mut loaded = Vec::with_capacity(located.len());
        let mut unreadable = Vec::new();
        for (group, entry, part_path, part_id) in located {
            let path = part::segment_path(&part_path, entry.segment);
            let mut raw = vec![0; entry.len as usize];
            let read = match files.entry(path.clone()) {
                std::collections::btree_map::Entry::Occupied(file) => Ok(file.into_mut()),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    std::fs::File::open(&path).map(|file| slot.insert(file))
                }
            }
            .and_then(|file| file.read_exact_at(&mut raw, entry.offset));
            match read {
                Ok(()) => loaded.push(Loaded {
                    message: record::read_one(&raw).map(|r| r.message),
                    group,
                    entry,
                    part_path,
                    part_id,
                    raw,
                }),
                Err(e) => {
                    tracing::error!(error = %e, segment = %path.display(), offset = entry.offset,
                        "spool: can't read a waiting record back; its group waits and tries again");
                    unreadable.push(group);
                }
            }
        }
        (loaded, unreadable)
    })
    .await;
    let (loaded, unreadable) = read.unwrap_or_else(|e| {
        tracing::error!(error = %e, "spool: reading waiting records back stopped");
        (Vec::new(), groups)
    });
    for group in unreadable {
        hold(state, &group);
    }
    loaded
}

/// Writes down that the records left the spool, then forgets them, deleting segments
/// (and adopted parts) they emptied.
async fn finish(drainer: &Drainer, done: Vec<Loaded>) {
    if done.is_empty() {
        return;
    }
    let mut by_segment: BTreeMap<(PathBuf, u64), Vec<u64>> = BTreeMap::new();
    for record in &done {
        by_segment
            .entry((record.part_path.clone(), record.entry.segment))
            .or_default()
            .push(record.entry.offset);
    }
    let written = tokio::task::spawn_blocking(move || {
        by_segment
            .into_iter()
            .try_for_each(|((part, segment), offsets)| part::write_acks(&part, segment, &offsets))
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r);
    if let Err(e) = written {
        // SQS has them; a restart would send them again, under the same deduplication ids.
        tracing::error!(error = %e, "spool: can't write down drained events");
    }
    let mut emptied = Vec::new();
    let mut parts_done = Vec::new();
    {
        let mut state = drainer.state.lock().expect("spool state");
        for record in &done {
            if let Some(e) = state.drained(&record.group, record.entry) {
                emptied.push((e.part, e.segment, record.part_path.clone()));
            }
        }
        for (index, segment, _) in &emptied {
            let part = &mut state.parts[*index as usize];
            part.segments.remove(segment);
            // An adopted part is done once its last segment is; this process's own part
            // stays for as long as the process runs.
            if *index > 0
                && part.segments.is_empty()
                && let Some(p) = part.part.take()
            {
                parts_done.push(p);
            }
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        for (_, segment, path) in emptied {
            if let Err(e) = part::remove_segment(&path, segment) {
                tracing::warn!(error = %e, segment, "spool: can't delete a drained segment");
            }
        }
        for done in parts_done {
            let id = done.id.clone();
            match done.remove() {
                Ok(()) => {
                    tracing::info!(part = %id, "spool: an adopted part is drained and removed");
                }
                Err(e) => {
                    tracing::warn!(error = %e, part = %id, "spool: can't remove a drained part");
                }
            }
        }
    })
    .await;
}

/// Whether the record's bytes are now kept in the quarantine folder: only then may it
/// leave the spool.
async fn quarantine(root: &Path, record: &Loaded, why: &'static str) -> bool {
    let (root, id, segment, offset, raw) = (
        root.to_owned(),
        record.part_id.clone(),
        record.entry.segment,
        record.entry.offset,
        record.raw.clone(),
    );
    let kept = tokio::task::spawn_blocking(move || {
        part::quarantine_record(&root, &id, segment, offset, &raw, why)
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r);
    match kept {
        Ok(path) => {
            tracing::error!(
                part = %record.part_id, segment, offset, why, kept = %path.display(),
                "spool: a waiting record can't be sent; its bytes are kept in quarantine"
            );
            true
        }
        Err(e) => {
            tracing::error!(error = %e, part = %record.part_id, segment, offset, why,
                "spool: a waiting record can't be sent, nor copied to quarantine; it stays in the spool");
            false
        }
    }
}

/// SQS refuses the record for good: it is kept in quarantine, counted and logged.
/// Whether it was kept (only then may it leave the spool).
async fn refused(root: &Path, record: &Loaded, code: &str) -> bool {
    tracing::error!(code, group = %record.group, "spool: SQS refuses a spooled event for good");
    let kept = quarantine(root, record, "refused").await;
    if kept {
        metrics::counter!(metric::SPOOL_REFUSED_EVENTS).increment(1);
    }
    kept
}
