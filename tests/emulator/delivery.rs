//! Delivery as Azure does it: headers, bodies per schema, Azure Function destinations, output
//! batching, what counts as success, filters, custom delivery properties, and data passed
//! through byte for byte.

use ordergrid_testing::receiver::{Receiver, Reply, Request};
use serde_json::{Value, json};

use crate::harness::{
    PATIENCE, Setup, cloud_event, cloud_topic, event, events, eventually_async, file, function,
    sorted, topic, webhook,
};

/// Waits until `path` has received (with success) events with exactly `ids`.
async fn wait_for_ids(receiver: &Receiver, path: &str, ids: Vec<String>) {
    let expected = sorted(ids);
    eventually_async(
        &format!("{} events at {path}", expected.len()),
        PATIENCE,
        async || (receiver.delivered_ids(path) == expected).then_some(()),
    )
    .await;
}

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn notifications_carry_azures_headers_and_an_event_grid_array() {
    let receiver = Receiver::start().await;
    receiver.reply("/hook", [Reply::Status(500)], Reply::Status(200));
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("Order-Hook", &receiver.url("/hook"))],
    )]))
    .start()
    .await;
    let mut sent = event("h-1", "NewOrder", json!({"orderId": "1"}));
    sent["dataVersion"] = json!("2.5");
    emulator.publish_ok("orders", &[sent]).await;

    let attempts = eventually_async("a failed and a successful attempt", PATIENCE, async || {
        let n = receiver.notifications("/hook");
        (n.len() >= 2).then_some(n)
    })
    .await;
    for (i, request) in attempts.iter().enumerate() {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("aeg-event-type"), Some("Notification"));
        assert_eq!(request.header("aeg-subscription-name"), Some("ORDER-HOOK"));
        assert_eq!(request.delivery_count(), i as u32, "attempt {i}");
        assert_eq!(request.header("aeg-data-version"), Some("2.5"));
        assert_eq!(request.header("aeg-metadata-version"), Some("1"));
        assert_eq!(
            request.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let body = request.json();
        let array = body
            .as_array()
            .expect("an Event Grid schema body is an array");
        assert_eq!(array.len(), 1, "no batching by default");
        let delivered = &array[0];
        assert_eq!(delivered["id"], "h-1");
        assert_eq!(delivered["eventType"], "NewOrder");
        assert_eq!(delivered["subject"], "orders/h-1");
        assert_eq!(delivered["dataVersion"], "2.5");
        assert_eq!(delivered["metadataVersion"], "1");
        assert_eq!(
            delivered["topic"],
            ordergrid::eventgrid::protocol::topic_resource_id("orders"),
            "Event Grid stamps the topic"
        );
        assert_eq!(delivered["data"], json!({"orderId": "1"}));
    }
    assert_eq!(attempts.len(), 2, "delivered once the endpoint recovered");
}

#[tokio::test]
async fn an_azure_function_destination_is_posted_to_the_functions_hosts_event_grid_endpoint() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![function("order-processor", "OrderProcessor")],
    )]))
    .functions_base_url(&format!("{}/", receiver.base()))
    .start()
    .await;
    emulator
        .wait_for_validation("order-processor", "notRequired")
        .await;
    emulator
        .publish_ok(
            "orders",
            &[event("f-1", "NewOrder", json!({"orderId": "1"}))],
        )
        .await;
    let request = eventually_async("the function invocation", PATIENCE, async || {
        receiver
            .notifications("/runtime/webhooks/eventgrid")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        request.uri,
        "/runtime/webhooks/eventgrid?functionName=OrderProcessor"
    );
    assert_eq!(request.header("aeg-event-type"), Some("Notification"));
    assert_eq!(
        request.header("aeg-subscription-name"),
        Some("ORDER-PROCESSOR")
    );
    assert_eq!(request.ids(), ["f-1"]);
    assert!(
        receiver
            .validations("/runtime/webhooks/eventgrid")
            .is_empty(),
        "Azure validates Function destinations itself: no handshake"
    );
}

#[tokio::test]
async fn cloud_events_are_delivered_as_one_object_or_as_a_batch_array() {
    let receiver = Receiver::start().await;
    let mut batched = webhook("batched", &receiver.url("/batched"));
    batched["destination"]["properties"]["maxEventsPerBatch"] = json!(10);
    let emulator = Setup::new(file(vec![cloud_topic(
        "audit",
        vec![webhook("single", &receiver.url("/single")), batched],
    )]))
    .start()
    .await;
    let sent = [
        cloud_event("ce-1", "Audit", json!({"n": 1})),
        cloud_event("ce-2", "Audit", json!({"n": 2})),
        cloud_event("ce-3", "Audit", json!({"n": 3})),
    ];
    let response = emulator
        .publish_request("audit")
        .header(
            "content-type",
            "application/cloudevents-batch+json; charset=utf-8",
        )
        .body(json!(sent).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ids = ids_of(&sent);
    wait_for_ids(&receiver, "/single", ids.clone()).await;
    wait_for_ids(&receiver, "/batched", ids).await;

    for request in receiver.notifications("/single") {
        assert_eq!(
            request.header("content-type"),
            Some("application/cloudevents+json; charset=utf-8")
        );
        let body = request.json();
        assert!(body.is_object(), "one CloudEvent, not an array: {body}");
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["source"], "/ordergrid/tests");
        assert_eq!(request.header("aeg-event-type"), Some("Notification"));
        assert_eq!(request.header("aeg-subscription-name"), Some("SINGLE"));
        assert_eq!(request.header("aeg-delivery-count"), Some("0"));
    }
    let batches = receiver.notifications("/batched");
    assert_eq!(
        batches.len(),
        1,
        "three events published together travel together"
    );
    assert_eq!(
        batches[0].header("content-type"),
        Some("application/cloudevents-batch+json; charset=utf-8")
    );
    assert!(batches[0].json().is_array());
}

#[tokio::test]
async fn event_grid_events_are_converted_for_a_cloud_events_subscription() {
    let receiver = Receiver::start().await;
    let mut converted = webhook("as-cloud-events", &receiver.url("/ce"));
    converted["eventDeliverySchema"] = json!("CloudEventSchemaV1_0");
    let emulator = Setup::new(file(vec![topic("orders", vec![converted])]))
        .start()
        .await;
    let sent = event("conv-1", "NewOrder", json!({"orderId": "7"}));
    emulator
        .publish_ok("orders", std::slice::from_ref(&sent))
        .await;
    let request = eventually_async("the converted event", PATIENCE, async || {
        receiver.notifications("/ce").into_iter().next()
    })
    .await;
    assert_eq!(
        request.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    let ce = request.json();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], "conv-1");
    assert_eq!(ce["type"], "NewOrder");
    assert_eq!(ce["subject"], "orders/conv-1");
    assert_eq!(ce["time"], sent["eventTime"]);
    assert_eq!(
        ce["source"],
        ordergrid::eventgrid::protocol::topic_resource_id("orders")
    );
    assert_eq!(ce["data"], json!({"orderId": "7"}));
    assert!(ce.get("eventType").is_none(), "{ce}");
    // A CloudEvents subscription is validated with OPTIONS, not the validation event.
    let options: Vec<Request> = receiver
        .to("/ce")
        .into_iter()
        .filter(|r| r.method == "OPTIONS")
        .collect();
    assert_eq!(options.len(), 1);
    assert!(receiver.validations("/ce").is_empty());
}

#[tokio::test]
async fn output_batches_never_exceed_max_events_per_batch() {
    let receiver = Receiver::start().await;
    let mut three = webhook("three", &receiver.url("/three"));
    three["destination"]["properties"]["maxEventsPerBatch"] = json!(3);
    let emulator = Setup::new(file(vec![topic("orders", vec![three])]))
        .start()
        .await;
    let sent = events("b", 10);
    emulator.publish_ok("orders", &sent).await;
    wait_for_ids(&receiver, "/three", ids_of(&sent)).await;
    let sizes: Vec<usize> = receiver
        .notifications("/three")
        .iter()
        .map(|r| r.events().len())
        .collect();
    assert!(sizes.iter().all(|&n| (1..=3).contains(&n)), "{sizes:?}");
    assert!(
        sizes.contains(&3),
        "ten events published at once fill batches: {sizes:?}"
    );
}

#[tokio::test]
async fn output_batches_close_at_the_preferred_batch_size() {
    let receiver = Receiver::start().await;
    let mut small = webhook("one-kilobyte", &receiver.url("/small"));
    small["destination"]["properties"]["maxEventsPerBatch"] = json!(100);
    small["destination"]["properties"]["preferredBatchSizeInKilobytes"] = json!(1);
    let emulator = Setup::new(file(vec![topic("orders", vec![small])]))
        .start()
        .await;
    // ~380 bytes each once stamped, so two fit in a kilobyte and three do not; one 3 KB event
    // travels alone.
    let mut sent: Vec<Value> = (0..8)
        .map(|i| {
            event(
                &format!("s-{i}"),
                "NewOrder",
                json!({"pad": "p".repeat(100)}),
            )
        })
        .collect();
    sent.push(event("huge", "NewOrder", json!({"pad": "h".repeat(3000)})));
    emulator.publish_ok("orders", &sent).await;
    wait_for_ids(&receiver, "/small", ids_of(&sent)).await;
    for request in receiver.notifications("/small") {
        let events = request.events();
        let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
        assert!(
            events.len() == 1 || bytes <= 1024,
            "a batch of {} events and {bytes} bytes passes the 1 KB preferred size",
            events.len()
        );
        assert!(events.len() <= 2, "{} events", events.len());
    }
    assert!(
        receiver
            .notifications("/small")
            .iter()
            .any(|r| r.events().len() == 2),
        "small events are still batched"
    );
}

#[tokio::test]
async fn any_answer_from_200_to_204_is_success_and_is_not_retried() {
    let receiver = Receiver::start().await;
    let codes = [200u16, 201, 202, 203, 204];
    let subscriptions = codes
        .iter()
        .map(|code| {
            let path = format!("/ok{code}");
            receiver.always(&path, Reply::Status(*code));
            webhook(&format!("ok-{code}"), &receiver.url(&path))
        })
        .collect();
    let emulator = Setup::new(file(vec![topic("orders", subscriptions)]))
        .start()
        .await;
    emulator
        .publish_ok("orders", &[event("s-1", "NewOrder", json!({}))])
        .await;
    for code in codes {
        let name = format!("ok-{code}");
        let counters = emulator.wait_for_counter(&name, "delivered", 1).await;
        assert_eq!(counters.retried, 0, "{code}: {counters:?}");
        assert_eq!(counters.dead_lettered, 0, "{code}: {counters:?}");
        assert_eq!(
            receiver.notifications(&format!("/ok{code}")).len(),
            1,
            "{code} is success: one attempt"
        );
    }
}

#[tokio::test]
async fn data_is_delivered_byte_for_byte() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("exact", &receiver.url("/exact"))],
    )]))
    .start()
    .await;
    const DATA: &str = r#"{"amount":0.12345678901234567890,"big":123456789012345678901234567890,"exp":1.0e-7,"text":"caf\u00e9 \"q\""}"#;
    let body = format!(
        r#"[{{"id":"x-1","subject":"s","eventType":"NewOrder","eventTime":"2026-01-01T00:00:00Z","data":{DATA},"dataVersion":"1.0"}}]"#
    );
    let response = emulator.publish_bytes("orders", body).await;
    assert_eq!(response.status(), 200);
    let request = eventually_async("the event", PATIENCE, async || {
        receiver.notifications("/exact").into_iter().next()
    })
    .await;
    let text = request.text();
    assert!(
        text.contains(&format!(r#""data":{DATA}"#)),
        "data changed on the way: {text}"
    );
}

#[tokio::test]
async fn only_events_that_pass_the_type_and_advanced_filters_are_delivered() {
    let receiver = Receiver::start().await;
    let mut filtered = webhook("big-orders", &receiver.url("/big"));
    filtered["filter"] = json!({
        "includedEventTypes": ["NewOrder"],
        "advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "data.total", "value": 100}
        ]
    });
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![filtered, webhook("everything", &receiver.url("/all"))],
    )]))
    .start()
    .await;
    let sent = vec![
        event("big", "NewOrder", json!({"total": 150})),
        event("small", "NewOrder", json!({"total": 50})),
        event("cancel", "OrderCancelled", json!({"total": 500})),
        event("no-total", "NewOrder", json!({})),
        event("edge", "NewOrder", json!({"total": 100})),
        event("just-over", "NewOrder", json!({"total": 100.5})),
    ];
    emulator.publish_ok("orders", &sent).await;
    // Once the unfiltered subscription has everything, the filter has seen everything too.
    wait_for_ids(&receiver, "/all", ids_of(&sent)).await;
    wait_for_ids(&receiver, "/big", vec!["big".into(), "just-over".into()]).await;
    let counters = emulator
        .wait_for_counter("big-orders", "delivered", 2)
        .await;
    assert_eq!(counters.matched, 2, "{counters:?}");
}

#[tokio::test]
async fn custom_delivery_properties_add_static_and_dynamic_headers() {
    let receiver = Receiver::start().await;
    let mut hook = webhook("with-headers", &receiver.url("/headers"));
    hook["destination"]["properties"]["deliveryAttributeMappings"] = json!([
        {"name": "x-api-key", "type": "Static", "properties": {"value": "s3cr3t", "isSecret": true}},
        {"name": "x-tenant", "type": "Static", "properties": {"value": "contoso"}},
        {"name": "x-order-id", "type": "Dynamic", "properties": {"sourceField": "data.orderId"}},
        {"name": "x-priority", "type": "Dynamic", "properties": {"sourceField": "data.priority"}}
    ]);
    let emulator = Setup::new(file(vec![topic("orders", vec![hook])]))
        .start()
        .await;
    emulator
        .publish_ok(
            "orders",
            &[event(
                "d-1",
                "NewOrder",
                json!({"orderId": "o-42", "priority": 3}),
            )],
        )
        .await;
    let request = eventually_async("the delivery", PATIENCE, async || {
        receiver.notifications("/headers").into_iter().next()
    })
    .await;
    assert_eq!(request.header("x-api-key"), Some("s3cr3t"));
    assert_eq!(request.header("x-tenant"), Some("contoso"));
    assert_eq!(request.header("x-order-id"), Some("o-42"));
    assert_eq!(request.header("x-priority"), Some("3"));
    assert_eq!(request.header("aeg-event-type"), Some("Notification"));
}
