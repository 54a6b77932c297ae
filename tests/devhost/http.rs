//! HTTP-triggered functions through the stand-in: routing, the request envelope the handler gets,
//! and the response its answer makes, as the Functions host does them (sources in
//! `src/devhost/http`).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::App;

/// A function.json with an HTTP trigger `req` (`route`, `methods` when given) and `http` output
/// `output`.
pub fn http_function(route: Option<&str>, methods: Option<&[&str]>, output: &str) -> Value {
    let mut trigger =
        json!({"type": "httpTrigger", "authLevel": "function", "direction": "in", "name": "req"});
    if let Some(route) = route {
        trigger["route"] = json!(route);
    }
    if let Some(methods) = methods {
        trigger["methods"] = json!(methods);
    }
    json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": output}]})
}

#[tokio::test]
async fn an_http_function_gets_the_request_as_the_host_sends_it_and_answers_the_response() {
    let app = App::start(
        &[(
            "HttpEcho",
            http_function(
                Some("orders/{orderId}/items/{item:int}/{rest?}"),
                Some(&["post", "get"]),
                "res",
            ),
        )],
        json!({}),
        HashMap::new(),
    )
    .await;
    let response = app
        .http(
            Method::POST,
            "/api/orders/o%201/items/7?x=1&x=2&flag&code=secret",
            &[
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("content-type", "application/json"),
            ],
            Some(r#"{"note":"hi"}"#),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-echo"], "yes");
    assert_eq!(response.headers()["content-type"], "application/json");
    let req: Value = response.json().await.unwrap();
    assert_eq!(req["Method"], "POST");
    assert!(
        req["Url"]
            .as_str()
            .unwrap()
            .ends_with("/api/orders/o%201/items/7?x=1&x=2&flag&code=secret"),
        "{req}"
    );
    assert_eq!(
        req["Query"],
        json!({"x": "1,2", "flag": "", "code": "secret"})
    );
    assert_eq!(req["Headers"]["X-Multi"], json!(["a", "b"]));
    assert_eq!(req["Headers"]["Content-Type"], json!(["application/json"]));
    assert_eq!(
        req["Params"],
        json!({"orderId": "o 1", "item": "7", "rest": null})
    );
    assert_eq!(req["Body"], r#"{"note":"hi"}"#);

    let [invocation] = app.invocations().try_into().unwrap();
    let envelope: Value = serde_json::from_str(invocation["raw"].as_str().unwrap()).unwrap();
    let metadata = &envelope["Metadata"];
    assert_eq!(metadata["note"], "\"hi\"", "body members, JSON-encoded");
    assert_eq!(metadata["orderId"], "\"o 1\"");
    assert_eq!(metadata["x"], "\"1,2\"");
    assert!(
        metadata.get("code").is_none(),
        "the key parameter is not binding data"
    );
    assert!(metadata.get("rest").is_none(), "null values are left out");
    assert_eq!(metadata["Query"]["flag"], "");
    assert_eq!(metadata["Headers"]["X-Multi"], "a,b");
    assert_eq!(metadata["sys"]["MethodName"], "HttpEcho");
    assert_eq!(invocation["function"], "HttpEcho");

    // GET without a body: no Body member at all.
    let response = app
        .http(Method::GET, "/api/ORDERS/9/items/1/more/", &[], None)
        .await;
    assert_eq!(response.status(), 201);
    let req: Value = response.json().await.unwrap();
    assert!(req.get("Body").is_none(), "{req}");
    assert_eq!(req["Params"]["rest"], "more");
}

#[tokio::test]
async fn routes_methods_and_the_prefix_decide_which_function_runs() {
    let app = App::start(
        &[
            ("HttpEcho", http_function(None, Some(&["post"]), "res")),
            (
                "HttpObject",
                http_function(Some("items/{id:int}"), None, "res"),
            ),
        ],
        json!({"extensions": {"http": {"routePrefix": "v1"}}}),
        HashMap::new(),
    )
    .await;
    // The default route is the function's name, under the prefix.
    let posted = app.http(Method::POST, "/v1/HttpEcho", &[], None).await;
    assert_eq!(posted.status(), 201);
    // A method the function does not take makes its route not match: 404, not 405.
    for (method, path) in [
        (Method::GET, "/v1/HttpEcho"),
        (Method::POST, "/api/HttpEcho"),
        (Method::GET, "/v1/items/abc"),
        (Method::GET, "/v1/items/1/2"),
        (Method::GET, "/v1/nothing"),
    ] {
        let response = app.http(method.clone(), path, &[], None).await;
        assert_eq!(response.status(), 404, "{method} {path}");
        assert_eq!(response.text().await.unwrap(), "");
    }
    let any_method = app.http(Method::DELETE, "/v1/items/5", &[], None).await;
    assert_eq!(any_method.status(), 202, "no methods: every method");
    assert_eq!(app.invocations().len(), 2);
}

#[tokio::test]
async fn http_outputs_become_responses_as_the_host_reads_them() {
    let mut output_names: Vec<(&str, Value)> =
        ["HttpObject", "HttpMissing", "HttpBadRes", "HttpFails"]
            .into_iter()
            .map(|name| (name, http_function(None, None, "res")))
            .collect();
    output_names.push(("HttpReturn", http_function(None, None, "$return")));
    let app = App::start(&output_names, json!({}), HashMap::new()).await;
    let answer = |status: u16, body: &str| (status, body.to_owned());
    for (function, expected, content_type) in [
        (
            "HttpObject",
            answer(202, "{\n  \"a\": [\n    1\n  ]\n}"),
            Some("text/plain; charset=utf-8"),
        ),
        (
            "HttpMissing",
            answer(200, "{}"),
            Some("text/plain; charset=utf-8"),
        ),
        (
            "HttpReturn",
            answer(202, "returned"),
            Some("text/plain; charset=utf-8"),
        ),
        // An output the host cannot read, and a handler that fails: 500, nothing said.
        ("HttpBadRes", answer(500, ""), None),
        ("HttpFails", answer(500, ""), None),
    ] {
        let response = app
            .http(Method::GET, &format!("/api/{function}"), &[], None)
            .await;
        let got_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let got = (response.status().as_u16(), response.text().await.unwrap());
        assert_eq!(got, expected, "{function}");
        if content_type.is_some() {
            assert_eq!(got_type.as_deref(), content_type, "{function}");
        }
    }
}

#[tokio::test]
async fn a_body_over_the_hosts_limit_is_refused_with_413_before_the_handler_runs() {
    let app = App::start(
        &[("HttpEcho", http_function(None, None, "res"))],
        json!({}),
        HashMap::from([(
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT".to_owned(),
            "10".to_owned(),
        )]),
    )
    .await;
    let refused = app
        .http(Method::POST, "/api/HttpEcho", &[], Some("01234567890"))
        .await;
    assert_eq!(refused.status(), 413);
    assert!(app.invocations().is_empty());
    let taken = app
        .http(Method::POST, "/api/HttpEcho", &[], Some("0123456789"))
        .await;
    assert_eq!(taken.status(), 201);
}
