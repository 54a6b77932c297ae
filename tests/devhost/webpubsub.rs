//! The Web PubSub bindings through the stand-in: the `webPubSubConnection` input's client URL and
//! token, and the `webPubSub` output's actions reaching the service's REST API. The service is a
//! recording receiver (the local Web PubSub service is written elsewhere); what it records is
//! checked against the REST API's shape and token rules.

use std::collections::HashMap;

use ordergrid::webpubsub::AccessKey;
use ordergrid::webpubsub::token::{self, DEFAULT_LIFETIME_SECONDS};
use ordergrid_testing::receiver::{Receiver, Reply};
use reqwest::Method;
use serde_json::{Value, json};

use super::{App, event, function};

fn settings(endpoint: &str, port: u16, key: &AccessKey) -> HashMap<String, String> {
    HashMap::from([(
        "WebPubSubConnectionString".to_owned(),
        format!(
            "Endpoint={endpoint};Port={port};AccessKey={};Version=1.0;",
            key.expose_secret()
        ),
    )])
}

fn negotiate(user_id: Option<&str>) -> Value {
    let mut connection = json!({"type": "webPubSubConnection", "name": "connection", "hub": "orders", "direction": "in"});
    if let Some(user_id) = user_id {
        connection["userId"] = json!(user_id);
    }
    json!({"bindings": [
        {"type": "httpTrigger", "authLevel": "anonymous", "direction": "in", "name": "req", "methods": ["get"], "route": "negotiate"},
        {"type": "http", "direction": "out", "name": "res"},
        connection,
    ]})
}

fn feed_output() -> Value {
    json!({"type": "webPubSub", "name": "actions", "hub": "orders", "direction": "out", "connection": "WebPubSubConnectionString"})
}

#[tokio::test]
async fn the_connection_input_is_a_client_url_with_a_token_for_the_hub() {
    let key = AccessKey::generate();
    let app = App::start(
        &[("Negotiate", negotiate(Some("{query.userid}")))],
        json!({}),
        settings("http://127.0.0.1", 7090, &key),
    )
    .await;
    let response = app
        .http(Method::GET, "/api/negotiate?userid=shop-7", &[], None)
        .await;
    assert_eq!(response.status(), 200);
    let connection: Value = response.json().await.unwrap();
    let token = connection["accessToken"].as_str().unwrap();
    assert_eq!(
        connection["baseUrl"],
        "ws://127.0.0.1:7090/client/hubs/orders"
    );
    assert_eq!(
        connection["url"],
        format!("ws://127.0.0.1:7090/client/hubs/orders?access_token={token}")
    );
    let audience = "http://127.0.0.1:7090/client/hubs/orders";
    let now = token::now_seconds();
    let claims = token::verify(token, &key, now, |aud| aud == audience, audience)
        .expect("a token the service accepts");
    assert_eq!(claims.sub.as_deref(), Some("shop-7"));
    assert!(claims.role.values().is_empty() && claims.groups.values().is_empty());
    assert!(
        (claims.exp - now - DEFAULT_LIFETIME_SECONDS).abs() <= 5,
        "one hour's lifetime: exp {} now {now}",
        claims.exp
    );
    assert!(
        token::verify(
            token,
            &AccessKey::generate(),
            now,
            |aud| aud == audience,
            audience
        )
        .is_err(),
        "signed with the connection's key, no other"
    );
    // A binding expression that names nothing fails the invocation before the handler runs.
    let unresolved = app.http(Method::GET, "/api/negotiate", &[], None).await;
    assert_eq!(unresolved.status(), 500);
    assert_eq!(app.invocations().len(), 1);
}

#[tokio::test]
async fn a_function_whose_web_pubsub_binding_has_no_connection_does_not_load() {
    let app = App::start(
        &[
            ("Negotiate", negotiate(None)),
            ("Feed", function(vec![feed_output()], false)),
            ("Echo", function(vec![], false)),
        ],
        json!({}),
        HashMap::new(),
    )
    .await;
    let status = app.status().await;
    assert_eq!(status["functions"], json!(["Echo"]));
    for (i, name) in ["Feed", "Negotiate"].into_iter().enumerate() {
        assert_eq!(status["notLoaded"][i]["function"], name);
        assert!(
            status["notLoaded"][i]["reason"]
                .as_str()
                .unwrap()
                .contains("Connection must be specified"),
            "{status}"
        );
    }
    let response = app.http(Method::GET, "/api/negotiate", &[], None).await;
    assert_eq!(response.status(), 404);
}

/// The actions' REST calls as the receiver got them, each checked for a bearer token whose
/// audience is the request URL (the data plane's rule), signed with `key`.
fn rest_calls(service: &Receiver, key: &AccessKey) -> Vec<(String, String, String, String)> {
    service
        .requests()
        .iter()
        .map(|r| {
            let url = service.url(&r.uri);
            let bearer = r
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_else(|| panic!("no bearer token on {url}"));
            token::verify(bearer, key, token::now_seconds(), |aud| aud == url, &url)
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            (
                r.method.to_string(),
                r.uri.clone(),
                r.header("content-type").unwrap_or("").to_owned(),
                r.text(),
            )
        })
        .collect()
}

#[tokio::test]
async fn web_pubsub_actions_reach_the_services_rest_api_in_order() {
    let service = Receiver::start().await;
    let port: u16 = service.base().rsplit(':').next().unwrap().parse().unwrap();
    let key = AccessKey::generate();
    let app = App::start(
        &[("Feed", function(vec![feed_output()], false))],
        json!({}),
        settings("http://127.0.0.1", port, &key),
    )
    .await;
    let (status, message) = app.notify("Feed", format!("[{}]", event("f1", "{}"))).await;
    assert_eq!(status, 202, "{message}");
    assert_eq!(
        rest_calls(&service, &key),
        [
            (
                "POST".to_owned(),
                "/api/hubs/orders/groups/order-1/:send?api-version=2024-12-01".to_owned(),
                "application/json".to_owned(),
                r#"{"orderId": "1", "status": "accepted"}"#.to_owned(),
            ),
            (
                "POST".to_owned(),
                "/api/hubs/orders/:send?excluded=c1&api-version=2024-12-01".to_owned(),
                "text/plain".to_owned(),
                "hello all".to_owned(),
            ),
        ]
    );
}

#[tokio::test]
async fn a_failing_send_fails_the_event_grid_invocation_so_it_is_redelivered() {
    let service = Receiver::start().await;
    let port: u16 = service.base().rsplit(':').next().unwrap().parse().unwrap();
    let key = AccessKey::generate();
    service.reply(
        "/api/hubs/orders/groups/order-1/:send",
        [Reply::Status(503)],
        Reply::Status(202),
    );
    let app = App::start(
        &[
            ("Feed", function(vec![feed_output()], false)),
            ("BadAction", function(vec![feed_output()], false)),
        ],
        json!({}),
        settings("http://127.0.0.1", port, &key),
    )
    .await;
    let (status, message) = app.notify("Feed", format!("[{}]", event("f1", "{}"))).await;
    assert_eq!(
        (status, message.as_str()),
        (500, "Exception while executing function: Functions.Feed"),
        "Event Grid retries a 500"
    );
    assert_eq!(
        rest_calls(&service, &key).len(),
        1,
        "the actions after the failed one are not sent"
    );
    let (status, _) = app.notify("Feed", format!("[{}]", event("f1", "{}"))).await;
    assert_eq!(status, 202, "the redelivery succeeds");
    assert_eq!(rest_calls(&service, &key).len(), 3);

    // An action the extension cannot parse fails the invocation and sends nothing.
    let (status, _) = app
        .notify("BadAction", format!("[{}]", event("b1", "{}")))
        .await;
    assert_eq!(status, 500);
    assert_eq!(rest_calls(&service, &key).len(), 3);
}
