//! The invocation contract: envelopes in every documented shape, and every kind of bad input.

use serde_json::json;

use crate::events::{
    accepted_order, ce_event_of, eg_event, eg_event_of, envelope, new_order, string_envelope,
};
use crate::helpers::spawn_app;

#[tokio::test]
async fn readiness_probe_is_answered_on_get_root() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("ready"));
}

#[tokio::test]
async fn event_grid_cloudevents_and_string_encoded_events_are_all_processed() {
    let app = spawn_app().await;
    // Each function's trigger in the four shapes the host may hand it over in.
    let shapes = |function: &str, event_type: &str, data: &dyn Fn(&str) -> serde_json::Value| {
        [
            (
                "eg",
                envelope(function, eg_event_of("e-eg", event_type, data("o-eg"))),
            ),
            (
                "ce",
                envelope(function, ce_event_of("e-ce", event_type, data("o-ce"))),
            ),
            (
                "str-eg",
                string_envelope(function, eg_event_of("e-s1", event_type, data("o-s1"))),
            ),
            (
                "str-ce",
                string_envelope(function, ce_event_of("e-s2", event_type, data("o-s2"))),
            ),
        ]
    };
    for (name, env) in &shapes("OrderProcessor", "NewOrder", &new_order) {
        let answer = app.invoke("OrderProcessor", env).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.json);
        assert_eq!(answer.emitted().len(), 1, "{name}: {}", answer.json);
        assert_eq!(answer.emitted()[0]["eventType"], "OrderAccepted", "{name}");
    }
    assert_eq!(app.orders().await, ["o-ce", "o-eg", "o-s1", "o-s2"]);
    for (name, env) in &shapes("EmailNotifier", "OrderAccepted", &accepted_order) {
        let answer = app.invoke("EmailNotifier", env).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.json);
        assert_eq!(
            answer.emitted()[0]["eventType"],
            "OrderConfirmationSent",
            "{name}"
        );
    }
    assert_eq!(app.emails().len(), 4);
}

#[tokio::test]
async fn responses_are_json_with_outputs_logs_and_return_value() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/OrderProcessor", app.base))
        .body(envelope("OrderProcessor", eg_event("e1", new_order("1"))).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["Outputs"].is_object());
    assert!(body["Logs"].as_array().is_some_and(|l| !l.is_empty()));
    assert!(body.as_object().unwrap().contains_key("ReturnValue"));
    // outputs are objects, never strings the host could mistake for base64
    assert!(body["Outputs"]["outputEvents"][0].is_object());
}

/// Each bad request gets its status and error code, and nothing is recorded or sent.
#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = spawn_app().await;
    let valid = envelope("OrderProcessor", eg_event("e1", new_order("1")));
    let ten_mb = format!(
        "{{\"Data\":{{\"event\":\"{}\"}}}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "non-JSON",
            "/OrderProcessor",
            "this is not json".into(),
            400,
            "InvalidJson",
        ),
        (
            "empty body",
            "/OrderProcessor",
            String::new(),
            400,
            "InvalidEnvelope",
        ),
        (
            "array envelope",
            "/OrderProcessor",
            "[1,2,3]".into(),
            400,
            "InvalidEnvelope",
        ),
        (
            "Data not an object",
            "/OrderProcessor",
            r#"{"Data":"x"}"#.into(),
            400,
            "InvalidEnvelope",
        ),
        (
            "no Data",
            "/OrderProcessor",
            r#"{"Metadata":{}}"#.into(),
            400,
            "InvalidEnvelope",
        ),
        (
            "missing binding",
            "/OrderProcessor",
            r#"{"Data":{"eventGridEvent":{}}}"#.into(),
            400,
            "BindingNotFound",
        ),
        (
            "not an event",
            "/OrderProcessor",
            r#"{"Data":{"event":{"hello":"world"}}}"#.into(),
            400,
            "InvalidEvent",
        ),
        (
            "event is a number",
            "/EmailNotifier",
            r#"{"Data":{"event":42}}"#.into(),
            400,
            "InvalidEvent",
        ),
        (
            "event id wrong type",
            "/OrderProcessor",
            r#"{"Data":{"event":{"id":1,"eventType":"NewOrder"}}}"#.into(),
            400,
            "InvalidEvent",
        ),
        (
            "unknown function",
            "/ShipOrder",
            valid.to_string(),
            404,
            "FunctionNotFound",
        ),
        (
            "function names are case-sensitive",
            "/orderprocessor",
            valid.to_string(),
            404,
            "FunctionNotFound",
        ),
        (
            "10 MB body",
            "/OrderProcessor",
            ten_mb,
            413,
            "PayloadTooLarge",
        ),
        (
            "nested path",
            "/OrderProcessor/extra",
            valid.to_string(),
            404,
            "NotFound",
        ),
    ];
    for (name, path, body, status, code) in cases {
        let answer = app.post(path, body).await;
        assert_eq!(answer.status, status, "{name}: {}", answer.json);
        assert_eq!(
            answer.json["error"]["code"], code,
            "{name}: {}",
            answer.json
        );
        let message = answer.error_message();
        assert!(!message.is_empty(), "{name}: the error needs a message");
    }
    assert!(app.orders().await.is_empty());
    assert!(app.emails().is_empty());
}

#[tokio::test]
async fn the_missing_binding_error_names_what_was_expected_and_found() {
    let app = spawn_app().await;
    let answer = app
        .post("/OrderProcessor", r#"{"Data":{"eventGridEvent":{}}}"#)
        .await;
    let message = answer.error_message();
    assert!(
        message.contains("\"event\"") && message.contains("eventGridEvent"),
        "{message}"
    );
}

#[tokio::test]
async fn other_event_types_are_acknowledged_and_ignored() {
    let app = spawn_app().await;
    let mut event = eg_event("e1", new_order("1"));
    event["eventType"] = json!("OrderShipped");
    for function in ["OrderProcessor", "EmailNotifier"] {
        let answer = app
            .invoke(function, &envelope(function, event.clone()))
            .await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.log().contains("ignored event type"),
            "{}",
            answer.log()
        );
        assert!(answer.emitted().is_empty());
    }
    assert!(app.orders().await.is_empty());
    assert!(app.emails().is_empty());
}

/// Only the Functions host calls the handler, and it sends neither `Origin` nor a foreign `Host`
/// (issue 14): a page of another origin, or a rebound name, gets 403 and records nothing.
#[tokio::test]
async fn a_page_of_another_origin_cannot_invoke_a_function() {
    let app = spawn_app().await;
    let body = envelope("OrderProcessor", eg_event("evt-page", new_order("P-1"))).to_string();
    let invoke = |name: &'static str, value: String| {
        app.client
            .post(format!("{}/OrderProcessor", app.base))
            .header("content-type", "text/plain")
            .header(name, value)
            .body(body.clone())
            .send()
    };
    let cross = invoke("origin", "https://evil.example".into())
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let rebound = invoke("host", format!("rebind.test:{port}")).await.unwrap();
    assert_eq!(rebound.status(), 403);
    assert!(app.orders().await.is_empty(), "nothing recorded");
    assert_eq!(
        app.invoke("OrderProcessor", &serde_json::from_str(&body).unwrap())
            .await
            .status,
        200
    );
}
