//! The publish API: `POST …/api/events?api-version=2018-01-01`, both schemas, Azure's limits,
//! errors and headers, host-based routing, and the seed's `POST /publish`.

use ordergrid_testing::receiver::Receiver;
use serde_json::{Value, json};

use crate::harness::{
    PATIENCE, Setup, TestEmulator, cloud_event, cloud_topic, event, eventually_async,
    expect_azure_error, file, topic, webhook,
};

/// `orders` (Event Grid schema) → `/orders`, `audit` (CloudEvents) → `/audit`, and `quiet`, a
/// topic nobody subscribes to (for the limits).
async fn start() -> (Receiver, TestEmulator) {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![
        topic(
            "orders",
            vec![webhook("order-hook", &receiver.url("/orders"))],
        ),
        cloud_topic(
            "audit",
            vec![webhook("audit-hook", &receiver.url("/audit"))],
        ),
        topic("quiet", vec![]),
    ]))
    .start()
    .await;
    (receiver, emulator)
}

async fn wait_for_ids(receiver: &Receiver, path: &str, ids: &[&str]) {
    let expected = crate::harness::sorted(ids.iter().copied());
    eventually_async(&format!("{ids:?} at {path}"), PATIENCE, async || {
        (receiver.delivered_ids(path) == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_publish_is_answered_200_with_an_empty_body_and_azures_headers_then_delivered() {
    let (receiver, emulator) = start().await;
    let response = emulator
        .publish(
            "orders",
            &json!([event("p-1", "NewOrder", json!({"n": 1}))]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["api-supported-versions"], "2018-01-01");
    let request_id = headers["x-ms-request-id"].to_str().unwrap();
    uuid::Uuid::parse_str(request_id).expect("x-ms-request-id is a GUID");
    assert_eq!(
        headers.get("content-length").map(|v| v.to_str().unwrap()),
        Some("0")
    );
    assert_eq!(response.bytes().await.unwrap().len(), 0);
    wait_for_ids(&receiver, "/orders", &["p-1"]).await;
}

#[tokio::test]
async fn an_unknown_topic_is_answered_404_in_azures_error_shape() {
    let (_receiver, emulator) = start().await;
    let response = emulator
        .client
        .post(emulator.publish_url("no-such-topic"))
        .header("aeg-sas-key", emulator.key("orders").expose_secret())
        .header("content-type", "application/json")
        .body(json!([event("x", "NewOrder", json!({}))]).to_string())
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 404, "NotFound").await;
    assert!(message.contains("no-such-topic"), "{message}");
}

#[tokio::test]
async fn a_missing_or_unsupported_api_version_is_answered_400() {
    let (_receiver, emulator) = start().await;
    let body = json!([event("x", "NewOrder", json!({}))]).to_string();
    for (url, expected) in [
        (emulator.endpoint("orders"), "api-version"),
        (
            format!("{}?api-version=2020-06-01", emulator.endpoint("orders")),
            "'2020-06-01' is not supported",
        ),
    ] {
        let response = emulator
            .client
            .post(&url)
            .header("aeg-sas-key", emulator.key("orders").expose_secret())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let message = expect_azure_error(response, 400, "BadRequest").await;
        assert!(message.contains(expected), "{url}: {message}");
    }
}

#[tokio::test]
async fn a_single_object_sent_to_an_event_grid_topic_is_answered_400_expected_start_array() {
    let (_receiver, emulator) = start().await;
    let response = emulator
        .publish("orders", &event("x", "NewOrder", json!({})))
        .await;
    let message = expect_azure_error(response, 400, "BadRequest").await;
    assert!(
        message.contains(
            "Unexpected token when reading JSON. Expected: StartArray, actual: StartObject"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn each_invalid_event_grid_field_is_named_in_a_400() {
    let (_receiver, emulator) = start().await;
    let valid = || event("v-1", "NewOrder", json!({"n": 1}));
    let without = |field: &str| {
        let mut e = valid();
        e.as_object_mut().unwrap().remove(field);
        e
    };
    let with = |field: &str, value: Value| {
        let mut e = valid();
        e[field] = value;
        e
    };
    let schema = "This resource is configured for 'EventGridEvent' schema and requires";
    let cases: Vec<(&str, Value, String)> = vec![
        ("no subject", json!([without("subject")]), format!("{schema} 'subject' property to be set.")),
        ("no id", json!([without("id")]), format!("{schema} 'id' property to be set.")),
        ("no eventType", json!([without("eventType")]), format!("{schema} 'eventType' property to be set.")),
        ("no eventTime", json!([without("eventTime")]), format!("{schema} 'eventTime' property to be set.")),
        ("blank id", json!([with("id", json!("  "))]), format!("{schema} 'id' property to be set.")),
        (
            "subject is checked before id",
            json!([{"eventType": "T", "eventTime": "2024-01-01T00:00:00Z"}]),
            format!("{schema} 'subject' property to be set."),
        ),
        (
            "bad eventTime",
            json!([with("eventTime", json!("yesterday"))]),
            "The event time property 'eventTime' was not a valid date/time: 'yesterday'.".into(),
        ),
        (
            "metadataVersion other than 1",
            json!([with("metadataVersion", json!("2"))]),
            "Property 'metadataVersion' was found to be set to '2', but was expected to either be null or be set to 1.".into(),
        ),
        (
            "a foreign topic",
            json!([with("topic", json!("/subscriptions/x/topics/other"))]),
            "Property 'topic' was found to be set to '/subscriptions/x/topics/other'".into(),
        ),
        (
            "the second event is named by index",
            json!([valid(), without("id")]),
            "(event at index 1)".into(),
        ),
        (
            "an empty array",
            json!([]),
            "This resource is configured to receive event in 'EventGridEvent' schema. The JSON received does not conform to the expected schema.".into(),
        ),
        (
            "an array of strings",
            json!(["not an event"]),
            "does not conform to the expected schema".into(),
        ),
    ];
    for (case, body, expected) in cases {
        let response = emulator.publish("orders", &body).await;
        let message = expect_azure_error(response, 400, "BadRequest").await;
        assert!(
            message.contains(&expected),
            "{case}: {message:?} lacks {expected:?}"
        );
    }
    let response = emulator
        .publish_request("orders")
        .header("content-type", "application/json")
        .body("[{not json")
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 400, "BadRequest").await;
    assert!(message.contains("not valid JSON"), "{message}");
}

#[tokio::test]
async fn each_invalid_cloud_event_attribute_is_named_in_a_400() {
    let (_receiver, emulator) = start().await;
    let without = |field: &str| {
        let mut e = cloud_event("c-1", "NewOrder", json!({}));
        e.as_object_mut().unwrap().remove(field);
        e
    };
    let mut old = cloud_event("c-1", "NewOrder", json!({}));
    old["specversion"] = json!("0.1");
    let mut bad_time = cloud_event("c-1", "NewOrder", json!({}));
    bad_time["time"] = json!("noon");
    for (case, body, expected) in [
        ("no id", without("id"), "'id' property to be set"),
        (
            "no source",
            without("source"),
            "'source' property to be set",
        ),
        ("no type", without("type"), "'type' property to be set"),
        ("specversion 0.1", old, "'specversion' to be '1.0'"),
        (
            "bad time",
            bad_time,
            "'time' attribute is not a valid RFC 3339 timestamp",
        ),
    ] {
        let response = emulator
            .publish_request("audit")
            .header(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let message = expect_azure_error(response, 400, "BadRequest").await;
        assert!(message.contains(expected), "{case}: {message}");
    }
    // A CloudEvents topic wants a CloudEvents content type.
    let response = emulator
        .publish_request("audit")
        .header("content-type", "text/plain")
        .body(cloud_event("c-2", "T", json!({})).to_string())
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 400, "BadRequest").await;
    assert!(message.contains("content type 'text/plain'"), "{message}");
}

#[tokio::test]
async fn a_request_over_1_mb_is_answered_413() {
    let (_receiver, emulator) = start().await;
    let big = "x".repeat(1024 * 1024);
    let response = emulator
        .publish(
            "quiet",
            &json!([event("big", "NewOrder", json!({"blob": big}))]),
        )
        .await;
    expect_azure_error(response, 413, "RequestEntityTooLarge").await;
    // Just under the limit is fine.
    let fits = "x".repeat(1024 * 1024 - 1024);
    let response = emulator
        .publish(
            "quiet",
            &json!([event("fits", "NewOrder", json!({"blob": fits}))]),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn more_than_5000_events_are_answered_400_and_5000_are_accepted() {
    let (_receiver, emulator) = start().await;
    let one = event("e", "NewOrder", Value::Null);
    let refused = emulator
        .publish("quiet", &Value::Array(vec![one.clone(); 5001]))
        .await;
    let message = expect_azure_error(refused, 400, "BadRequest").await;
    assert!(message.contains("at most 5000"), "{message}");
    let accepted = emulator
        .publish("quiet", &Value::Array(vec![one; 5000]))
        .await;
    assert_eq!(accepted.status(), 200);
}

#[tokio::test]
async fn a_cloud_events_topic_takes_a_single_event_and_a_batch_and_delivers_both() {
    let (receiver, emulator) = start().await;
    let single = emulator
        .publish_request("audit")
        .header(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )
        .body(cloud_event("ce-1", "NewOrder", json!({"n": 1})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(single.status(), 200);
    assert_eq!(single.headers()["api-supported-versions"], "2018-01-01");
    let batch = emulator
        .publish_request("audit")
        .header(
            "content-type",
            "application/cloudevents-batch+json; charset=utf-8",
        )
        .body(
            json!([
                cloud_event("ce-2", "NewOrder", json!({"n": 2})),
                cloud_event("ce-3", "NewOrder", json!({"n": 3}))
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);
    wait_for_ids(&receiver, "/audit", &["ce-1", "ce-2", "ce-3"]).await;
}

#[tokio::test]
async fn a_publish_to_api_events_is_routed_by_the_first_label_of_the_host() {
    let (receiver, emulator) = start().await;
    for (host, id) in [
        (format!("orders.localhost:{}", emulator.port), "by-host-1"),
        (
            format!("ORDERS.eventgrid.localhost:{}", emulator.port),
            "by-host-2",
        ),
    ] {
        let response = emulator
            .client
            .post(format!(
                "{}/api/events?api-version=2018-01-01",
                emulator.base
            ))
            .header("host", host.as_str())
            .header("aeg-sas-key", emulator.key("orders").expose_secret())
            .header("content-type", "application/json")
            .body(json!([event(id, "NewOrder", json!({}))]).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{host}: {}",
            response.text().await.unwrap()
        );
    }
    wait_for_ids(&receiver, "/orders", &["by-host-1", "by-host-2"]).await;
    assert!(receiver.notifications("/audit").is_empty());

    // With several topics, a host that names none is not guessed at.
    let response = emulator
        .client
        .post(format!(
            "{}/api/events?api-version=2018-01-01",
            emulator.base
        ))
        .header("aeg-sas-key", emulator.key("orders").expose_secret())
        .header("content-type", "application/json")
        .body(json!([event("nowhere", "NewOrder", json!({}))]).to_string())
        .send()
        .await
        .unwrap();
    expect_azure_error(response, 404, "NotFound").await;
}

/// The seed's README: `curl -X POST http://localhost:5000/publish -H "Content-Type:
/// application/json" -d '{...}'`, byte for byte (whitespace included), against a one-topic
/// emulator, with no key.
#[tokio::test]
async fn the_seeds_curl_publish_works_without_a_key_and_is_delivered_with_the_envelope_filled() {
    const SEED_PAYLOAD: &str = r#"{
          "eventType": "NewOrder",
          "data": {
            "orderId": "12345",
            "customerId": "67890",
            "orderValue": 150.0,
            "customerEmail": "customer@example.com"
          }
        }"#;
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("order-hook", &receiver.url("/orders"))],
    )]))
    .start()
    .await;
    let published_after = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let response = emulator
        .client
        .post(format!("http://localhost:{}/publish", emulator.port))
        .header("content-type", "application/json")
        .body(SEED_PAYLOAD)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let id = answer["ids"][0]
        .as_str()
        .expect("the answer names the id")
        .to_owned();

    let delivered = eventually_async("the seed event", PATIENCE, async || {
        receiver.notifications("/orders").into_iter().next()
    })
    .await;
    let text = delivered.text();
    let event = &delivered.events()[0];
    assert_eq!(event["id"], id.as_str());
    uuid::Uuid::parse_str(&id).expect("the filled-in id is a GUID");
    assert_eq!(event["eventType"], "NewOrder");
    assert_eq!(event["subject"], "orders");
    assert_eq!(event["dataVersion"], "1.0");
    assert_eq!(event["metadataVersion"], "1");
    let event_time = time::OffsetDateTime::parse(
        event["eventTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(event_time >= published_after, "{event_time}");
    assert!(
        text.contains(r#""orderValue": 150.0"#) || text.contains(r#""orderValue":150.0"#),
        "the data arrives as sent: {text}"
    );
    assert_eq!(delivered.header("aeg-data-version"), Some("1.0"));
}

#[tokio::test]
async fn the_seeds_publish_endpoint_can_be_turned_off_and_names_a_topic_when_there_are_several() {
    let (receiver, emulator) = start().await;
    let seed = json!({"eventType": "NewOrder", "data": {"orderId": "1"}}).to_string();
    let post = |path: &str| {
        emulator
            .client
            .post(format!("{}{path}", emulator.base))
            .header("content-type", "application/json")
            .body(seed.clone())
            .send()
    };
    // Three topics here: the seed's URL cannot guess which one.
    expect_azure_error(post("/publish").await.unwrap(), 404, "NotFound").await;
    let response = post("/publish?topic=orders").await.unwrap();
    assert_eq!(response.status(), 200);
    eventually_async("the seed event", PATIENCE, async || {
        receiver.notifications("/orders").into_iter().next()
    })
    .await;

    let off = Setup::new(file(vec![topic("orders", vec![])]))
        .without_simple_publish()
        .start()
        .await;
    let response = off
        .client
        .post(format!("{}/publish", off.base))
        .header("content-type", "application/json")
        .body(seed.clone())
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 404, "NotFound").await;
    assert!(message.contains("turned off"), "{message}");
}
