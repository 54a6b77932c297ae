//! One delivery attempt over HTTP: the request Event Grid would send, and what came back.
//!
//! Requests carry Azure's headers: `aeg-event-type: Notification`, `aeg-subscription-name`
//! (upper case, as Azure writes subscription names in dead-letter paths and samples show),
//! `aeg-delivery-count` (attempts made before this one, so 0 on the first, as observed from
//! Azure), `aeg-data-version` and `aeg-metadata-version`, plus the subscription's custom
//! delivery properties. Bodies follow the delivery schema:
//! - Event Grid schema: a JSON array, even for one event;
//! - CloudEvents: one event as `application/cloudevents+json`, a batch as
//!   `application/cloudevents-batch+json` array, with `Origin: eventgrid.azure.net`.
//!
//! Redirects are not followed: a 3xx answer is a failed attempt (see [`Sender::new`]).
//!
//! Event Grid input is converted to CloudEvents when a subscription asks for it
//! (`id`, `source` = topic, `subject`, `type` = eventType, `time` = eventTime, `data`, and
//! `dataversion` as an extension attribute, as Azure's CloudEvents dead-letter sample shows).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::retry::Failure;
use crate::emulator::event::{Event, EventBuilder, member};
use crate::emulator::spool::StoredEvent;
use crate::emulator::subscriptions::{DeliveryAttribute, Destination, Subscription};
use crate::eventgrid::{Schema, protocol};
use crate::json::{Json, JsonError};

pub const CONTENT_TYPE_EVENTGRID: &str = "application/json; charset=utf-8";
pub const CONTENT_TYPE_CLOUDEVENT: &str = "application/cloudevents+json; charset=utf-8";
pub const CONTENT_TYPE_CLOUDEVENT_BATCH: &str = "application/cloudevents-batch+json; charset=utf-8";
pub const ORIGIN: &str = "eventgrid.azure.net";

/// Where a subscription's deliveries go, parsed once for all its requests: parsing the URL of
/// every request was 2.6% of the emulator's CPU (BENCHMARKS.md, issue 15). A URL the HTTP
/// client cannot parse is kept as text and fails each attempt as it did when every request
/// parsed it.
#[derive(Debug, Clone)]
pub struct Endpoint(Arc<Parsed>);

#[derive(Debug)]
struct Parsed {
    url: Result<reqwest::Url, Arc<str>>,
    /// For a plain-HTTP URL: the same, as hyper takes it (see [`Sender`]).
    plain: Option<hyper::Uri>,
}

impl Endpoint {
    pub fn of(subscription: &Subscription, functions_base_url: &str) -> Self {
        let text = destination_url(subscription, functions_base_url);
        let url = reqwest::Url::parse(&text);
        let plain = url.as_ref().ok().and_then(plain_uri);
        Self(Arc::new(Parsed {
            url: url.map_err(|_| text.into()),
            plain,
        }))
    }
}

/// `url` as hyper takes it, for the plain-HTTP client: an `http` URL without credentials (those
/// stay with reqwest, which sends them as basic authorization).
fn plain_uri(url: &reqwest::Url) -> Option<hyper::Uri> {
    let plain = url.scheme() == "http" && url.username().is_empty() && url.password().is_none();
    plain.then(|| url.as_str().parse().ok()).flatten()
}

/// An HTTP request ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: Endpoint,
    /// Event Grid's own headers, built from constants without parsing a name.
    pub headers: HeaderMap,
    /// The subscription's delivery attributes (names checked when the subscriptions file was
    /// read, a dynamic value when it is sent: one a header cannot carry fails the attempt).
    pub attributes: Vec<(String, String)>,
    pub body: Bytes,
}

impl Outgoing {
    /// A header's value, whether Event Grid's or a delivery attribute (names ignore case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .or_else(|| {
                self.attributes
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.as_str())
            })
    }
}

/// Where a subscription's deliveries go.
pub fn destination_url(subscription: &Subscription, functions_base_url: &str) -> String {
    match &subscription.destination {
        Destination::WebHook { endpoint_url } => endpoint_url.clone(),
        Destination::AzureFunction { function_name } => format!(
            "{}/runtime/webhooks/eventgrid?functionName={function_name}",
            functions_base_url.trim_end_matches('/')
        ),
    }
}

/// Builds the notification for `events` (as stored: JSON in the topic's input schema). Event
/// bodies are passed through byte for byte unless the schema has to be converted; only a
/// conversion or a dynamic delivery property needs the parsed event, which events read back from
/// disk get by parsing their body here.
pub fn notification(
    subscription: &Subscription,
    input_schema: Schema,
    events: &[&StoredEvent],
    previous_attempts: u32,
    endpoint: &Endpoint,
) -> Result<Outgoing, JsonError> {
    let mut headers = HeaderMap::with_capacity(8);
    let mut set = |name: &'static str, value: HeaderValue| {
        headers.insert(HeaderName::from_static(name), value);
    };
    set(
        protocol::EVENT_TYPE,
        HeaderValue::from_static(protocol::NOTIFICATION),
    );
    // A subscription's name is letters, digits and hyphens (checked when the file is read).
    if let Ok(name) = HeaderValue::try_from(subscription.name.upper()) {
        set(protocol::SUBSCRIPTION_NAME, name);
    }
    set(
        protocol::DELIVERY_COUNT,
        HeaderValue::from(previous_attempts),
    );
    let convert =
        subscription.delivery_schema == Schema::CloudEvents && input_schema == Schema::EventGrid;
    let parsed: Vec<Arc<Event>> = if convert || !subscription.delivery_attributes.is_empty() {
        events.iter().map(|e| e.event.clone()).collect()
    } else {
        Vec::new()
    };
    let body = match subscription.delivery_schema {
        Schema::EventGrid => {
            set(
                "content-type",
                HeaderValue::from_static(CONTENT_TYPE_EVENTGRID),
            );
            let data_version = events
                .first()
                .and_then(|e| e.event.header.data_version.as_deref())
                .unwrap_or("");
            // A stored header came from a JSON string: one a header cannot carry goes out empty.
            set(
                protocol::DATA_VERSION,
                HeaderValue::from_str(data_version).unwrap_or(HeaderValue::from_static("")),
            );
            set(protocol::METADATA_VERSION, HeaderValue::from_static("1"));
            json_array(events.iter().map(|e| &e.event.body[..]))
        }
        Schema::CloudEvents => {
            set(protocol::METADATA_VERSION, HeaderValue::from_static("1.0"));
            set("origin", HeaderValue::from_static(ORIGIN));
            let converted: Vec<Bytes> = if convert {
                parsed
                    .iter()
                    .map(|e| to_cloud_event(e).map(Bytes::from))
                    .collect::<Result<_, _>>()?
            } else {
                events.iter().map(|e| e.event.body.clone()).collect()
            };
            if converted.len() == 1 {
                set(
                    "content-type",
                    HeaderValue::from_static(CONTENT_TYPE_CLOUDEVENT),
                );
                converted.into_iter().next().unwrap_or_default()
            } else {
                set(
                    "content-type",
                    HeaderValue::from_static(CONTENT_TYPE_CLOUDEVENT_BATCH),
                );
                json_array(converted.iter().map(|b| &b[..]))
            }
        }
    };
    let mut attributes = Vec::new();
    for attribute in &subscription.delivery_attributes {
        match attribute {
            DeliveryAttribute::Static { name, value, .. } => {
                attributes.push((name.clone(), value.clone()))
            }
            DeliveryAttribute::Dynamic { name, source_field } => {
                if let Some(first) = parsed.first()
                    && let Some(value) = lookup(first.tree()?, source_field)
                {
                    attributes.push((name.clone(), value));
                }
            }
        }
    }
    Ok(Outgoing {
        url: endpoint.clone(),
        headers,
        attributes,
        body,
    })
}

/// `[a,b,c]` from JSON texts, without re-serializing them.
fn json_array<'a>(items: impl Iterator<Item = &'a [u8]>) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(item);
    }
    buf.put_u8(b']');
    buf.freeze()
}

/// A dynamic delivery property's value: a string, number or boolean at a dotted path (names
/// matched as filters match them). Numbers are given as sent.
fn lookup(event: &Json, path: &str) -> Option<String> {
    let value = path
        .split('.')
        .try_fold(event, |value, segment| value.get(segment))?;
    match value {
        Json::String(s) => Some(s.to_string()),
        Json::Number(n) => Some(n.as_str().to_owned()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps an Event Grid schema event onto CloudEvents 1.0, each value as it was sent.
pub fn to_cloud_event(event: &Event) -> Result<Vec<u8>, JsonError> {
    let members = event.members()?;
    let mut ce = EventBuilder::new(Schema::CloudEvents);
    ce.string("specversion", "1.0");
    for (from, to) in [
        ("id", "id"),
        ("topic", "source"),
        ("subject", "subject"),
        ("eventType", "type"),
        ("eventTime", "time"),
    ] {
        if let Some((value, raw)) = member(&members, from) {
            ce.raw(to, value.as_str(), raw);
        }
    }
    if let Some(version) = event
        .header
        .data_version
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        ce.string("dataversion", version);
    }
    if let Some((_, raw)) = member(&members, "data") {
        ce.string("datacontenttype", "application/json");
        ce.raw("data", None, raw);
    }
    Ok(ce.finish().body.to_vec())
}

/// Sends deliveries with shared connection pools and Event Grid's response timeout, at most
/// `max_in_flight` at once across all subscriptions. HTTPS deliveries (and the handshakes) go
/// through reqwest, with the TLS set-up every other client here uses; plain-HTTP ones (the
/// local receivers) through hyper's pooled client directly, which reqwest builds on: through
/// reqwest each request's URL was parsed twice more (its redirect layer and its response),
/// 3.9% of the emulator's CPU with one subscription (BENCHMARKS.md, issue 15). Both send the
/// same headers, follow no redirect, and time out alike.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    plain: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

/// Idle connections each client keeps per receiver.
const IDLE_PER_HOST: usize = 256;

/// The user agent of both clients.
const USER_AGENT: &str = concat!("ordergrid-eventgrid-emulator/", env!("CARGO_PKG_VERSION"));

impl Sender {
    pub fn new(timeout: Duration, max_in_flight: usize) -> Result<Self, String> {
        let mut connector = HttpConnector::new();
        // As reqwest's: requests go out whole, not held back for the answer to the last.
        connector.set_nodelay(true);
        let plain = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            // reqwest's default, so both pools let idle connections go alike.
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect is an answer like any other, not followed: what Event Grid does with
            // one is not documented (MicrosoftDocs/azure-docs#34601 asked, unanswered), and
            // following a 302 turns the POST into a GET without the events, which the next
            // answer would count as delivered.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("failed to build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            plain,
            timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        })
    }

    /// Waits for a turn to send a delivery; the turn ends when the permit is dropped. The waits
    /// are first come, first served across subscriptions. Each subscription keeps its own limit
    /// too; this one keeps the emulator's CPU per delivery from growing with the number of
    /// subscriptions (the requests in flight, not the subscriptions, set it: 28.7 µs with 32
    /// subscriptions of 2 each, 62 µs with 32 of 64; BENCHMARKS.md, issue 15). Handshakes do not
    /// wait for one.
    pub async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Sends a notification; `Ok(status)` for any answer, `Err` when there was none.
    pub async fn send(&self, out: Outgoing) -> Result<u16, Failure> {
        match out.url.0.plain.clone() {
            Some(uri) => {
                self.send_plain(uri, out.headers, &out.attributes, out.body)
                    .await
            }
            None => self.send_with_reqwest(out).await,
        }
    }

    async fn send_plain(
        &self,
        uri: hyper::Uri,
        mut headers: HeaderMap,
        attributes: &[(String, String)],
        body: Bytes,
    ) -> Result<u16, Failure> {
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        // reqwest's, as built here (its gzip and deflate features are on in this build); the
        // answer's body is never read either way.
        headers.insert(
            reqwest::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip,deflate"),
        );
        // Added as reqwest's builder adds them; one a header cannot carry fails the attempt.
        for (name, value) in attributes {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(Failure::Connection);
            };
            headers.append(name, value);
        }
        let mut request = hyper::Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        match tokio::time::timeout(self.timeout, self.plain.request(request)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(_)) => Err(Failure::Connection),
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        }
    }

    async fn send_with_reqwest(&self, out: Outgoing) -> Result<u16, Failure> {
        let request = match &out.url.0.url {
            Ok(url) => self.client.post(url.clone()),
            Err(text) => self.client.post(&**text),
        };
        let mut request = request.headers(out.headers).body(out.body);
        for (name, value) in &out.attributes {
            request = request.header(name.as_str(), value.as_str());
        }
        request
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(classify)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

pub fn classify(error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: serde_json::Value) -> Event {
        Event::from_body(Schema::EventGrid, Bytes::from(value.to_string())).unwrap()
    }

    /// Answers one request with 200 and returns its head, lower-cased, and its body.
    async fn answer_one(listener: &tokio::net::TcpListener) -> (Vec<String>, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the request ended early");
            got.extend_from_slice(&chunk[..n]);
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
        };
        let head: Vec<String> = String::from_utf8_lossy(&got[..head_end])
            .lines()
            .map(str::to_ascii_lowercase)
            .collect();
        let length: usize = head
            .iter()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        while got.len() < head_end + 4 + length {
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        (head, got[head_end + 4..].to_vec())
    }

    #[test]
    fn only_plain_http_urls_without_credentials_go_through_hyper() {
        let plain =
            |url: &str| plain_uri(&reqwest::Url::parse(url).unwrap()).map(|u| u.to_string());
        assert_eq!(
            plain("http://127.0.0.1:7071/api/x?a=1").as_deref(),
            Some("http://127.0.0.1:7071/api/x?a=1")
        );
        assert_eq!(plain("https://example.com/hook"), None);
        assert_eq!(plain("http://user:secret@127.0.0.1/hook"), None);
        assert_eq!(plain("http://:secret@127.0.0.1/hook"), None);
    }

    /// Plain-HTTP deliveries go through hyper, others through reqwest: a receiver sees the same
    /// request either way (the headers but for the port in `host`, and the body).
    #[tokio::test]
    async fn both_clients_send_the_same_request() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?code=1", listener.local_addr().unwrap());
        let sender = Sender::new(Duration::from_secs(5), 4).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("aeg-event-type", HeaderValue::from_static("Notification"));
        headers.insert(
            "content-type",
            HeaderValue::from_static(CONTENT_TYPE_EVENTGRID),
        );
        let outgoing = |plain: bool| {
            let parsed = reqwest::Url::parse(&url).unwrap();
            Outgoing {
                url: Endpoint(Arc::new(Parsed {
                    plain: plain.then(|| url.parse().unwrap()),
                    url: Ok(parsed),
                })),
                headers: headers.clone(),
                attributes: vec![("x-custom".into(), "a b".into())],
                body: Bytes::from_static(b"[{}]"),
            }
        };
        let mut seen = Vec::new();
        for plain in [true, false] {
            let (status, received) =
                tokio::join!(sender.send(outgoing(plain)), answer_one(&listener));
            assert_eq!(status, Ok(200));
            seen.push(received);
        }
        let sorted = |(mut head, body): (Vec<String>, Vec<u8>)| {
            head.sort();
            (head, body)
        };
        let (plain, reqwest) = (sorted(seen.remove(0)), sorted(seen.remove(0)));
        assert_eq!(plain, reqwest);
        assert!(
            plain.0.contains(&"post /hook?code=1 http/1.1".to_owned()),
            "{plain:?}"
        );
        assert!(plain.0.contains(&"x-custom: a b".to_owned()), "{plain:?}");
        assert!(
            plain
                .0
                .iter()
                .any(|h| h.starts_with("user-agent: ordergrid-eventgrid-emulator/"))
        );
        assert_eq!(plain.1, b"[{}]");
    }

    #[tokio::test]
    async fn deliveries_in_flight_are_limited_across_all_subscriptions() {
        use futures_util::FutureExt as _;
        let sender = Sender::new(Duration::from_secs(1), 2).unwrap();
        let (first, second) = (sender.permit().await, sender.permit().await);
        assert!(first.is_some() && second.is_some());
        // A clone is another dispatcher's handle on the same sender.
        let other = sender.clone();
        assert!(other.permit().now_or_never().is_none(), "a third waits");
        drop(first);
        assert!(
            other.permit().now_or_never().flatten().is_some(),
            "until one ends"
        );
    }

    #[test]
    fn event_grid_events_become_cloud_events() {
        let eg = event(
            json!({"id": "1", "topic": "/t/orders", "subject": "orders/1", "eventType": "NewOrder",
                        "eventTime": "2026-01-01T00:00:00Z", "data": {"a": 1}, "dataVersion": "1.0", "metadataVersion": "1"}),
        );
        let ce: serde_json::Value = serde_json::from_slice(&to_cloud_event(&eg).unwrap()).unwrap();
        assert_eq!(
            ce,
            json!({"specversion": "1.0", "id": "1", "source": "/t/orders", "subject": "orders/1", "type": "NewOrder",
                   "time": "2026-01-01T00:00:00Z", "dataversion": "1.0", "datacontenttype": "application/json", "data": {"a": 1}})
        );
    }

    #[test]
    fn conversion_keeps_the_data_as_sent() {
        let body = br#"{"id":"1","topic":"/t","subject":"s","eventType":"T","eventTime":"2026-01-01T00:00:00Z","data":{"v":1.50e400,"s":"\u00e9"},"dataVersion":""}"#;
        let eg = Event::from_body(Schema::EventGrid, Bytes::from_static(body)).unwrap();
        let ce = String::from_utf8(to_cloud_event(&eg).unwrap()).unwrap();
        assert!(ce.contains(r#""data":{"v":1.50e400,"s":"\u00e9"}"#), "{ce}");
        assert!(
            !ce.contains("dataversion"),
            "an empty dataVersion is left out: {ce}"
        );
    }

    #[test]
    fn arrays_are_joined_without_touching_the_events() {
        let joined = json_array([&b"{\"v\":0.10}"[..], &b"{}"[..]].into_iter());
        assert_eq!(joined, "[{\"v\":0.10},{}]");
    }

    #[test]
    fn dynamic_properties_read_scalars_at_a_path() {
        let event = Json::from(&json!({"data": {"order": {"id": 7, "ok": true, "list": [1]}}}));
        assert_eq!(lookup(&event, "data.order.id").as_deref(), Some("7"));
        assert_eq!(lookup(&event, "Data.Order.OK").as_deref(), Some("true"));
        assert_eq!(lookup(&event, "data.order.list"), None);
        assert_eq!(lookup(&event, "data.missing"), None);
        let exact = Json::parse(br#"{"data":{"n":1.10e2}}"#, 8).unwrap();
        assert_eq!(lookup(&exact, "data.n").as_deref(), Some("1.10e2"));
    }
}
