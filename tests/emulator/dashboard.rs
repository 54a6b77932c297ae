//! The dashboard's JSON endpoints (issue 13): search and paging, an event's payload as stored,
//! an order's journey, the portal's counters, the server-sent event stream, and actions that
//! refuse anything but JSON from the dashboard's own page.

use ordergrid::emulator::admin::dashboard::{
    ActionDone, EventDetail, EventPage, Journey, MetricsView,
};
use ordergrid_testing::receiver::{Receiver, Reply};
use serde_json::{Value, json};

use crate::harness::{
    PATIENCE, Setup, TestEmulator, dead_lettered, event, eventually_async, file, hook_file, topic,
    webhook,
};

/// Polls a search until it finds `at_least` events.
async fn search(emulator: &TestEmulator, query: &str, at_least: usize) -> EventPage {
    eventually_async(
        &format!("{at_least} event(s) for {query}"),
        PATIENCE,
        async || {
            let page: EventPage = emulator
                .get(&format!("/dashboard/api/events?{query}"))
                .await;
            (page.total >= at_least).then_some(page)
        },
    )
    .await
}

/// The token the server-rendered page carries.
async fn token(emulator: &TestEmulator) -> String {
    let page = emulator
        .client
        .get(&emulator.base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, rest) = page
        .split_once(r#"<meta name="ordergrid-token" content=""#)
        .expect("the page carries its token");
    rest.split('"').next().unwrap().to_owned()
}

fn order(id: &str, order_id: Value) -> Value {
    event(
        id,
        "NewOrder",
        json!({"orderId": order_id, "orderValue": 1.50}),
    )
}

/// The topic `orders` with one webhook subscription, `hook`, and the receiver behind it.
async fn with_hook() -> (Receiver, TestEmulator) {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(hook_file(&receiver)).start().await;
    (receiver, emulator)
}

#[tokio::test]
async fn events_are_found_by_order_id_event_id_subject_or_type_and_paged_newest_first() {
    let (_receiver, emulator) = with_hook().await;
    let many: Vec<Value> = (0..120)
        .map(|i| order(&format!("e-{i}"), json!(i)))
        .collect();
    emulator.publish_ok("orders", &many).await;
    emulator
        .publish_ok(
            "orders",
            &[event("paid-1", "OrderPaid", json!({"orderId": "A-7"}))],
        )
        .await;

    let all = search(&emulator, "limit=50", 121).await;
    assert_eq!(all.events.len(), 50);
    assert_eq!(all.events[0].id.as_deref(), Some("paid-1"), "newest first");
    let older: EventPage = emulator
        .get(&format!(
            "/dashboard/api/events?limit=50&before={}",
            all.next.as_deref().unwrap()
        ))
        .await;
    assert_eq!(older.events.len(), 50);
    assert_eq!(
        older.events[0].id.as_deref(),
        Some("e-70"),
        "the next page goes on where the first stopped"
    );

    let by_order = search(&emulator, "q=A-7", 1).await;
    assert_eq!(by_order.total, 1);
    assert_eq!(by_order.events[0].order_id.as_deref(), Some("A-7"));
    assert_eq!(by_order.events[0].event_type.as_deref(), Some("OrderPaid"));
    let numeric = search(&emulator, "q=42", 1).await;
    assert_eq!(numeric.total, 1, "{numeric:?}");
    assert_eq!(numeric.events[0].order_id.as_deref(), Some("42"));
    assert_eq!(
        search(&emulator, "q=e-119", 1).await.total,
        1,
        "by event id"
    );
    assert_eq!(
        search(&emulator, "q=orderpaid", 1).await.total,
        1,
        "by type, ignoring case"
    );
    assert_eq!(
        search(&emulator, "q=orders%2Fpaid", 1).await.total,
        1,
        "by subject"
    );
    let delivered = eventually_async("the delivery status", PATIENCE, async || {
        let page = search(&emulator, "q=A-7", 1).await;
        (page.events[0].status == "delivered").then_some(page)
    })
    .await;
    assert_eq!(
        delivered.events[0].deliveries[0].subscription,
        "orders/hook"
    );
}

#[tokio::test]
async fn an_event_opens_with_its_payload_as_stored_byte_for_byte() {
    let (receiver, emulator) = with_hook().await;
    // Numbers and escapes exactly as sent: a re-serialisation would change them.
    let body = r#"[{"id":"raw-1","subject":"orders/raw","eventType":"NewOrder","eventTime":"2026-01-01T00:00:00Z","dataVersion":"1.0","data":{"orderId":"raw","v":1.50e2,"s":"\u00e9<b>"}}]"#;
    let response = emulator.publish_bytes("orders", body).await;
    assert_eq!(response.status(), 200);
    let page = search(&emulator, "q=raw", 1).await;
    let detail: EventDetail = emulator
        .get(&format!(
            "/dashboard/api/events/{}",
            page.events[0].position
        ))
        .await;
    let payload = detail.payload.unwrap();
    assert!(
        payload.contains(r#""v":1.50e2,"s":"\u00e9<b>""#),
        "{payload}"
    );
    let delivered = eventually_async("the delivery", PATIENCE, async || {
        receiver.notifications("/hook").into_iter().next()
    })
    .await;
    assert_eq!(
        format!("[{payload}]").as_bytes(),
        &delivered.body[..],
        "the payload is what was stored and delivered"
    );
}

#[tokio::test]
async fn a_journey_shows_each_attempt_with_status_the_retry_and_the_dead_letter_with_its_reason() {
    let receiver = Receiver::start().await;
    receiver.reply("/kept", [Reply::Status(500)], Reply::Status(400));
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![dead_lettered(
            webhook("kept", &receiver.url("/kept")),
            "dead-letters",
            30,
        )],
    )]))
    .start()
    .await;
    emulator
        .publish_ok("orders", &[order("j-1", json!("J-1"))])
        .await;
    let journey: Journey =
        eventually_async("the dead letter in the journey", PATIENCE, async || {
            let j: Journey = emulator.get("/dashboard/api/orders/J-1").await;
            (!j.dead_letters.is_empty()).then_some(j)
        })
        .await;
    assert_eq!(journey.events.len(), 1);
    let attempts = &journey.events[0].attempts;
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(400)], "{attempts:?}");
    assert!(attempts[0].next.starts_with("retry at"), "{attempts:?}");
    assert_eq!(attempts[1].next, "dead-letter");
    assert!(
        attempts
            .iter()
            .all(|a| a.duration_ms >= 0.0 && a.subscription == "orders/kept")
    );
    let dead = &journey.dead_letters[0];
    assert_eq!(dead.event_id.as_deref(), Some("j-1"));
    assert_eq!(
        dead.reason.as_deref(),
        Some("NonRetriableError"),
        "{dead:?}"
    );
    assert_eq!(dead.last_http_status_code, Some(400));
    assert_eq!(journey.events[0].event.status, "deadLettered");
    let kinds: Vec<&str> = journey.timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds[0], "published", "{kinds:?}");
    assert!(
        journey
            .timeline
            .windows(2)
            .all(|w| w[0].at_ms <= w[1].at_ms),
        "in time order"
    );
    assert!(journey.trace.spans.is_empty());
    assert!(
        journey
            .trace
            .note
            .as_deref()
            .is_some_and(|n| n.contains("ORDERGRID_EMULATOR_TRACES=true")),
        "traces are off by default, and the journey says how to turn them on: {:?}",
        journey.trace
    );
    let unknown = emulator
        .client
        .get(format!("{}/dashboard/api/orders/nobody", emulator.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn counters_show_published_unmatched_and_publish_failures_by_reason() {
    let receiver = Receiver::start().await;
    let mut picky = webhook("picky", &receiver.url("/picky"));
    picky["filter"] = json!({"includedEventTypes": ["NewOrder"]});
    let emulator = Setup::new(file(vec![topic("orders", vec![picky])]))
        .start()
        .await;
    emulator
        .publish_ok(
            "orders",
            &[
                order("m-1", json!("M-1")),
                event("m-2", "Nobody", json!({})),
            ],
        )
        .await;
    let no_key = emulator
        .client
        .post(emulator.publish_url("orders"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let not_json = emulator.publish_bytes("orders", "{nope").await;
    assert_eq!(not_json.status(), 400);
    let too_big = emulator
        .publish_bytes("orders", vec![b' '; 1024 * 1024 + 1])
        .await;
    assert_eq!(too_big.status(), 413);

    let metrics: MetricsView = eventually_async("the counters", PATIENCE, async || {
        let m: MetricsView = emulator.get("/dashboard/api/metrics").await;
        let sub = &m.subscriptions[0];
        (m.topics[0].published >= 2 && sub.counters.delivered >= 1).then_some(m)
    })
    .await;
    let orders = &metrics.topics[0];
    assert_eq!(orders.published, 2);
    assert_eq!(orders.unmatched, 1);
    let failed = &orders.publish_failed;
    assert_eq!(
        (failed.auth, failed.schema, failed.size, failed.other),
        (1, 1, 1, 0),
        "{failed:?}"
    );
    let reasons: Vec<&str> = metrics
        .publish_failures
        .iter()
        .map(|f| f.reason.as_str())
        .collect();
    assert_eq!(reasons, ["size", "schema", "auth"], "newest first");
    let sub = &metrics.subscriptions[0];
    assert_eq!(sub.key, "orders/picky");
    let now = sub
        .series
        .iter()
        .rev()
        .find(|p| p.delivered > 0)
        .expect("a bucket with the delivery");
    assert!(now.p50_ms.is_some() && now.p99_ms >= now.p50_ms, "{now:?}");
    assert!(orders.series.iter().map(|p| p.published).sum::<u32>() >= 2);
    let text = serde_json::to_string(&metrics).unwrap();
    assert!(
        !text.contains(emulator.key("orders").expose_secret()),
        "no key is shown"
    );
}

#[tokio::test]
async fn the_stream_pushes_a_change_when_an_event_is_published() {
    let (_receiver, emulator) = with_hook().await;
    let mut stream = emulator
        .client
        .get(format!("{}/dashboard/api/stream", emulator.base))
        .send()
        .await
        .unwrap();
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut seen = String::new();
    // The stream says hello first, so the publish below happens while it is subscribed.
    while !seen.contains("event: hello") {
        let chunk = tokio::time::timeout(PATIENCE, stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    emulator
        .publish_ok("orders", &[order("s-1", json!("S-1"))])
        .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !(seen.contains(r#""kind":"event""#)
        && seen.contains(r#""orderId":"S-1""#)
        && seen.contains(r#""kind":"attempt""#))
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no change pushed; the stream said:\n{seen}"))
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: change"), "{seen}");
}

#[tokio::test]
async fn actions_refuse_form_posts_other_origins_and_requests_without_the_pages_token() {
    let (_receiver, emulator) = with_hook().await;
    let page = emulator.client.get(&emulator.base).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let token = token(&emulator).await;
    assert_eq!(token.len(), 64);
    let url = format!("{}/dashboard/api/actions/test-order", emulator.base);
    let post = || emulator.client.post(&url);

    let form = post()
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-ordergrid-token", &token)
        .body("orderId=F-1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415, "a form cannot send JSON");
    let text = post()
        .header("content-type", "text/plain")
        .body(r#"{"orderId":"F-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let tokenless = post()
        .header("content-type", "application/json")
        .body(r#"{"orderId":"F-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(tokenless.status(), 403);
    let wrong = post()
        .header("content-type", "application/json")
        .header("x-ordergrid-token", "0".repeat(64))
        .body(r#"{"orderId":"F-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let elsewhere = post()
        .header("content-type", "application/json")
        .header("x-ordergrid-token", &token)
        .header("origin", "http://evil.example")
        .body(r#"{"orderId":"F-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 403);
    let page: EventPage = emulator.get("/dashboard/api/events?q=F-1").await;
    assert_eq!(page.total, 0, "nothing refused was published");

    let origin = emulator.base.clone();
    let done: ActionDone = post()
        .header("content-type", "application/json")
        .header("x-ordergrid-token", &token)
        .header("origin", &origin)
        .body(r#"{"orderId":"F-1","orderValue":"12.50"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(done.done.contains("F-1"), "{done:?}");
    let found = search(&emulator, "q=F-1", 1).await;
    assert_eq!(found.events[0].event_type.as_deref(), Some("NewOrder"));

    let validate: ActionDone = emulator
        .client
        .post(format!("{}/dashboard/api/actions/validate", emulator.base))
        .header("content-type", "application/json")
        .header("x-ordergrid-token", &token)
        .body(r#"{"subscription":"hook"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(validate.done.contains("orders/hook"), "{validate:?}");
    let redeliver = async |subscription: &str| {
        emulator
            .client
            .post(format!("{}/dashboard/api/actions/redeliver", emulator.base))
            .header("content-type", "application/json")
            .header("x-ordergrid-token", &token)
            .body(format!(r#"{{"subscription":"{subscription}"}}"#))
            .send()
            .await
            .unwrap()
    };
    // A subscription with no dead letters is told apart from one that does not exist.
    let nothing = redeliver("hook").await;
    assert_eq!(nothing.status(), 200);
    let nothing: ActionDone = nothing.json().await.unwrap();
    assert!(
        nothing.done.starts_with("nothing to redeliver"),
        "{nothing:?}"
    );
    assert_eq!(redeliver("no-such").await.status(), 404);
    // Reading stays easy: no token for GETs.
    let _: EventPage = emulator.get("/dashboard/api/events").await;
}

#[tokio::test]
async fn the_pages_assets_are_embedded_and_load_nothing_from_elsewhere() {
    let emulator = Setup::new(file(vec![topic("orders", vec![])]))
        .start()
        .await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let response = emulator
            .client
            .get(format!("{}{path}", emulator.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let text = response.text().await.unwrap();
        for external in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "innerHTML",
            "insertAdjacentHTML",
        ] {
            assert!(!text.contains(external), "{path} contains {external}");
        }
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An OTLP/HTTP traces request holding one span of [`TRACEPARENT`]'s trace, under its span.
fn otlp_request(name: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: hex(&TRACEPARENT[3..35]),
                    span_id: vec![7; 8],
                    parent_span_id: hex(&TRACEPARENT[36..52]),
                    name: name.into(),
                    kind: 2,
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// With traces kept, a subscription mapping `data.traceparent` to a header gets it as mapped (as
/// Azure sends a dynamic delivery property), each attempt is a span in the event's trace, the
/// emulator takes OTLP (protobuf only) at `/v1/traces`, and the order's journey has them all.
#[tokio::test]
async fn delivery_attempts_and_otlp_spans_make_the_orders_trace() {
    let receiver = Receiver::start().await;
    let mut hook = webhook("hook", &receiver.url("/hook"));
    hook["destination"]["properties"]["deliveryAttributeMappings"] = json!([
        {"name": "traceparent", "type": "Dynamic", "properties": {"sourceField": "data.traceparent"}}
    ]);
    let emulator = Setup::new(file(vec![topic("orders", vec![hook])]))
        .traces()
        .start()
        .await;
    emulator
        .publish_ok(
            "orders",
            &[event(
                "t-1",
                "NewOrder",
                json!({"orderId": "TR-1", "traceparent": TRACEPARENT}),
            )],
        )
        .await;
    let delivered = eventually_async("the delivery", PATIENCE, async || {
        receiver.notifications("/hook").into_iter().next()
    })
    .await;
    assert_eq!(delivered.header("traceparent"), Some(TRACEPARENT));

    let post = |content_type: &'static str, body: Vec<u8>| {
        emulator
            .client
            .post(format!("{}/v1/traces", emulator.base))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json = post("application/json", b"{}".to_vec()).await.unwrap();
    assert_eq!(json.status(), 415);
    let garbage = post("application/x-protobuf", vec![0xff; 9]).await.unwrap();
    assert_eq!(garbage.status(), 400);
    let ok = post("application/x-protobuf", otlp_request("OrderProcessor"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.bytes().await.unwrap().is_empty(),
        "an empty ExportTraceServiceResponse"
    );

    let journey = eventually_async("the trace's spans", PATIENCE, async || {
        let journey: Journey = emulator.get("/dashboard/api/orders/TR-1").await;
        (journey.trace.spans.len() >= 2).then_some(journey)
    })
    .await;
    assert_eq!(journey.trace.trace_ids, vec![TRACEPARENT[3..35].to_owned()]);
    assert_eq!(journey.trace.note, None);
    let delivery = journey
        .trace
        .spans
        .iter()
        .find(|s| s.name == "deliver to orders/hook")
        .expect("the attempt's span");
    assert_eq!(delivery.service, "ordergrid-emulator");
    assert_eq!(
        delivery.parent_span_id.as_deref(),
        Some(&TRACEPARENT[36..52])
    );
    assert!(
        delivery
            .attributes
            .contains(&("http.response.status_code".into(), "200".into())),
        "{delivery:?}"
    );
    assert!(
        journey
            .trace
            .spans
            .iter()
            .any(|s| s.name == "OrderProcessor")
    );
}

/// Traces off (the default): the receiver says how to turn them on.
#[tokio::test]
async fn without_traces_the_otlp_receiver_says_how_to_keep_them() {
    let (_receiver, emulator) = with_hook().await;
    let answer = emulator
        .client
        .post(format!("{}/v1/traces", emulator.base))
        .header("content-type", "application/x-protobuf")
        .body(otlp_request("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("ORDERGRID_EMULATOR_TRACES=true")
    );
}
