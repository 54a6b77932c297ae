//! Starting the app and the real components around it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ordergrid::blob::{BlobAccount, BlobConnection, BlobTiming};
use ordergrid::domain::OrderLimits;
use ordergrid::email::{ConfirmationRenderer, EmailTransport, MemoryTransport, OutboxTransport};
use ordergrid::functions::{ClientTokens, Handler, Operators, Services};
use ordergrid::invocation::http::HttpResponseData;
use ordergrid::store::{Collection, FolderStore, FolderStoreOptions, MemoryStore, RecordStore};
use ordergrid::webpubsub::WebPubSubConnection;
use ordergrid::webpubsub::actions::Action;
use ordergrid_testing::azurite::Azurite;
use ordergrid_testing::process::{Process, ordergrid};
pub use ordergrid_testing::{eml_files, eventually, repo_root};
use serde_json::Value;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn RecordStore>,
    pub outbox: PathBuf,
    pub _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: u16,
    pub json: Value,
}

impl Answer {
    /// The events in the `outputEvents` binding.
    pub fn emitted(&self) -> Vec<Value> {
        self.json["Outputs"]["outputEvents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The failure's message, as the handler answers a failed invocation.
    pub fn error_message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or_default()
    }

    pub fn log(&self) -> String {
        self.json["Logs"].to_string()
    }

    /// The `webPubSub` actions in the `actions` binding, parsed as the extension parses them.
    pub fn actions(&self) -> Vec<Action> {
        ordergrid::webpubsub::actions::parse(&self.json["Outputs"]["actions"])
            .unwrap_or_else(|e| panic!("the extension would refuse {}: {e}", self.json))
    }

    /// The HTTP answer in the `res` binding.
    pub fn res(&self) -> HttpResponseData {
        assert_eq!(
            self.status, 200,
            "the invocation itself succeeds: {}",
            self.json
        );
        serde_json::from_value(self.json["Outputs"]["res"].clone())
            .unwrap_or_else(|e| panic!("Outputs.res is not an HTTP response ({e}): {}", self.json))
    }
}

/// The HTTP answer's body as JSON.
pub fn body_json(res: &HttpResponseData) -> Value {
    serde_json::from_str(&res.body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", res.body))
}

/// The access key of the live feed's Web PubSub in [`spawn_feed_app`].
pub const FEED_KEY: &str = "test-access-key-of-the-local-web-pubsub-0000";

/// The local Web PubSub service as `ordergrid dev` names it, with [`FEED_KEY`].
pub fn feed_connection() -> WebPubSubConnection {
    WebPubSubConnection::parse_connection_string(&format!(
        "Endpoint=http://127.0.0.1;Port=7090;AccessKey={FEED_KEY};Version=1.0;"
    ))
    .unwrap()
}

/// The app with a memory store and email transport (returned, so a test can fail sends), the
/// live feed signing with [`FEED_KEY`], and `operators`.
pub async fn spawn_feed_app(operators: Operators) -> (TestApp, Arc<MemoryTransport>) {
    let email = Arc::new(MemoryTransport::new());
    let app = spawn_app_where(Arc::new(MemoryStore::new()), email.clone(), |services| {
        services.client_tokens =
            Some(ClientTokens::with_credential(feed_connection(), None).unwrap());
        services.operators = operators;
    })
    .await;
    (app, email)
}

/// The app with `store` and `email`, its services adjusted by `configure`.
pub async fn spawn_app_where(
    store: Arc<dyn RecordStore>,
    email: Arc<dyn EmailTransport>,
    configure: impl FnOnce(&mut Services),
) -> TestApp {
    let mut services = services(store.clone(), email, Duration::from_secs(120));
    configure(&mut services);
    serve(
        services,
        store,
        PathBuf::new(),
        tempfile::tempdir().unwrap(),
    )
    .await
}

fn services(
    store: Arc<dyn RecordStore>,
    email: Arc<dyn EmailTransport>,
    email_claim_timeout: Duration,
) -> Services {
    Services {
        store,
        email,
        renderer: ConfirmationRenderer::new("Shop <orders@shop.example>".parse().unwrap()),
        limits: OrderLimits::default(),
        email_claim_timeout,
        sent_unrecorded: Default::default(),
        unreleased_claims: Default::default(),
        max_body_bytes: 4 * 1024 * 1024,
        client_tokens: None,
        operators: Operators::default(),
        tracer: ordergrid::trace::Tracer::off(),
        guard: Default::default(),
        http: Default::default(),
    }
}

/// The app on port 0 with the folder store and the file outbox in a temporary folder.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        FolderStore::open(&dir.path().join("store"), FolderStoreOptions::default()).unwrap(),
    );
    let outbox = dir.path().join("outbox");
    let email = Arc::new(OutboxTransport::new(outbox.clone()).unwrap());
    spawn_app_with(dir, store, email, outbox, Duration::from_secs(120)).await
}

pub async fn spawn_app_with(
    dir: tempfile::TempDir,
    store: Arc<dyn RecordStore>,
    email: Arc<dyn EmailTransport>,
    outbox: PathBuf,
    email_claim_timeout: Duration,
) -> TestApp {
    let services = services(store.clone(), email, email_claim_timeout);
    serve(services, store, outbox, dir).await
}

pub async fn serve(
    services: Services,
    store: Arc<dyn RecordStore>,
    outbox: PathBuf,
    dir: tempfile::TempDir,
) -> TestApp {
    let handler = Handler::with_services(0, services).await.unwrap();
    let base = format!("http://127.0.0.1:{}", handler.port());
    tokio::spawn(handler.run_until_stopped(std::future::pending()));
    TestApp {
        base,
        client: reqwest::Client::new(),
        store,
        outbox,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)), body)
            .await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let response = request
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "x-azure-functions-invocationid",
                uuid::Uuid::new_v4().to_string(),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, json }
    }

    pub async fn invoke(&self, function: &str, envelope: &Value) -> Answer {
        self.post(&format!("/{function}"), envelope.to_string())
            .await
    }

    /// An invocation with the host's `traceparent` header, as the real host sends one.
    pub async fn invoke_traced(
        &self,
        function: &str,
        envelope: &Value,
        traceparent: &str,
    ) -> Answer {
        let request = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("traceparent", traceparent);
        self.send(request, envelope.to_string()).await
    }

    pub async fn orders(&self) -> Vec<String> {
        self.store.list(Collection::Orders, "").await.unwrap()
    }

    pub fn emails(&self) -> Vec<PathBuf> {
        eml_files(&self.outbox)
    }
}

/// The real `ordergrid serve` process, listening on a port it picked (port 0).
pub struct RunningBinary {
    pub process: Process,
    pub base: String,
}

/// Starts `ordergrid serve` with `FUNCTIONS_CUSTOMHANDLER_PORT=0` plus `env`, and waits for the
/// log line that names its port.
pub async fn spawn_binary(env: &[(&str, &str)]) -> RunningBinary {
    let (process, base) = Process::spawn_listening(
        ordergrid(env!("CARGO_BIN_EXE_ordergrid"), "serve")
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
            .envs(env.iter().copied()),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|e| panic!("the handler: {e:#}"));
    RunningBinary { process, base }
}

impl RunningBinary {
    pub async fn invoke(
        &self,
        client: &reqwest::Client,
        function: &str,
        envelope: &Value,
    ) -> Answer {
        let response = client
            .post(format!("{}/{function}", self.base))
            .body(envelope.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(Value::Null);
        Answer { status, json }
    }

    /// Log lines (stdout then stderr) parsed as JSON.
    pub fn log_lines(&self) -> Vec<Value> {
        let (out, err) = (self.process.stdout.all(), self.process.stderr.all());
        out.iter()
            .chain(err.iter())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn stderr_text(&self) -> String {
        self.process.stderr.text()
    }
}

/// Azurite's account, as ordergrid's blob clients take it.
pub fn blob_connection(azurite: &Azurite) -> BlobConnection {
    BlobConnection::parse_connection_string(&azurite.connection_string()).unwrap()
}

/// A client of Azurite's account, to look at what was written.
pub fn blob_account(azurite: &Azurite) -> BlobAccount {
    BlobAccount::new(&blob_connection(azurite), BlobTiming::default()).unwrap()
}
