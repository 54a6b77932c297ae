//! What the emulator shows about itself: `/health`, `/emulator/…` and `ordergrid emulator …`.

use ordergrid::emulator::admin::{DestinationView, PendingAction, Validation};
use ordergrid_testing::receiver::{Receiver, Reply};
use serde_json::json;

use crate::harness::{
    PATIENCE, Setup, dead_lettered, event, eventually_async, file, hook_file, ordergrid_cli, topic,
    webhook,
};

#[tokio::test]
async fn health_reports_healthy_and_counts_topics_and_subscriptions() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![
        topic(
            "orders",
            vec![
                webhook("one", &receiver.url("/one")),
                webhook("two", &receiver.url("/two")),
            ],
        ),
        topic("billing", vec![webhook("three", &receiver.url("/three"))]),
    ]))
    .start()
    .await;
    let health = emulator.get_json("/health").await;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["topics"], 2);
    assert_eq!(health["subscriptions"], 3);
    let topics = emulator.get_json("/emulator/topics").await;
    assert_eq!(topics[0]["name"], "orders");
    assert_eq!(topics[0]["inputSchema"], "EventGridSchema");
    assert_eq!(topics[0]["endpoint"], emulator.endpoint("orders").as_str());
}

#[tokio::test]
async fn subscription_counters_count_matched_delivered_retried_dead_lettered_and_dropped() {
    let receiver = Receiver::start().await;
    // "kept": the first event fails once then is delivered; the second is refused (dead letter).
    receiver.reply(
        "/kept",
        [Reply::Status(500), Reply::Status(200)],
        Reply::Status(400),
    );
    // "lost": no dead-letter destination, refuses everything (dropped).
    receiver.always("/lost", Reply::Status(400));
    let mut picky = webhook("picky", &receiver.url("/picky"));
    picky["filter"] = json!({"includedEventTypes": ["Other"]});
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![
            dead_lettered(webhook("kept", &receiver.url("/kept")), "dead-letters", 30),
            webhook("lost", &receiver.url("/lost")),
            picky,
        ],
    )]))
    .start()
    .await;
    emulator
        .publish_ok("orders", &[event("c-1", "NewOrder", json!({}))])
        .await;
    emulator.wait_for_counter("kept", "delivered", 1).await;
    emulator
        .publish_ok("orders", &[event("c-2", "NewOrder", json!({}))])
        .await;
    let kept = emulator.wait_for_counter("kept", "deadLettered", 1).await;
    assert_eq!(
        (
            kept.matched,
            kept.delivered,
            kept.retried,
            kept.dead_lettered,
            kept.dropped
        ),
        (2, 1, 1, 1, 0),
        "{kept:?}"
    );
    let lost = emulator.wait_for_counter("lost", "dropped", 2).await;
    assert_eq!(lost.matched, 2, "{lost:?}");
    assert_eq!(lost.delivered, 0, "{lost:?}");
    assert_eq!(lost.dead_lettered, 0, "{lost:?}");
    let picky = emulator.counters("picky").await;
    assert_eq!(picky.matched, 0, "{picky:?}");

    let subscription = emulator.subscription("kept").await;
    assert_eq!(subscription.topic, "orders");
    assert_eq!(
        subscription.destination,
        DestinationView::WebHook {
            endpoint_url: receiver.url("/kept")
        }
    );
    assert_eq!(subscription.validation, Validation::Succeeded);
    assert_eq!(
        subscription.dead_letter_container.as_deref(),
        Some("dead-letters")
    );
    assert_eq!(subscription.max_delivery_attempts, 30);
    assert_eq!(subscription.event_time_to_live_in_minutes, 1440);
    assert_eq!(subscription.pending, 0);

    let status = ordergrid_cli(&["emulator", "status", "--url", &emulator.base]).await;
    assert!(
        status.starts_with(&format!("emulator at {}: healthy", emulator.base)),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("orders") && l.contains(&emulator.endpoint("orders"))),
        "{status}"
    );
    let row: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("orders/kept"))
        .unwrap_or_else(|| panic!("no orders/kept row in:\n{status}"))
        .split_whitespace()
        .collect();
    // SUBSCRIPTION DESTINATION VALIDATION MATCHED DELIVERED RETRIED DEAD-LETTERED DROPPED PENDING
    assert_eq!(
        row,
        [
            "orders/kept",
            receiver.url("/kept").as_str(),
            "succeeded",
            "2",
            "1",
            "1",
            "1",
            "0",
            "0"
        ],
        "{status}"
    );
}

#[tokio::test]
async fn recent_deliveries_show_each_attempt_with_its_status_outcome_and_next_step() {
    let receiver = Receiver::start().await;
    receiver.reply("/hook", [Reply::Status(503)], Reply::Status(204));
    let emulator = Setup::new(hook_file(&receiver)).start().await;
    emulator
        .publish_ok("orders", &[event("d-1", "NewOrder", json!({}))])
        .await;
    emulator.wait_for_counter("hook", "delivered", 1).await;
    let records = emulator.admin.deliveries(None, 100).await.unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    // Newest first.
    assert_eq!(records[0].attempt, 2);
    assert_eq!(records[0].status, Some(204));
    assert_eq!(records[0].outcome, "Delivered");
    assert_eq!(records[0].next, "delivered");
    assert_eq!(records[1].attempt, 1);
    assert_eq!(records[1].status, Some(503));
    assert_eq!(records[1].outcome, "Busy");
    assert!(records[1].next.starts_with("retry at "));
    for record in &records {
        assert_eq!(record.subscription, "orders/hook");
        assert_eq!(record.event_ids, ["d-1"]);
    }
    let text = ordergrid_cli(&["emulator", "deliveries", "--url", &emulator.base]).await;
    assert!(text.starts_with("AT"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("orders/hook") && l.contains("d-1"))
            .count(),
        2,
        "{text}"
    );
}

#[tokio::test]
async fn pending_retries_are_listed_by_the_api_and_the_cli() {
    let receiver = Receiver::start().await;
    receiver.always("/down", Reply::Status(500));
    // At Azure's own timing the first retry is 10 s away: long enough to look at it.
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("down", &receiver.url("/down"))],
    )]))
    .time_scale(1.0)
    .start()
    .await;
    let before = time::OffsetDateTime::now_utc();
    emulator
        .publish_ok("orders", &[event("p-1", "NewOrder", json!({}))])
        .await;
    let pending = eventually_async("a pending retry", PATIENCE, async || {
        let pending = emulator.retries().await;
        (!pending.is_empty()).then_some(pending)
    })
    .await;
    let retry = &pending[0];
    assert_eq!(retry.subscription, "orders/down");
    assert_eq!(retry.event_id.as_deref(), Some("p-1"));
    assert_eq!(retry.attempts, 1);
    assert_eq!(retry.action, PendingAction::Deliver);
    assert_eq!(retry.last_status, Some(500));
    let due =
        time::OffsetDateTime::parse(&retry.due, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let wait = due - before;
    assert!(
        wait >= time::Duration::seconds(10) && wait <= time::Duration::seconds(12),
        "due {wait} after publishing; Azure's first retry is 10 s plus up to 10 % jitter"
    );
    assert_eq!(emulator.subscription("down").await.pending, 1);

    let text = ordergrid_cli(&["emulator", "retries", "--url", &emulator.base]).await;
    let row = text
        .lines()
        .find(|l| l.starts_with("orders/down"))
        .unwrap_or_else(|| panic!("no retry row in:\n{text}"));
    assert!(
        row.contains("p-1") && row.contains("deliver") && row.contains("500"),
        "{row}"
    );
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root() {
    let emulator = Setup::new(file(vec![topic("orders", vec![])]))
        .start()
        .await;
    let response = emulator.client.get(&emulator.base).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn the_cli_takes_the_emulator_url_with_or_without_a_trailing_slash() {
    let emulator = Setup::new(file(vec![topic("orders", vec![])]))
        .start()
        .await;
    let with_slash = format!("{}/", emulator.base);
    for command in ["status", "deliveries", "retries", "dead-letters"] {
        let text = ordergrid_cli(&["emulator", command, "--url", &with_slash]).await;
        assert!(!text.is_empty(), "{command}");
    }
}
