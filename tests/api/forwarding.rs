//! Rules 3-5: what reaches the queue, under which keys, and what the sender is told.

use std::collections::HashSet;

use aws_sdk_sqs::types::MessageSystemAttributeName as Sys;
use futures_util::future::join_all;
use serde_json::Value;

use crate::helpers::{SETUP_ID, message_attribute, spawn_app, system_attribute, workn_event};

#[tokio::test]
async fn a_signed_event_is_queued_byte_for_byte_with_keys_and_attributes() {
    let app = spawn_app(&[]).await;
    // Odd spacing and key order, non-ASCII text: the queue must hold exactly these bytes.
    let body = format!("{{ \"b\" : 1,\n  {}", &workn_event("evt-001")[1..]);

    let response = app.post_signed(&body).await;

    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let messages = app.drain(1).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.body(), Some(body.as_str()));
    assert_eq!(
        system_attribute(m, &Sys::MessageGroupId),
        format!("EventSetup_{SETUP_ID}")
    );
    let dedup = system_attribute(m, &Sys::MessageDeduplicationId);
    assert!(
        chrono::NaiveDateTime::parse_from_str(&dedup, "%Y-%m-%dT%H:%M:%S%.3f").is_ok()
            && dedup.len() == 23,
        "timestamp dedup id in the vendor's format: {dedup}"
    );
    assert_eq!(message_attribute(m, "event_id").as_deref(), Some("evt-001"));
    assert_eq!(message_attribute(m, "event_type").as_deref(), Some("5"));
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["message_id"], m.message_id().unwrap());
    assert_eq!(
        answer["sequence_number"],
        system_attribute(m, &Sys::SequenceNumber)
    );
    assert_eq!(answer["group_id"], format!("EventSetup_{SETUP_ID}"));
    assert_eq!(answer["deduplication_id"], dedup);
}

#[tokio::test]
async fn the_events_own_fifo_keys_win_and_invalid_ones_are_replaced() {
    let app = spawn_app(&[]).await;
    let own = r#"{"msg_id":"m-own","MessageGroupId":"EventSetup_77","MessageDeDuplicationId":"2025-02-12T14:30:45.123"}"#;
    let invalid = r#"{"msg_id":"m-bad","MessageGroupId":"has spaces","MessageDeDuplicationId":""}"#;

    assert_eq!(app.post_signed(own).await.status(), 200);
    assert_eq!(app.post_signed(invalid).await.status(), 200);

    let messages = app.drain(2).await;
    assert_eq!(messages.len(), 2);
    let own_m = messages.iter().find(|m| m.body() == Some(own)).unwrap();
    assert_eq!(
        system_attribute(own_m, &Sys::MessageGroupId),
        "EventSetup_77"
    );
    assert_eq!(
        system_attribute(own_m, &Sys::MessageDeduplicationId),
        "2025-02-12T14:30:45.123"
    );
    let bad_m = messages.iter().find(|m| m.body() == Some(invalid)).unwrap();
    assert_eq!(
        system_attribute(bad_m, &Sys::MessageGroupId),
        format!("EventSetup_{SETUP_ID}")
    );
    assert_eq!(
        system_attribute(bad_m, &Sys::MessageDeduplicationId).len(),
        23
    );
}

#[tokio::test]
async fn bold_events_are_accepted_with_their_id_and_name_as_attributes() {
    let app = spawn_app(&[]).await;
    let body = r#"{"EventName":"placement_updated","FrontOfficeTenantId":12,"Resource":"{\"PlacementId\":5}","ResourceModelType":"Avionte.Bold.Placement","CorrelationId":"0f8fad5b-d9cb-469f-a165-70867728950e"}"#;

    assert_eq!(app.post_signed(body).await.status(), 200);

    let messages = app.drain(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some(body));
    assert_eq!(
        message_attribute(&messages[0], "event_id").as_deref(),
        Some("0f8fad5b-d9cb-469f-a165-70867728950e")
    );
    assert_eq!(
        message_attribute(&messages[0], "event_type").as_deref(),
        Some("placement_updated")
    );
}

#[tokio::test]
async fn two_hundred_concurrent_distinct_events_in_one_group_all_arrive() {
    let app = spawn_app(&[]).await;
    let bodies: Vec<String> = (0..200)
        .map(|i| workn_event(&format!("burst-{i}")))
        .collect();

    let responses = join_all(bodies.iter().map(|b| app.post_signed(b))).await;

    let mut ids = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert!(
            ids.insert(answer["deduplication_id"].as_str().unwrap().to_owned()),
            "duplicate dedup id"
        );
    }
    let messages = app.drain(200).await;
    let received: HashSet<&str> = messages.iter().filter_map(|m| m.body()).collect();
    assert_eq!(messages.len(), 200);
    assert_eq!(received, bodies.iter().map(String::as_str).collect());
}

/// SQS deduplicates across the whole queue by default, not per group: `timestamp` ids must
/// differ between groups too, or events of one group silently drop those of another.
#[tokio::test]
async fn concurrent_events_in_several_groups_all_arrive() {
    let app = spawn_app(&[]).await;
    let bodies: Vec<String> = (0..200)
        .map(|i| {
            let event = workn_event(&format!("groups-{i}"));
            let group = format!(r#""MessageGroupId":"EventSetup_{}","#, i % 4);
            event.replacen('{', &format!("{{{group}"), 1)
        })
        .collect();

    let responses = join_all(bodies.iter().map(|b| app.post_signed(b))).await;

    for response in responses {
        assert_eq!(response.status(), 200);
    }
    let messages = app.drain(200).await;
    let received: HashSet<&str> = messages.iter().filter_map(|m| m.body()).collect();
    assert_eq!(messages.len(), 200);
    assert_eq!(received, bodies.iter().map(String::as_str).collect());
    let groups: HashSet<String> = messages
        .iter()
        .map(|m| system_attribute(m, &Sys::MessageGroupId))
        .collect();
    assert_eq!(groups.len(), 4);
}

#[tokio::test]
async fn the_vendors_four_attempts_of_one_event_are_queued_once() {
    for batch in ["true", "false"] {
        four_attempts(batch).await;
    }
}

async fn four_attempts(batch: &str) {
    let app = spawn_app(&[("BRIDGE_BATCH", batch)]).await;
    let body = workn_event("retried-1");

    // Immediate attempt, immediate retry, "after a minute" (compressed), final immediate.
    let mut dedup_ids = HashSet::new();
    for _ in 0..4 {
        let response = app.post_signed(&body).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        dedup_ids.insert(answer["deduplication_id"].as_str().unwrap().to_owned());
    }

    assert_eq!(
        dedup_ids.len(),
        1,
        "every attempt carries the same dedup id"
    );
    assert_eq!(app.drain(1).await.len(), 1);
}

#[tokio::test]
async fn retries_of_an_event_without_an_id_are_queued_once_but_distinct_bodies_are_not_merged() {
    let app = spawn_app(&[]).await;
    let a = r#"{"kind":"no-id","n":1}"#;
    let b = r#"{"kind":"no-id","n":2}"#;

    for body in [a, a, b, a, b] {
        assert_eq!(app.post_signed(body).await.status(), 200);
    }

    let messages = app.drain(2).await;
    let mut bodies: Vec<&str> = messages.iter().filter_map(|m| m.body()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, vec![a, b]);
}

#[tokio::test]
async fn event_id_mode_uses_the_id_and_content_mode_the_body() {
    let by_id = spawn_app(&[("BRIDGE_DEDUP", "event-id")]).await;
    // Same msg_id, different bodies: one event in event-id mode.
    let first = workn_event("same-id");
    let second = first.replace("\"mkt_id\":12", "\"mkt_id\":13");
    for body in [&first, &second] {
        let answer: Value = by_id.post_signed(body).await.json().await.unwrap();
        assert_eq!(answer["deduplication_id"], "same-id");
    }
    let messages = by_id.drain(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some(first.as_str()));

    let by_content = spawn_app(&[("BRIDGE_DEDUP", "content")]).await;
    for body in [&first, &second, &first] {
        assert_eq!(by_content.post_signed(body).await.status(), 200);
    }
    let messages = by_content.drain(2).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(
        system_attribute(&messages[0], &Sys::MessageDeduplicationId).len(),
        64
    );
}

#[tokio::test]
async fn without_an_event_setup_id_events_must_carry_their_group() {
    let app = spawn_app(&[("BRIDGE_EVENT_SETUP_ID", "")]).await;
    let grouped = r#"{"msg_id":"g-1","MessageGroupId":"EventSetup_5"}"#;

    let missing = app.post_signed(&workn_event("no-group")).await;
    let ok = app.post_signed(grouped).await;

    assert_eq!(missing.status(), 400);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"], "missing_group_id");
    assert_eq!(ok.status(), 200);
    let messages = app.drain(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some(grouped));
}

/// Two events with distinct ids but one `MessageDeDuplicationId` (the vendor's key is a
/// millisecond: two events in one millisecond carry the same) are two messages in every
/// mode, and each one's retry is still queued once.
#[tokio::test]
async fn distinct_events_carrying_one_deduplication_id_are_both_queued() {
    for mode in ["timestamp", "event-id", "content"] {
        let app = spawn_app(&[("BRIDGE_DEDUP", mode)]).await;
        let key = r#""MessageDeDuplicationId":"2025-02-12T14:30:45.123","#;
        let bodies: Vec<String> = ["same-ms-a", "same-ms-b"]
            .iter()
            .map(|id| workn_event(id).replacen('{', &format!("{{{key}"), 1))
            .collect();
        let mut ids = Vec::new();
        for body in bodies.iter().chain(&bodies) {
            let response = app.post_signed(body).await;
            assert_eq!(response.status(), 200, "{mode}");
            let answer: Value = response.json().await.unwrap();
            ids.push(answer["deduplication_id"].as_str().unwrap().to_owned());
        }
        assert_ne!(
            ids[0], ids[1],
            "{mode}: the second event keeps an id of its own"
        );
        assert_eq!(ids[..2], ids[2..], "{mode}: the retries get the same ids");
        let received: HashSet<String> = app.queued_bodies(2).await.into_iter().collect();
        assert_eq!(received, bodies.into_iter().collect(), "{mode}");
    }
}

/// `BRIDGE_GROUP_BY` chooses the group of events without their own, as read back from
/// the queue; the event's own group still wins, and an event without the field stays in
/// the Event Setup's group.
#[tokio::test]
async fn group_by_picks_each_events_group_in_the_queue() {
    let cases = [
        (
            "enterprise",
            r#""ent_id":7"#,
            format!("EventSetup_{SETUP_ID}-ent_7"),
        ),
        (
            "branch",
            r#""branch_id":3"#,
            format!("EventSetup_{SETUP_ID}-branch_3"),
        ),
        (
            "event",
            r#""ent_id":7"#,
            format!("EventSetup_{SETUP_ID}-g-event"),
        ),
    ];
    for (mode, field, expected) in cases {
        let app = spawn_app(&[("BRIDGE_GROUP_BY", mode)]).await;
        let id = if mode == "event" { "g-event" } else { "g-1" };
        let grouped = format!(r#"{{"msg_id":"{id}",{field}}}"#);
        let bare = r#"{"msg_id":"g-bare"}"#.to_owned();
        let own = r#"{"msg_id":"g-own","ent_id":7,"MessageGroupId":"mine"}"#.to_owned();
        for body in [&grouped, &bare, &own] {
            assert_eq!(app.post_signed(body).await.status(), 200, "{mode}: {body}");
        }
        let groups: std::collections::HashMap<String, String> = app
            .drain(3)
            .await
            .iter()
            .map(|m| {
                (
                    message_attribute(m, "event_id").unwrap(),
                    system_attribute(m, &Sys::MessageGroupId),
                )
            })
            .collect();
        assert_eq!(groups[id], expected, "{mode}");
        let bare_group = if mode == "event" {
            format!("EventSetup_{SETUP_ID}-g-bare")
        } else {
            format!("EventSetup_{SETUP_ID}")
        };
        assert_eq!(groups["g-bare"], bare_group, "{mode}");
        assert_eq!(groups["g-own"], "mine", "{mode}");
    }
}
