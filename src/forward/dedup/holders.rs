//! Who holds each deduplication id given out in the window (see [`super::Deduplicator`]).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use crate::forward::keys::DeduplicationId;

/// Each id given out in the window, and the identity it was given to, both as 64-bit
/// hashes (keyed per process): a few dozen bytes per event. Two different ids with one
/// hash would only make the second event's id a resolved one, which is still unique.
/// Each claim by the holder renews its hold, so an id stays held for a window after the
/// last attempt that may have stored it.
#[derive(Debug, Default)]
pub(super) struct Holders {
    pub(super) hasher: RandomState,
    /// Id hash → the holder's identity hash, and until when.
    pub(super) by_id: HashMap<u64, (u64, Instant)>,
    /// Identity hash → the id it was given instead of one another held, and until when:
    /// its retries get that one again, whatever happens to the other's hold.
    pub(super) resolved: HashMap<u64, (DeduplicationId, Instant)>,
    pub(super) expiry: VecDeque<(Instant, Held)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Held {
    Id(u64),
    Resolved(u64),
}

impl Holders {
    pub(super) fn expire(&mut self, now: Instant) {
        while self
            .expiry
            .front()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            // Renewed entries have a later deadline of their own further back.
            match self.expiry.pop_front() {
                Some((_, Held::Id(id)))
                    if self.by_id.get(&id).is_some_and(|(_, until)| *until <= now) =>
                {
                    self.by_id.remove(&id);
                }
                Some((_, Held::Resolved(who)))
                    if self
                        .resolved
                        .get(&who)
                        .is_some_and(|(_, until)| *until <= now) =>
                {
                    self.resolved.remove(&who);
                }
                _ => {}
            }
        }
    }

    /// Gives (or renews) `id` to `who` until `until`.
    pub(super) fn hold(&mut self, id: &DeduplicationId, who: u64, until: Instant) {
        let hash = self.hasher.hash_one(id.as_str());
        self.by_id.insert(hash, (who, until));
        self.expiry.push_back((until, Held::Id(hash)));
    }

    /// Who holds `id`, if anyone.
    pub(super) fn holder(&self, id: &DeduplicationId) -> Option<u64> {
        self.by_id
            .get(&self.hasher.hash_one(id.as_str()))
            .map(|(who, _)| *who)
    }
}
