//! The local Web PubSub service behaves as Azure Web PubSub does for what the live feed and
//! the official clients use: the official JavaScript SDKs work unchanged; tokens are checked as
//! the service checks them; the JSON subprotocols answer as documented; a reliable client gets
//! what it missed after a dropped connection; bad input closes only the connection that sent it;
//! the REST API answers errors in the service's shape.
//!
//! The service runs in-process on port 0, built by the same `build()` `ordergrid webpubsub` uses.

mod protocol;
mod rest;

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use ordergrid::webpubsub::token::{self, AccessKey, Claims, OneOrMany};
use ordergrid::webpubsub::{WebPubSubClient, WebPubSubConnection};
use ordergrid::webpubsub_service::{ServiceSettings, WebPubSubService};
use ordergrid_testing::repo_root;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const PATIENCE: Duration = Duration::from_secs(10);
pub const HUB: &str = "orders";

/// A running service with a known key.
pub struct Service {
    pub base: String,
    pub key: AccessKey,
    pub connection_string: String,
    _data: tempfile::TempDir,
}

impl Service {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut ServiceSettings)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut settings = ServiceSettings::from_env(&Default::default()).unwrap();
        settings.port = 0;
        settings.data_dir = data.path().to_owned();
        change(&mut settings);
        let service = WebPubSubService::build(settings).await.unwrap();
        let base = service.base_url().to_owned();
        let connection_string = service.connection_string();
        let connection = WebPubSubConnection::parse_connection_string(&connection_string).unwrap();
        let key = connection.key().unwrap().clone();
        tokio::spawn(service.run_until_stopped(std::future::pending()));
        Self {
            base,
            key,
            connection_string,
            _data: data,
        }
    }

    /// The REST client the host stand-in uses.
    pub fn client(&self) -> WebPubSubClient {
        WebPubSubClient::new(
            WebPubSubConnection::parse_connection_string(&self.connection_string).unwrap(),
            None,
        )
        .unwrap()
    }

    pub fn client_url(&self) -> String {
        format!(
            "{}/client/hubs/{HUB}",
            self.base.replace("http://", "ws://")
        )
    }

    /// A client token for [`HUB`] with `change` applied to its claims.
    pub fn token(&self, change: impl FnOnce(&mut Claims)) -> String {
        let mut claims = Claims::new(
            &format!("{}/client/hubs/{HUB}", self.base),
            token::now_seconds(),
            3600,
        );
        change(&mut claims);
        token::sign(&claims, &self.key)
    }

    /// Connects with `token` offering `protocol`; the handshake's error when refused.
    pub async fn connect(&self, token: &str, protocol: &str) -> Result<Ws, (u16, String)> {
        self.connect_url(
            &format!("{}?access_token={token}", self.client_url()),
            protocol,
        )
        .await
    }

    pub async fn connect_url(&self, url: &str, protocol: &str) -> Result<Ws, (u16, String)> {
        let mut request = url.into_client_request().unwrap();
        if !protocol.is_empty() {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(protocol).unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Ws { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
                response.status().as_u16(),
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            )),
            Err(e) => panic!("the WebSocket handshake failed: {e}"),
        }
    }
}

pub fn groups(names: &[&str]) -> OneOrMany {
    OneOrMany::of(names.iter().map(|s| s.to_string()).collect())
}

/// A raw WebSocket client speaking the frames by hand.
pub struct Ws {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the service sent next.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn send_json(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn next(&mut self) -> Received {
        let next = tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("the service sent nothing in time");
        match next {
            Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                Ok(json) => Received::Json(json),
                Err(_) => Received::Text(text.to_string()),
            },
            Some(Ok(Message::Binary(bytes))) => Received::Binary(bytes.to_vec()),
            Some(Ok(Message::Close(frame))) => Received::Closed(frame.map(|f| u16::from(f.code))),
            Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            Some(Err(_)) | None => Received::Closed(None),
        }
    }

    /// The next JSON frame.
    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Received::Json(json) => json,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The `connected` frame every JSON client gets first.
    pub async fn connected(&mut self) -> Value {
        let frame = self.json().await;
        assert_eq!(frame["event"], "connected", "{frame}");
        frame
    }

    /// Frames until the socket closes; the close code.
    pub async fn closed(&mut self) -> (Vec<Received>, Option<u16>) {
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Received::Closed(code) => return (before, code),
                other => before.push(other),
            }
        }
    }
}

/// The official JavaScript SDKs, unchanged: the server SDK mints tokens and calls the REST API,
/// the client SDK connects with the reliable subprotocol (tests/support/webpubsub_sdk.mjs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_javascript_sdks_work_against_the_service_unchanged() {
    let service = Service::start().await;
    let support = repo_root().join("tests/support");
    let output = tokio::process::Command::new("node")
        .arg(support.join("webpubsub_sdk.mjs"))
        .arg(&service.connection_string)
        .current_dir(&support)
        .output()
        .await
        .expect("node runs (scripts/test-env installs the SDKs)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with(r#"{"ok""#)).count(),
        8,
        "{stdout}"
    );
}
