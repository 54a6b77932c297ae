//! The REST data plane's answers: errors in the spec's `ErrorDetail` shape, the limits, the
//! token API, health.

use ordergrid::webpubsub::token::{self, Claims};
use serde_json::Value;

use super::{HUB, Service};

async fn call(
    s: &Service,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let url = format!("{}{path}", s.base);
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .header("Content-Type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn signed(s: &Service, path: &str) -> String {
    token::sign(
        &Claims::new(&format!("{}{path}", s.base), token::now_seconds(), 60),
        &s.key,
    )
}

#[tokio::test]
async fn rest_errors_have_the_services_shape_and_limits() {
    let s = Service::start().await;
    let send = format!("/api/hubs/{HUB}/:send?api-version=2024-12-01");
    let (status, body) = call(
        &s,
        reqwest::Method::POST,
        &send,
        None,
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("Unauthorized")),
        "{body}"
    );
    let other = signed(&s, "/api/hubs/other/:send");
    assert_eq!(
        call(
            &s,
            reqwest::Method::POST,
            &send,
            Some(&other),
            "application/json",
            b"{}".to_vec()
        )
        .await
        .0,
        401
    );

    let token = signed(&s, &send);
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("application/json", br#"{"ok": 1e400}"#.to_vec(), 202),
        ("text/plain", b"hello".to_vec(), 202),
        ("application/json", b"{not json".to_vec(), 400),
        ("application/xml", b"<a/>".to_vec(), 415),
        ("application/octet-stream", vec![0; 1024 * 1024 + 1], 413),
    ];
    for (content_type, body, expected) in cases {
        let (status, answer) = call(
            &s,
            reqwest::Method::POST,
            &send,
            Some(&token),
            content_type,
            body,
        )
        .await;
        assert_eq!(status, expected, "{content_type}: {answer}");
        if status >= 400 {
            assert!(
                answer["code"].is_string() && answer["message"].is_string(),
                "{answer}"
            );
        }
    }
    let filtered =
        format!("/api/hubs/{HUB}/:send?api-version=2024-12-01&filter=userId%20eq%20%27a%27");
    let (status, answer) = call(
        &s,
        reqwest::Method::POST,
        &filtered,
        Some(&signed(&s, &filtered)),
        "text/plain",
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        status, 400,
        "OData filters are refused, not ignored: {answer}"
    );
    let unknown = format!("/api/hubs/{HUB}/nothing");
    assert_eq!(
        call(
            &s,
            reqwest::Method::GET,
            &unknown,
            Some(&signed(&s, &unknown)),
            "",
            vec![]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&s, reqwest::Method::HEAD, "/api/health", None, "", vec![])
            .await
            .0,
        200
    );
}

/// `:generateToken` makes a client token for the hub with the asked user, roles, groups and
/// lifetime, which the client endpoint then accepts.
#[tokio::test]
async fn the_token_api_makes_tokens_the_client_endpoint_accepts() {
    let s = Service::start().await;
    let token = s
        .client()
        .generate_token(
            HUB,
            &ordergrid::webpubsub::TokenRequest {
                user_id: Some("ann".into()),
                roles: vec!["webpubsub.joinLeaveGroup.order-1".into()],
                groups: vec!["order-1".into()],
                minutes_to_expire: 5,
            },
        )
        .await
        .unwrap();
    let audience = format!("{}/client/hubs/{HUB}", s.base);
    let claims = token::verify(
        &token,
        &s.key,
        token::now_seconds(),
        |a| a == audience,
        &audience,
    )
    .unwrap();
    assert_eq!(claims.sub.as_deref(), Some("ann"));
    assert_eq!(claims.groups.values(), ["order-1"]);
    assert_eq!(claims.role.values(), ["webpubsub.joinLeaveGroup.order-1"]);
    assert!(claims.exp - token::now_seconds() <= 5 * 60);
    let mut ws = s.connect(&token, "json.webpubsub.azure.v1").await.unwrap();
    assert_eq!(ws.connected().await["userId"], "ann");
}

/// DNS rebinding (issue 14): the service answers loopback names only, whatever the request
/// carries; a client's upgrade through another name is refused before its token is read.
#[tokio::test]
async fn a_rebound_name_is_refused_before_anything_else() {
    let service = Service::start().await;
    let http = reqwest::Client::new();
    let health = |host: &'static str| {
        http.get(format!("{}/api/health", service.base))
            .header("host", host)
            .send()
    };
    assert_eq!(health("localhost").await.unwrap().status(), 200);
    let refused = health("rebind.test").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "HostNotAllowed");
    let upgrade = http
        .get(format!("{}/client/hubs/orders", service.base))
        .header("host", "rebind.test")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), 403);
}
