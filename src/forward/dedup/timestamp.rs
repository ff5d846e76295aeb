//! `timestamp` mode's memory: one increasing sequence of milliseconds for the process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::identity::Identity;

/// What `timestamp` mode remembers for SQS's window: the id given to each event identity
/// (so a retry gets it again), the ids made here, the events' own ids in the same format,
/// and the last millisecond used (so no two events share one).
///
/// One sequence for the whole process, not one per group: with SQS's default
/// deduplication scope two events of different groups with the same id are one event to
/// SQS, and the second would be dropped while its sender is told `200`.
#[derive(Debug)]
pub(super) struct TimestampState {
    pub(super) by_identity: HashMap<Identity, i64>,
    /// The values of `by_identity`, to look up by id.
    pub(super) issued: HashSet<i64>,
    pub(super) expiry: VecDeque<(Instant, Identity)>,
    /// Events' own ids in the vendor's format, until when they are reserved.
    pub(super) own: HashMap<i64, Instant>,
    pub(super) own_expiry: VecDeque<(Instant, i64)>,
    pub(super) last_ms: i64,
}

impl Default for TimestampState {
    fn default() -> Self {
        Self {
            by_identity: HashMap::new(),
            issued: HashSet::new(),
            expiry: VecDeque::new(),
            own: HashMap::new(),
            own_expiry: VecDeque::new(),
            last_ms: i64::MIN,
        }
    }
}

impl TimestampState {
    /// A new id: one millisecond after the last if the clock has not moved on (or went
    /// back), so ids made here are strictly increasing and never equal, and never an
    /// event's own id seen in the window.
    pub(super) fn issue(&mut self, key: Identity, now_ms: i64, until: Instant) -> i64 {
        let mut ms = now_ms.max(self.last_ms.saturating_add(1));
        while self.own.contains_key(&ms) {
            ms += 1;
        }
        self.last_ms = ms;
        self.expiry.push_back((until, key.clone()));
        self.issued.insert(ms);
        self.by_identity.insert(key, ms);
        ms
    }

    pub(super) fn expire(&mut self, now: Instant) {
        while self
            .expiry
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            if let Some((_, key)) = self.expiry.pop_front()
                && let Some(ms) = self.by_identity.remove(&key)
            {
                self.issued.remove(&ms);
            }
        }
        while self
            .own_expiry
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            if let Some((_, ms)) = self.own_expiry.pop_front()
                && self.own.get(&ms).is_some_and(|until| *until <= now)
            {
                self.own.remove(&ms);
            }
        }
    }
}
