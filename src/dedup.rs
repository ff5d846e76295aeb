//! Choosing each message's `MessageDeduplicationId`.
//!
//! SQS drops, silently, a second message with the same deduplication id in a group within
//! five minutes. So the id must be the same for every attempt of one event (or a retry is
//! queued twice) and different for different events (or one of them is lost).

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::{DeduplicationId, MessageGroupId, ParsedEvent, body_digest, sha256};

/// SQS's deduplication interval.
pub const SQS_DEDUP_WINDOW: Duration = Duration::from_mins(5);

/// How ids are chosen for events that do not carry their own `MessageDeDuplicationId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupMode {
    /// The receipt time in the vendor's format, unique per group and stable for retries
    /// within this process. Not safe across several replicas.
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
}

/// What `timestamp` mode remembers: the id given to each event identity (so a retry gets
/// it again) and the last millisecond used in each group (so no two events share one).
#[derive(Debug, Default)]
struct TimestampState {
    by_identity: HashMap<Identity, i64>,
    expiry: VecDeque<(Instant, Identity)>,
    last_ms: HashMap<MessageGroupId, i64>,
}

impl Deduplicator {
    #[must_use]
    pub fn new(mode: DedupMode) -> Self {
        Self::with_window(mode, SQS_DEDUP_WINDOW)
    }

    /// A shorter window lets tests watch entries expire.
    #[must_use]
    pub fn with_window(mode: DedupMode, window: Duration) -> Self {
        Self {
            mode,
            window,
            state: Mutex::new(TimestampState::default()),
        }
    }

    /// The id for one event in one group. The event's own valid id always wins.
    pub fn assign(
        &self,
        group: &MessageGroupId,
        event: &ParsedEvent,
        body: &[u8],
    ) -> DeduplicationId {
        if let Some(own) = &event.deduplication_id {
            return own.clone();
        }
        match self.mode {
            DedupMode::Content => DeduplicationId::from_digest(&body_digest(body)),
            DedupMode::EventId => match &event.id {
                Some(id) => DeduplicationId::parse(&id.value)
                    .unwrap_or_else(|_| DeduplicationId::from_digest(&sha256(id.value.as_bytes()))),
                None => DeduplicationId::from_digest(&body_digest(body)),
            },
            DedupMode::Timestamp => {
                let key = identity_key(group, event, body);
                let now_ms = chrono::Utc::now().timestamp_millis();
                DeduplicationId::from_unix_millis(self.timestamp_for(
                    group,
                    key,
                    now_ms,
                    Instant::now(),
                ))
            }
        }
    }

    /// `timestamp` mode's choice, with the clock passed in so tests can drive it.
    fn timestamp_for(
        &self,
        group: &MessageGroupId,
        key: Identity,
        now_ms: i64,
        now: Instant,
    ) -> i64 {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.expire(now, now_ms);
        if let Some(&ms) = state.by_identity.get(&key) {
            return ms;
        }
        // One millisecond after the last id of this group if the clock has not moved on
        // (or went back): ids in a group are strictly increasing, so never equal.
        let ms = match state.last_ms.get(group) {
            Some(&last) if last >= now_ms => last + 1,
            _ => now_ms,
        };
        state.last_ms.insert(group.clone(), ms);
        state.expiry.push_back((now + self.window, key.clone()));
        state.by_identity.insert(key, ms);
        ms
    }

    /// How many event identities are remembered (for tests and metrics).
    #[must_use]
    pub fn remembered(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_identity
            .len()
    }
}

impl TimestampState {
    fn expire(&mut self, now: Instant, now_ms: i64) {
        let mut expired_any = false;
        while let Some((deadline, _)) = self.expiry.front() {
            if *deadline > now {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_front() {
                self.by_identity.remove(&key);
            }
            expired_any = true;
        }
        if expired_any {
            // A group whose last id is in the past needs no memory: the clock alone keeps
            // its next id distinct.
            self.last_ms.retain(|_, last| *last >= now_ms);
        }
    }
}

/// Who an event is, within its group: its id field when it has one, else its body.
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

fn identity_key(group: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> Identity {
    Identity {
        group: group.clone(),
        who: match &event.id {
            Some(id) => Who::Id(id.value.clone()),
            None => Who::Body(body_digest(body)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;

    fn group(s: &str) -> MessageGroupId {
        MessageGroupId::parse(s).unwrap()
    }

    fn key(n: u8) -> Identity {
        Identity {
            group: group("g"),
            who: Who::Body([n; 32]),
        }
    }

    #[test]
    fn same_millisecond_events_get_distinct_increasing_ids() {
        let d = Deduplicator::new(DedupMode::Timestamp);
        let g = group("g");
        let t = Instant::now();
        let ids: Vec<i64> = (0..100)
            .map(|n| d.timestamp_for(&g, key(n), 1_000, t))
            .collect();
        assert_eq!(ids, (1_000..1_100).collect::<Vec<_>>());
        // The clock going backwards does not produce a repeat either.
        assert_eq!(d.timestamp_for(&g, key(200), 500, t), 1_100);
        // Another group has its own sequence.
        assert_eq!(d.timestamp_for(&group("h"), key(0), 1_000, t), 1_000);
    }

    #[test]
    fn a_retry_within_the_window_gets_the_first_id_and_after_it_a_new_one() {
        let d = Deduplicator::with_window(DedupMode::Timestamp, Duration::from_mins(5));
        let g = group("g");
        let t0 = Instant::now();
        let first = d.timestamp_for(&g, key(1), 1_000, t0);
        let retry = d.timestamp_for(&g, key(1), 61_000, t0 + Duration::from_mins(1));
        assert_eq!(first, retry);
        let late = d.timestamp_for(&g, key(1), 301_000, t0 + Duration::from_mins(5));
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
}
