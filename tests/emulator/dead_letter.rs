//! Dead letters as Azure writes them, listed and redelivered through the admin API and the CLI.

use std::time::Instant;

use ordergrid::emulator::admin::{PendingAction, RedeliverRequest};
use ordergrid_testing::receiver::{Receiver, Reply};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::harness::{
    PATIENCE, Setup, TestEmulator, cloud_event, cloud_topic, dead_lettered, event,
    eventually_async, file, ordergrid_cli, ordergrid_cli_fails, topic, webhook,
};

/// `refusing` dead-letters everything (400), `healthy` takes everything; both on `orders`.
async fn start() -> (Receiver, TestEmulator) {
    let receiver = Receiver::start().await;
    receiver.always("/refusing", Reply::Status(400));
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![
            dead_lettered(
                webhook("Refusing-Hook", &receiver.url("/refusing")),
                "dead-letters",
                30,
            ),
            dead_lettered(
                webhook("healthy", &receiver.url("/healthy")),
                "dead-letters",
                30,
            ),
        ],
    )]))
    .own_dead_letter_dir()
    .start()
    .await;
    (receiver, emulator)
}

#[tokio::test]
async fn dead_letter_blobs_use_azures_path_and_hold_an_array_of_annotated_events() {
    let (_receiver, emulator) = start().await;
    let before = OffsetDateTime::now_utc();
    let mut sent = event("dl-1", "NewOrder", json!("DATA")).to_string();
    sent = format!("[{}]", sent.replace(r#""DATA""#, r#"{"amount":12.50}"#));
    let response = emulator
        .publish_request("orders")
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let blobs = emulator.wait_for_dead_letters(1).await;
    let after = OffsetDateTime::now_utc();
    assert!(
        emulator.dead_letter_dir.ends_with("dead-letter-folder"),
        "the configured folder is used"
    );
    let (path, events) = &blobs[0];
    let parts: Vec<&str> = path.iter().map(|p| p.to_str().unwrap()).collect();
    // <container>/<SUBSCRIPTION-UPPER>/<yyyy>/<M>/<d>/<H>/<guid>.json, UTC, no zero padding.
    assert_eq!(parts.len(), 7, "{path:?}");
    assert_eq!(parts[0], "dead-letters");
    assert_eq!(parts[1], "REFUSING-HOOK");
    let unpadded = |t: OffsetDateTime| {
        [
            t.year().to_string(),
            u8::from(t.month()).to_string(),
            t.day().to_string(),
            t.hour().to_string(),
        ]
    };
    assert!(
        parts[2..6] == unpadded(before) || parts[2..6] == unpadded(after),
        "{path:?} is not the UTC date and hour, unpadded"
    );
    for part in &parts[3..6] {
        assert!(
            *part == "0" || !part.starts_with('0'),
            "zero-padded: {path:?}"
        );
    }
    let guid = parts[6].strip_suffix(".json").expect("a .json blob");
    uuid::Uuid::parse_str(guid).expect("the blob is named by a GUID");

    assert_eq!(events.len(), 1);
    let dead = &events[0];
    for field in [
        "id",
        "subject",
        "eventType",
        "eventTime",
        "data",
        "dataVersion",
        "metadataVersion",
        "topic",
        "deadLetterReason",
        "deliveryAttempts",
        "lastDeliveryOutcome",
        "lastHttpStatusCode",
        "publishTime",
        "lastDeliveryAttemptTime",
    ] {
        assert!(dead.get(field).is_some(), "no {field} in {dead}");
    }
    assert_eq!(dead["id"], "dl-1");
    let raw = std::fs::read_to_string(emulator.dead_letter_dir.join(path)).unwrap();
    assert!(
        raw.contains(r#""data":{"amount":12.50}"#),
        "the data is kept as sent: {raw}"
    );
}

#[tokio::test]
async fn dead_letters_are_written_after_the_dead_letter_delay() {
    let receiver = Receiver::start().await;
    receiver.always("/refusing", Reply::Status(400));
    // Azure waits about 5 minutes before writing; scaled by 0.001 that is 300 ms.
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![dead_lettered(
            webhook("refusing", &receiver.url("/refusing")),
            "dead-letters",
            30,
        )],
    )]))
    .dead_letter_delay(std::time::Duration::from_secs(300))
    .start()
    .await;
    emulator
        .publish_ok("orders", &[event("late-1", "NewOrder", json!({}))])
        .await;
    let refused = eventually_async("the refused attempt", PATIENCE, async || {
        receiver.notifications("/refusing").into_iter().next()
    })
    .await;
    // Meanwhile it waits as a pending dead letter.
    wait_for_pending_dead_letter(&emulator).await;
    emulator.wait_for_dead_letters(1).await;
    let waited = Instant::now() - refused.at;
    assert!(
        waited >= std::time::Duration::from_millis(299),
        "written {waited:?} after the last attempt"
    );
}

#[tokio::test]
async fn dead_letters_are_listed_by_the_api_and_the_cli() {
    let (_receiver, emulator) = start().await;
    emulator
        .publish_ok(
            "orders",
            &[
                event("l-1", "NewOrder", json!({})),
                event("l-2", "NewOrder", json!({})),
            ],
        )
        .await;
    let blobs = emulator.wait_for_dead_letters(2).await;
    let listed = emulator.admin.dead_letters().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (path, events) in &blobs {
        let name = path.strip_prefix("dead-letters").unwrap().to_str().unwrap();
        let entry = listed
            .iter()
            .find(|b| b.blob.name == name)
            .unwrap_or_else(|| panic!("{name} not listed in {listed:?}"));
        assert_eq!(entry.blob.container, "dead-letters");
        assert_eq!(entry.blob.subscription, "REFUSING-HOOK");
        // What its event says, and when it was written.
        let dead = &events[0];
        assert_eq!(entry.event_id.as_deref(), dead["id"].as_str(), "{entry:?}");
        assert_eq!(
            entry.reason.as_deref(),
            dead["deadLetterReason"].as_str(),
            "{entry:?}"
        );
        assert_eq!(entry.events, Some(1));
        assert_eq!(entry.order_id, None, "the event's data has no orderId");
        let written = entry
            .blob
            .written_at
            .as_deref()
            .expect("a dead-letter time");
        OffsetDateTime::parse(written, &time::format_description::well_known::Rfc3339).unwrap();
        // One blob can be read back through the API.
        let read = emulator.admin.dead_letter(&entry.blob).await.unwrap();
        assert_eq!(&read, &Value::from(events.clone()));
    }
    let text = ordergrid_cli(&["emulator", "dead-letters", "--url", &emulator.base]).await;
    assert!(text.starts_with("DEAD-LETTERED AT"), "{text}");
    for (path, events) in &blobs {
        let name = path.strip_prefix("dead-letters").unwrap().to_str().unwrap();
        let id = events[0]["id"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.contains(" REFUSING-HOOK ")
                && l.contains(&format!(" {id} "))
                && l.ends_with(&format!("dead-letters/{name}"))),
            "{name} not in:\n{text}"
        );
    }
}

#[tokio::test]
async fn redelivery_through_the_api_goes_to_that_subscription_only_and_removes_the_blob() {
    let (receiver, emulator) = start().await;
    emulator
        .publish_ok("orders", &[event("again-1", "NewOrder", json!({"n": 1}))])
        .await;
    emulator.wait_for_dead_letters(1).await;
    emulator.wait_for_counter("healthy", "delivered", 1).await;
    receiver.always("/refusing", Reply::Status(200));

    let refusing_hook = RedeliverRequest {
        subscription: Some("refusing-hook".into()),
        ..RedeliverRequest::default()
    };
    let answer = emulator.admin.redeliver(&refusing_hook).await.unwrap();
    assert_eq!(answer.redelivered[0].events, 1, "{answer:?}");

    eventually_async("the redelivered event", PATIENCE, async || {
        (receiver.delivered_ids("/refusing") == ["again-1"]).then_some(())
    })
    .await;
    let redelivered = receiver.notifications("/refusing").pop().unwrap();
    let event = &redelivered.events()[0];
    assert_eq!(event["data"], json!({"n": 1}));
    assert!(
        event.get("deadLetterReason").is_none(),
        "redelivered without the dead-letter properties: {event}"
    );
    assert!(emulator.dead_letter_files().is_empty(), "the blob is gone");
    assert!(emulator.admin.dead_letters().await.unwrap().is_empty());
    let healthy = emulator.counters("healthy").await;
    assert_eq!(
        healthy.matched, 1,
        "the other subscription got it once: {healthy:?}"
    );
    assert_eq!(receiver.notifications("/healthy").len(), 1);

    // Nothing left to redeliver: a known subscription answers with nothing redelivered, an
    // unknown subscription or blob is a 404 (issue 13).
    let nothing = emulator.admin.redeliver(&refusing_hook).await.unwrap();
    assert!(nothing.redelivered.is_empty(), "{nothing:?}");
    let unknown = emulator
        .admin
        .redeliver(&RedeliverRequest {
            subscription: Some("no-such-hook".into()),
            ..RedeliverRequest::default()
        })
        .await
        .unwrap_err();
    assert!(unknown.is_not_found(), "{unknown:#}");
    assert!(
        unknown.message().unwrap().contains("no-such-hook"),
        "{unknown:#}"
    );
    let unknown_blob = emulator
        .admin
        .redeliver(&RedeliverRequest {
            container: Some("dead-letters".into()),
            name: Some("REFUSING-HOOK/2026/1/1/0/none.json".into()),
            subscription: None,
        })
        .await
        .unwrap_err();
    assert!(unknown_blob.is_not_found(), "{unknown_blob:#}");
}

#[tokio::test]
async fn redelivery_through_the_cli_delivers_one_blob_or_a_whole_subscription_and_removes_them() {
    let (receiver, emulator) = start().await;
    emulator
        .publish_ok("orders", &[event("cli-1", "NewOrder", json!({}))])
        .await;
    let first = emulator.wait_for_dead_letters(1).await.remove(0).0;
    emulator
        .publish_ok("orders", &[event("cli-2", "NewOrder", json!({}))])
        .await;
    emulator.wait_for_dead_letters(2).await;
    receiver.always("/refusing", Reply::Status(200));

    // One blob, named as `dead-letters` lists it.
    let blob = first.to_str().unwrap();
    let text = ordergrid_cli(&[
        "emulator",
        "redeliver",
        "--url",
        &emulator.base,
        "--blob",
        blob,
    ])
    .await;
    assert!(text.contains(blob), "{text}");
    eventually_async("cli-1 redelivered", PATIENCE, async || {
        (receiver.delivered_ids("/refusing") == ["cli-1"]).then_some(())
    })
    .await;
    assert_eq!(emulator.dead_letter_files().len(), 1);

    // The rest of the subscription's dead letters.
    let text = ordergrid_cli(&[
        "emulator",
        "redeliver",
        "--url",
        &emulator.base,
        "--subscription",
        "Refusing-Hook",
    ])
    .await;
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("Refusing-Hook"))
            .count(),
        1,
        "{text}"
    );
    eventually_async("cli-2 redelivered", PATIENCE, async || {
        (receiver.delivered_ids("/refusing") == ["cli-1", "cli-2"]).then_some(())
    })
    .await;
    assert!(emulator.dead_letter_files().is_empty());
    assert_eq!(
        receiver.notifications("/healthy").len(),
        2,
        "not delivered to the other subscription again"
    );

    // Then the CLI tells nothing to redeliver from no such subscription or blob (issue 13).
    let base = emulator.base.as_str();
    let redeliver = |flag, value| ["emulator", "redeliver", "--url", base, flag, value];
    let text = ordergrid_cli(&redeliver("--subscription", "Refusing-Hook")).await;
    assert_eq!(
        text,
        "nothing to redeliver: subscription Refusing-Hook has no dead letters\n"
    );
    let stderr = ordergrid_cli_fails(&redeliver("--subscription", "no-such-hook")).await;
    assert!(
        stderr.contains("no subscription named no-such-hook")
            && stderr.contains("Refusing-Hook, healthy"),
        "{stderr}"
    );
    let args = redeliver("--blob", "dead-letters/REFUSING-HOOK/2026/1/1/0/none.json");
    let stderr = ordergrid_cli_fails(&args).await;
    assert!(
        stderr.contains("no dead letter dead-letters/REFUSING-HOOK/2026/1/1/0/none.json"),
        "{stderr}"
    );
}

#[tokio::test]
async fn cloud_events_dead_letters_use_lower_case_names_and_redeliver_as_cloud_events() {
    let receiver = Receiver::start().await;
    receiver.always("/ce", Reply::Status(400));
    let emulator = Setup::new(file(vec![cloud_topic(
        "audit",
        vec![dead_lettered(
            webhook("ce-hook", &receiver.url("/ce")),
            "dead-letters",
            30,
        )],
    )]))
    .start()
    .await;
    let response = emulator
        .publish_request("audit")
        .header(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )
        .body(cloud_event("ce-dl-1", "Audit", json!({"n": 1})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let blobs = emulator.wait_for_dead_letters(1).await;
    let (path, events) = &blobs[0];
    let dead = &events[0];
    for field in [
        "deadletterreason",
        "deliveryattempts",
        "lastdeliveryoutcome",
        "lasthttpstatuscode",
        "publishtime",
        "lastdeliveryattempttime",
    ] {
        assert!(dead.get(field).is_some(), "no {field} in {dead}");
    }
    assert!(dead.get("deadLetterReason").is_none(), "{dead}");
    assert_eq!(dead["specversion"], "1.0");
    assert_eq!(dead["type"], "Audit");
    assert_eq!(dead["lasthttpstatuscode"], 400);

    receiver.always("/ce", Reply::Status(200));
    let name = path.strip_prefix("dead-letters").unwrap().to_str().unwrap();
    let response = emulator
        .client
        .post(format!("{}/emulator/dead-letters/redeliver", emulator.base))
        .json(&json!({"container": "dead-letters", "name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let redelivered = eventually_async("the redelivered CloudEvent", PATIENCE, async || {
        receiver
            .notifications("/ce")
            .into_iter()
            .find(|r| r.succeeded())
    })
    .await;
    assert_eq!(
        redelivered.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    let event = redelivered.json();
    assert_eq!(event["id"], "ce-dl-1");
    assert_eq!(event["data"], json!({"n": 1}));
    assert!(event.get("deadletterreason").is_none(), "{event}");
    assert_eq!(
        redelivered.delivery_count(),
        0,
        "a redelivery starts afresh"
    );
}

/// Subscription names are unique per topic only, and Azure's blob path names no topic: the
/// container is what tells two same-named subscriptions' dead letters apart.
#[tokio::test]
async fn redelivery_goes_to_the_subscription_that_dead_lettered_even_if_another_topic_shares_its_name()
 {
    let receiver = Receiver::start().await;
    receiver.always("/billing", Reply::Status(400));
    let emulator = Setup::new(file(vec![
        topic(
            "orders",
            vec![dead_lettered(
                webhook("audit", &receiver.url("/orders")),
                "orders-dl",
                30,
            )],
        ),
        topic(
            "billing",
            vec![dead_lettered(
                webhook("audit", &receiver.url("/billing")),
                "billing-dl",
                30,
            )],
        ),
    ]))
    .start()
    .await;
    emulator
        .publish_ok("billing", &[event("bill-1", "NewOrder", json!({}))])
        .await;
    let blobs = emulator.wait_for_dead_letters(1).await;
    assert!(
        blobs[0].0.starts_with("billing-dl/AUDIT"),
        "{:?}",
        blobs[0].0
    );
    receiver.always("/billing", Reply::Status(200));
    let text = ordergrid_cli(&[
        "emulator",
        "redeliver",
        "--url",
        &emulator.base,
        "--subscription",
        "audit",
    ])
    .await;
    assert!(text.contains("billing-dl/AUDIT/"), "{text}");
    eventually_async("the redelivery to billing", PATIENCE, async || {
        (receiver.delivered_ids("/billing") == ["bill-1"]).then_some(())
    })
    .await;
    assert!(
        receiver.notifications("/orders").is_empty(),
        "redelivered to the orders topic's subscription of the same name"
    );
}

/// Azure: "Dead lettered events will be dropped when the dead-letter destination isn't found".
#[tokio::test]
async fn events_awaiting_a_dead_letter_write_are_dropped_if_the_destination_is_removed() {
    let receiver = Receiver::start().await;
    receiver.always("/refusing", Reply::Status(400));
    let with = |dead_letter: bool| {
        let hook = webhook("refusing", &receiver.url("/refusing"));
        file(vec![topic(
            "orders",
            vec![if dead_letter {
                dead_lettered(hook, "dead-letters", 30)
            } else {
                hook
            }],
        )])
    };
    // The dead-letter write waits Azure's 5 minutes: 300 ms at this scale.
    let emulator = Setup::new(with(true))
        .dead_letter_delay(std::time::Duration::from_secs(300))
        .start()
        .await;
    emulator
        .publish_ok("orders", &[event("orphan-1", "NewOrder", json!({}))])
        .await;
    wait_for_pending_dead_letter(&emulator).await;

    let emulator = emulator.restart_with(&with(false)).await;
    let counters = emulator.wait_for_counter("refusing", "dropped", 1).await;
    assert_eq!(counters.dead_lettered, 0, "{counters:?}");
    assert!(
        emulator.retries().await.is_empty(),
        "nothing stays pending for a destination that is gone"
    );
    assert!(emulator.dead_letter_files().is_empty());
}

/// Waits until the first pending event waits for its dead-letter write.
async fn wait_for_pending_dead_letter(emulator: &TestEmulator) {
    eventually_async("a pending dead-letter write", PATIENCE, async || {
        let pending = emulator.retries().await;
        let first = pending.first().map(|p| &p.action);
        matches!(first, Some(PendingAction::DeadLetter { .. })).then_some(())
    })
    .await;
}
