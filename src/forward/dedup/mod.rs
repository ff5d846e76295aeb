//! Choosing each message's `MessageDeduplicationId`.
//!
//! SQS drops, silently, a second message with the same deduplication id within five
//! minutes: anywhere in the queue by default (`DeduplicationScope=queue`), within the group
//! only in high-throughput mode. So the id must be the same for every attempt of one event
//! (or a retry is queued twice) and different for different events in the whole queue (or
//! one of them is lost).
//!
//! Whatever ids the bodies carry: every id given out is remembered for the window with
//! the identity it was given to, and an id already held by another identity is never
//! given again (a conflict: resolved, logged and counted in `bridge_dedup_conflicts_total`).

mod holders;
mod identity;
#[cfg(test)]
mod tests;
mod timestamp;

use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use holders::{Held, Holders};
use identity::{Identity, identity_key};
use timestamp::TimestampState;

use super::event::{ParsedEvent, body_digest, sha256};
use super::keys::{DeduplicationId, MessageGroupId};
use crate::telemetry::metric;

/// SQS's deduplication interval.
pub const SQS_DEDUP_WINDOW: Duration = Duration::from_mins(5);

/// How ids are chosen for events that do not carry their own `MessageDeDuplicationId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupMode {
    /// The receipt time in the vendor's format, unique in the process (across groups, as
    /// SQS deduplicates across the queue) and stable for retries within this process. Not
    /// safe across several replicas.
    Timestamp,
    /// The event's own id (or its body's SHA-256): stable across replicas and restarts.
    EventId,
    /// The body's SHA-256: identical bodies are one event.
    Content,
}

impl FromStr for DedupMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "timestamp" => Ok(Self::Timestamp),
            "event-id" => Ok(Self::EventId),
            "content" => Ok(Self::Content),
            other => Err(format!(
                "must be `timestamp`, `event-id` or `content`, got `{other}`"
            )),
        }
    }
}

impl DedupMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timestamp => "timestamp",
            Self::EventId => "event-id",
            Self::Content => "content",
        }
    }
}

/// SHA-256 of an event's identity (its group and its id, or its body): the same in
/// every replica.
#[must_use]
pub fn identity_digest(group: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> [u8; 32] {
    identity_key(group, event, body).digest()
}

/// Hands out deduplication ids. Shared by every worker; the lock is held for a few map
/// operations only.
#[derive(Debug)]
pub struct Deduplicator {
    mode: DedupMode,
    window: Duration,
    state: Mutex<TimestampState>,
    /// Who holds each id given out, in every mode.
    holders: Mutex<Holders>,
}

impl Deduplicator {
    #[must_use]
    pub fn new(mode: DedupMode) -> Self {
        Self::with_window(mode, SQS_DEDUP_WINDOW)
    }

    /// How long ids are remembered: SQS's window, plus however long a send may take after
    /// the id is chosen (a shorter one lets tests watch entries expire).
    #[must_use]
    pub fn with_window(mode: DedupMode, window: Duration) -> Self {
        Self {
            mode,
            window,
            state: Mutex::new(TimestampState::default()),
            holders: Mutex::new(Holders::default()),
        }
    }

    /// The id for one event in one group. The event's own valid id wins, unless another
    /// event holds it already in the window (see [`Self::claim`]); in `timestamp` mode
    /// also an own id equal to one this process made for another event (see
    /// [`Self::own_timestamp`]).
    pub fn assign(
        &self,
        group: &MessageGroupId,
        event: &ParsedEvent,
        body: &[u8],
    ) -> DeduplicationId {
        let key = identity_key(group, event, body);
        let candidate = self.candidate(&key, event, body);
        self.claim(candidate, key, Instant::now())
    }

    /// The id the rules give, before any conflict with another event's.
    /// (An event given a replacement before gets it again from [`Self::claim`].)
    fn candidate(&self, key: &Identity, event: &ParsedEvent, body: &[u8]) -> DeduplicationId {
        if let Some(own) = &event.deduplication_id {
            if self.mode == DedupMode::Timestamp
                && let Some(ms) = own.unix_millis()
            {
                let now_ms = chrono::Utc::now().timestamp_millis();
                if let Some(mine) = self.own_timestamp(key.clone(), ms, now_ms, Instant::now()) {
                    return DeduplicationId::from_unix_millis(mine);
                }
            }
            return own.clone();
        }
        match self.mode {
            DedupMode::Content => DeduplicationId::from_digest(&body_digest(body)),
            DedupMode::EventId => match event.id.as_ref().filter(|id| id.identifies_one_event()) {
                Some(id) => DeduplicationId::parse(&id.value)
                    .unwrap_or_else(|_| DeduplicationId::from_digest(&sha256(id.value.as_bytes()))),
                None => DeduplicationId::from_digest(&body_digest(body)),
            },
            DedupMode::Timestamp => {
                let now_ms = chrono::Utc::now().timestamp_millis();
                DeduplicationId::from_unix_millis(self.timestamp_for(
                    key.clone(),
                    now_ms,
                    Instant::now(),
                ))
            }
        }
    }

    /// Gives `id` to `key` unless another identity holds it in the window. Then the event
    /// gets an id of its own instead, stable for its retries: a new one in `timestamp`
    /// mode (remembered for its identity), and in `event-id` and `content` modes the
    /// SHA-256 of its identity (its group and its id or body), which no other identity
    /// has and every replica computes alike.
    fn claim(&self, id: DeduplicationId, key: Identity, now: Instant) -> DeduplicationId {
        let until = now + self.window;
        let mut holders = self
            .holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        holders.expire(now);
        let who = holders.hasher.hash_one(&key);
        // An event given an id of its own before keeps it, for every attempt.
        if let Some((resolved, _)) = holders.resolved.get(&who) {
            let resolved = resolved.clone();
            holders.resolved.insert(who, (resolved.clone(), until));
            holders.expiry.push_back((until, Held::Resolved(who)));
            holders.hold(&resolved, who, until);
            return resolved;
        }
        if holders.holder(&id).is_none_or(|holder| holder == who) {
            holders.hold(&id, who, until);
            return id;
        }
        let resolved = match self.mode {
            DedupMode::Timestamp => {
                let now_ms = chrono::Utc::now().timestamp_millis();
                let mut state = self.lock();
                let ms = match state.by_identity.get(&key) {
                    Some(&ms) => ms,
                    None => state.issue(key, now_ms, until),
                };
                DeduplicationId::from_unix_millis(ms)
            }
            DedupMode::EventId | DedupMode::Content => {
                let mut resolved = DeduplicationId::from_digest(&key.digest());
                // Only an event carrying this very digest as its own id could hold it.
                while holders
                    .holder(&resolved)
                    .is_some_and(|holder| holder != who)
                {
                    resolved = DeduplicationId::from_digest(&sha256(resolved.as_str().as_bytes()));
                }
                resolved
            }
        };
        holders.resolved.insert(who, (resolved.clone(), until));
        holders.expiry.push_back((until, Held::Resolved(who)));
        holders.hold(&resolved, who, until);
        drop(holders); // not held while logging
        metrics::counter!(metric::DEDUP_CONFLICTS).increment(1);
        tracing::warn!(
            deduplication_id = id.as_str(),
            replacement = resolved.as_str(),
            "another event holds this event's deduplication id; it gets its own, or SQS \
             would drop it"
        );
        resolved
    }

    /// `timestamp` mode's choice, with the clock passed in so tests can drive it.
    fn timestamp_for(&self, key: Identity, now_ms: i64, now: Instant) -> i64 {
        let mut state = self.lock();
        state.expire(now);
        if let Some(&ms) = state.by_identity.get(&key) {
            return ms;
        }
        state.issue(key, now_ms, now + self.window)
    }

    /// For an event whose own id is `ms` in the vendor's format: `None` to keep it
    /// (reserved for the window, so no id made here repeats it), or the id to use instead
    /// when this process already gave `ms` to another event, and SQS would drop this
    /// one. The replacement is remembered like any made here, so the event's retries get
    /// it too.
    fn own_timestamp(&self, key: Identity, ms: i64, now_ms: i64, now: Instant) -> Option<i64> {
        let mut state = self.lock();
        state.expire(now);
        if let Some(&mine) = state.by_identity.get(&key) {
            return Some(mine);
        }
        // Issued to another event: this one's retries would have been found above.
        if state.issued.contains(&ms) {
            let mine = state.issue(key, now_ms, now + self.window);
            drop(state); // not held while logging
            tracing::warn!(
                own = ms,
                replacement = mine,
                "an event's own MessageDeDuplicationId equals one given to another event; \
                 it gets a new one, or SQS would drop it"
            );
            return Some(mine);
        }
        let until = now + self.window;
        state.own.insert(ms, until);
        state.own_expiry.push_back((until, ms));
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TimestampState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many events are remembered: in `timestamp` mode identities given an id here
    /// and own ids reserved, in the others the ids given out (for tests and the
    /// `bridge_dedup_remembered_events` gauge).
    #[must_use]
    pub fn remembered(&self) -> usize {
        if self.mode == DedupMode::Timestamp {
            let state = self.lock();
            state.by_identity.len() + state.own.len()
        } else {
            self.holders
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .by_id
                .len()
        }
    }
}
