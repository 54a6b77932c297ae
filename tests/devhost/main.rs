//! The Functions host stand-in does what the real host does (sources in
//! `../shared/reference/functions-host-behaviour.md`): webhook answers, how it reads the handler's
//! answer, what it does to numbers, timeouts, kills and restarts, and which functions it loads.
//!
//! The stand-in runs in-process on port 0 over a function app written per test, whose custom
//! handler is `tests/support/fake_handler.py`: a handler that misbehaves on purpose (the real one
//! never does) and records every invocation it receives.
//!
//! `http` covers HTTP-triggered functions; `webpubsub` the Web PubSub input and output bindings,
//! against a recording receiver standing in for the service's REST API.

mod http;
mod webpubsub;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ordergrid::devhost::FunctionsHost;
use ordergrid::eventgrid::sas::TopicKey;
use ordergrid_testing::receiver::{Receiver, Request};
use ordergrid_testing::{
    eventually, eventually_async, get_json, pid_alive, repo_root, test_python,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(15);

/// A function.json with an Event Grid trigger named `event`, plus `extra` bindings.
fn function(extra: Vec<Value>, many: bool) -> Value {
    let mut trigger = json!({"type": "eventGridTrigger", "name": "event", "direction": "in"});
    if many {
        trigger["cardinality"] = json!("many");
    }
    let mut bindings = vec![trigger];
    bindings.extend(extra);
    json!({ "bindings": bindings })
}

fn output(connection: &str) -> Value {
    json!({"type": "eventGrid", "name": "outputEvents", "direction": "out", "connection": connection})
}

struct App {
    base: String,
    log: PathBuf,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl App {
    /// The stand-in over an app of `functions`, host.json with `host_extra`, and `settings`.
    async fn start(
        functions: &[(&str, Value)],
        host_extra: Value,
        settings: HashMap<String, String>,
    ) -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut host = json!({
            "version": "2.0",
            "customHandler": {"description": {
                "defaultExecutablePath": test_python().display().to_string(),
                "arguments": [repo_root().join("tests/support/fake_handler.py").display().to_string()]
            }}
        });
        for (k, v) in host_extra.as_object().unwrap() {
            host[k] = v.clone();
        }
        std::fs::write(dir.path().join("host.json"), host.to_string()).unwrap();
        for (name, manifest) in functions {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(
                dir.path().join(name).join("function.json"),
                manifest.to_string(),
            )
            .unwrap();
        }
        let log = dir.path().join("invocations.jsonl");
        let mut settings = settings;
        settings.insert("FAKE_HANDLER_LOG".into(), log.display().to_string());
        let host = FunctionsHost::build(dir.path(), settings, 0, Default::default())
            .await
            .unwrap_or_else(|e| panic!("the stand-in did not start: {e:#}"));
        let base = host.base_url();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(host.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        App {
            base,
            log,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// A delivery to `…/runtime/webhooks/eventgrid?<query>`.
    async fn deliver(
        &self,
        method: reqwest::Method,
        query: &str,
        event_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(
                method,
                format!("{}/runtime/webhooks/eventgrid?{query}", self.base),
            )
            .header("content-type", "application/json")
            .body(body);
        if let Some(event_type) = event_type {
            request = request.header("aeg-event-type", event_type);
        }
        request.send().await.unwrap()
    }

    async fn notify(&self, function: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let response = self
            .deliver(
                reqwest::Method::POST,
                &format!("functionName={function}"),
                Some("Notification"),
                body,
            )
            .await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A request to the stand-in's HTTP front.
    async fn http(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, format!("{}{path_and_query}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        request.send().await.unwrap()
    }

    /// The invocations the handler recorded.
    fn invocations(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn status(&self) -> Value {
        get_json(&format!("{}/admin/host/status", self.base)).await
    }

    /// Stops the stand-in (as Ctrl-C does) and returns how it ended.
    async fn stop(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

fn event(id: &str, data: &str) -> String {
    format!(
        r#"{{"id":"{id}","topic":"/t","subject":"orders/1","eventType":"NewOrder","eventTime":"2026-01-01T00:00:00Z","data":{data},"dataVersion":"1.0","metadataVersion":"1"}}"#
    )
}

async fn echo_app() -> App {
    App::start(
        &[("Echo", function(vec![], false))],
        json!({}),
        HashMap::new(),
    )
    .await
}

#[tokio::test]
async fn the_function_is_found_first_by_a_case_insensitive_key_and_an_exact_name() {
    let app = echo_app().await;
    let body = format!("[{}]", event("e1", "{}"));
    for (query, status, message) in [
        ("", 404, "cannot find function: ''"),
        ("functionName=Nope", 404, "cannot find function: 'Nope'"),
        ("functionName=echo", 404, "cannot find function: 'echo'"),
        (
            "functionName=Echo&functionName=Echo",
            404,
            "cannot find function: 'Echo,Echo'",
        ),
        ("functionname=Echo", 202, ""),
        ("FUNCTIONNAME=Echo", 202, ""),
    ] {
        let response = app
            .deliver(
                reqwest::Method::POST,
                query,
                Some("Notification"),
                body.clone(),
            )
            .await;
        assert_eq!(response.status().as_u16(), status, "{query}");
        assert_eq!(response.text().await.unwrap(), message, "{query}");
    }
    // Before the method or headers: even an OPTIONS without a function is a 404.
    let options = app.deliver(reqwest::Method::OPTIONS, "", None, "").await;
    assert_eq!(options.status(), 404);
    assert_eq!(app.invocations().len(), 2);
}

#[tokio::test]
async fn every_method_is_dispatched_on_aeg_event_type() {
    let app = echo_app().await;
    let body = format!("[{}]", event("e1", "{}"));
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = app
            .deliver(
                method.clone(),
                "functionName=Echo",
                Some("notification"),
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 202, "{method}");
    }
    assert_eq!(app.invocations().len(), 3);
    let unsubscribe = app
        .deliver(
            reqwest::Method::POST,
            "functionName=Echo",
            Some("Unsubscribe"),
            "",
        )
        .await;
    assert_eq!(unsubscribe.status(), 202);
    for event_type in [None, Some("Nonsense")] {
        let response = app
            .deliver(
                reqwest::Method::POST,
                "functionName=Echo",
                event_type,
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 400, "{event_type:?}");
        assert_eq!(response.text().await.unwrap(), "");
    }
    assert_eq!(app.invocations().len(), 3);
}

#[tokio::test]
async fn the_validation_handshakes_are_answered_as_the_host_answers_them() {
    let app = echo_app().await;
    let validation = r#"[{"id":"v","topic":"/t","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2026-01-01T00:00:00Z","data":{"validationCode":"abc-123"},"dataVersion":"2","metadataVersion":"1"}]"#;
    let response = app
        .deliver(
            reqwest::Method::POST,
            "functionName=Echo",
            Some("SubscriptionValidation"),
            validation,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8",
        "the extension answers with StringContent"
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"validationResponse": "abc-123"})
    );
    // Without a code the host's handler throws: 500, which Event Grid retries.
    let no_code = app
        .deliver(
            reqwest::Method::POST,
            "functionName=Echo",
            Some("SubscriptionValidation"),
            "[{}]",
        )
        .await;
    assert_eq!(no_code.status(), 500);

    // The CloudEvents handshake echoes Azure's own origins only.
    for (asked, allowed) in [
        (Some("eventgrid.azure.us"), "eventgrid.azure.us"),
        (Some("eventgrid.azure.net"), "eventgrid.azure.net"),
        (Some("evil.example"), "eventgrid.azure.net"),
        (None, "eventgrid.azure.net"),
    ] {
        let mut request = app.client.request(
            reqwest::Method::OPTIONS,
            format!("{}/runtime/webhooks/eventgrid?functionName=Echo", app.base),
        );
        if let Some(origin) = asked {
            request = request.header("webhook-request-origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["webhook-allowed-origin"],
            allowed,
            "{asked:?}"
        );
    }
    assert!(app.invocations().is_empty());
}

#[tokio::test]
async fn a_body_the_host_cannot_read_fails_with_500_so_event_grid_retries_it() {
    let app = echo_app().await;
    let too_deep = format!(
        "[{}]",
        event("deep", &format!("{}1{}", "[".repeat(63), "]".repeat(63)))
    );
    for body in ["not json", "42", "\"text\"", "null", too_deep.as_str()] {
        let (status, message) = app.notify("Echo", body.to_owned()).await;
        assert_eq!(status, 500, "{body:.40}: {message}");
    }
    assert!(app.invocations().is_empty());
    // One object is a delivery of one.
    let (status, _) = app.notify("Echo", event("single", "{}")).await;
    assert_eq!(status, 202);
    assert_eq!(app.invocations().len(), 1);
}

#[tokio::test]
async fn numbers_reach_the_handler_as_the_hosts_json_library_writes_them() {
    let app = echo_app().await;
    let data = r#"{"value":150.00,"big":12345678901234567890123,"huge":1e309,"tiny":0.00001,"exact":"150.00","list":[1.0,-0]}"#;
    let (status, message) = app.notify("Echo", format!("[{}]", event("n1", data))).await;
    assert_eq!(status, 202, "{message}");
    let [invocation] = app.invocations().try_into().unwrap();
    let raw = invocation["raw"].as_str().unwrap();
    let expected = r#"{"value":150.0,"big":12345678901234567890123,"huge":"Infinity","tiny":1E-05,"exact":"150.00","list":[1.0,0]}"#;
    assert!(
        raw.contains(&format!(r#""data":{expected}"#)),
        "the event's data as the host writes it: {raw}"
    );
    let envelope: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        envelope["Data"]["event"]["id"], "n1",
        "the event is an object"
    );
    assert_eq!(envelope["Metadata"]["data"]["exact"], "150.00");
    assert_eq!(envelope["Metadata"]["sys"]["MethodName"], "Echo");
    assert!(
        envelope["Metadata"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k == "data" || k == "sys")
    );
    let headers = &invocation["headers"];
    assert!(
        headers["x-azure-functions-invocationid"].is_string(),
        "{headers}"
    );
    assert!(
        headers["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("Azure-Functions-Host/"),
        "{headers}"
    );
}

#[tokio::test]
async fn answers_the_host_would_not_accept_fail_the_invocation_at_once() {
    let functions: Vec<(&str, Value)> = ["TextPlain", "Empty", "Null", "BadLogs", "OutputsArray"]
        .into_iter()
        .map(|name| (name, function(vec![], false)))
        .collect();
    let app = App::start(&functions, json!({}), HashMap::new()).await;
    for (name, _) in &functions {
        let started = std::time::Instant::now();
        let (status, message) = app.notify(name, format!("[{}]", event(name, "{}"))).await;
        assert_eq!(status, 500, "{name}");
        assert_eq!(
            message,
            format!("Exception while executing function: Functions.{name}")
        );
        // The real host would leave Empty and Null hanging until functionTimeout (30 minutes).
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn outputs_are_published_only_under_the_exact_binding_name() {
    // What the output binding publishes arrives here.
    let topic = Receiver::start().await;
    let url = topic.url("/orders/api/events");
    let settings = HashMap::from([
        ("OrdersTopic__topicEndpointUri".to_owned(), url),
        (
            "OrdersTopic__topicKey".to_owned(),
            TopicKey::generate().expose_secret().to_owned(),
        ),
    ]);
    let app = App::start(
        &[
            ("Emit", function(vec![output("OrdersTopic")], false)),
            ("WrongCase", function(vec![output("OrdersTopic")], false)),
        ],
        json!({}),
        settings,
    )
    .await;
    let (status, _) = app
        .notify("WrongCase", format!("[{}]", event("w", "{}")))
        .await;
    assert_eq!(
        status, 202,
        "the host drops an output it cannot match, silently"
    );
    let (status, message) = app.notify("Emit", format!("[{}]", event("e", "{}"))).await;
    assert_eq!(status, 202, "{message}");
    let published = eventually("the output to be published", PATIENCE, || {
        let got: Vec<Value> = topic
            .notifications("/orders/api/events")
            .iter()
            .map(Request::json)
            .collect();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(published.len(), 1, "only Emit's output: {published:?}");
    assert_eq!(published[0][0]["id"], "emitted-1");
}

#[tokio::test]
async fn a_function_whose_output_binding_has_no_setting_does_not_load() {
    let app = App::start(
        &[
            ("Echo", function(vec![], false)),
            ("Emit", function(vec![output("MissingTopic")], false)),
        ],
        json!({}),
        HashMap::new(),
    )
    .await;
    let (status, message) = app.notify("Emit", format!("[{}]", event("e", "{}"))).await;
    assert_eq!(
        (status, message.as_str()),
        (404, "cannot find function: 'Emit'")
    );
    let (status, _) = app.notify("Echo", format!("[{}]", event("e", "{}"))).await;
    assert_eq!(status, 202, "the other functions load");
    let status = app.status().await;
    assert_eq!(status["functions"], json!(["Echo"]));
    assert!(
        status["notLoaded"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("'MissingTopic__topicEndpointUri' setting does not exist"),
        "{status}"
    );
}

#[tokio::test]
async fn cardinality_many_gets_the_whole_delivery_in_one_invocation() {
    let app = App::start(
        &[("Batch", function(vec![], true))],
        json!({}),
        HashMap::new(),
    )
    .await;
    let body = format!("[{},{}]", event("b1", r#"{"n":1}"#), event("b2", "2.50"));
    let (status, message) = app.notify("Batch", body).await;
    assert_eq!(status, 202, "{message}");
    let [invocation] = app.invocations().try_into().unwrap();
    let envelope: Value = serde_json::from_str(invocation["raw"].as_str().unwrap()).unwrap();
    // The host cannot make an object of an array: both arrive as JSON text in a string.
    let events: Vec<Value> =
        serde_json::from_str(envelope["Data"]["event"].as_str().unwrap()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["id"], "b2");
    assert_eq!(envelope["Metadata"]["data"], r#"[{"n":1},2.5]"#);
}

#[tokio::test]
async fn a_hung_invocation_times_out_at_function_timeout_and_the_handler_is_restarted() {
    let mut app = App::start(
        &[
            ("Hang", function(vec![], false)),
            ("Echo", function(vec![], false)),
        ],
        json!({"functionTimeout": "00:00:01"}),
        HashMap::new(),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, message) = app.notify("Hang", format!("[{}]", event("h", "{}"))).await;
    assert_eq!(status, 500);
    assert_eq!(
        message,
        "Timeout value of 00:00:01 was exceeded by function: Functions.Hang"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    let first_pid = app.invocations()[0]["pid"].as_u64().unwrap();
    eventually_async("the handler to be restarted", PATIENCE, async || {
        let status = app.status().await;
        (status["handlerRestarts"] == 1 && status["handler"]["state"] == "ready").then_some(())
    })
    .await;
    assert!(!pid_alive(first_pid), "the hung handler was killed");
    let (status, _) = app
        .notify("Echo", format!("[{}]", event("after", "{}")))
        .await;
    assert_eq!(status, 202, "the restarted handler serves");
    assert_ne!(app.invocations()[1]["pid"], first_pid);
    assert!(
        app.stop().await.is_ok(),
        "a timeout is not an error that stops the app"
    );
}

#[tokio::test]
async fn the_handler_is_killed_not_asked_to_stop() {
    let mut app = echo_app().await;
    let (status, _) = app.notify("Echo", format!("[{}]", event("e", "{}"))).await;
    assert_eq!(status, 202);
    let pid = app.invocations()[0]["pid"].as_u64().unwrap();
    let log = app.log.clone();
    app.stop().await.unwrap();
    eventually("the handler to be gone", PATIENCE, || {
        (!pid_alive(pid)).then_some(())
    })
    .await;
    let recorded = std::fs::read_to_string(log).unwrap();
    assert!(
        !recorded.contains("SIGTERM"),
        "the host kills outright: {recorded}"
    );
}

#[tokio::test]
async fn the_third_handler_error_within_the_window_stops_the_app() {
    let mut app = App::start(
        &[("Crash", function(vec![], false))],
        json!({}),
        HashMap::new(),
    )
    .await;
    for attempt in 1..=2 {
        let (status, _) = app.notify("Crash", format!("[{}]", event("c", "{}"))).await;
        assert_eq!(status, 500, "attempt {attempt}");
        eventually_async(&format!("restart {attempt}"), PATIENCE, async || {
            let status = app.status().await;
            (status["handlerRestarts"] == attempt && status["handler"]["state"] == "ready")
                .then_some(())
        })
        .await;
    }
    let (status, _) = app.notify("Crash", format!("[{}]", event("c", "{}"))).await;
    assert_eq!(status, 500);
    let result = tokio::time::timeout(PATIENCE, app.task.take().unwrap())
        .await
        .expect("the stand-in stops on its own")
        .unwrap();
    let error = format!("{:#}", result.unwrap_err());
    assert!(
        error.contains("3 handler errors within 30 minutes"),
        "{error}"
    );
}
