//! A real webhook receiver on `127.0.0.1:0` whose answers a test switches at run time: the
//! subscriber of the emulator's tests, the observer of the stack's, the topic the host stand-in's
//! output binding publishes to.
//!
//! Every request is recorded (method, path and query, headers, body, arrival time, and what it
//! was answered). Answers are configured per path:
//! - notifications (anything that is not a handshake) take the next reply of the path's queue,
//!   then its standing reply: a status code, or [`Reply::Hang`] (answer only after far longer than
//!   any delivery timeout a test sets);
//! - the Event Grid validation event (`aeg-event-type: SubscriptionValidation`) and the
//!   CloudEvents abuse-protection `OPTIONS` are answered per [`Handshake`].

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How a notification is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// A redirect: this status with `Location: <the path>` on the same server.
    Redirect(u16, &'static str),
    /// Answer 200 only after [`HANG`]: the emulator's delivery timeout fires first.
    Hang,
}

/// How long a hanging answer takes; tests set delivery timeouts far below it.
pub const HANG: Duration = Duration::from_secs(20);

/// How the validation handshakes are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// `{"validationResponse": <code>}`; `WebHook-Allowed-Origin: <the origin asked for>`.
    Answer,
    /// A wrong code; an origin other than the one asked for.
    Wrong,
    /// 200 without a code (Event Grid's manual validation); 200 without `WebHook-Allowed-Origin`.
    WithoutCode,
    /// 404 to the validation event; 405 to `OPTIONS` (what a target that does not handle it
    /// answers).
    Refuse,
    /// No answer at all (until [`HANG`] has passed).
    NoAnswer,
}

#[derive(Debug, Clone)]
struct Route {
    queue: VecDeque<Reply>,
    then: Reply,
    handshake: Handshake,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            then: Reply::Status(200),
            handshake: Handshake::Answer,
        }
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query.
    pub path: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The same moment on the wall clock, to compare with times the emulator reports.
    pub received: time::OffsetDateTime,
    /// The status it was answered with; `None` for a hang.
    pub answered: Option<u16>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.text()))
    }

    /// The events of a notification: the array's elements, or the one CloudEvent object.
    pub fn events(&self) -> Vec<Value> {
        match self.json() {
            Value::Array(events) => events,
            one => vec![one],
        }
    }

    /// The `id`s of the events.
    pub fn ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn delivery_count(&self) -> u32 {
        self.header("aeg-delivery-count")
            .unwrap_or_else(|| panic!("no aeg-delivery-count on {} {}", self.method, self.uri))
            .parse()
            .expect("aeg-delivery-count is not a number")
    }

    pub fn is_notification(&self) -> bool {
        self.method == Method::POST
            && self.header("aeg-event-type") != Some("SubscriptionValidation")
    }

    /// Answered 200-204, which the emulator counts as delivered.
    pub fn succeeded(&self) -> bool {
        self.answered.is_some_and(|s| (200..=204).contains(&s))
    }
}

#[derive(Default)]
struct Inner {
    routes: Mutex<HashMap<String, Route>>,
    log: Mutex<Vec<Request>>,
}

pub struct Receiver {
    base: String,
    inner: Arc<Inner>,
}

impl Receiver {
    /// Starts a receiver that answers 200 to everything and every handshake correctly.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = inner.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, method, uri, headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, inner }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn route<T>(&self, path: &str, change: impl FnOnce(&mut Route) -> T) -> T {
        let mut routes = self.inner.routes.lock().unwrap();
        change(routes.entry(path.to_owned()).or_default())
    }

    /// Notifications to `path` get `first`, one each, then `then` for ever.
    pub fn reply(&self, path: &str, first: impl IntoIterator<Item = Reply>, then: Reply) {
        self.route(path, |r| {
            r.queue = first.into_iter().collect();
            r.then = then;
        });
    }

    /// Notifications to `path` get `reply` from now on.
    pub fn always(&self, path: &str, reply: Reply) {
        self.reply(path, [], reply);
    }

    pub fn handshake(&self, path: &str, handshake: Handshake) {
        self.route(path, |r| r.handshake = handshake);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Every request to `path`, handshakes included, in arrival order.
    pub fn to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The notifications (not handshakes) to `path`, in arrival order.
    pub fn notifications(&self, path: &str) -> Vec<Request> {
        self.to(path)
            .into_iter()
            .filter(Request::is_notification)
            .collect()
    }

    /// The validation events POSTed to `path`.
    pub fn validations(&self, path: &str) -> Vec<Request> {
        self.to(path)
            .into_iter()
            .filter(|r| r.header("aeg-event-type") == Some("SubscriptionValidation"))
            .collect()
    }

    /// The events of notifications to `path` that were answered with success.
    pub fn delivered(&self, path: &str) -> Vec<Value> {
        self.notifications(path)
            .iter()
            .filter(|r| r.succeeded())
            .flat_map(Request::events)
            .collect()
    }

    /// The ids of [`Receiver::delivered`] events, sorted.
    pub fn delivered_ids(&self, path: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .delivered(path)
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

async fn handle(
    inner: &Inner,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let received = time::OffsetDateTime::now_utc();
    let path = uri.path().to_owned();
    let route = inner
        .routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or_default();
    let is_validation = headers
        .get("aeg-event-type")
        .is_some_and(|v| v == "SubscriptionValidation");
    let (answered, response) =
        if route.handshake == Handshake::NoAnswer && (method == Method::OPTIONS || is_validation) {
            (None, StatusCode::OK.into_response())
        } else if method == Method::OPTIONS {
            options_answer(route.handshake, &headers)
        } else if is_validation {
            validation_answer(route.handshake, &body)
        } else {
            let reply = {
                let mut routes = inner.routes.lock().unwrap();
                let route = routes.entry(path.clone()).or_default();
                route.queue.pop_front().unwrap_or(route.then)
            };
            match reply {
                Reply::Status(code) => (Some(code), status(code).into_response()),
                Reply::Redirect(code, to) => (
                    Some(code),
                    (status(code), [(axum::http::header::LOCATION, to)]).into_response(),
                ),
                Reply::Hang => (None, StatusCode::OK.into_response()),
            }
        };
    inner.log.lock().unwrap().push(Request {
        method,
        path,
        uri: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers,
        body,
        at,
        received,
        answered,
    });
    if answered.is_none() {
        tokio::time::sleep(HANG).await;
    }
    response
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

fn options_answer(handshake: Handshake, headers: &HeaderMap) -> (Option<u16>, Response) {
    let origin = headers
        .get("webhook-request-origin")
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    match handshake {
        Handshake::Answer => (
            Some(200),
            (
                StatusCode::OK,
                [
                    ("webhook-allowed-origin", origin),
                    ("allow", "POST".parse().unwrap()),
                ],
            )
                .into_response(),
        ),
        Handshake::Wrong => (
            Some(200),
            (
                StatusCode::OK,
                [("webhook-allowed-origin", "attacker.example")],
            )
                .into_response(),
        ),
        Handshake::WithoutCode => (Some(200), StatusCode::OK.into_response()),
        Handshake::Refuse => (Some(405), StatusCode::METHOD_NOT_ALLOWED.into_response()),
        Handshake::NoAnswer => unreachable!("answered by not answering"),
    }
}

/// The answer that completes Event Grid's validation handshake: `{"validationResponse": <the
/// validationCode of the SubscriptionValidationEvent in body>}`.
pub fn validation_response(body: &[u8]) -> Response {
    let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = event[0]["data"]["validationCode"].clone();
    axum::Json(json!({"validationResponse": code})).into_response()
}

fn validation_answer(handshake: Handshake, body: &[u8]) -> (Option<u16>, Response) {
    match handshake {
        Handshake::Answer => (Some(200), validation_response(body)),
        Handshake::Wrong => (
            Some(200),
            axum::Json(json!({"validationResponse": "not-the-code"})).into_response(),
        ),
        Handshake::WithoutCode => (Some(200), StatusCode::OK.into_response()),
        Handshake::Refuse => (Some(404), StatusCode::NOT_FOUND.into_response()),
        Handshake::NoAnswer => unreachable!("answered by not answering"),
    }
}
