//! OrderStatusFeed: every status event, as OrderProcessor and EmailNotifier really emit them,
//! becomes the same update sent to the order's group and the operators'; events without a usable
//! order id send nothing and are acknowledged.

use ordergrid::email::SendError;
use ordergrid::functions::Operators;
use ordergrid::webpubsub::actions::{Action, DataType};
use serde_json::{Value, json};

use crate::events::{ce_event_of, eg_event, eg_event_of, envelope, new_order};
use crate::helpers::{Answer, TestApp, spawn_feed_app};

const FEED: &str = "OrderStatusFeed";

/// The update both actions carry, after checking they are exactly `sendToGroup` to
/// `order-<id>` and then `operators`, with `json` data.
fn update_of(answer: &Answer, order_id: &str) -> Value {
    assert_eq!(answer.status, 200, "{}", answer.json);
    let actions = answer.actions();
    let [first, second] = actions.as_slice() else {
        panic!("two actions expected: {:?}", actions);
    };
    let mut data = Vec::new();
    for (action, expected_group) in [
        (first, format!("order-{order_id}")),
        (second, "operators".to_owned()),
    ] {
        let Action::SendToGroup {
            group,
            message,
            excluded,
        } = action
        else {
            panic!("a sendToGroup action expected: {action:?}");
        };
        assert_eq!(group, &expected_group);
        assert!(excluded.is_empty());
        assert_eq!(message.data_type, DataType::Json);
        data.push(serde_json::from_slice::<Value>(&message.data).unwrap());
    }
    assert_eq!(data[0], data[1], "both groups get the same update");
    // The extension refuses anything but a string in `data` for `json`.
    assert!(answer.json["Outputs"]["actions"][0]["data"].is_string());
    data.remove(0)
}

async fn emit(app: &TestApp, function: &str, event: Value) -> Value {
    let answer = app.invoke(function, &envelope(function, event)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let [event] = answer.emitted().try_into().unwrap();
    event
}

async fn feed(app: &TestApp, event: &Value) -> Answer {
    app.invoke(FEED, &envelope(FEED, event.clone())).await
}

#[tokio::test]
async fn every_status_of_an_order_is_sent_to_its_group_and_the_operators() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let new = eg_event("evt-new", new_order("12345"));
    let accepted = emit(&app, "OrderProcessor", new.clone()).await;
    let sent = emit(&app, "EmailNotifier", accepted.clone()).await;

    let received = update_of(&feed(&app, &new).await, "12345");
    assert_eq!(
        received,
        json!({"orderId": "12345", "status": "received", "time": "2026-11-22T10:00:00.0000000Z", "eventId": "evt-new"})
    );
    for (event, status) in [(&accepted, "accepted"), (&sent, "confirmationSent")] {
        let update = update_of(&feed(&app, event).await, "12345");
        assert_eq!(
            update,
            json!({"orderId": "12345", "status": status, "time": event["eventTime"], "eventId": event["id"]}),
            "from {event}"
        );
    }
}

#[tokio::test]
async fn a_failed_confirmation_is_sent_as_confirmation_failed() {
    let (app, email) = spawn_feed_app(Operators::default()).await;
    email.fail_with(Some(SendError::Permanent("550 mailbox unavailable".into())));
    let accepted = emit(&app, "OrderProcessor", eg_event("evt-new", new_order("9"))).await;
    let failed = emit(&app, "EmailNotifier", accepted).await;
    assert_eq!(failed["eventType"], "OrderConfirmationFailed");
    let update = update_of(&feed(&app, &failed).await, "9");
    assert_eq!(update["status"], "confirmationFailed");
    assert_eq!(update["eventId"], failed["id"]);
    assert!(
        update.get("reasons").is_none(),
        "reasons are for rejections only"
    );
}

#[tokio::test]
async fn a_rejection_carries_the_reasons_order_processor_gave() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let bad = json!({"orderId": "r-1", "customerId": "c", "orderValue": -5, "customerEmail": "not-an-email"});
    let rejected = emit(&app, "OrderProcessor", eg_event("evt-bad", bad)).await;
    assert_eq!(rejected["eventType"], "OrderRejected");
    let update = update_of(&feed(&app, &rejected).await, "r-1");
    assert_eq!(update["status"], "rejected");
    assert_eq!(update["reasons"], rejected["data"]["reasons"]);
    let fields: Vec<&str> = update["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"orderValue") && fields.contains(&"customerEmail"),
        "{fields:?}"
    );
    assert_eq!(update["eventId"], rejected["id"]);
}

#[tokio::test]
async fn a_redelivered_event_sends_the_identical_update() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let event = eg_event_of("evt-a", "OrderAccepted", json!({"orderId": "7"}));
    let first = feed(&app, &event).await;
    let again = feed(&app, &event).await;
    assert_eq!(first.json["Outputs"], again.json["Outputs"]);
    assert_eq!(update_of(&again, "7")["eventId"], "evt-a");
}

#[tokio::test]
async fn events_without_a_usable_order_id_send_nothing_and_are_acknowledged() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let cases = [
        (
            "no order id",
            eg_event_of(
                "e1",
                "OrderRejected",
                json!({"orderId": null, "reasons": []}),
            ),
            "orderId is null",
        ),
        (
            "an invalid order id",
            eg_event_of("e2", "NewOrder", json!({"orderId": "a/b"})),
            "contains '/'",
        ),
        (
            "a number",
            eg_event_of("e3", "OrderAccepted", json!({"orderId": 12345})),
            "not a string",
        ),
        (
            "data that is not an object",
            eg_event_of("e4", "OrderAccepted", json!("12345")),
            "not a JSON object",
        ),
        (
            "no data",
            eg_event_of("e5", "OrderConfirmationSent", Value::Null),
            "not a JSON object",
        ),
    ];
    for (what, event, why) in cases {
        let answer = feed(&app, &event).await;
        assert_eq!(answer.status, 200, "{what}: {}", answer.json);
        assert!(
            answer.json["Outputs"].get("actions").is_none(),
            "{what}: {}",
            answer.json
        );
        assert!(
            answer.log().contains("no usable order id") && answer.log().contains(why),
            "{what}: {}",
            answer.log()
        );
    }
}

#[tokio::test]
async fn a_rejection_without_readable_reasons_is_a_broken_contract_and_fails() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    for data in [
        json!({"orderId": "1"}),
        json!({"orderId": "1", "reasons": "bad"}),
    ] {
        let answer = feed(&app, &eg_event_of("e", "OrderRejected", data.clone())).await;
        assert_eq!(answer.status, 400, "{data}: {}", answer.json);
        assert_eq!(answer.json["error"]["code"], "InvalidEvent");
        assert!(
            answer
                .error_message()
                .contains("not as OrderProcessor emits it"),
            "{}",
            answer.json
        );
    }
}

#[tokio::test]
async fn other_event_types_are_ignored_and_acknowledged() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let answer = feed(
        &app,
        &eg_event_of("e", "OrderShipped", json!({"orderId": "1"})),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(answer.json["Outputs"].get("actions").is_none());
    assert!(
        answer.log().contains("ignored event type"),
        "{}",
        answer.log()
    );
}

#[tokio::test]
async fn a_cloud_event_is_reported_like_an_event_grid_one() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let event = ce_event_of("ce-1", "OrderAccepted", json!({"orderId": "c1"}));
    let update = update_of(&feed(&app, &event).await, "c1");
    assert_eq!(update["time"], "2026-11-22T10:00:00Z");
    assert_eq!(update["eventId"], "ce-1");
}
