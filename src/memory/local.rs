//! The event memory in the process (`BRIDGE_EVENT_MEMORY=local` with a TTL or
//! `BRIDGE_EVENT_MEMORY_MAX_EVENTS`): the table's records and rules, kept in a map of at
//! most `max_events` records, for one replica and until it restarts.
//!
//! Every write sets a record's expiry to now plus the TTL and makes it the most recent,
//! so the least recently written record is also the first to expire: expiry and eviction
//! both take from the same end. A record evicted before its TTL is counted in
//! `bridge_event_memory_evictions_total`; a repeat of it is then forwarded again under
//! the id the deduplicator gives it (SQS still drops it within five minutes).

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use lru::LruCache;

use super::{EventKey, Mark, RecordState, Stored};
use crate::telemetry::metric;

/// The records, least recently written first.
#[derive(Debug)]
pub struct Records {
    map: Mutex<LruCache<[u8; 32], Entry>>,
}

#[derive(Debug)]
struct Entry {
    stored: Stored,
    expires_at_ms: i64,
}

impl Records {
    #[must_use]
    pub fn new(max_events: NonZeroUsize) -> Self {
        Self {
            map: Mutex::new(LruCache::new(max_events)),
        }
    }

    /// How many records are held (expired ones go at the next write).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// As the table's conditional write: records `in-progress` unless a live record
    /// exists, and returns that one if so (unchanged).
    pub(super) fn claim(
        &self,
        key: &EventKey,
        deduplication_id: &str,
        body_sha256: &str,
        now_ms: i64,
        ttl: Duration,
    ) -> Option<Stored> {
        let mut map = self.lock();
        expire(&mut map, now_ms);
        // (Expired but still held after the clock stepped back: as if absent.)
        if let Some(entry) = map.peek(&key.0).filter(|e| e.expires_at_ms > now_ms) {
            return Some(entry.stored.clone());
        }
        if map.len() == map.cap().get()
            && let Some((_, evicted)) = map.pop_lru()
        {
            tracing::debug!(
                deduplication_id = evicted.stored.deduplication_id.as_str(),
                "the event memory is full: its oldest record was dropped before its TTL"
            );
            metrics::counter!(metric::EVENT_MEMORY_EVICTIONS).increment(1);
        }
        map.put(
            key.0,
            Entry {
                stored: Stored {
                    deduplication_id: deduplication_id.to_owned(),
                    body_sha256: body_sha256.to_owned(),
                    claimed_at_ms: now_ms,
                    state: RecordState::InProgress,
                },
                expires_at_ms: expiry(now_ms, ttl),
            },
        );
        None
    }

    /// Moves a stale `in-progress` record to this attempt, unless another took it.
    pub(super) fn take_over(&self, key: &EventKey, claimed_at_ms: i64, now_ms: i64, ttl: Duration) {
        self.update(key, now_ms, ttl, |stored| {
            if stored.state == RecordState::InProgress && stored.claimed_at_ms == claimed_at_ms {
                stored.claimed_at_ms = now_ms;
                true
            } else {
                false
            }
        });
    }

    /// Marks the record sent, or held by a spool (only while `in-progress`: a spool's
    /// copy never overrides SQS's answer), for another TTL.
    pub(super) fn mark(&self, key: &EventKey, mark: Mark<'_>, now_ms: i64, ttl: Duration) {
        self.update(key, now_ms, ttl, |stored| match mark {
            Mark::Sent(receipt) => {
                stored.state = RecordState::Sent(receipt.clone());
                true
            }
            Mark::Spooled if stored.state == RecordState::InProgress => {
                stored.state = RecordState::Spooled;
                true
            }
            Mark::Spooled => false,
        });
    }

    /// Applies `change` to a live record; when it changes it, renews it for the TTL.
    fn update(
        &self,
        key: &EventKey,
        now_ms: i64,
        ttl: Duration,
        change: impl FnOnce(&mut Stored) -> bool,
    ) {
        let mut map = self.lock();
        expire(&mut map, now_ms);
        if let Some(entry) = map.peek_mut(&key.0)
            && change(&mut entry.stored)
        {
            entry.expires_at_ms = expiry(now_ms, ttl);
            map.promote(&key.0);
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops the records whose TTL has passed: all at the least recent end.
fn expire(map: &mut LruCache<[u8; 32], Entry>, now_ms: i64) {
    while map
        .peek_lru()
        .is_some_and(|(_, entry)| entry.expires_at_ms <= now_ms)
    {
        map.pop_lru();
    }
}

fn expiry(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}
