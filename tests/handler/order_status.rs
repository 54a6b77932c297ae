//! orderStatus: an order's current status from the store, as the very update the feed sent for
//! it (same eventId, so a page drops the duplicate); 404 for an order not processed; 400 for a
//! bad id.

use ordergrid::email::SendError;
use ordergrid::functions::Operators;
use ordergrid::invocation::http::HttpResponseData;
use serde_json::{Value, json};

use crate::events::{eg_event, envelope, http_envelope, new_order};
use crate::helpers::{TestApp, body_json, spawn_feed_app};

async fn status(app: &TestApp, order_id: &str) -> HttpResponseData {
    let url = format!("http://localhost:7071/api/orders/{order_id}/status");
    app.invoke(
        "orderStatus",
        &http_envelope(
            "orderStatus",
            &url,
            json!({}),
            json!({}),
            json!({"orderId": order_id}),
        ),
    )
    .await
    .res()
}

async fn emit(app: &TestApp, function: &str, event: Value) -> Value {
    let answer = app.invoke(function, &envelope(function, event)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let [event] = answer.emitted().try_into().unwrap();
    event
}

/// What OrderStatusFeed sends for `event`.
async fn fed(app: &TestApp, event: &Value) -> Value {
    let answer = app
        .invoke(
            "OrderStatusFeed",
            &envelope("OrderStatusFeed", event.clone()),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    serde_json::from_str(
        answer.json["Outputs"]["actions"][0]["data"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn ok_json(res: &HttpResponseData) -> Value {
    assert_eq!(res.status_code, 200, "{}", res.body);
    assert_eq!(res.header("Cache-Control"), Some("no-store"));
    assert!(
        res.header("Content-Type")
            .unwrap()
            .starts_with("application/json")
    );
    body_json(res)
}

#[tokio::test]
async fn an_order_reads_accepted_then_confirmation_sent_as_the_feed_sent_them() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let accepted = emit(
        &app,
        "OrderProcessor",
        eg_event("evt-new", new_order("12345")),
    )
    .await;
    let now = ok_json(&status(&app, "12345").await);
    assert_eq!(now["status"], "accepted");
    assert_eq!(
        now,
        fed(&app, &accepted).await,
        "the feed's update, eventId and all"
    );

    let sent = emit(&app, "EmailNotifier", accepted).await;
    let now = ok_json(&status(&app, "12345").await);
    assert_eq!(now["status"], "confirmationSent");
    assert_eq!(now, fed(&app, &sent).await);
}

#[tokio::test]
async fn a_refused_email_reads_confirmation_failed() {
    let (app, email) = spawn_feed_app(Operators::default()).await;
    email.fail_with(Some(SendError::Permanent("550 no such user".into())));
    let accepted = emit(
        &app,
        "OrderProcessor",
        eg_event("evt-new", new_order("f-1")),
    )
    .await;
    let failed = emit(&app, "EmailNotifier", accepted).await;
    let now = ok_json(&status(&app, "f-1").await);
    assert_eq!(now["status"], "confirmationFailed");
    assert_eq!(now, fed(&app, &failed).await);
}

#[tokio::test]
async fn a_rejected_order_reads_rejected_with_its_reasons() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let bad = json!({"orderId": "r-1", "customerId": "c", "orderValue": -5, "customerEmail": "a@b.example"});
    let rejected = emit(&app, "OrderProcessor", eg_event("evt-bad", bad)).await;
    // Another order's rejection is not this one's.
    let other = json!({"orderId": "r-2", "customerId": "c", "orderValue": 0, "customerEmail": "a@b.example"});
    emit(&app, "OrderProcessor", eg_event("evt-other", other)).await;
    let now = ok_json(&status(&app, "r-1").await);
    assert_eq!(now["status"], "rejected");
    assert_eq!(now["reasons"][0]["field"], "orderValue");
    assert_eq!(now, fed(&app, &rejected).await);
}

#[tokio::test]
async fn a_rejected_reuse_of_an_accepted_order_s_id_does_not_undo_the_order() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    emit(&app, "OrderProcessor", eg_event("evt-1", new_order("u-1"))).await;
    let mut reused = new_order("u-1");
    reused["orderValue"] = json!(999.0);
    let rejected = emit(&app, "OrderProcessor", eg_event("evt-2", reused)).await;
    assert_eq!(rejected["eventType"], "OrderRejected");
    assert_eq!(ok_json(&status(&app, "u-1").await)["status"], "accepted");
}

#[tokio::test]
async fn an_unknown_order_is_404_and_a_bad_id_400() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let missing = status(&app, "never-seen").await;
    assert_eq!(missing.status_code, 404, "{}", missing.body);
    assert_eq!(missing.header("Cache-Control"), Some("no-store"));
    assert_eq!(body_json(&missing)["error"]["code"], "OrderNotFound");
    assert!(missing.body.contains("never-seen"));

    let bad = status(&app, "a b").await;
    assert_eq!(bad.status_code, 400, "{}", bad.body);
    let body = body_json(&bad);
    assert_eq!(body["error"]["code"], "InvalidOrderId");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"a b\" contains ' '"),
        "{body}"
    );
}

#[tokio::test]
async fn a_request_that_is_not_an_http_request_fails_the_invocation() {
    let (app, _) = spawn_feed_app(Operators::default()).await;
    let answer = app
        .invoke(
            "orderStatus",
            &json!({"Data": {"req": "not a request"}, "Metadata": {}}),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], "InvalidEnvelope");
    let answer = app
        .invoke(
            "orderStatus",
            &json!({"Data": {"request": {}}, "Metadata": {}}),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], "BindingNotFound");
}

async fn recent(app: &TestApp, query: Value, headers: Value) -> HttpResponseData {
    app.invoke(
        "recentOrders",
        &http_envelope(
            "recentOrders",
            "http://localhost:7071/api/orders/recent",
            query,
            headers,
            json!({}),
        ),
    )
    .await
    .res()
}

/// recentOrders: the board's list on load, every order's current status (accepted, confirmed,
/// rejected and never recorded), newest change first, cut at `limit`; operators only.
#[tokio::test]
async fn recent_orders_lists_every_order_s_current_status_newest_first_for_operators() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let accepted = emit(&app, "OrderProcessor", eg_event("e-1", new_order("o-1"))).await;
    emit(&app, "EmailNotifier", accepted).await;
    emit(&app, "OrderProcessor", eg_event("e-2", new_order("o-2"))).await;
    let bad = json!({"orderId": "o-3", "customerId": "c", "orderValue": -5, "customerEmail": "a@b.example"});
    let rejected = emit(&app, "OrderProcessor", eg_event("e-3", bad)).await;

    let all = ok_json(&recent(&app, json!({}), json!({})).await);
    let orders = all["orders"].as_array().unwrap();
    let by_id = |id: &str| orders.iter().find(|o| o["orderId"] == id).unwrap().clone();
    assert_eq!(orders.len(), 3, "{all}");
    assert_eq!(by_id("o-1")["status"], "confirmationSent");
    assert_eq!(by_id("o-2")["status"], "accepted");
    assert_eq!(
        by_id("o-3"),
        fed(&app, &rejected).await,
        "the feed's own update"
    );
    let times: Vec<&str> = orders.iter().map(|o| o["time"].as_str().unwrap()).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first, "newest change first");

    let one = ok_json(&recent(&app, json!({"limit": "1"}), json!({})).await);
    assert_eq!(one["orders"].as_array().unwrap().len(), 1);
    assert_eq!(one["orders"][0], orders[0]);
    for limit in ["0", "201", "many"] {
        let refused = recent(&app, json!({"limit": limit}), json!({})).await;
        assert_eq!(refused.status_code, 400, "{limit}: {}", refused.body);
        assert_eq!(body_json(&refused)["error"]["code"], "InvalidLimit");
    }
}

#[tokio::test]
async fn recent_orders_are_for_operators_only() {
    let operators = Operators::parse("ops@shop.example").unwrap().trusted(true);
    let (app, _) = spawn_feed_app(operators).await;
    emit(&app, "OrderProcessor", eg_event("e-1", new_order("o-1"))).await;
    let anonymous = recent(&app, json!({}), json!({})).await;
    assert_eq!(anonymous.status_code, 403, "{}", anonymous.body);
    assert!(!anonymous.body.contains("o-1"));
    let operator = recent(
        &app,
        json!({}),
        json!({"X-MS-CLIENT-PRINCIPAL-NAME": ["ops@shop.example"]}),
    )
    .await;
    assert_eq!(ok_json(&operator)["orders"][0]["orderId"], "o-1");
}
