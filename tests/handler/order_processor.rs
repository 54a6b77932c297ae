//! OrderProcessor: record once, emit OrderAccepted or OrderRejected, fail transiently.

use std::sync::Arc;
use std::time::Duration;

use ordergrid::email::MemoryTransport;
use ordergrid::store::{Collection, MemoryStore, RecordKey};
use serde_json::{Value, json};

use crate::events::{accepted_order, eg_event, envelope, new_order};
use crate::helpers::{spawn_app, spawn_app_with};

fn invoke_env(id: &str, data: Value) -> Value {
    envelope("OrderProcessor", eg_event(id, data))
}

#[tokio::test]
async fn a_valid_order_is_recorded_and_order_accepted_is_emitted() {
    let app = spawn_app().await;
    let answer = app
        .invoke("OrderProcessor", &invoke_env("evt-new", new_order("12345")))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let [accepted] = answer.emitted().try_into().unwrap();
    assert_eq!(accepted["eventType"], "OrderAccepted");
    assert_eq!(accepted["subject"], "orders/12345");
    assert_eq!(accepted["dataVersion"], "1.0");
    assert!(
        accepted["eventTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(
        accepted["data"],
        accepted_order("12345"),
        "the data EmailNotifier's tests trigger it with"
    );
    assert!(
        answer.log().contains("order 12345 recorded (150.00 USD"),
        "{}",
        answer.log()
    );

    let key = RecordKey::new(Collection::Orders, "12345").unwrap();
    let record: Value =
        serde_json::from_slice(&app.store.get(&key).await.unwrap().unwrap().body).unwrap();
    assert_eq!(record["eventId"], "evt-new");
    assert_eq!(record["order"]["orderValue"], "150.00");
    assert_eq!(record["order"]["currency"], "USD");
    assert_eq!(record["acceptedEventId"], accepted["id"]);
}

/// With no tracer (the default, and so on Azure unless an OTLP endpoint is set) the handler
/// forwards the context its invocation continued: the host's when it is in the event's trace,
/// else the event's own; a trace continued downstream never points at a span nobody recorded.
/// The context is recorded with the order, so a redelivery re-emits the same event.
#[tokio::test]
async fn emitted_events_carry_the_trace_context_the_invocation_continued() {
    const EVENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const HOST_IN_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
    const HOST_ELSEWHERE: &str = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-2222222222222222-00";
    let app = spawn_app().await;
    let traced = |order_id: &str| {
        let mut data = new_order(order_id);
        data["traceparent"] = EVENT.into();
        data
    };
    let answer = app
        .invoke_traced(
            "OrderProcessor",
            &invoke_env("evt-t1", traced("T-1")),
            HOST_IN_TRACE,
        )
        .await;
    assert_eq!(answer.emitted()[0]["data"]["traceparent"], HOST_IN_TRACE);
    let answer = app
        .invoke_traced(
            "OrderProcessor",
            &invoke_env("evt-t2", traced("T-2")),
            HOST_ELSEWHERE,
        )
        .await;
    assert_eq!(answer.emitted()[0]["data"]["traceparent"], EVENT);
    let redelivered = app
        .invoke_traced(
            "OrderProcessor",
            &invoke_env("evt-t1", traced("T-1")),
            HOST_ELSEWHERE,
        )
        .await;
    assert_eq!(
        redelivered.emitted()[0]["data"]["traceparent"],
        HOST_IN_TRACE,
        "re-emitted as recorded, the same event"
    );
    let rejected = app
        .invoke_traced(
            "OrderProcessor",
            &invoke_env("evt-bad", json!({"orderId": "T-3"})),
            HOST_ELSEWHERE,
        )
        .await;
    assert_eq!(rejected.emitted()[0]["eventType"], "OrderRejected");
    assert_eq!(rejected.emitted()[0]["data"]["traceparent"], HOST_ELSEWHERE);
}

#[tokio::test]
async fn amounts_keep_the_digits_sent_and_items_and_currency_are_carried() {
    let app = spawn_app().await;
    let data = json!({"orderId": "A-7", "customerId": "c", "orderValue": 0.3, "currency": "eur",
                      "customerEmail": "a@b.example",
                      "items": [{"sku": "S1", "name": "Pen", "quantity": 3, "unitPrice": 0.1}]});
    let answer = app.invoke("OrderProcessor", &invoke_env("e", data)).await;
    let accepted = &answer.emitted()[0];
    assert_eq!(accepted["data"]["orderValue"], "0.30");
    assert_eq!(accepted["data"]["currency"], "EUR");
    assert_eq!(accepted["data"]["items"][0]["unitPrice"], "0.10");
}

/// Invalid orders: acknowledged (not retried), OrderRejected with every reason, nothing recorded
/// as an order, and a redelivery emits no second OrderRejected.
#[tokio::test]
async fn invalid_orders_are_acknowledged_and_rejected_with_their_reasons() {
    let app = spawn_app().await;
    let cases = [
        (
            "negative value",
            json!({"orderId": "n1", "customerId": "c", "orderValue": -5, "customerEmail": "a@b.co"}),
            vec!["orderValue"],
        ),
        (
            "absurd value",
            json!({"orderId": "n2", "customerId": "c", "orderValue": 1e12, "customerEmail": "a@b.co"}),
            vec!["orderValue"],
        ),
        (
            "bad email",
            json!({"orderId": "n3", "customerId": "c", "orderValue": 5, "customerEmail": "not-an-email"}),
            vec!["customerEmail"],
        ),
        (
            "missing fields",
            json!({"orderId": "n4"}),
            vec!["customerId", "customerEmail", "orderValue"],
        ),
        (
            "wrong types",
            json!({"orderId": 4, "customerId": ["c"], "orderValue": "lots", "customerEmail": true}),
            vec!["orderId", "customerId", "customerEmail", "orderValue"],
        ),
        (
            "too precise",
            json!({"orderId": "n6", "customerId": "c", "orderValue": 1.005, "customerEmail": "a@b.co"}),
            vec!["orderValue"],
        ),
        ("data not an object", json!("just a string"), vec!["data"]),
    ];
    for (i, (name, data, fields)) in cases.into_iter().enumerate() {
        let env = invoke_env(&format!("bad-{i}"), data);
        let answer = app.invoke("OrderProcessor", &env).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.json);
        let [rejected] = answer
            .emitted()
            .try_into()
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(rejected["eventType"], "OrderRejected", "{name}");
        assert_eq!(rejected["data"]["sourceEventId"], format!("bad-{i}"));
        let got: Vec<&str> = rejected["data"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{name}");
        let again = app.invoke("OrderProcessor", &env).await;
        assert_eq!(again.status, 200, "{name}");
        assert_eq!(
            again.emitted(),
            std::slice::from_ref(&rejected),
            "{name}: a redelivery emits the same OrderRejected again, never a different one"
        );
    }
    assert!(
        app.orders()
            .await
            .iter()
            .all(|name| name.starts_with("rejected/"))
    );
}

/// A redelivery of the same event gets the identical OrderAccepted again (Event Grid redelivers
/// when the earlier answer did not reach it, so the output must not be lost); the same order
/// published as a new event is acknowledged and emits nothing.
#[tokio::test]
async fn a_redelivery_re_emits_the_same_order_accepted_and_a_re_publish_emits_nothing() {
    let app = spawn_app().await;
    let first = app
        .invoke("OrderProcessor", &invoke_env("e1", new_order("42")))
        .await;
    let [accepted] = first.emitted().try_into().unwrap();
    let again = app
        .invoke("OrderProcessor", &invoke_env("e1", new_order("42")))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.emitted(),
        [accepted],
        "byte for byte the same event: same id, time and data"
    );
    assert!(
        again.log().contains("emitted again (same id)"),
        "{}",
        again.log()
    );
    let republished = app
        .invoke("OrderProcessor", &invoke_env("e2", new_order("42")))
        .await;
    assert_eq!(republished.status, 200);
    assert!(republished.emitted().is_empty(), "{}", republished.json);
    assert!(
        republished.log().contains("already recorded from event e1"),
        "{}",
        republished.log()
    );
    assert_eq!(app.orders().await, ["42"]);
}

#[tokio::test]
async fn an_order_id_reused_with_different_content_is_rejected_not_overwritten() {
    let app = spawn_app().await;
    app.invoke("OrderProcessor", &invoke_env("e1", new_order("42")))
        .await;
    let mut other = new_order("42");
    other["orderValue"] = json!(999);
    let answer = app.invoke("OrderProcessor", &invoke_env("e2", other)).await;
    assert_eq!(answer.status, 200);
    let [rejected] = answer.emitted().try_into().unwrap();
    assert_eq!(rejected["eventType"], "OrderRejected");
    assert!(
        rejected["data"]["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("different content")
    );
    let key = RecordKey::new(Collection::Orders, "42").unwrap();
    let record: Value =
        serde_json::from_slice(&app.store.get(&key).await.unwrap().unwrap().body).unwrap();
    assert_eq!(
        record["order"]["orderValue"], "150.00",
        "the first order stays"
    );
}

/// When the store is unreachable the invocation fails (503) so Event Grid retries, and the retry
/// after recovery records the order once.
#[tokio::test]
async fn an_unreachable_store_fails_the_invocation_so_event_grid_retries() {
    let store = Arc::new(MemoryStore::new());
    let app = spawn_app_with(
        tempfile::tempdir().unwrap(),
        store.clone(),
        Arc::new(MemoryTransport::new()),
        Default::default(),
        Duration::from_secs(60),
    )
    .await;
    let env = invoke_env("e1", new_order("7"));
    store.set_unavailable(true);
    let failed = app.invoke("OrderProcessor", &env).await;
    assert_eq!(failed.status, 503, "{}", failed.json);
    assert_eq!(failed.json["error"]["code"], "TransientFailure");
    assert!(failed.error_message().contains("failed to record order 7"));
    store.set_unavailable(false);
    let retried = app.invoke("OrderProcessor", &env).await;
    assert_eq!(retried.status, 200);
    assert_eq!(retried.emitted().len(), 1);
    assert_eq!(app.orders().await, ["7"]);
}
