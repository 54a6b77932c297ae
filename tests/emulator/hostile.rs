//! What the emulator refuses from hostile web pages (issue 14; see `ordergrid::local_guard`):
//! requests through a name that is not this machine's (DNS rebinding), and requests that change
//! something from a page of another origin, with exactly the headers a browser sends. The
//! official SDKs, the CLI and the dashboard's own page send none of them (their tests elsewhere
//! pass through the same guard).

use serde_json::{Value, json};

use crate::harness::{PATIENCE, Setup, event, eventually_async, hook_file};
use ordergrid_testing::receiver::Receiver;

async fn refused(response: reqwest::Response, code: &str) -> String {
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_rebound_name_and_another_sites_page_change_nothing_the_cli_and_same_origin_do() {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(hook_file(&receiver)).start().await;
    let events = json!([event("e-1", "NewOrder", json!({"orderId": "R-1"}))]).to_string();
    let publish = || {
        emulator
            .publish_request("orders")
            .header("content-type", "application/json")
            .body(events.clone())
    };

    // DNS rebinding: the right key, through a name that is not this machine's.
    let message = refused(
        publish()
            .header("host", format!("rebind.test:{}", emulator.port))
            .send()
            .await
            .unwrap(),
        "HostNotAllowed",
    )
    .await;
    assert!(message.contains("ORDERGRID_ALLOWED_HOSTS"), "{message}");
    // Reads too: a rebound page would be the emulator's own origin.
    let read = emulator
        .client
        .get(format!("{}/emulator/subscriptions", emulator.base))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    refused(read, "HostNotAllowed").await;

    // A page of another origin: the key-less endpoint, a redelivery, a handshake re-run.
    let seed = json!({"eventType": "NewOrder", "data": {"orderId": "X-1"}}).to_string();
    let cross = |path: &str, header: (&'static str, &'static str)| {
        emulator
            .client
            .post(format!("{}{path}", emulator.base))
            .header(header.0, header.1)
            .header("content-type", "application/json")
            .body(seed.clone())
            .send()
    };
    for path in [
        "/publish",
        "/emulator/dead-letters/redeliver",
        "/emulator/subscriptions/hook/validate",
    ] {
        for header in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ] {
            refused(cross(path, header).await.unwrap(), "CrossSiteRequest").await;
        }
    }
    // The key-less endpoint takes JSON only: text/plain is what a page sends without asking.
    let plain = emulator
        .client
        .post(format!("{}/publish", emulator.base))
        .header("content-type", "text/plain")
        .body(seed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);

    // Reads from any page, and the dashboard's own origin, go on; so do the CLI's requests
    // (no Origin) and the SDK's.
    let dashboard = emulator
        .client
        .get(format!("{}/", emulator.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 200);
    let own = cross("/publish", ("origin", "")).await.unwrap();
    assert_eq!(own.status(), 403, "an empty Origin is not the emulator's");
    let own = emulator
        .client
        .post(format!(
            "{}/emulator/subscriptions/hook/validate",
            emulator.base
        ))
        .header("origin", &emulator.base)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 202);
    assert_eq!(publish().send().await.unwrap().status(), 200);
    let delivered = eventually_async("the one delivery", PATIENCE, async || {
        receiver.notifications("/hook").into_iter().next()
    })
    .await;
    assert_eq!(
        delivered.ids(),
        ["e-1"],
        "only the CLI-like publish got through"
    );
    let page: Value = emulator.get_json("/dashboard/api/events").await;
    assert_eq!(page["total"], 1, "nothing refused was published: {page}");
}
