//! Endpoint validation before delivery: the Event Grid validation event (synchronous and manual)
//! and the CloudEvents `OPTIONS` abuse protection. An endpoint that does not validate receives
//! nothing, and the subscription says why.

use serde_json::json;

use ordergrid::emulator::admin::Validation;
use ordergrid_testing::receiver::{Handshake, Receiver};

use crate::harness::{
    PATIENCE, Setup, cloud_event, cloud_topic, event, eventually_async, file, reason, topic,
    webhook,
};

#[tokio::test]
async fn an_event_grid_endpoint_is_validated_with_the_validation_code_before_delivery() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("validated", &receiver.url("/hook"))],
    )]))
    .start()
    .await;
    emulator.wait_for_validation("validated", "succeeded").await;
    emulator
        .publish_ok("orders", &[event("v-1", "NewOrder", json!({}))])
        .await;
    eventually_async("the delivery", PATIENCE, async || {
        (receiver.delivered_ids("/hook") == ["v-1"]).then_some(())
    })
    .await;
    let requests = receiver.to("/hook");
    let validation = &requests[0];
    assert_eq!(validation.method, "POST");
    assert_eq!(
        validation.header("aeg-event-type"),
        Some("SubscriptionValidation")
    );
    assert_eq!(
        validation.header("aeg-subscription-name"),
        Some("VALIDATED")
    );
    let body = validation.json();
    let events = body
        .as_array()
        .expect("the validation event comes in an array");
    assert_eq!(events.len(), 1);
    let v = &events[0];
    assert_eq!(
        v["eventType"],
        "Microsoft.EventGrid.SubscriptionValidationEvent"
    );
    assert_eq!(v["metadataVersion"], "1");
    uuid::Uuid::parse_str(v["data"]["validationCode"].as_str().unwrap()).unwrap();
    let url = v["data"]["validationUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/eventsubscriptions/validated/validate?id=",
            emulator.base
        )),
        "{url}"
    );
    assert_eq!(
        requests.iter().filter(|r| r.is_notification()).count(),
        1,
        "after the handshake, one notification"
    );
}

#[tokio::test]
async fn a_wrong_validation_code_fails_the_subscription_which_gets_nothing_until_it_validates() {
    let receiver = Receiver::start().await;
    receiver.handshake("/wrong", Handshake::Wrong);
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![
            webhook("wrong-code", &receiver.url("/wrong")),
            webhook("witness", &receiver.url("/witness")),
        ],
    )]))
    .start()
    .await;
    let failed = emulator.wait_for_validation("wrong-code", "failed").await;
    let reason = reason(&failed);
    assert!(reason.contains("wrong validationResponse"), "{reason}");

    emulator
        .publish_ok("orders", &[event("w-1", "NewOrder", json!({}))])
        .await;
    // The healthy subscription on the same topic gets it; the failed one is not even tried.
    eventually_async("the witness delivery", PATIENCE, async || {
        (receiver.delivered_ids("/witness") == ["w-1"]).then_some(())
    })
    .await;
    assert!(receiver.notifications("/wrong").is_empty());
    let status =
        crate::harness::ordergrid_cli(&["emulator", "status", "--url", &emulator.base]).await;
    let row = status
        .lines()
        .find(|l| l.starts_with("orders/wrong-code"))
        .unwrap_or_else(|| panic!("no row for wrong-code in:\n{status}"));
    assert!(row.contains("failed: "), "the CLI shows why: {row}");

    // Fixed and re-validated, it gets the event that waited.
    receiver.handshake("/wrong", Handshake::Answer);
    let response = emulator
        .client
        .post(format!(
            "{}/emulator/subscriptions/wrong-code/validate",
            emulator.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    emulator
        .wait_for_validation("wrong-code", "succeeded")
        .await;
    eventually_async("the waiting event", PATIENCE, async || {
        (receiver.delivered_ids("/wrong") == ["w-1"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_that_refuses_the_validation_event_fails_with_its_status() {
    let receiver = Receiver::start().await;
    receiver.handshake("/refuse", Handshake::Refuse);
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("refused", &receiver.url("/refuse"))],
    )]))
    .start()
    .await;
    let failed = emulator.wait_for_validation("refused", "failed").await;
    assert!(reason(&failed).contains("404"), "{failed:?}");
}

#[tokio::test]
async fn manual_validation_through_the_validation_url_enables_delivery() {
    let receiver = Receiver::start().await;
    receiver.handshake("/manual", Handshake::WithoutCode);
    // Manual validation must happen within 5 minutes: 3 s at this scale.
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("manual", &receiver.url("/manual"))],
    )]))
    .time_scale(0.01)
    .start()
    .await;
    let awaiting = emulator
        .wait_for_validation("manual", "awaitingManualAction")
        .await;
    emulator
        .publish_ok("orders", &[event("m-1", "NewOrder", json!({}))])
        .await;
    let sent = receiver.validations("/manual")[0].json();
    let url = sent[0]["data"]["validationUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        awaiting,
        Validation::AwaitingManualAction {
            validation_url: url.clone()
        }
    );
    assert!(
        receiver.notifications("/manual").is_empty(),
        "not validated yet"
    );

    // A wrong token does not validate it.
    let forged = format!("{}x", url);
    let response = emulator.client.get(&forged).send().await.unwrap();
    assert_eq!(response.status(), 400);

    let response = emulator.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    emulator.wait_for_validation("manual", "succeeded").await;
    eventually_async("the event after manual validation", PATIENCE, async || {
        (receiver.delivered_ids("/manual") == ["m-1"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cloud_events_endpoint_that_allows_the_origin_is_delivered_to() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![cloud_topic(
        "audit",
        vec![webhook("allowed", &receiver.url("/allowed"))],
    )]))
    .start()
    .await;
    emulator.wait_for_validation("allowed", "succeeded").await;
    let response = emulator
        .publish_request("audit")
        .header("content-type", "application/cloudevents+json")
        .body(cloud_event("o-1", "Audit", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually_async("the delivery", PATIENCE, async || {
        (receiver.delivered_ids("/allowed") == ["o-1"]).then_some(())
    })
    .await;
    let requests = receiver.to("/allowed");
    assert_eq!(requests[0].method, "OPTIONS");
    assert_eq!(
        requests[0].header("webhook-request-origin"),
        Some("eventgrid.azure.net")
    );
    assert!(receiver.validations("/allowed").is_empty());
    let delivery = requests.iter().find(|r| r.is_notification()).unwrap();
    assert_eq!(delivery.header("origin"), Some("eventgrid.azure.net"));
}

#[tokio::test]
async fn a_cloud_events_endpoint_that_does_not_allow_the_origin_fails_and_gets_nothing() {
    let receiver = Receiver::start().await;
    receiver.handshake("/refuse", Handshake::Refuse);
    receiver.handshake("/other-origin", Handshake::Wrong);
    receiver.handshake("/silent", Handshake::WithoutCode);
    let emulator = Setup::new(file(vec![cloud_topic(
        "audit",
        vec![
            webhook("refuses", &receiver.url("/refuse")),
            webhook("other-origin", &receiver.url("/other-origin")),
            webhook("silent", &receiver.url("/silent")),
            webhook("witness", &receiver.url("/witness")),
        ],
    )]))
    .start()
    .await;
    for (name, expected) in [
        ("refuses", "405"),
        ("other-origin", "attacker.example"),
        ("silent", "None"),
    ] {
        let failed = emulator.wait_for_validation(name, "failed").await;
        let reason = reason(&failed);
        assert!(
            reason.contains("OPTIONS") && reason.contains(expected),
            "{name}: {reason}"
        );
    }
    let response = emulator
        .publish_request("audit")
        .header("content-type", "application/cloudevents+json")
        .body(cloud_event("r-1", "Audit", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually_async("the witness delivery", PATIENCE, async || {
        (receiver.delivered_ids("/witness") == ["r-1"]).then_some(())
    })
    .await;
    for path in ["/refuse", "/other-origin", "/silent"] {
        assert!(receiver.notifications(path).is_empty(), "{path}");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_validation_and_says_why() {
    let closed = crate::harness::closed_port_url().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("nobody-home", &format!("{closed}/hook"))],
    )]))
    .start()
    .await;
    let failed = emulator.wait_for_validation("nobody-home", "failed").await;
    let reason = reason(&failed);
    assert!(
        reason.contains(&format!("the validation request to {closed}/hook failed")),
        "{reason}"
    );
}

#[tokio::test]
async fn manual_validation_not_completed_in_time_fails_the_subscription() {
    let receiver = Receiver::start().await;
    receiver.handshake("/manual", Handshake::WithoutCode);
    // 5 minutes scaled by 0.001: 300 ms to GET the validation URL, which nobody does.
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("forgotten", &receiver.url("/manual"))],
    )]))
    .start()
    .await;
    let failed = emulator.wait_for_validation("forgotten", "failed").await;
    assert!(
        reason(&failed).contains("not completed in time"),
        "{failed:?}"
    );
    // Too late now.
    let sent = receiver.validations("/manual")[0].json();
    let url = sent[0]["data"]["validationUrl"].as_str().unwrap();
    let response = emulator.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        emulator.subscription("forgotten").await.validation.state(),
        "failed"
    );
}

/// Subscription names are unique per topic only; the validation URL and re-validation must reach
/// the right one.
#[tokio::test]
async fn validation_reaches_the_right_subscription_when_two_topics_share_its_name() {
    let receiver = Receiver::start().await;
    receiver.handshake("/billing", Handshake::WithoutCode);
    let emulator = Setup::new(file(vec![
        topic("orders", vec![webhook("audit", &receiver.url("/orders"))]),
        topic("billing", vec![webhook("audit", &receiver.url("/billing"))]),
    ]))
    .time_scale(0.01)
    .start()
    .await;
    let url = eventually_async("the billing validation event", PATIENCE, async || {
        let sent = receiver.validations("/billing").pop()?.json();
        Some(sent[0]["data"]["validationUrl"].as_str()?.to_owned())
    })
    .await;
    let state = async |topic: &str| {
        let all = emulator.admin.subscriptions().await.unwrap();
        all.into_iter()
            .find(|s| s.topic == topic && s.name == "audit")
            .unwrap()
            .validation
            .state()
    };
    eventually_async("orders/audit validated", PATIENCE, async || {
        (state("orders").await == "succeeded").then_some(())
    })
    .await;
    let response = emulator.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(state("billing").await, "succeeded");

    // Re-validation by name runs the handshake of every subscription with that name.
    receiver.handshake("/billing", Handshake::Answer);
    let before = receiver.validations("/billing").len();
    let response = emulator
        .client
        .post(format!(
            "{}/emulator/subscriptions/audit/validate",
            emulator.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    eventually_async("billing/audit validated again", PATIENCE, async || {
        (receiver.validations("/billing").len() > before && state("billing").await == "succeeded")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_that_never_answers_the_handshake_fails_after_the_timeout() {
    let receiver = Receiver::start().await;
    receiver.handshake("/silent-eg", Handshake::NoAnswer);
    receiver.handshake("/silent-ce", Handshake::NoAnswer);
    let mut cloud = webhook("silent-ce", &receiver.url("/silent-ce"));
    cloud["eventDeliverySchema"] = json!("CloudEventSchemaV1_0");
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("silent-eg", &receiver.url("/silent-eg")), cloud],
    )]))
    .delivery_timeout(std::time::Duration::from_millis(200))
    .start()
    .await;
    for name in ["silent-eg", "silent-ce"] {
        let failed = emulator.wait_for_validation(name, "failed").await;
        let reason = reason(&failed);
        assert!(reason.contains("timed out"), "{name}: {reason}");
    }
    // Tried more than once (Azure retries a timed-out validation) before giving up.
    assert!(receiver.validations("/silent-eg").len() > 1);
    assert!(receiver.to("/silent-ce").len() > 1);
}

/// Re-validation that fails stops deliveries from then on, as a subscription that no longer
/// validates gets nothing; events published meanwhile wait, and go out once it validates again.
#[tokio::test]
async fn a_failed_revalidation_stops_deliveries_until_the_endpoint_validates_again() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![
            webhook("flaky", &receiver.url("/hook")),
            webhook("witness", &receiver.url("/witness")),
        ],
    )]))
    .start()
    .await;
    emulator.wait_for_validation("flaky", "succeeded").await;
    emulator.wait_for_validation("witness", "succeeded").await;
    emulator
        .publish_ok("orders", &[event("before", "NewOrder", json!({}))])
        .await;
    eventually_async("the first delivery", PATIENCE, async || {
        (receiver.delivered_ids("/hook") == ["before"]).then_some(())
    })
    .await;

    let revalidate = async || {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/emulator/subscriptions/flaky/validate",
                emulator.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    };
    receiver.handshake("/hook", Handshake::Wrong);
    revalidate().await;
    emulator.wait_for_validation("flaky", "failed").await;
    emulator
        .publish_ok("orders", &[event("while-failed", "NewOrder", json!({}))])
        .await;
    // The witness subscription receives it; by then the failed one would have too, had it been
    // delivering.
    eventually_async("the witness's delivery", PATIENCE, async || {
        receiver
            .delivered_ids("/witness")
            .contains(&"while-failed".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(
        receiver.delivered_ids("/hook"),
        ["before"],
        "nothing is delivered while the subscription is failed"
    );

    receiver.handshake("/hook", Handshake::Answer);
    revalidate().await;
    emulator.wait_for_validation("flaky", "succeeded").await;
    eventually_async(
        "the waiting event, once validated again",
        PATIENCE,
        async || (receiver.delivered_ids("/hook") == ["before", "while-failed"]).then_some(()),
    )
    .await;
}
