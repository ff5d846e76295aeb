//! What the spool holds, in memory: per message group, the records waiting for SQS in
//! order, and the gate that decides whether a new event may go to SQS directly.
//!
//! The ordering rule, stated once: **while a group has events in the spool (or on their
//! way into it), its new events go into the spool behind them**, and an event whose
//! direct send fails goes in only after the group's other direct sends have ended
//! (`held`), so the spool's order is the order the events were acknowledged in. The
//! breaker sends every group to the spool once a direct send has failed, until the
//! drainer gets a call through.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::SpoolError;
use super::part::Part;
use crate::sqs::OutgoingMessage;

pub(super) type Group = Arc<str>;

/// Drain order: oldest first; within a part, in the order written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub at_ms: u64,
    pub part: u32,
    pub seq: u64,
}

/// Where a waiting record is, and what it costs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub key: Key,
    pub segment: u64,
    pub offset: u64,
    /// Bytes on disk.
    pub len: u32,
    /// Bytes as SQS counts them.
    pub size: u32,
}

/// An event on its way into the spool; answered once it is synced (or can't be).
pub(super) struct Append {
    pub group: Group,
    pub message: OutgoingMessage,
    pub len: u64,
    pub reply: oneshot::Sender<Result<(), SpoolError>>,
}

#[derive(Default)]
struct GroupState {
    /// Direct sends in flight.
    direct: u32,
    /// Appends not yet written (held or with the writer).
    reserved: u32,
    /// Records waiting for SQS, in drain order.
    queue: VecDeque<Entry>,
    /// Appends waiting for the group's direct sends to end.
    held: VecDeque<Append>,
    /// The group's first record failed last time: send it alone until SQS takes it, so
    /// a later record of the group can't overtake it in a batch.
    alone: bool,
    /// Too large for the queue as last seen: not tried before this.
    blocked_until: Option<Instant>,
    /// The key it is filed under in `State::heads`.
    head: Option<Key>,
}

impl GroupState {
    fn pending(&self) -> bool {
        self.reserved > 0 || !self.queue.is_empty()
    }
    fn idle(&self) -> bool {
        self.direct == 0 && !self.pending()
    }
}

/// A segment's bookkeeping.
#[derive(Debug, Default)]
pub(super) struct SegmentState {
    pub waiting: u32,
    /// The writer's current segment: not deleted when drained, it may still grow.
    pub writing: bool,
}

/// A part whose records are in this spool (this process's own first).
pub(super) struct PartState {
    /// `None` once drained and removed.
    pub part: Option<Part>,
    pub segments: BTreeMap<u64, SegmentState>,
}

/// Whether an event goes to SQS or into the spool.
pub(super) enum Route {
    Direct(OutgoingMessage),
    Spooling(oneshot::Receiver<Result<(), SpoolError>>),
}

/// A segment the drainer emptied, to delete; and the part, if that emptied it too.
pub(super) struct Emptied {
    pub part: u32,
    pub segment: u64,
}

pub(super) struct State {
    groups: HashMap<Group, GroupState>,
    /// Each group with waiting records, under its first record's key.
    heads: BTreeMap<Key, Group>,
    pub parts: Vec<PartState>,
    breaker_open: bool,
    stopping: bool,
    events: u64,
    /// Bytes of waiting and reserved records: what `BRIDGE_SPOOL_MAX_BYTES` caps.
    bytes: u64,
    max_bytes: u64,
    /// The last append was refused for space, and nothing drained since.
    full: bool,
    /// The last write failed (and none succeeded since): why.
    failing: Option<String>,
    writer: std::sync::mpsc::Sender<Append>,
}

/// What `/readyz`, `/metrics` and the logs show of the spool.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backlog {
    pub events: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub groups: usize,
    /// Age of the oldest waiting event.
    pub oldest_event_age_seconds: f64,
    /// New events go into the spool (SQS is failing, or events wait in it).
    pub spooling: bool,
    pub full: bool,
    pub failing: Option<String>,
}

impl State {
    pub fn new(max_bytes: u64, writer: std::sync::mpsc::Sender<Append>) -> Self {
        Self {
            groups: HashMap::new(),
            heads: BTreeMap::new(),
            parts: Vec::new(),
            breaker_open: false,
            stopping: false,
            events: 0,
            bytes: 0,
            max_bytes,
            full: false,
            failing: None,
            writer,
        }
    }

    /// Directly to SQS, unless the gate says the spool.
    pub fn route(&mut self, message: OutgoingMessage) -> Result<Route, SpoolError> {
        let group = message.group_id.as_str();
        let pending = self.groups.get(group).is_some_and(GroupState::pending);
        if self.breaker_open || self.stopping || pending {
            return self.enqueue(message).map(Route::Spooling);
        }
        self.group_mut(group).direct += 1;
        Ok(Route::Direct(message))
    }

    /// Into the spool, whatever the gate says (an event too large for the queue).
    pub fn enqueue(
        &mut self,
        message: OutgoingMessage,
    ) -> Result<oneshot::Receiver<Result<(), SpoolError>>, SpoolError> {
        let len = super::record::encoded_len(&message) as u64;
        if self.bytes + len > self.max_bytes {
            self.full = true;
            return Err(SpoolError::Full {
                max_bytes: self.max_bytes,
            });
        }
        let group: Group = Arc::from(message.group_id.as_str());
        let (reply, answer) = oneshot::channel();
        let append = Append {
            group: Arc::clone(&group),
            message,
            len,
            reply,
        };
        let state = self.group_mut(&group);
        if state.direct > 0 {
            state.held.push_back(append);
        } else if self.writer.send(append).is_err() {
            self.cleanup(&group);
            return Err(SpoolError::Disk("the spool's writer has stopped".into()));
        }
        self.bytes += len;
        self.group_mut(&group).reserved += 1;
        Ok(answer)
    }

    /// A direct send ended; `failed`: it did not reach SQS and goes into the spool
    /// (after the appends the group held meanwhile).
    pub fn direct_ended(
        &mut self,
        group: &str,
        failed: Option<OutgoingMessage>,
    ) -> Option<Result<oneshot::Receiver<Result<(), SpoolError>>, SpoolError>> {
        let state = self.group_mut(group);
        state.direct = state.direct.saturating_sub(1);
        if state.direct == 0 {
            let held = std::mem::take(&mut state.held);
            for append in held {
                if let Err(std::sync::mpsc::SendError(append)) = self.writer.send(append) {
                    self.bytes -= append.len;
                    self.group_mut(group).reserved -= 1;
                    let _ = append.reply.send(Err(SpoolError::Disk(
                        "the spool's writer has stopped".into(),
                    )));
                }
            }
        }
        let spooled = failed.map(|message| {
            self.breaker_open = true;
            self.enqueue(message)
        });
        self.cleanup(group);
        spooled
    }

    /// The writer synced a record of `group`.
    pub fn appended(&mut self, group: &str, entry: Entry) {
        let state = self.group_mut(group);
        state.reserved -= 1;
        // Behind everything the group has: the gate let it in in acknowledgement order
        // (its key's clock may be behind an adopted part's).
        state.queue.push_back(entry);
        self.events += 1;
        self.full = false;
        self.failing = None;
        if let Some(part) = self.parts.get_mut(entry.key.part as usize) {
            part.segments.entry(entry.segment).or_default().waiting += 1;
        }
        self.reindex(group);
    }

    /// The writer could not make a record of `group` durable.
    pub fn append_failed(&mut self, group: &str, len: u64, why: &str) {
        self.group_mut(group).reserved -= 1;
        self.bytes -= len;
        self.failing = Some(why.to_owned());
        self.cleanup(group);
    }

    /// A record found on disk, from a part adopted or recovered.
    pub fn recovered(&mut self, group: &str, entry: Entry) {
        let state = self.group_mut(group);
        let at = state.queue.partition_point(|e| e.key <= entry.key);
        state.queue.insert(at, entry);
        self.events += 1;
        self.bytes += u64::from(entry.len);
        if let Some(part) = self.parts.get_mut(entry.key.part as usize) {
            part.segments.entry(entry.segment).or_default().waiting += 1;
        }
        self.reindex(group);
    }

    /// The next records to drain: from the groups whose first record is oldest, each
    /// group's records in order, within SQS's batch limits. A group whose first record
    /// is too large for the queue is left for a while (it would fail, and its later
    /// records can't go first).
    pub fn next_batch(
        &mut self,
        max_entries: usize,
        max_batch_bytes: usize,
        max_message_bytes: usize,
        alone: bool,
    ) -> Vec<(Group, Entry)> {
        let now = Instant::now();
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut too_large = Vec::new();
        'groups: for group in self.heads.values() {
            let state = &self.groups[group];
            if state.blocked_until.is_some_and(|until| until > now) {
                continue;
            }
            for (i, entry) in state.queue.iter().enumerate() {
                let size = entry.size as usize;
                if size > max_message_bytes {
                    if i == 0 {
                        too_large.push((Arc::clone(group), size));
                    }
                    continue 'groups;
                }
                if batch.len() == max_entries || bytes + size > max_batch_bytes {
                    break 'groups;
                }
                batch.push((Arc::clone(group), *entry));
                bytes += size;
                if alone {
                    break 'groups;
                }
                if state.alone {
                    continue 'groups;
                }
            }
        }
        for (group, size) in too_large {
            tracing::warn!(
                group = %group, size, max = max_message_bytes,
                "spool: an event is larger than the queue takes (MaximumMessageSize); its group waits until the queue is raised"
            );
            self.group_mut(&group).blocked_until = Some(now + std::time::Duration::from_secs(30));
        }
        batch
    }

    /// The group's first record can't be handled now: its group waits `for_a_while`.
    pub fn hold(&mut self, group: &str, for_a_while: std::time::Duration) {
        if let Some(state) = self.groups.get_mut(group) {
            state.blocked_until = Some(Instant::now() + for_a_while);
        }
    }

    /// SQS failed the group's first record: next time it goes alone.
    pub fn entry_failed(&mut self, group: &str) {
        if let Some(state) = self.groups.get_mut(group) {
            state.alone = true;
        }
    }

    /// SQS has the record (or refused it for good, and it is quarantined): it leaves the
    /// spool. Returns the segment, if that emptied it and it can be deleted.
    pub fn drained(&mut self, group: &str, entry: Entry) -> Option<Emptied> {
        let state = self.groups.get_mut(group)?;
        let at = state.queue.iter().position(|e| e.key == entry.key)?;
        state.queue.remove(at);
        if at == 0 {
            state.alone = false;
        }
        self.events -= 1;
        self.bytes -= u64::from(entry.len);
        self.full = false;
        self.reindex(group);
        self.cleanup(group);
        let part = self.parts.get_mut(entry.key.part as usize)?;
        let segment = part.segments.get_mut(&entry.segment)?;
        segment.waiting -= 1;
        (segment.waiting == 0 && !segment.writing).then_some(Emptied {
            part: entry.key.part,
            segment: entry.segment,
        })
    }

    /// The drainer got a call through, or has nothing it can send: live traffic may go
    /// to SQS again (for groups with nothing waiting).
    pub fn close_breaker(&mut self) {
        self.breaker_open = false;
    }

    /// Shutdown: every event still forwarding, and any new one, goes into the spool.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    pub fn backlog(&self) -> Backlog {
        let now_ms = super::now_ms();
        Backlog {
            events: self.events,
            bytes: self.bytes,
            max_bytes: self.max_bytes,
            groups: self.heads.len(),
            #[allow(clippy::cast_precision_loss)] // ages far below 2^52 ms
            oldest_event_age_seconds: self
                .heads
                .keys()
                .next()
                .map_or(0.0, |k| now_ms.saturating_sub(k.at_ms) as f64 / 1000.0),
            spooling: self.breaker_open || self.events > 0,
            full: self.full,
            failing: self.failing.clone(),
        }
    }

    fn group_mut(&mut self, group: &str) -> &mut GroupState {
        if !self.groups.contains_key(group) {
            self.groups.insert(Arc::from(group), GroupState::default());
        }
        self.groups.get_mut(group).expect("just inserted")
    }

    /// Keeps `heads` pointing at each group's first record.
    fn reindex(&mut self, group: &str) {
        let Some((name, state)) = self.groups.get_key_value(group) else {
            return;
        };
        let head = state.queue.front().map(|e| e.key);
        if head == state.head {
            return;
        }
        let name = Arc::clone(name);
        if let Some(old) = state.head {
            self.heads.remove(&old);
        }
        if let Some(key) = head {
            self.heads.insert(key, name);
        }
        self.group_mut(group).head = head;
    }

    fn cleanup(&mut self, group: &str) {
        if self.groups.get(group).is_some_and(GroupState::idle) {
            self.groups.remove(group);
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
