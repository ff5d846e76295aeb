//! Which `MessageGroupId` an event goes to (`BRIDGE_GROUP_BY`).
//!
//! SQS FIFO orders messages, and hands them to consumers one group at a time, within a
//! group: the group is the unit of ordering and of consumer parallelism. The vendor's
//! convention (and the default) is one group per Event Setup, so its events are consumed
//! strictly one after another. A finer group lets several consumers work at once, and
//! with high-throughput FIFO (`HighThroughput=true` in `infra/queue.yaml`) each group gets
//! its own throughput quota, at the price of ordering only within each finer group.

use super::event::ParsedEvent;
use super::keys::MessageGroupId;

/// How events are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// `EventSetup_<id>`: every event of the setup in one order.
    #[default]
    EventSetup,
    /// `EventSetup_<id>-ent_<ent_id>`: in order per enterprise (customer).
    Enterprise,
    /// `EventSetup_<id>-branch_<branch_id>`: in order per branch.
    Branch,
    /// `EventSetup_<id>-<event>`: no order between events; every consumer busy.
    Event,
}

impl GroupBy {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "event-setup" => Ok(Self::EventSetup),
            "enterprise" => Ok(Self::Enterprise),
            "branch" => Ok(Self::Branch),
            "event" => Ok(Self::Event),
            other => Err(format!(
                "must be event-setup, enterprise, branch or event, got `{other}`"
            )),
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventSetup => "event-setup",
            Self::Enterprise => "enterprise",
            Self::Branch => "branch",
            Self::Event => "event",
        }
    }

    /// The group for an event without a `MessageGroupId` of its own, in the Event
    /// Setup's group `setup`. An event without the field a mode groups by (no `ent_id`,
    /// no `branch_id`) stays in the Event Setup's group. In `event` mode an event is its
    /// own group, named after its id (or, when that can't be part of a group id, a hash
    /// of the group and its id or body), so a retry lands in the same group.
    #[must_use]
    pub fn group(self, setup: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> MessageGroupId {
        let finer = match self {
            Self::EventSetup => None,
            Self::Enterprise => event.enterprise.as_ref().map(|e| format!("ent_{e}")),
            Self::Branch => event.branch.as_ref().map(|b| format!("branch_{b}")),
            Self::Event => Some(event_part(setup, event, body)),
        };
        finer
            .and_then(|part| MessageGroupId::parse(&format!("{}-{part}", setup.as_str())).ok())
            .unwrap_or_else(|| setup.clone())
    }
}

/// An event's part of its group's name in `event` mode.
fn event_part(setup: &MessageGroupId, event: &ParsedEvent, body: &[u8]) -> String {
    let id = event
        .id
        .as_ref()
        .filter(|id| id.identifies_one_event())
        .map(|id| id.value.as_str());
    if let Some(id) = id
        && MessageGroupId::parse(&format!("{}-{id}", setup.as_str())).is_ok()
    {
        return id.to_owned();
    }
    let mut named = setup.as_str().as_bytes().to_vec();
    named.push(0);
    match id {
        Some(id) => named.extend_from_slice(id.as_bytes()),
        None => named.extend_from_slice(&super::event::body_digest(body)),
    }
    hex::encode(&super::event::sha256(&named)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::Event;

    fn group(mode: GroupBy, body: &str) -> String {
        let event = Event::parse(body.as_bytes().to_vec()).unwrap();
        let setup = MessageGroupId::parse("EventSetup_42").unwrap();
        mode.group(&setup, &event.parsed, body.as_bytes())
            .as_str()
            .to_owned()
    }

    #[test]
    fn each_mode_names_its_group_and_falls_back_to_the_event_setup() {
        let full = r#"{"msg_id":"m-1","ent_id":7,"branch_id":3}"#;
        assert_eq!(group(GroupBy::EventSetup, full), "EventSetup_42");
        assert_eq!(group(GroupBy::Enterprise, full), "EventSetup_42-ent_7");
        assert_eq!(group(GroupBy::Branch, full), "EventSetup_42-branch_3");
        assert_eq!(group(GroupBy::Event, full), "EventSetup_42-m-1");
        let bare = r#"{"msg_id":"m-1"}"#;
        assert_eq!(group(GroupBy::Enterprise, bare), "EventSetup_42");
        assert_eq!(group(GroupBy::Branch, bare), "EventSetup_42");
    }

    #[test]
    fn in_event_mode_a_retry_gets_the_same_group_and_another_event_another() {
        // An id that can't be part of a group id, and no id at all: hashed, stably.
        let odd = r#"{"msg_id":"m 1 é"}"#;
        assert_eq!(group(GroupBy::Event, odd), group(GroupBy::Event, odd));
        assert_ne!(
            group(GroupBy::Event, odd),
            group(GroupBy::Event, r#"{"msg_id":"m 2 é"}"#)
        );
        let anonymous = r#"{"Resource":{"Id":1}}"#;
        let named = group(GroupBy::Event, anonymous);
        assert_eq!(named, group(GroupBy::Event, anonymous));
        assert_eq!(named.len(), "EventSetup_42-".len() + 32);
        assert_ne!(named, group(GroupBy::Event, r#"{"Resource":{"Id":2}}"#));
    }
}
