//! The drainer: forwards waiting records to SQS in order, batched as live traffic is,
//! with back-off while SQS fails; a record leaves the spool only once SQS has it (and
//! that is written down). It also adopts the parts of processes that are gone.
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

use super::part::{self, Part};
use super::record;
use super::state::{Entry, Group, Key, PartState, State};
use crate::sqs::limits::MAX_BATCH_ENTRIES;
use crate::sqs::{EntryResult, OutgoingMessage, QueueLimits, SendBatch, SendError, SqsQueue};
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
            match tokio::task::spawn_blocking(move || adopt_all(&root, &state)).await {
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
        let loaded = match load(&drainer.state, batch).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "spool: can't read waiting records back; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (intact, damaged): (Vec<_>, Vec<_>) =
            loaded.into_iter().partition(|l| l.message.is_some());
        let mut done = Vec::new();
        for record in damaged {
            quarantine(&drainer.root, &record, "corrupt").await;
            metrics::counter!(metric::SPOOL_CORRUPT_RECORDS).increment(1);
            done.push(record);
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
                        EntryResult::Sent(_) => {
                            sent += 1;
                            done.push(record);
                        }
                        EntryResult::Failed(SendError::Invalid { code, .. }) => {
                            refused(&drainer.root, &record, &code).await;
                            done.push(record);
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
                refused(&drainer.root, &intact[0], &code).await;
                done.extend(intact);
                finish(&drainer, done).await;
            }
            Err(SendError::Invalid { .. }) => alone_calls = count,
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

/// Reads the batch's records from their segments.
async fn load(state: &Arc<Mutex<State>>, batch: Vec<(Group, Entry)>) -> io::Result<Vec<Loaded>> {
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
    tokio::task::spawn_blocking(move || {
        let mut files: BTreeMap<PathBuf, std::fs::File> = BTreeMap::new();
        let mut loaded = Vec::with_capacity(located.len());
        for (group, entry, part_path, part_id) in located {
            let path = part::segment_path(&part_path, entry.segment);
            if !files.contains_key(&path) {
                files.insert(path.clone(), std::fs::File::open(&path)?);
            }
            let mut raw = vec![0; entry.len as usize];
            files[&path].read_exact_at(&mut raw, entry.offset)?;
            let message = record::read_one(&raw).map(|r| r.message);
            loaded.push(Loaded {
                group,
                entry,
                part_path,
                part_id,
                message,
                raw,
            });
        }
        Ok(loaded)
    })
    .await
    .map_err(io::Error::other)?
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

async fn quarantine(root: &Path, record: &Loaded, why: &'static str) {
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
        Ok(path) => tracing::error!(
            part = %record.part_id, segment, offset, kept = %path.display(),
            "spool: a waiting record no longer reads back intact; its bytes are kept in quarantine"
        ),
        Err(e) => tracing::error!(error = %e, part = %record.part_id, segment, offset,
            "spool: a waiting record no longer reads back intact, and can't be copied to quarantine"),
    }
}

/// SQS refuses the record for good: it is kept in quarantine, counted and logged.
async fn refused(root: &Path, record: &Loaded, code: &str) {
    metrics::counter!(metric::SPOOL_REFUSED_EVENTS).increment(1);
    tracing::error!(code, group = %record.group, "spool: SQS refuses a spooled event for good; it is kept in quarantine");
    quarantine(root, record, "refused").await;
}

/// Takes over every part under `root` whose process is gone, and puts its waiting
/// records in line.
pub(super) fn adopt_all(root: &Path, state: &Arc<Mutex<State>>) -> io::Result<()> {
    let known: Vec<PathBuf> = state
        .lock()
        .expect("spool state")
        .parts
        .iter()
        .filter_map(|p| p.part.as_ref().map(|p| p.path.clone()))
        .collect();
    for dir in std::fs::read_dir(part::parts_dir(root))? {
        let path = dir?.path();
        if !path.is_dir() || known.contains(&path) {
            continue;
        }
        let Some(part) = Part::adopt(&path)? else {
            continue;
        };
        adopt(root, part, state)?;
    }
    Ok(())
}

fn adopt(root: &Path, part: Part, state: &Arc<Mutex<State>>) -> io::Result<()> {
    let mut recovered = Vec::new();
    for number in part::segments(&part.path)? {
        let segment = part::recover_segment(root, &part, number)?;
        if segment.waiting.is_empty() {
            part::remove_segment(&part.path, number)?;
        } else {
            recovered.push(segment);
        }
    }
    part::remove_stray_acks(&part.path)?;
    let events: usize = recovered.iter().map(|s| s.waiting.len()).sum();
    if recovered.is_empty() {
        tracing::info!(part = %part.id, "spool: a part left by a process that is gone was empty; removed");
        return part.remove();
    }
    tracing::info!(part = %part.id, events, "spool: adopted a part left by a process that is gone; draining it");
    let mut state = state.lock().expect("spool state");
    let index = u32::try_from(state.parts.len()).unwrap_or(u32::MAX);
    state.parts.push(PartState {
        part: Some(part),
        segments: BTreeMap::new(),
    });
    for segment in recovered {
        for waiting in segment.waiting {
            let message = &waiting.record.message;
            let entry = Entry {
                key: Key {
                    at_ms: waiting.record.spooled_at_ms,
                    part: index,
                    seq: waiting.record.seq,
                },
                segment: segment.number,
                offset: waiting.offset,
                len: waiting.len,
                size: u32::try_from(message.size()).unwrap_or(u32::MAX),
            };
            state.recovered(message.group_id.as_str(), entry);
        }
    }
    Ok(())
}
