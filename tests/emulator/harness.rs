//! Starting the emulator for a test: its own subscriptions file, data folder and port (0), Azure's
//! durations scaled down; plus the events, files and processes the tests share. The
//! subscriptions-file builders, the receiver and polling come from `ordergrid_testing`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ordergrid::emulator::admin::{
    AdminClient, Counters, PendingView, SubscriptionView, Validation,
};
use ordergrid::emulator::dead_letter::DeadLetterStorage;
use ordergrid::emulator::entra::EntraMode;
use ordergrid::emulator::settings::DeliverySettings;
use ordergrid::emulator::{Emulator, EmulatorSettings, TopicKeys};
use ordergrid::eventgrid::sas::TopicKey;
use ordergrid_testing::process::{Process, ordergrid};
use ordergrid_testing::receiver::Receiver;
pub use ordergrid_testing::subscriptions::{
    cloud_topic, dead_lettered, file, function, topic, webhook,
};
pub use ordergrid_testing::{eventually_async, repo_root, test_python};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

/// How long a test waits for something that should happen in milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The usual subscriptions file: topic `orders` with one webhook subscription, `hook`, to
/// `receiver`'s `/hook`.
pub fn hook_file(receiver: &Receiver) -> Value {
    file(vec![topic(
        "orders",
        vec![webhook("hook", &receiver.url("/hook"))],
    )])
}

// ---- events ----

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

/// An Event Grid schema event.
pub fn event(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "id": id,
        "subject": format!("orders/{id}"),
        "eventType": event_type,
        "eventTime": now_rfc3339(),
        "data": data,
        "dataVersion": "1.0"
    })
}

/// `n` `NewOrder` events with ids `<prefix>-0`, `<prefix>-1`, …
pub fn events(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| event(&format!("{prefix}-{i}"), "NewOrder", json!({"orderId": i})))
        .collect()
}

/// A CloudEvents 1.0 event.
pub fn cloud_event(id: &str, event_type: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/ordergrid/tests",
        "type": event_type,
        "subject": format!("orders/{id}"),
        "time": now_rfc3339(),
        "datacontenttype": "application/json",
        "data": data
    })
}

pub fn sorted(ids: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
    ids.sort();
    ids
}

/// `http://127.0.0.1:<port>` of a port nothing listens on (bound, then closed).
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

// ---- the emulator in-process ----

/// A receiver, and an emulator with `orders` (Event Grid schema, subscription `orders-hook` to
/// the receiver's `/orders`) and `audit` (CloudEvents, `audit-hook` to `/audit`).
pub async fn orders_and_audit() -> (Receiver, TestEmulator) {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![
        topic(
            "orders",
            vec![webhook("orders-hook", &receiver.url("/orders"))],
        ),
        cloud_topic(
            "audit",
            vec![webhook("audit-hook", &receiver.url("/audit"))],
        ),
    ]))
    .start()
    .await;
    (receiver, emulator)
}

pub struct Setup {
    file: Value,
    delivery: DeliverySettings,
    simple_publish: bool,
    dead_letter_dir: bool,
    https: bool,
    entra: EntraMode,
    traces: bool,
    http: ordergrid::http_server::HttpLimits,
    publish_buffer: usize,
}

impl Setup {
    /// Time scale 0.001 (Azure's 10 s first retry takes 10 ms), no dead-letter delay, a 5 s
    /// delivery timeout.
    pub fn new(file: Value) -> Self {
        Self {
            file,
            delivery: DeliverySettings {
                time_scale: 0.001,
                delivery_timeout: Duration::from_secs(5),
                dead_letter_delay: Duration::ZERO,
                ..DeliverySettings::default()
            },
            simple_publish: true,
            dead_letter_dir: false,
            https: false,
            entra: EntraMode::Local,
            traces: false,
            http: Default::default(),
            publish_buffer: 64 * 1024 * 1024,
        }
    }

    /// Bytes of request bodies the publish API holds at once (`ORDERGRID_EMULATOR_PUBLISH_BUFFER`).
    pub fn publish_buffer(mut self, bytes: usize) -> Self {
        self.publish_buffer = bytes;
        self
    }

    /// Timeouts and the connection cap of its listeners.
    pub fn http(mut self, limits: ordergrid::http_server::HttpLimits) -> Self {
        self.http = limits;
        self
    }

    /// Keep traces for the dashboard (`ORDERGRID_EMULATOR_TRACES=true`).
    pub fn traces(mut self) -> Self {
        self.traces = true;
        self
    }

    /// Also serve HTTPS (on a free port), with the development CA in the data folder.
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    pub fn entra(mut self, mode: EntraMode) -> Self {
        self.entra = mode;
        self
    }

    pub fn time_scale(mut self, scale: f64) -> Self {
        self.delivery.time_scale = scale;
        self
    }

    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery.delivery_timeout = timeout;
        self
    }

    pub fn dead_letter_delay(mut self, delay: Duration) -> Self {
        self.delivery.dead_letter_delay = delay;
        self
    }

    /// Turns the simple key-less `POST /publish` off (`ORDERGRID_EMULATOR_SIMPLE_PUBLISH=false`).
    pub fn without_simple_publish(mut self) -> Self {
        self.simple_publish = false;
        self
    }

    pub fn functions_base_url(mut self, url: &str) -> Self {
        self.delivery.functions_base_url = url.to_owned();
        self
    }

    /// Dead letters go to `<tmp>/dead-letter-folder` instead of the data folder's default.
    pub fn own_dead_letter_dir(mut self) -> Self {
        self.dead_letter_dir = true;
        self
    }

    pub async fn start(self) -> TestEmulator {
        let dir = tempfile::tempdir().unwrap();
        let subscriptions_file = dir.path().join("subscriptions.json");
        std::fs::write(
            &subscriptions_file,
            serde_json::to_vec_pretty(&self.file).unwrap(),
        )
        .unwrap();
        let data_dir = dir.path().join("data");
        let settings = EmulatorSettings {
            port: 0,
            subscriptions_file,
            data_dir: data_dir.clone(),
            dead_letters: DeadLetterStorage::Folder(if self.dead_letter_dir {
                dir.path().join("dead-letter-folder")
            } else {
                data_dir.join("dead-letters")
            }),
            key: None,
            delivery: self.delivery,
            simple_publish: self.simple_publish,
            https_port: self.https.then_some(0),
            entra: self.entra,
            traces: self.traces,
            trace_export: Default::default(),
            guard: Default::default(),
            http: self.http,
            publish_buffer: self.publish_buffer,
        };
        TestEmulator::run(settings, dir).await
    }
}

/// Why a validation failed.
pub fn reason(validation: &Validation) -> &str {
    match validation {
        Validation::Failed { reason } => reason,
        other => panic!("not a failure: {other:?}"),
    }
}

/// A counter by the name the admin API gives it.
pub fn counter_named(counters: &Counters, name: &str) -> u64 {
    match name {
        "matched" => counters.matched,
        "delivered" => counters.delivered,
        "retried" => counters.retried,
        "deadLettered" => counters.dead_lettered,
        "dropped" => counters.dropped,
        "replayedAfterRestart" => counters.replayed_after_restart,
        other => panic!("no counter {other}"),
    }
}

pub struct TestEmulator {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub port: u16,
    pub keys: Vec<TopicKeys>,
    pub client: reqwest::Client,
    /// The admin API, typed.
    pub admin: AdminClient,
    pub dead_letter_dir: PathBuf,
    /// `https://localhost:<port>` and the CA to trust, when HTTPS is on.
    pub https: Option<(String, PathBuf)>,
    /// The managed-identity endpoint and its secret header.
    pub identity: (String, String),
    settings: EmulatorSettings,
    /// Sending (or dropping) it stops the emulator gracefully.
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
}

impl TestEmulator {
    async fn run(settings: EmulatorSettings, dir: tempfile::TempDir) -> Self {
        let emulator = Emulator::build(settings.clone())
            .await
            .unwrap_or_else(|e| panic!("the emulator did not build: {e:#}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let (base, port, keys) = (
            emulator.base_url().to_owned(),
            emulator.port(),
            emulator.keys().to_vec(),
        );
        let https = emulator
            .https_url()
            .zip(emulator.certificate())
            .map(|(url, certificate)| (url.to_owned(), certificate.ca()));
        let (identity_endpoint, identity_header) = emulator.identity();
        let identity = (identity_endpoint, identity_header.to_owned());
        let task = tokio::spawn(emulator.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            admin: AdminClient::new(&base),
            base,
            port,
            keys,
            client: reqwest::Client::new(),
            https,
            identity,
            dead_letter_dir: match &settings.dead_letters {
                DeadLetterStorage::Folder(path) => path.clone(),
                DeadLetterStorage::Blob(_) => unreachable!("the harness writes to a folder"),
            },
            settings,
            stop,
            task,
            dir,
        }
    }

    /// [`TestEmulator::restart`] with a changed subscriptions file.
    pub async fn restart_with(self, file: &Value) -> Self {
        std::fs::write(
            &self.settings.subscriptions_file,
            serde_json::to_vec_pretty(file).unwrap(),
        )
        .unwrap();
        self.restart().await
    }

    /// Stops the emulator gracefully (as Ctrl-C does) and starts it again on the same files,
    /// on a new port.
    pub async fn restart(self) -> Self {
        let Self {
            settings,
            stop,
            task,
            dir,
            ..
        } = self;
        let _ = stop.send(());
        task.await
            .unwrap()
            .unwrap_or_else(|e| panic!("the emulator stopped with an error: {e:#}"));
        Self::run(settings, dir).await
    }
    pub fn key(&self, topic: &str) -> &TopicKey {
        &self
            .keys
            .iter()
            .find(|k| k.topic == topic)
            .unwrap_or_else(|| panic!("no keys for topic {topic}"))
            .key1
    }

    /// `http://127.0.0.1:<port>/<topic>/api/events` (no query).
    pub fn endpoint(&self, topic: &str) -> String {
        format!("{}/{topic}/api/events", self.base)
    }

    /// The endpoint with `?api-version=2018-01-01`.
    pub fn publish_url(&self, topic: &str) -> String {
        format!("{}?api-version=2018-01-01", self.endpoint(topic))
    }

    /// A publish request with the key in `aeg-sas-key` and no body yet.
    pub fn publish_request(&self, topic: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.publish_url(topic))
            .header("aeg-sas-key", self.key(topic).expose_secret())
    }

    /// Publishes `body` as it is (`application/json`) with the key; returns the answer. For
    /// bodies whose exact bytes matter, or that are not JSON at all.
    pub async fn publish_bytes(
        &self,
        topic: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.publish_request(topic)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Publishes an Event Grid schema array (or anything JSON) with the key; returns the answer.
    pub async fn publish(&self, topic: &str, body: &Value) -> reqwest::Response {
        self.publish_request(topic)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Publishes and insists on 200.
    pub async fn publish_ok(&self, topic: &str, events: &[Value]) {
        let response = self.publish(topic, &Value::from(events.to_vec())).await;
        let status = response.status();
        assert_eq!(
            status,
            200,
            "publish refused: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// The raw JSON of an admin endpoint, for tests of the wire format itself (what the
    /// dashboard reads); everything else reads the typed views through `admin`.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await
    }

    /// An admin or dashboard endpoint's answer, read as `T`; the request must succeed.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The subscription's entry in `GET /emulator/subscriptions`.
    pub async fn subscription(&self, name: &str) -> SubscriptionView {
        let all = self.admin.subscriptions().await.unwrap();
        all.iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no subscription {name} in {all:?}"))
            .clone()
    }

    pub async fn counters(&self, name: &str) -> Counters {
        self.subscription(name).await.counters
    }

    /// Waits until `counter` of subscription `name` reaches `at_least`; returns all counters.
    pub async fn wait_for_counter(&self, name: &str, counter: &str, at_least: u64) -> Counters {
        eventually_async(
            &format!("{name}'s {counter} counter to reach {at_least}"),
            PATIENCE,
            async || {
                let counters = self.counters(name).await;
                (counter_named(&counters, counter) >= at_least).then_some(counters)
            },
        )
        .await
    }

    /// Waits until the subscription's validation state is `state`; returns the validation.
    pub async fn wait_for_validation(&self, name: &str, state: &str) -> Validation {
        eventually_async(
            &format!("{name}'s validation to be {state}"),
            PATIENCE,
            async || {
                let validation = self.subscription(name).await.validation;
                (validation.state() == state).then_some(validation)
            },
        )
        .await
    }

    pub async fn retries(&self) -> Vec<PendingView> {
        self.admin.retries().await.unwrap()
    }

    /// Every dead-letter file under the dead-letter folder, relative to it.
    pub fn dead_letter_files(&self) -> Vec<PathBuf> {
        json_files(&self.dead_letter_dir)
            .into_iter()
            .map(|p| p.strip_prefix(&self.dead_letter_dir).unwrap().to_owned())
            .collect()
    }

    /// Waits for `n` dead-letter files and returns them (relative paths) with their events.
    pub async fn wait_for_dead_letters(&self, n: usize) -> Vec<(PathBuf, Vec<Value>)> {
        let files = eventually_async(
            &format!(
                "{n} dead-letter blobs in {}",
                self.dead_letter_dir.display()
            ),
            PATIENCE,
            async || {
                let files = self.dead_letter_files();
                (files.len() >= n).then_some(files)
            },
        )
        .await;
        files
            .into_iter()
            .map(|f| {
                let events: Vec<Value> =
                    serde_json::from_slice(&std::fs::read(self.dead_letter_dir.join(&f)).unwrap())
                        .unwrap();
                (f, events)
            })
            .collect()
    }
}

pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

// ---- processes: the real binary and the SDK scripts ----

/// Runs a command off the async runtime (the emulator under test lives on it) and returns its
/// output. Failures name the program only: arguments may hold a topic key.
pub async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || {
        command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", command.get_program().display()))
    })
    .await
    .unwrap()
}

/// `ordergrid <args>`, the real binary; returns stdout, failing the test on a non-zero exit.
pub async fn ordergrid_cli(args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ordergrid"));
    command.args(args).env("ORDERGRID_LOG", "warn");
    let out = run(command).await;
    assert!(
        out.status.success(),
        "ordergrid {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `ordergrid <args>` expecting it to fail; its stderr (the error, said once).
pub async fn ordergrid_cli_fails(args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ordergrid"));
    command
        .args(args)
        .env("ORDERGRID_LOG", "warn")
        .env("ORDERGRID_LOG_FORMAT", "text");
    let out = run(command).await;
    assert!(
        !out.status.success(),
        "ordergrid {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

// ---- Azure's error answers ----

/// Checks an error answer has Azure's shape — `{"error": {"code", "message", "details":
/// [{"code", "message"}]}}`, the message ending `Report '<x-ms-request-id>:<M/d/yyyy h:mm:ss tt>
/// (UTC)' to our forums for assistance or raise a support ticket.` — and returns the message
/// without that suffix.
pub async fn expect_azure_error(response: reqwest::Response, status: u16, code: &str) -> String {
    let actual = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-ms-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    let request_id = request_id.expect("an error answer without x-ms-request-id");
    uuid::Uuid::parse_str(&request_id).expect("x-ms-request-id is not a GUID");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("no error.message");
    let details = body["error"]["details"]
        .as_array()
        .expect("no error.details");
    assert_eq!(details.len(), 1, "{body}");
    assert!(details[0]["code"].is_string(), "{body}");
    assert_eq!(details[0]["message"], message, "{body}");

    let at = message
        .rfind(" Report '")
        .unwrap_or_else(|| panic!("no Report suffix in {message:?}"));
    let report = &message[at + " Report '".len()..];
    let (id, rest) = report.split_once(':').unwrap();
    assert_eq!(id, request_id, "the Report id is the x-ms-request-id");
    let when = rest
        .strip_suffix(" (UTC)' to our forums for assistance or raise a support ticket.")
        .unwrap_or_else(|| panic!("the Report suffix does not end like Azure's: {message:?}"));
    let format = time::macros::format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    time::PrimitiveDateTime::parse(when, format)
        .unwrap_or_else(|e| panic!("{when:?} is not Azure's M/d/yyyy h:mm:ss tt: {e}"));
    message[..at].to_owned()
}

// ---- the emulator as a process (its crash, its memory) ----

/// A running `ordergrid emulator` process.
pub struct EmulatorProcess {
    pub process: Process,
    pub base: String,
}

/// What the process needs to start, and restart on the same data.
pub struct Installation {
    pub dir: tempfile::TempDir,
    pub key: TopicKey,
    time_scale: f64,
}

impl Installation {
    pub fn new(subscriptions: &Value, time_scale: f64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("subscriptions.json"),
            subscriptions.to_string(),
        )
        .unwrap();
        Self {
            dir,
            key: TopicKey::generate(),
            time_scale,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts `ordergrid emulator` on port 0 and waits for the log line that names the port.
    pub async fn start(&self) -> EmulatorProcess {
        let (process, base) = Process::spawn_listening(
            ordergrid(env!("CARGO_BIN_EXE_ordergrid"), "emulator")
                .env("ORDERGRID_EMULATOR_PORT", "0")
                .env("ORDERGRID_EMULATOR_HTTPS_PORT", "0")
                .env(
                    "ORDERGRID_EMULATOR_SUBSCRIPTIONS",
                    self.dir.path().join("subscriptions.json"),
                )
                .env("ORDERGRID_EMULATOR_DATA", self.data())
                .env("ORDERGRID_EMULATOR_KEY", self.key.expose_secret())
                .env("ORDERGRID_EMULATOR_TIME_SCALE", self.time_scale.to_string())
                .env("ORDERGRID_EMULATOR_DEAD_LETTER_DELAY", "0s")
                .env("ORDERGRID_EMULATOR_DELIVERY_TIMEOUT", "5s"),
            PATIENCE,
        )
        .await
        .unwrap_or_else(|e| panic!("the emulator: {e:#}"));
        EmulatorProcess { process, base }
    }
}

impl EmulatorProcess {
    /// SIGKILL: no shutdown, no final watermark, nothing flushed that was not already.
    pub fn kill_9(&mut self) {
        self.process.kill().unwrap();
    }

    /// The admin API's retries; a failure shows the process's stderr.
    pub async fn retries(&self) -> Vec<PendingView> {
        let answer = AdminClient::new(&self.base).retries().await;
        answer.unwrap_or_else(|e| panic!("{e:#}; stderr: {}", self.stderr()))
    }

    pub async fn subscriptions(&self) -> Vec<SubscriptionView> {
        let answer = AdminClient::new(&self.base).subscriptions().await;
        answer.unwrap_or_else(|e| panic!("{e:#}; stderr: {}", self.stderr()))
    }

    pub fn stderr(&self) -> String {
        self.process.stderr.text()
    }
}

/// POSTs a batch to the process's `orders` topic; 0 when there was no answer.
pub async fn publish(client: &reqwest::Client, base: &str, key: &TopicKey, batch: &[Value]) -> u16 {
    client
        .post(format!("{base}/orders/api/events?api-version=2018-01-01"))
        .header("aeg-sas-key", key.expose_secret())
        .header("content-type", "application/json")
        .body(Value::from(batch.to_vec()).to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}
