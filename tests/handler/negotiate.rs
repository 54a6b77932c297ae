//! negotiate: a client URL whose token joins exactly the group its holder may see and carries no
//! roles; the board for operators only; bad input answered 400 with a clear JSON error; nothing
//! cacheable.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use ordergrid::functions::{CLIENT_TOKEN_MINUTES, ClientTokens, Operators};
use ordergrid::invocation::http::HttpResponseData;
use ordergrid::store::MemoryStore;
use ordergrid::webpubsub::token::{self, AccessKey, Claims};
use ordergrid::webpubsub::{DEFAULT_CONNECTION_SETTING, WebPubSubConnection};
use serde_json::{Value, json};

use crate::events::http_envelope;
use crate::helpers::{FEED_KEY, TestApp, body_json, spawn_app_where, spawn_feed_app};

const AUDIENCE: &str = "http://127.0.0.1:7090/client/hubs/orders";

async fn negotiate(app: &TestApp, query: Value, headers: Value) -> HttpResponseData {
    let url = "http://localhost:7071/api/negotiate";
    app.invoke(
        "negotiate",
        &http_envelope("negotiate", url, query, headers, json!({})),
    )
    .await
    .res()
}

/// The token in a 200 answer's URL, checked against the key: its claims.
fn claims_of(res: &HttpResponseData, base: &str) -> Claims {
    assert_eq!(res.status_code, 200, "{}", res.body);
    let url = body_json(res)["url"].as_str().unwrap().to_owned();
    let token = url
        .strip_prefix(&format!("{base}?access_token="))
        .unwrap_or_else(|| panic!("{url} is not {base}?access_token=…"));
    token::verify(
        token,
        &AccessKey::new(FEED_KEY),
        token::now_seconds(),
        |aud| aud == AUDIENCE,
        AUDIENCE,
    )
    .unwrap()
}

fn assert_no_store(res: &HttpResponseData) {
    assert_eq!(res.header("Cache-Control"), Some("no-store"), "{res:?}");
    assert_eq!(res.header("X-Content-Type-Options"), Some("nosniff"));
}

#[tokio::test]
async fn an_order_s_token_joins_only_that_order_s_group_and_has_no_roles() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let res = negotiate(&app, json!({"orderId": "12345"}), json!({})).await;
    assert_no_store(&res);
    assert!(
        res.header("Content-Type")
            .unwrap()
            .starts_with("application/json")
    );
    let claims = claims_of(&res, "ws://127.0.0.1:7090/client/hubs/orders");
    assert_eq!(claims.groups.values(), ["order-12345"]);
    assert_eq!(
        claims.role.values(),
        Vec::<String>::new(),
        "no roles: it can only receive"
    );
    assert_eq!(claims.sub, None);
    assert_eq!(
        claims.exp - claims.iat.unwrap(),
        i64::from(CLIENT_TOKEN_MINUTES) * 60,
        "a short-lived token: it is only needed to connect"
    );
    assert!(!res.body.contains("operators"));
}

#[tokio::test]
async fn the_binding_s_base_url_is_where_the_client_connects() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let mut envelope = http_envelope(
        "negotiate",
        "http://localhost:7071/api/negotiate?orderId=7",
        json!({"orderId": "7"}),
        json!({}),
        json!({}),
    );
    envelope["Data"]["connection"] = json!({
        "baseUrl": "ws://localhost:7090/client/hubs/orders",
        "url": "ws://localhost:7090/client/hubs/orders?access_token=unscoped",
        "accessToken": "unscoped"
    });
    let res = app.invoke("negotiate", &envelope).await.res();
    let claims = claims_of(&res, "ws://localhost:7090/client/hubs/orders");
    assert_eq!(claims.groups.values(), ["order-7"]);
    assert!(
        !res.body.contains("unscoped"),
        "the binding's unscoped token is never handed out"
    );
}

#[tokio::test]
async fn bad_order_ids_and_missing_or_ambiguous_scopes_are_refused_with_400() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let cases = [
        (
            json!({"orderId": "a/b"}),
            "InvalidOrderId",
            "orderId \"a/b\" contains '/'",
        ),
        (
            json!({"orderId": ""}),
            "InvalidOrderId",
            "orderId \"\" is empty",
        ),
        (
            json!({"orderId": "x".repeat(129)}),
            "InvalidOrderId",
            "129 characters long",
        ),
        (json!({}), "MissingScope", "pass ?orderId=<id>"),
        (
            json!({"orderId": "1", "board": "true"}),
            "AmbiguousScope",
            "not both",
        ),
        (json!({"board": "yes"}), "InvalidBoard", "only board=true"),
    ];
    for (query, code, message) in cases {
        let res = negotiate(&app, query.clone(), json!({})).await;
        assert_eq!(res.status_code, 400, "{query}: {}", res.body);
        assert_no_store(&res);
        let body = body_json(&res);
        assert_eq!(body["error"]["code"], code, "{query}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{query}: {body}"
        );
        assert!(!res.body.contains("access_token"));
    }
}

#[tokio::test]
async fn the_board_is_for_named_operators_only() {
    let operators = Operators::parse("ops@shop.example, lead@shop.example").unwrap();
    let (app, _) = spawn_feed_app(operators).await;
    let board = json!({"board": "true"});

    let anonymous = negotiate(&app, board.clone(), json!({})).await;
    assert_eq!(anonymous.status_code, 403, "{}", anonymous.body);
    assert_no_store(&anonymous);
    assert_eq!(body_json(&anonymous)["error"]["code"], "Forbidden");
    assert!(
        anonymous.body.contains("ORDERGRID_OPERATORS"),
        "{}",
        anonymous.body
    );

    let customer = negotiate(
        &app,
        board.clone(),
        json!({"X-MS-CLIENT-PRINCIPAL-NAME": ["customer@example.com"]}),
    )
    .await;
    assert_eq!(customer.status_code, 403, "{}", customer.body);
    assert!(!customer.body.contains("access_token"));

    let operator = negotiate(
        &app,
        board.clone(),
        json!({"x-ms-client-principal-name": ["OPS@shop.example"]}),
    )
    .await;
    assert_no_store(&operator);
    let claims = claims_of(&operator, "ws://127.0.0.1:7090/client/hubs/orders");
    assert_eq!(claims.groups.values(), ["operators"]);
    assert_eq!(claims.role.values(), Vec::<String>::new());

    // An operator following one order gets that order only, like anyone.
    let one = negotiate(
        &app,
        json!({"orderId": "5"}),
        json!({"X-MS-CLIENT-PRINCIPAL-NAME": ["ops@shop.example"]}),
    )
    .await;
    assert_eq!(
        claims_of(&one, "ws://127.0.0.1:7090/client/hubs/orders")
            .groups
            .values(),
        ["order-5"]
    );
}

#[tokio::test]
async fn with_no_operators_set_nobody_gets_the_board_and_with_a_star_anyone_does() {
    let (nobody, _) = spawn_feed_app(Operators::default()).await;
    let headers = json!({"X-MS-CLIENT-PRINCIPAL-NAME": ["ops@shop.example"]});
    let res = negotiate(&nobody, json!({"board": "true"}), headers).await;
    assert_eq!(res.status_code, 403, "{}", res.body);

    let (anyone, _) = spawn_feed_app(Operators::Anyone).await;
    let res = negotiate(&anyone, json!({"board": "TRUE"}), json!({})).await;
    assert_eq!(
        claims_of(&res, "ws://127.0.0.1:7090/client/hubs/orders")
            .groups
            .values(),
        ["operators"]
    );
}

#[tokio::test]
async fn without_web_pubsub_negotiate_answers_503_naming_the_setting() {
    let app = spawn_app_where(
        Arc::new(MemoryStore::new()),
        Arc::new(ordergrid::email::MemoryTransport::new()),
        |_| {},
    )
    .await;
    let res = negotiate(&app, json!({"orderId": "1"}), json!({})).await;
    assert_eq!(res.status_code, 503, "{}", res.body);
    assert_no_store(&res);
    assert_eq!(body_json(&res)["error"]["code"], "NotConfigured");
    assert!(
        res.body.contains(DEFAULT_CONNECTION_SETTING),
        "{}",
        res.body
    );
}

/// A Microsoft Entra ID credential that hands out a fixed token.
#[derive(Debug)]
struct FixedCredential;

#[async_trait]
impl TokenCredential for FixedCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://webpubsub.azure.com/.default"]);
        Ok(AccessToken::new(
            "entra-token".to_owned(),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// With an identity-based connection the token comes from the service's `:generateToken`, asked
/// for the order's group, no role, no user and the short lifetime. The service side is a
/// stand-in answering as the REST reference's example does (`{"token": "..."}`): the local Web
/// PubSub service is not part of this test binary.
#[tokio::test]
async fn with_an_identity_the_token_comes_from_the_token_api_scoped_the_same_way() {
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let recorder = seen.clone();
    let service = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let recorder = recorder.clone();
        async move {
            let auth = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            recorder.lock().unwrap().push((
                format!("{} {}", request.method(), request.uri().path()),
                request.uri().query().unwrap_or_default().to_owned(),
                auth,
            ));
            axum::Json(json!({"token": "token-from-the-service"}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, service).await });

    let tokens = identity_tokens(port);
    let app = spawn_app_where(
        Arc::new(MemoryStore::new()),
        Arc::new(ordergrid::email::MemoryTransport::new()),
        |services| {
            services.client_tokens = Some(tokens);
            services.operators = Operators::Anyone;
        },
    )
    .await;
    let res = negotiate(&app, json!({"orderId": "42"}), json!({})).await;
    assert_eq!(res.status_code, 200, "{}", res.body);
    assert_eq!(
        body_json(&res)["url"],
        format!("ws://127.0.0.1:{port}/client/hubs/orders?access_token=token-from-the-service")
    );
    let seen = seen.lock().unwrap().clone();
    let [(route, query, auth)] = seen.as_slice() else {
        panic!("one request to the token API expected: {seen:?}");
    };
    assert_eq!(route, "POST /api/hubs/orders/:generateToken");
    assert_eq!(auth, "Bearer entra-token");
    let mut pairs: Vec<&str> = query.split('&').collect();
    pairs.sort_unstable();
    assert_eq!(
        pairs,
        [
            "api-version=2024-12-01",
            "group=order-42",
            &*format!("minutesToExpire={CLIENT_TOKEN_MINUTES}")
        ]
    );

    // The board too; and a token API that fails is a 503 for the page, not a failed invocation.
    let board = negotiate(&app, json!({"board": "true"}), json!({})).await;
    assert_eq!(board.status_code, 200, "{}", board.body);
}

#[tokio::test]
async fn a_token_api_that_cannot_be_reached_is_a_503_with_no_detail_for_the_browser() {
    // A port nothing listens on: bind one, then close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let tokens = identity_tokens(port);
    let app = spawn_app_where(
        Arc::new(MemoryStore::new()),
        Arc::new(ordergrid::email::MemoryTransport::new()),
        |services| services.client_tokens = Some(tokens),
    )
    .await;
    let res = negotiate(&app, json!({"orderId": "42"}), json!({})).await;
    assert_eq!(res.status_code, 503, "{}", res.body);
    assert_eq!(body_json(&res)["error"]["code"], "ServiceUnavailable");
    assert!(
        !res.body.contains("127.0.0.1"),
        "the cause stays in the log: {}",
        res.body
    );
}

/// Tokens from the token API of a service at `port`, reached with a managed identity's (fixed)
/// Entra token, as `WebPubSubConnectionString__serviceUri` sets it up on Azure.
fn identity_tokens(port: u16) -> ClientTokens {
    let settings = [(
        format!("{DEFAULT_CONNECTION_SETTING}__serviceUri"),
        format!("http://127.0.0.1:{port}"),
    )]
    .into();
    let connection = WebPubSubConnection::from_settings(&settings, DEFAULT_CONNECTION_SETTING)
        .unwrap()
        .unwrap();
    ClientTokens::with_credential(connection, Some(Arc::new(FixedCredential))).unwrap()
}
