use super::destination::check_webhook_url;
use super::reader::check_container_name;
use super::*;

const ORIGIN: &str = "infra/subscriptions.json";

fn repo_file() -> SubscriptionsFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/subscriptions.json");
    SubscriptionsFile::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A valid file with one topic "orders" and one subscription "order-processor" whose
/// JSON is `subscription` merged over a minimal valid one.
fn with_subscription(subscription: serde_json::Value) -> String {
    let mut base = serde_json::json!({
        "name": "order-processor",
        "destination": {
            "endpointType": "AzureFunction",
            "properties": { "functionName": "OrderProcessor" }
        }
    });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), subscription.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::json!({
        "topics": [{ "name": "orders", "inputSchema": "EventGridSchema", "subscriptions": [base] }]
    })
    .to_string()
}

fn lines_of(json: &str) -> Vec<String> {
    match SubscriptionsFile::parse(json, ORIGIN) {
        Ok(file) => panic!("expected errors, got {file:#?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

fn one_line(json: &str) -> String {
    let mut all = lines_of(json);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    all.remove(0)
}

const SUB: &str = "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": ";

#[test]
fn the_repository_file_loads_with_every_subscription() {
    let file = repo_file();
    assert_eq!(file.topics.len(), 1);
    let orders = file.topic("orders").expect("topic orders");
    assert_eq!(orders.input_schema, Schema::EventGrid);
    let names: Vec<&str> = orders
        .subscriptions
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["order-processor", "email-notifier", "order-status-feed"]
    );

    let functions: Vec<&Destination> = orders
        .subscriptions
        .iter()
        .map(|s| &s.destination)
        .collect();
    assert_eq!(
        functions,
        [
            &Destination::AzureFunction {
                function_name: "OrderProcessor".into()
            },
            &Destination::AzureFunction {
                function_name: "EmailNotifier".into()
            },
            &Destination::AzureFunction {
                function_name: "OrderStatusFeed".into()
            },
        ]
    );
    // The choreography: each function gets its trigger's type only; the status feed gets every
    // status event.
    let types: Vec<&[String]> = orders
        .subscriptions
        .iter()
        .map(|s| s.filter.included_event_types())
        .collect();
    assert_eq!(
        types,
        [
            &["NewOrder".to_owned()][..],
            &["OrderAccepted".to_owned()][..],
            &[
                "NewOrder".to_owned(),
                "OrderAccepted".to_owned(),
                "OrderRejected".to_owned(),
                "OrderConfirmationSent".to_owned(),
                "OrderConfirmationFailed".to_owned()
            ][..],
        ]
    );
    for subscription in &orders.subscriptions {
        assert_eq!(subscription.delivery_schema, Schema::EventGrid);
        assert_eq!(
            subscription.dead_letter,
            Some(DeadLetter {
                container: "dead-letters".into()
            })
        );
        assert_eq!(subscription.retry.max_delivery_attempts, 30);
        // A live update an hour late is of no use to a page (it reads the stored status when
        // it reconnects), so the feed's events live one hour, not the default day.
        let ttl_minutes = if subscription.name.as_str() == "order-status-feed" {
            60
        } else {
            24 * 60
        };
        assert_eq!(
            subscription.retry.event_time_to_live,
            Duration::from_secs(ttl_minutes * 60)
        );
        assert_eq!(
            subscription.batching,
            Batching {
                max_events: 1,
                preferred_bytes: 64 * 1024
            }
        );
        // Each maps the event's trace context to the header the Functions host parents its
        // invocation on (see crate::trace::context).
        assert_eq!(
            subscription.delivery_attributes,
            vec![DeliveryAttribute::Dynamic {
                name: "traceparent".into(),
                source_field: "data.traceparent".into(),
            }]
        );
    }
}

#[test]
fn the_repository_filter_lets_new_orders_through_and_nothing_else() {
    let file = repo_file();
    let subscription = file
        .topic("ORDERS")
        .and_then(|t| t.subscription("Order-Processor"))
        .expect("lookups ignore case");
    let event = |event_type: &str| {
        serde_json::json!({"id": "1", "eventType": event_type, "subject": "orders/1",
            "eventTime": "2024-01-01T00:00:00Z", "data": {}, "dataVersion": "1.0"})
    };
    assert!(subscription.filter.matches(
        &crate::json::Json::from(&event("NewOrder")),
        Schema::EventGrid
    ));
    assert!(!subscription.filter.matches(
        &crate::json::Json::from(&event("OrderAccepted")),
        Schema::EventGrid
    ));
}

#[test]
fn a_missing_file_names_the_path() {
    let error = SubscriptionsFile::load(Path::new("no/such/subscriptions.json")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "failed to read the subscriptions file no/such/subscriptions.json"
    );
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn a_json_syntax_error_names_line_and_column() {
    let error = SubscriptionsFile::parse(
        "{\n  \"topics\": [\n    {\"name\": \"orders\",}\n  ]\n}",
        ORIGIN,
    )
    .unwrap_err();
    match &error {
        ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 23)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "infra/subscriptions.json: invalid JSON at line 3, column 23: trailing comma"
    );
}

#[test]
fn a_property_given_twice_is_an_error_with_its_position() {
    let error = SubscriptionsFile::parse("{\"topics\": [], \"topics\": []}", ORIGIN).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("infra/subscriptions.json: invalid JSON at line 1, column "),
        "{text}"
    );
    assert!(
        text.ends_with("property \"topics\" appears twice in one object"),
        "{text}"
    );
}

#[test]
fn minimal_subscriptions_take_azures_defaults() {
    let file = SubscriptionsFile::parse(&with_subscription(serde_json::json!({})), ORIGIN)
        .unwrap_or_else(|e| panic!("{e}"));
    let subscription = &file.topics[0].subscriptions[0];
    assert_eq!(subscription.retry, RetryPolicy::default());
    assert_eq!(subscription.retry.max_delivery_attempts, 30);
    assert_eq!(
        subscription.retry.event_time_to_live,
        Duration::from_secs(1440 * 60)
    );
    assert_eq!(subscription.batching, Batching::default());
    assert_eq!(subscription.batching.max_events, 1);
    assert_eq!(subscription.dead_letter, None);
    assert_eq!(subscription.filter, Filter::default());
    assert_eq!(subscription.delivery_schema, Schema::EventGrid);
    assert!(subscription.delivery_attributes.is_empty());
}

#[test]
fn a_topic_without_input_schema_or_subscriptions_is_an_event_grid_topic_with_none() {
    let file = SubscriptionsFile::parse(r#"{"topics": [{"name": "orders"}]}"#, ORIGIN)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.topics[0].input_schema, Schema::EventGrid);
    assert!(file.topics[0].subscriptions.is_empty());
}

#[test]
fn delivery_schema_defaults_to_the_topics_input_schema() {
    let json =
        with_subscription(serde_json::json!({})).replace("EventGridSchema", "CloudEventSchemaV1_0");
    let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.topics[0].input_schema, Schema::CloudEvents);
    assert_eq!(
        file.topics[0].subscriptions[0].delivery_schema,
        Schema::CloudEvents
    );
}

#[test]
fn event_grid_input_may_be_delivered_as_cloud_events() {
    let json =
        with_subscription(serde_json::json!({"eventDeliverySchema": "CloudEventSchemaV1_0"}));
    let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        file.topics[0].subscriptions[0].delivery_schema,
        Schema::CloudEvents
    );
}

#[test]
fn cloud_events_input_cannot_be_delivered_in_the_event_grid_schema() {
    let json = with_subscription(serde_json::json!({"eventDeliverySchema": "EventGridSchema"}))
        .replacen(
            "\"inputSchema\":\"EventGridSchema\"",
            "\"inputSchema\":\"CloudEventSchemaV1_0\"",
            1,
        );
    assert_eq!(
        one_line(&json),
        format!(
            "{SUB}The specified EventDeliverySchema value \"EventGridSchema\" cannot be used \
             in combination with the topic's input schema of CloudEventSchemaV1_0"
        )
    );
}

#[test]
fn batching_settings_are_read_and_the_missing_one_defaults() {
    let read = |properties: serde_json::Value| {
        let mut props = serde_json::json!({"functionName": "OrderProcessor"});
        if let (Some(p), Some(extra)) = (props.as_object_mut(), properties.as_object()) {
            p.extend(extra.clone());
        }
        let json = with_subscription(serde_json::json!({
            "destination": {"endpointType": "AzureFunction", "properties": props}
        }));
        SubscriptionsFile::parse(&json, ORIGIN)
            .unwrap_or_else(|e| panic!("{e}"))
            .topics[0]
            .subscriptions[0]
            .batching
    };
    assert_eq!(
        read(serde_json::json!({"maxEventsPerBatch": 10, "preferredBatchSizeInKilobytes": 128})),
        Batching {
            max_events: 10,
            preferred_bytes: 128 * 1024
        }
    );
    assert_eq!(
        read(serde_json::json!({"maxEventsPerBatch": 5000})),
        Batching {
            max_events: 5000,
            preferred_bytes: 64 * 1024
        }
    );
    assert_eq!(
        read(serde_json::json!({"preferredBatchSizeInKilobytes": 1024})),
        Batching {
            max_events: 1,
            preferred_bytes: 1024 * 1024
        }
    );
}

#[test]
fn retry_policy_limits_are_enforced() {
    let json = with_subscription(serde_json::json!({
        "retryPolicy": {"maxDeliveryAttempts": 31, "eventTimeToLiveInMinutes": 0}
    }));
    assert_eq!(
        lines_of(&json),
        [
            format!("{SUB}retryPolicy.maxDeliveryAttempts is 31; Azure allows 1 to 30"),
            format!("{SUB}retryPolicy.eventTimeToLiveInMinutes is 0; Azure allows 1 to 1440"),
        ]
    );
    let json = with_subscription(serde_json::json!({
        "retryPolicy": {"maxDeliveryAttempts": "30", "eventTimeToLiveInMinutes": 1440.5}
    }));
    assert_eq!(
        lines_of(&json),
        [
            format!(
                "{SUB}retryPolicy.maxDeliveryAttempts is \"30\"; expected a whole number from 1 to 30"
            ),
            format!(
                "{SUB}retryPolicy.eventTimeToLiveInMinutes is 1440.5; Azure allows whole numbers from 1 to 1440"
            ),
        ]
    );
}

#[test]
fn retry_policy_extremes_are_accepted() {
    let json = with_subscription(serde_json::json!({
        "retryPolicy": {"maxDeliveryAttempts": 1, "eventTimeToLiveInMinutes": 1}
    }));
    let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        file.topics[0].subscriptions[0].retry,
        RetryPolicy {
            max_delivery_attempts: 1,
            event_time_to_live: Duration::from_secs(60)
        }
    );
}

#[test]
fn batching_limits_are_enforced() {
    let json = with_subscription(serde_json::json!({
        "destination": {"endpointType": "AzureFunction", "properties": {
            "functionName": "OrderProcessor", "maxEventsPerBatch": 5001, "preferredBatchSizeInKilobytes": 0
        }}
    }));
    assert_eq!(
        lines_of(&json),
        [
            format!(
                "{SUB}destination.properties.maxEventsPerBatch is 5001; Azure allows 1 to 5000"
            ),
            format!(
                "{SUB}destination.properties.preferredBatchSizeInKilobytes is 0; Azure allows 1 to 1024"
            ),
        ]
    );
}

#[test]
fn names_must_follow_azures_rules() {
    let json = r#"{"topics": [
        {"name": "or", "subscriptions": [
            {"name": "a_b", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
        ]},
        {"name": "this-topic-name-is-far-too-long-for-azure-to-accept-it", "subscriptions": []},
        {"subscriptions": [
            {"destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
        ]}
    ]}"#;
    assert_eq!(
        lines_of(json),
        [
            "infra/subscriptions.json: topic \"or\": name is \"or\"; Azure requires 3 to 50 characters, each a letter, digit or hyphen",
            "infra/subscriptions.json: topic \"or\", subscription \"a_b\": name is \"a_b\"; Azure requires 3 to 64 characters, each a letter, digit or hyphen",
            "infra/subscriptions.json: topic \"this-topic-name-is-far-too-long-for-azure-to-accept-it\": name is \"this-topic-name-is-far-too-long-for-azure-to-accept-it\"; Azure requires 3 to 50 characters, each a letter, digit or hyphen",
            "infra/subscriptions.json: topics[2]: name is missing",
            "infra/subscriptions.json: topics[2], subscriptions[0]: name is missing",
        ]
    );
}

#[test]
fn subscription_names_are_unique_per_topic_ignoring_case() {
    let json = r#"{"topics": [{"name": "orders", "subscriptions": [
        {"name": "order-processor", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}},
        {"name": "Order-Processor", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
    ]}, {"name": "other", "subscriptions": [
        {"name": "order-processor", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
    ]}]}"#;
    assert_eq!(
        one_line(json),
        "infra/subscriptions.json: topic \"orders\", subscription \"Order-Processor\": name \"Order-Processor\" repeats subscription \"order-processor\"; subscription names must be unique within a topic, ignoring case"
    );
}

#[test]
fn topic_names_are_unique_ignoring_case() {
    let json = r#"{"topics": [{"name": "orders"}, {"name": "ORDERS"}]}"#;
    assert_eq!(
        one_line(json),
        "infra/subscriptions.json: topic \"ORDERS\": name \"ORDERS\" repeats topic \"orders\"; topic names must be unique, ignoring case"
    );
}

#[test]
fn unknown_properties_are_named_wherever_they_are() {
    let json = r#"{"topic": [], "topics": [{"name": "orders", "inputschema": "EventGridSchema", "subscriptions": [
        {"name": "order-processor",
         "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F", "maxEventPerBatch": 5}},
         "retryPolicy": {"maxDeliveryAttempts": 3, "ttl": 5},
         "deadLetter": {"blobContainerName": "dead-letters", "resourceId": "x"},
         "labels": []}
    ]}]}"#;
    let all = lines_of(json);
    let expected_starts = [
        "infra/subscriptions.json: unknown property \"topic\" (did you mean \"topics\"?); known properties are topics",
        "infra/subscriptions.json: topic \"orders\": unknown property \"inputschema\" (did you mean \"inputSchema\"?)",
        "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"labels\"; known properties are name, destination, filter, eventDeliverySchema, retryPolicy, deadLetter",
        "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"maxEventPerBatch\" in destination.properties (did you mean \"maxEventsPerBatch\"?)",
        "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"ttl\" in retryPolicy; known properties are maxDeliveryAttempts, eventTimeToLiveInMinutes",
        "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"resourceId\" in deadLetter; known properties are blobContainerName",
    ];
    assert_eq!(all.len(), expected_starts.len(), "{all:#?}");
    for (line, start) in all.iter().zip(expected_starts) {
        assert!(
            line.starts_with(start),
            "\n{line}\ndoes not start with\n{start}"
        );
    }
}

#[test]
fn every_problem_in_the_file_is_reported_at_once() {
    let json = r#"{"topics": [{"name": "orders", "inputSchema": "CloudEventSchemaV1_0", "subscriptions": [
        {"name": "order-processor",
         "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "ftp://example.com/x", "maxEventsPerBatch": 0}},
         "filter": {"advancedFilters": [{"operatorType": "NumberLessThen", "key": "data.total", "value": 5}]},
         "eventDeliverySchema": "EventGridSchema",
         "retryPolicy": {"maxDeliveryAttempts": 31},
         "deadLetter": {"blobContainerName": "Dead_Letters"}},
        {"name": "email-notifier",
         "destination": {"endpointType": "AzureFunction", "properties": {"functionName": ""}}}
    ]}]}"#;
    let all = lines_of(json);
    let email = "infra/subscriptions.json: topic \"orders\", subscription \"email-notifier\": ";
    let expected = [
        format!(
            "{SUB}destination.properties.endpointUrl is \"ftp://example.com/x\"; the scheme is \"ftp\"; Azure requires https (the emulator also allows http for local receivers)"
        ),
        format!("{SUB}destination.properties.maxEventsPerBatch is 0; Azure allows 1 to 5000"),
        format!(
            "{SUB}filter.advancedFilters[0].operatorType is \"NumberLessThen\"; valid operators are NumberIn, NumberNotIn, NumberLessThan, NumberGreaterThan, NumberLessThanOrEquals, NumberGreaterThanOrEquals, NumberInRange, NumberNotInRange, BoolEquals, StringIn, StringNotIn, StringBeginsWith, StringNotBeginsWith, StringEndsWith, StringNotEndsWith, StringContains, StringNotContains, IsNullOrUndefined, IsNotNull"
        ),
        format!(
            "{SUB}The specified EventDeliverySchema value \"EventGridSchema\" cannot be used in combination with the topic's input schema of CloudEventSchemaV1_0"
        ),
        format!("{SUB}retryPolicy.maxDeliveryAttempts is 31; Azure allows 1 to 30"),
        format!(
            "{SUB}deadLetter.blobContainerName is \"Dead_Letters\"; Azure requires 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit, with no two hyphens in a row"
        ),
        format!(
            "{email}destination.properties.functionName is \"\"; a function name is a letter followed by up to 127 letters, digits, '_' or '-' (and not \"host\")"
        ),
    ];
    assert_eq!(all, expected);
    match SubscriptionsFile::parse(json, ORIGIN) {
        Err(e) => assert_eq!(e.problems().len(), 7),
        Ok(_) => unreachable!(),
    }
}

#[test]
fn schemas_must_be_known_values() {
    let json = with_subscription(serde_json::json!({"eventDeliverySchema": "CustomInputSchema"}))
        .replacen(
            "\"inputSchema\":\"EventGridSchema\"",
            "\"inputSchema\":\"eventgridschema\"",
            1,
        );
    assert_eq!(
        lines_of(&json),
        [
            "infra/subscriptions.json: topic \"orders\": inputSchema is \"eventgridschema\"; valid values are EventGridSchema, CloudEventSchemaV1_0".to_owned(),
            format!("{SUB}eventDeliverySchema is \"CustomInputSchema\"; the emulator has no custom schema mapping, use one of EventGridSchema, CloudEventSchemaV1_0"),
        ]
    );
}

#[test]
fn destinations_must_be_function_or_webhook_with_their_properties() {
    let bad = |destination: serde_json::Value| {
        one_line(&with_subscription(
            serde_json::json!({"destination": destination}),
        ))
    };
    assert_eq!(
        bad(serde_json::json!({"endpointType": "ServiceBusQueue", "properties": {}})),
        format!(
            "{SUB}destination.endpointType is \"ServiceBusQueue\"; the emulator delivers to AzureFunction and WebHook"
        )
    );
    assert_eq!(
        bad(serde_json::json!({"endpointType": "WebHook", "properties": {}})),
        format!("{SUB}destination.properties.endpointUrl is missing")
    );
    assert_eq!(
        bad(serde_json::json!({"endpointType": "AzureFunction"})),
        format!("{SUB}destination.properties is missing")
    );
    assert_eq!(
        bad(
            serde_json::json!({"endpointType": "AzureFunction", "properties": {"functionName": "Order Processor"}})
        ),
        format!(
            "{SUB}destination.properties.functionName is \"Order Processor\"; a function name is a letter followed by up to 127 letters, digits, '_' or '-' (and not \"host\")"
        )
    );
    assert_eq!(
        bad(
            serde_json::json!({"endpointType": "AzureFunction", "properties": {"functionName": "host"}})
        ),
        format!(
            "{SUB}destination.properties.functionName is \"host\"; a function name is a letter followed by up to 127 letters, digits, '_' or '-' (and not \"host\")"
        )
    );
    assert_eq!(
        one_line(&with_subscription(serde_json::json!({"destination": null}))),
        format!("{SUB}destination is null; expected an object")
    );
}

#[test]
fn webhook_urls_need_http_or_https_and_a_host() {
    let check = |url: &str| check_webhook_url(url).err();
    assert_eq!(
        check("https://receiver.example.com/api/events?code=abc"),
        None
    );
    assert_eq!(
        check("http://127.0.0.1:7071/runtime/webhooks/eventgrid"),
        None
    );
    assert_eq!(check("http://[::1]:8080/x"), None);
    assert_eq!(check("HTTPS://user:pw@example.com"), None);
    assert_eq!(check("http://localhost"), None);
    assert_eq!(
        check("example.com/x"),
        Some("expected an absolute URL like \"https://host/path\"".to_owned())
    );
    assert_eq!(check("https:///x"), Some("the URL has no host".to_owned()));
    assert_eq!(
        check("https://host:99999/"),
        Some("the port \"99999\" is not a number from 0 to 65535".to_owned())
    );
    assert_eq!(
        check("https://host:/"),
        Some("the port \"\" is not a number from 0 to 65535".to_owned())
    );
    assert_eq!(
        check("https://exa mple.com"),
        Some("a URL must not contain spaces or control characters".to_owned())
    );
    assert_eq!(
        check("https://ex<ample.com"),
        Some("the host \"ex<ample.com\" has characters a host name cannot have".to_owned())
    );
    assert_eq!(
        check("http://[::1/x"),
        Some("the IPv6 host is missing its closing ']'".to_owned())
    );
}

#[test]
fn a_valid_webhook_destination_is_read() {
    let json = with_subscription(serde_json::json!({
        "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9000/hook"}}
    }));
    let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        file.topics[0].subscriptions[0].destination,
        Destination::WebHook {
            endpoint_url: "http://127.0.0.1:9000/hook".into()
        }
    );
}

#[test]
fn dead_letter_container_names_follow_storage_rules() {
    for good in ["dead-letters", "abc", "a1-b2", &"a".repeat(63)] {
        assert_eq!(check_container_name(good), Ok(()), "{good}");
    }
    for bad in [
        "ab",
        "Dead",
        "-abc",
        "abc-",
        "a--b",
        "a_b",
        "a.b",
        &"a".repeat(64),
    ] {
        assert!(check_container_name(bad).is_err(), "{bad}");
    }
    assert_eq!(
        one_line(&with_subscription(serde_json::json!({"deadLetter": {}}))),
        format!("{SUB}deadLetter.blobContainerName is missing")
    );
    assert_eq!(
        one_line(&with_subscription(
            serde_json::json!({"deadLetter": "dead-letters"})
        )),
        format!(
            "{SUB}deadLetter is \"dead-letters\"; expected an object {{\"blobContainerName\": ...}} or null"
        )
    );
    let file = SubscriptionsFile::parse(
        &with_subscription(serde_json::json!({"deadLetter": null})),
        ORIGIN,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.topics[0].subscriptions[0].dead_letter, None);
}

fn with_mappings(mappings: serde_json::Value) -> String {
    with_subscription(serde_json::json!({
        "destination": {"endpointType": "WebHook", "properties": {
            "endpointUrl": "https://example.com/hook", "deliveryAttributeMappings": mappings
        }}
    }))
}

#[test]
fn delivery_attribute_mappings_are_read() {
    let json = with_mappings(serde_json::json!([
        {"name": "x-api-key", "type": "Static", "properties": {"value": "s3cret", "isSecret": true}},
        {"name": "x-tenant", "type": "Static", "properties": {"value": "contoso"}},
        {"name": "x-order", "type": "Dynamic", "properties": {"sourceField": "data.orderId"}},
    ]));
    let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        file.topics[0].subscriptions[0].delivery_attributes,
        [
            DeliveryAttribute::Static {
                name: "x-api-key".into(),
                value: "s3cret".into(),
                secret: true
            },
            DeliveryAttribute::Static {
                name: "x-tenant".into(),
                value: "contoso".into(),
                secret: false
            },
            DeliveryAttribute::Dynamic {
                name: "x-order".into(),
                source_field: "data.orderId".into()
            },
        ]
    );
}

#[test]
fn delivery_attribute_mappings_follow_azures_rules() {
    let p = "destination.properties.deliveryAttributeMappings";
    let json = with_mappings(serde_json::json!([
        {"name": "aeg-custom", "type": "Static", "properties": {"value": "x"}},
        {"name": "AEG-Other", "type": "Dynamic", "properties": {"sourceField": "subject"}},
        {"name": "bad header", "type": "Static", "properties": {"value": "x"}},
        {"name": "x-big", "type": "Static", "properties": {"value": "v".repeat(4097)}},
        {"name": "x-key", "type": "Static", "properties": {"value": "k".repeat(4097), "isSecret": true}},
        {"name": "x-nl", "type": "Static", "properties": {"value": "a\r\nb"}},
        {"name": "x-field", "type": "Dynamic", "properties": {"sourceField": "data..id"}},
        {"name": "x-kind", "type": "Computed", "properties": {}},
        {"name": "x-dup", "type": "Dynamic", "properties": {"sourceField": "id"}},
        {"name": "X-Dup", "type": "Dynamic", "properties": {"sourceField": "id"}},
        {"name": "x-11", "type": "Dynamic", "properties": {"sourceField": "id"}},
    ]));
    assert_eq!(
        lines_of(&json),
        [
            format!("{SUB}{p} has 11 headers; Azure allows at most 10"),
            format!(
                "{SUB}{p}[0].name is \"aeg-custom\"; the aeg- prefix is reserved for Event Grid's own headers"
            ),
            format!(
                "{SUB}{p}[1].name is \"AEG-Other\"; the aeg- prefix is reserved for Event Grid's own headers"
            ),
            format!("{SUB}{p}[2].name is \"bad header\"; ' ' cannot appear in an HTTP header name"),
            format!("{SUB}{p}[3].properties.value is 4097 bytes long; Azure allows at most 4096"),
            format!("{SUB}the secret value is 4097 bytes long; Azure allows at most 4096"),
            format!(
                "{SUB}{p}[5].properties.value contains a control character (such as a line break), which a header value cannot carry"
            ),
            format!(
                "{SUB}{p}[6].properties.sourceField is \"data..id\"; expected an event field like \"data.key1\" or \"subject\""
            ),
            format!("{SUB}{p}[7].type is \"Computed\"; valid values are Static, Dynamic"),
            format!("{SUB}{p}[9].name is \"X-Dup\"; header \"x-dup\" is already mapped"),
        ]
    );
}

#[test]
fn a_secret_value_is_never_quoted_back() {
    let json = with_mappings(serde_json::json!([
        {"name": "x-key", "type": "Static", "properties": {"value": "hunter2\n", "isSecret": true}},
    ]));
    let all = lines_of(&json).join("\n");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn filter_problems_carry_the_subscription_context() {
    let json = with_subscription(serde_json::json!({
        "filter": {"advancedFilters": [{"operatorType": "StringIn", "key": "data.a", "values": ["x".repeat(513)]}]}
    }));
    let line = one_line(&json);
    assert!(
        line.starts_with(&format!(
            "{SUB}filter.advancedFilters[0].values[0] is \"xxx"
        )),
        "{line}"
    );
    assert!(
        line.ends_with("(513 characters); Azure allows at most 512"),
        "{line}"
    );
}

#[test]
fn the_file_must_be_an_object_with_a_topics_list() {
    assert_eq!(
        lines_of("[]"),
        ["infra/subscriptions.json: the file is []; expected an object {\"topics\": [...]}"]
    );
    assert_eq!(
        lines_of("{}"),
        ["infra/subscriptions.json: topics is missing"]
    );
    assert_eq!(
        lines_of(r#"{"topics": {}}"#),
        ["infra/subscriptions.json: topics is {}; expected a list"]
    );
}

#[test]
fn resource_names_are_checked_by_their_newtypes() {
    assert!(TopicName::parse("orders").is_ok());
    assert!(TopicName::parse(&"a".repeat(51)).is_err());
    assert!(SubscriptionName::parse(&"a".repeat(64)).is_ok());
    assert!(SubscriptionName::parse(&"a".repeat(65)).is_err());
    assert!(SubscriptionName::parse("ab").is_err());
    assert!(SubscriptionName::parse("über-sub").is_err());
    let name = SubscriptionName::parse("order-processor").unwrap();
    assert_eq!(name.upper(), "ORDER-PROCESSOR");
    assert_eq!(name.to_string(), "order-processor");
}

// Property tests (issue 14): any text as the subscriptions file is a file or errors that say
// what is wrong; so is the repository's file with any one value replaced by any JSON.
mod properties {
    use super::*;
    use crate::json::strategies::{arbitrary_json, json_like};
    use proptest::prelude::*;

    /// Every value of `value`, as a JSON pointer.
    fn pointers(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(members) => {
                for (k, v) in members {
                    pointers(
                        v,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    pointers(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    proptest! {
        #[test]
        fn any_text_is_a_file_or_says_why_not(text in prop_oneof![json_like(), arbitrary_json()]) {
            if let Err(e) = SubscriptionsFile::parse(&text, "test") {
                prop_assert!(!e.to_string().is_empty());
            }
        }

        #[test]
        fn the_repository_file_with_one_value_changed_is_read_or_refused_with_reasons(
            at in any::<prop::sample::Index>(),
            replacement in arbitrary_json(),
        ) {
            let text = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/subscriptions.json"),
            )
            .unwrap();
            let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut all = Vec::new();
            pointers(&doc, String::new(), &mut all);
            let pointer = &all[at.index(all.len())];
            let replacement = serde_json::from_str(&replacement).unwrap_or(serde_json::Value::Null);
            match doc.pointer_mut(pointer) {
                Some(slot) => *slot = replacement,
                None => doc = replacement,
            }
            if let Err(e) = SubscriptionsFile::parse(&doc.to_string(), "test") {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
