//! Traces across the pipeline (issue 13): an order published with `ordergrid publish` is one
//! trace, from the publish through the emulator's delivery, the host stand-in, the handler, the
//! events it emits, the email and the live feed, exported over OTLP to a real receiver (the
//! OpenTelemetry project's own protobuf messages) and drawn from the dashboard's API.

use std::collections::HashMap;
use std::time::Duration;

use ordergrid::emulator::admin::dashboard::Journey;
use ordergrid_testing::otlp::OtlpReceiver;
use serde_json::Value;

use crate::helpers::{Stack, binary, eventually, eventually_async, get_json, succeeds};

/// A span, as (service, span name).
type Named = (&'static str, &'static str);

/// The spans one order leads to, each with the span it hangs under.
const TREE: [(Named, Option<Named>); 9] = [
    (("ordergrid-cli", "publish NewOrder"), None),
    (
        ("ordergrid-emulator", "deliver to orders/order-processor"),
        Some(("ordergrid-cli", "publish NewOrder")),
    ),
    (
        ("ordergrid-functions-host", "OrderProcessor"),
        Some(("ordergrid-cli", "publish NewOrder")),
    ),
    (
        ("ordergrid-handler", "OrderProcessor"),
        Some(("ordergrid-functions-host", "OrderProcessor")),
    ),
    (
        ("ordergrid-handler", "record"),
        Some(("ordergrid-handler", "OrderProcessor")),
    ),
    (
        ("ordergrid-emulator", "deliver to orders/email-notifier"),
        Some(("ordergrid-handler", "OrderProcessor")),
    ),
    (
        ("ordergrid-functions-host", "EmailNotifier"),
        Some(("ordergrid-handler", "OrderProcessor")),
    ),
    (
        ("ordergrid-handler", "EmailNotifier"),
        Some(("ordergrid-functions-host", "EmailNotifier")),
    ),
    (
        ("ordergrid-handler", "send email"),
        Some(("ordergrid-handler", "EmailNotifier")),
    ),
];

fn key(span: &Value) -> (String, String) {
    (
        span["service"].as_str().unwrap_or_default().to_owned(),
        span["name"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_from_publish_to_email_in_a_real_otlp_receiver_and_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = OtlpReceiver::start(dir.path());
    let stack = Stack::start(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
            // The batch processor's export interval (OpenTelemetry's standard setting).
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
        ],
        &[],
    )
    .await;
    let published = succeeds(
        tokio::process::Command::new(binary())
            .args([
                "publish",
                "--order-id",
                "T-100",
                "--customer-id",
                "c-1",
                "--value",
                "12.50",
                "--email",
                "traced@example.com",
            ])
            .current_dir(dir.path())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
    )
    .await;
    let trace_id = published
        .lines()
        .find_map(|l| l.trim().strip_prefix("trace "))
        .unwrap_or_else(|| panic!("publish names no trace: {published}"))
        .trim()
        .to_owned();

    let spans: HashMap<(String, String), Value> =
        eventually("every span of the order", Duration::from_secs(30), || {
            let spans: HashMap<_, _> = receiver
                .spans()
                .into_iter()
                .filter(|s| s["traceId"] == trace_id.as_str())
                .map(|s| (key(&s), s))
                .collect();
            let all = TREE.iter().all(|((service, name), _)| {
                spans.contains_key(&(service.to_string(), name.to_string()))
            });
            all.then_some(spans)
        })
        .await;
    for ((service, name), parent) in TREE {
        let span = &spans[&(service.to_owned(), name.to_owned())];
        assert_eq!(span["error"], Value::Null, "{span}");
        match parent {
            None => assert_eq!(span["parentSpanId"], Value::Null, "{span}"),
            Some((p_service, p_name)) => assert_eq!(
                span["parentSpanId"],
                spans[&(p_service.to_owned(), p_name.to_owned())]["spanId"],
                "{service} {name} hangs under {p_service} {p_name}"
            ),
        }
    }
    let handler = &spans[&("ordergrid-handler".into(), "OrderProcessor".into())];
    assert_eq!(handler["kind"], "server");
    assert_eq!(handler["attributes"]["order.id"], "T-100");
    let delivery = &spans[&(
        "ordergrid-emulator".into(),
        "deliver to orders/order-processor".into(),
    )];
    assert_eq!(delivery["attributes"]["http.response.status_code"], 202);

    // The email carries the trace, in the context of the span that sent it.
    let send = &spans[&("ordergrid-handler".into(), "send email".into())];
    let eml = stack.outbox();
    let [eml] = eml.as_slice() else {
        panic!("one email expected: {eml:?}")
    };
    let text = std::fs::read_to_string(dir.path().join(".ordergrid/outbox").join(eml)).unwrap();
    let header = format!(
        "Traceparent: 00-{trace_id}-{}-01",
        send["spanId"].as_str().unwrap()
    );
    assert!(text.contains(&header), "{header} in\n{text}");

    // The dashboard draws the same trace, from the spans sent to its own receiver (each part's
    // exporter sends its batches on its own schedule: wait for all of them).
    let url = format!("{}/dashboard/api/orders/T-100", stack.emulator_url);
    let journey: Journey = eventually_async(
        "the trace on the dashboard",
        Duration::from_secs(30),
        async || {
            let journey: Journey = serde_json::from_value(get_json(&url).await).unwrap();
            let all = TREE.iter().all(|((service, name), _)| {
                journey
                    .trace
                    .spans
                    .iter()
                    .any(|s| s.service == *service && s.name == *name && s.trace_id == trace_id)
            });
            all.then_some(journey)
        },
    )
    .await;
    assert_eq!(journey.trace.trace_ids, vec![trace_id.clone()]);
    stack.interrupt().await;
}
