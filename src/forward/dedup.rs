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

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Each id given out in the window, and the identity it was given to, both as 64-bit
/// hashes (keyed per process): a few dozen bytes per event. Two different ids with one
/// hash would only make the second event's id a resolved one, which is still unique.
/// Each claim by the holder renews its hold, so an id stays held for a window after the
/// last attempt that may have stored it.
#[derive(Debug, Default)]
struct Holders {
    hasher: RandomState,
    /// Id hash → the holder's identity hash, and until when.
    by_id: HashMap<u64, (u64, Instant)>,
    /// Identity hash → the id it was given instead of one another held, and until when:
    /// its retries get that one again, whatever happens to the other's hold.
    resolved: HashMap<u64, (DeduplicationId, Instant)>,
    expiry: VecDeque<(Instant, Held)>,
}

#[derive(Debug, Clone, Copy)]
enum Held {
    Id(u64),
    Resolved(u64),
}

impl Holders {
    fn expire(&mut self, now: Instant) {
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
    fn hold(&mut self, id: &DeduplicationId, who: u64, until: Instant) {
        let hash = self.hasher.hash_one(id.as_str());
        self.by_id.insert(hash, (who, until));
        self.expiry.push_back((until, Held::Id(hash)));
    }

    /// Who holds `id`, if anyone.
    fn holder(&self, id: &DeduplicationId) -> Option<u64> {
        self.by_id
            .get(&self.hasher.hash_one(id.as_str()))
            .map(|(who, _)| *who)
    }
}

/// What `timestamp` mode remembers for SQS's window: the id given to each event identity
/// (so a retry gets it again), the ids made here, the events' own ids in the same format,
/// and the last millisecond used (so no two events share one).
///
/// One sequence for the whole process, not one per group: with SQS's default
/// deduplication scope two events of different groups with the same id are one event to
/// SQS, and the second would be dropped while its sender is told `200`.
#[derive(Debug)]
struct TimestampState {
    by_identity: HashMap<Identity, i64>,
    /// The values of `by_identity`, to look up by id.
    issued: HashSet<i64>,
    expiry: VecDeque<(Instant, Identity)>,
    /// Events' own ids in the vendor's format, until when they are reserved.
    own: HashMap<i64, Instant>,
    own_expiry: VecDeque<(Instant, i64)>,
    last_ms: i64,
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
    fn candidate(&self, key: &Identity, event: &ParsedEvent, body: &[u8]) -> DeduplicationId {
        if self.mode == DedupMode::Timestamp {
            // An event given an id here before (a replacement included) keeps it.
            let mut state = self.lock();
            state.expire(Instant::now());
            if let Some(&ms) = state.by_identity.get(key) {
                return DeduplicationId::from_unix_millis(ms);
            }
        }
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

impl TimestampState {
    /// A new id: one millisecond after the last if the clock has not moved on (or went
    /// back), so ids made here are strictly increasing and never equal, and never an
    /// event's own id seen in the window.
    fn issue(&mut self, key: Identity, now_ms: i64, until: Instant) -> i64 {
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

    fn expire(&mut self, now: Instant) {
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

/// Who an event is, within its group: its id field when it has one that names one event,
/// else its body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    group: MessageGroupId,
    who: Who,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    Id(String),
    /// SHA-256 of the body: collision-resistant, so distinct bodies are never merged.
    Body([u8; 32]),
}

impl Identity {
    /// SHA-256 of the group and the id or body digest, with separators no id can hold.
    fn digest(&self) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(200);
        bytes.extend_from_slice(self.group.as_str().as_bytes());
        bytes.push(0);
        match &self.who {
            Who::Id(id) => {
                bytes.push(b'i');
                bytes.extend_from_slice(id.as_bytes());
            }
            Who::Body(digest) => {
                bytes.push(b'b');
                bytes.extend_from_slice(digest);
            }
        }
        sha256(&bytes)
    }
}

fn identity_key(group: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> Identity {
    Identity {
        group: group.clone(),
        who: match event.id.as_ref().filter(|id| id.identifies_one_event()) {
            Some(id) => Who::Id(id.value.clone()),
            None => Who::Body(body_digest(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::event::parse;

    fn group(s: &str) -> MessageGroupId {
        MessageGroupId::parse(s).unwrap()
    }

    fn key(n: u8) -> Identity {
        key_in("g", n)
    }

    fn key_in(g: &str, n: u8) -> Identity {
        Identity {
            group: group(g),
            who: Who::Body([n; 32]),
        }
    }

    #[test]
    fn same_millisecond_events_get_distinct_increasing_ids() {
        let d = Deduplicator::new(DedupMode::Timestamp);
        let t = Instant::now();
        let ids: Vec<i64> = (0..100)
            .map(|n| d.timestamp_for(key(n), 1_000, t))
            .collect();
        assert_eq!(ids, (1_000..1_100).collect::<Vec<_>>());
        // The clock going backwards does not produce a repeat either.
        assert_eq!(d.timestamp_for(key(200), 500, t), 1_100);
    }

    #[test]
    fn events_of_different_groups_never_share_an_id() {
        // SQS's default deduplication scope is the queue: the same id in two groups is
        // one event to it, and the second would be dropped.
        let d = Deduplicator::new(DedupMode::Timestamp);
        let t = Instant::now();
        let first = d.timestamp_for(key_in("EventSetup_1", 1), 1_000, t);
        let other_group = d.timestamp_for(key_in("EventSetup_2", 1), 1_000, t);
        let same_group = d.timestamp_for(key_in("EventSetup_1", 2), 1_000, t);
        assert_eq!((first, other_group, same_group), (1_000, 1_001, 1_002));
        // Retries still get their own first id back, in each group.
        assert_eq!(
            d.timestamp_for(key_in("EventSetup_2", 1), 1_000, t),
            other_group
        );
    }

    #[test]
    fn own_ids_and_ids_made_here_never_meet() {
        let d = Deduplicator::new(DedupMode::Timestamp);
        let t = Instant::now();
        // An own id seen first is kept, and no id made here repeats it.
        assert_eq!(d.own_timestamp(key(1), 1_000, 1_000, t), None);
        assert_eq!(d.timestamp_for(key(2), 1_000, t), 1_001);
        assert_eq!(d.timestamp_for(key(3), 1_000, t), 1_002);
        // An own id equal to one already given to another event gets a new one, and
        // keeps it for its retries.
        let replaced = d.own_timestamp(key(4), 1_001, 1_000, t);
        assert_eq!(replaced, Some(1_003));
        assert_eq!(d.own_timestamp(key(4), 1_001, 1_500, t), replaced);
        // The retry of an event whose own id was kept keeps it too.
        assert_eq!(d.own_timestamp(key(1), 1_000, 1_500, t), None);
        // A far-off own id does not drag the sequence along.
        assert_eq!(d.own_timestamp(key(5), 9_000_000, 2_000, t), None);
        assert_eq!(d.timestamp_for(key(6), 2_000, t), 2_000);
    }

    #[test]
    fn own_ids_are_reserved_for_the_window_only() {
        let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
        let t0 = Instant::now();
        assert_eq!(d.own_timestamp(key(1), 1_000, 1_000, t0), None);
        assert_eq!(d.timestamp_for(key(2), 1_000, t0), 1_001);
        // Five minutes on, SQS has forgotten both: the millisecond may be used again.
        let later = t0 + Duration::from_mins(5);
        assert_eq!(d.timestamp_for(key(3), 1_000, later), 1_002);
        assert_eq!(d.own_timestamp(key(4), 1_001, 1_000, later), None);

        // An own id reserved at t0 is free again a window later...
        let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
        assert_eq!(d.own_timestamp(key(1), 2_000, 2_000, t0), None);
        assert_eq!(d.remembered(), 1);
        let free = t0 + Duration::from_mins(5);
        assert_eq!(d.timestamp_for(key(2), 2_000, free), 2_000);
        // ...unless it was seen again meanwhile: each sighting reserves it for a window.
        let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
        assert_eq!(d.own_timestamp(key(1), 2_000, 2_000, t0), None);
        let again = t0 + Duration::from_mins(1);
        assert_eq!(d.own_timestamp(key(1), 2_000, 2_000, again), None);
        assert_eq!(d.timestamp_for(key(2), 2_000, free), 2_001);
        let d2 = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
        assert_eq!(d2.own_timestamp(key(1), 2_000, 2_000, t0), None);
        assert_eq!(d2.own_timestamp(key(1), 2_000, 2_000, again), None);
        assert_eq!(
            d2.timestamp_for(key(2), 2_000, again + Duration::from_mins(5)),
            2_000
        );
    }

    #[test]
    fn an_events_own_id_wins_through_assign() {
        let d = Deduplicator::new(DedupMode::Timestamp);
        let g = group("g");
        let now = chrono::Utc::now().timestamp_millis();
        let own = DeduplicationId::from_unix_millis(now + 60_000);
        let body = format!(
            r#"{{"msg_id":"a","MessageDeDuplicationId":"{}"}}"#,
            own.as_str()
        );
        let event = parse(body.as_bytes()).unwrap();
        assert_eq!(d.assign(&g, &event, body.as_bytes()), own);
        let plain = br#"{"msg_id":"b"}"#;
        assert_ne!(d.assign(&g, &parse(plain).unwrap(), plain), own);
    }

    #[test]
    fn a_retry_within_the_window_gets_the_first_id_and_after_it_a_new_one() {
        let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
        let t0 = Instant::now();
        let first = d.timestamp_for(key(1), 1_000, t0);
        let retry = d.timestamp_for(key(1), 61_000, t0 + Duration::from_mins(1));
        assert_eq!(first, retry);
        let late = d.timestamp_for(key(1), 301_000, t0 + Duration::from_mins(5));
        assert_eq!(late, 301_000);
        assert_eq!(d.remembered(), 1, "expired entries are dropped");
    }

    #[test]
    fn identity_is_the_id_field_else_the_body() {
        let g = group("g");
        let a = br#"{"msg_id":"m1","x":1}"#;
        let b = br#"{"msg_id":"m1","x":2}"#;
        let c = br#"{"x":1}"#;
        let key_of = |body: &[u8]| identity_key(&g, &parse(body).unwrap(), body);
        assert_eq!(key_of(a), key_of(b));
        assert_ne!(key_of(a), key_of(c));
        assert_ne!(key_of(c), key_of(br#"{"x":2}"#));
        assert_ne!(key_of(a), identity_key(&group("h"), &parse(a).unwrap(), a));
    }

    #[test]
    fn a_shared_correlation_id_does_not_make_two_events_one() {
        let g = group("g");
        let started = br#"{"EventName":"placement_started","CorrelationId":"c-1","Resource":"{}"}"#;
        let updated = br#"{"EventName":"placement_updated","CorrelationId":"c-1","Resource":"{}"}"#;
        let key_of = |body: &[u8]| identity_key(&g, &parse(body).unwrap(), body);
        assert_ne!(key_of(started), key_of(updated));
        assert_eq!(key_of(started), key_of(started), "a retry repeats the body");
        let by_id = Deduplicator::new(DedupMode::EventId);
        let assign = |body: &[u8]| by_id.assign(&g, &parse(body).unwrap(), body);
        assert_ne!(assign(started), assign(updated));
        assert_eq!(assign(started).as_str(), hex::encode(body_digest(started)));
        // A back-office `DeduplicationId` does name one event.
        let own = br#"{"EventName":"x","DeduplicationId":"d-1","CorrelationId":"c-1"}"#;
        assert_eq!(assign(own).as_str(), "d-1");
    }

    #[test]
    fn modes_choose_as_documented() {
        let g = group("g");
        let body = br#"{"msg_id":"m-1","MessageGroupId":"x"}"#;
        let event = parse(body).unwrap();
        let by_id = Deduplicator::new(DedupMode::EventId).assign(&g, &event, body);
        assert_eq!(by_id.as_str(), "m-1");
        let content = Deduplicator::new(DedupMode::Content).assign(&g, &event, body);
        assert_eq!(content.as_str(), hex::encode(body_digest(body)));
        // An id SQS would refuse as a key is hashed instead.
        let spaced = br#"{"msg_id":"m 1"}"#;
        let id = Deduplicator::new(DedupMode::EventId).assign(&g, &parse(spaced).unwrap(), spaced);
        assert_eq!(id.as_str().len(), 64);
        // The event's own key wins in every mode.
        let own = br#"{"MessageDeDuplicationId":"2025-02-12T14:30:45.123"}"#;
        for mode in [DedupMode::Timestamp, DedupMode::EventId, DedupMode::Content] {
            let id = Deduplicator::new(mode).assign(&g, &parse(own).unwrap(), own);
            assert_eq!(id.as_str(), "2025-02-12T14:30:45.123");
        }
        let ts = Deduplicator::new(DedupMode::Timestamp).assign(&g, &event, body);
        assert_eq!(ts.as_str().len(), "2025-02-12T14:30:45.123".len());
    }

    /// Two events with distinct identities never share an id, whatever their bodies
    /// carry; each event's retries keep the id it got.
    #[test]
    fn distinct_events_are_never_given_one_id() {
        let g = group("g");
        let own = |msg: &str, key: &str| {
            format!(r#"{{"msg_id":"{msg}","MessageDeDuplicationId":"{key}"}}"#)
        };
        for mode in [DedupMode::Timestamp, DedupMode::EventId, DedupMode::Content] {
            for key in ["2025-02-12T14:30:45.123", "not-the-vendor-format"] {
                let d = Deduplicator::new(mode);
                let assign = |body: &str| {
                    d.assign(&g, &parse(body.as_bytes()).unwrap(), body.as_bytes())
                        .as_str()
                        .to_owned()
                };
                let (a, b) = (own("m-a", key), own("m-b", key));
                let first = assign(&a);
                assert_eq!(first, key, "{mode:?}: the first keeps its own id");
                let second = assign(&b);
                assert_ne!(second, first, "{mode:?} {key}: the second is not dropped");
                assert_eq!(assign(&a), first, "{mode:?}: retries keep their id");
                assert_eq!(assign(&b), second, "{mode:?}: the replacement is stable");
            }
        }
        // `event-id`: the same id in two groups is two events to SQS's queue-wide scope.
        let d = Deduplicator::new(DedupMode::EventId);
        let body = br#"{"msg_id":"m-1"}"#;
        let event = parse(body).unwrap();
        let one = d.assign(&group("g1"), &event, body);
        let two = d.assign(&group("g2"), &event, body);
        assert_eq!(one.as_str(), "m-1");
        assert_ne!(two, one);
        assert_eq!(d.assign(&group("g2"), &event, body), two);
        // Another replica resolves the same conflict the same way.
        let other = Deduplicator::new(DedupMode::EventId);
        other.assign(&group("g1"), &event, body);
        assert_eq!(other.assign(&group("g2"), &event, body), two);
    }

    /// Two attempts of one event that both chose their id before either claimed it (a
    /// retry racing the first attempt) still get one id, and a resolved id outlives the
    /// hold of the event it was resolved against.
    #[test]
    fn a_resolved_id_is_the_events_for_every_attempt() {
        let own = |msg: &str| format!(r#"{{"msg_id":"{msg}","MessageDeDuplicationId":"k-1"}}"#);
        let (a, b) = (own("m-a"), own("m-b"));
        for mode in [DedupMode::Timestamp, DedupMode::EventId, DedupMode::Content] {
            let d = Deduplicator::new(mode);
            let t = Instant::now();
            let claim = |body: &str, at: Instant| {
                let event = parse(body.as_bytes()).unwrap();
                let key = identity_key(&group("g"), &event, body.as_bytes());
                let candidate = d.candidate(&key, &event, body.as_bytes());
                (candidate, key, at)
            };
            let (id, key, at) = claim(&a, t);
            assert_eq!(d.claim(id, key, at).as_str(), "k-1");
            let first = claim(&b, t + Duration::from_secs(1));
            let racing = claim(&b, t + Duration::from_secs(1));
            let one = d.claim(first.0, first.1, first.2);
            let two = d.claim(racing.0, racing.1, racing.2);
            assert_eq!(one, two, "{mode:?}: racing attempts, one id");
            assert_ne!(one.as_str(), "k-1");
            // `a`'s hold has lapsed; `b`'s retry within its own window keeps its id.
            let (id, key, _) = claim(&b, t);
            let late = t + SQS_DEDUP_WINDOW + Duration::from_millis(500);
            assert_eq!(d.claim(id, key, late), one, "{mode:?}");
        }
    }
}
