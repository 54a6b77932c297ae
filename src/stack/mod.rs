//! The whole order system on one machine, with embedded defaults: the Event Grid emulator with
//! the repository's subscriptions file, the Functions host stand-in reading the real `host.json`
//! and `*/function.json`, and the custom handler it starts. Email goes to a local outbox unless
//! the `ORDERGRID_*` email settings say otherwise (the handler inherits the environment).
//!
//! Wiring: the emulator delivers AzureFunction subscriptions to the host stand-in; the
//! OrderProcessor's `eventGrid` output binding (`OrdersTopic`) publishes back to the emulator's
//! `orders` topic with the topic's key; the live feed's `webPubSub` output and the negotiate
//! function reach the local Web PubSub service through `WebPubSubConnectionString`, and anyone
//! who can reach 127.0.0.1 may open the operators' board (`ORDERGRID_OPERATORS=*`); the
//! emulator's dashboard sees the function app's side through [`app_view`] (the handler's answers
//! to failed invocations, the order records, the outbox). Everything listens on 127.0.0.1 and
//! keeps its state under one data folder, so a restart resumes pending deliveries.
//!
//! Once ready, the stack records where it listens in `<data>/stack.json` ([`record`]), which the
//! other commands read to find it; the record goes away on a clean stop. Before anything is
//! created, the app folder is checked ([`app`]).
//!
//! By a settings change the records and dead letters go to Blob Storage (Azurite) instead:
//! `ORDERGRID_STORE=blob` with `ORDERGRID_STORAGE` reaches the handler through the inherited
//! environment (the folder path the stack sets is then unused), and
//! `ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE` points the emulator's dead letters at an account.

pub mod app;
pub mod app_view;
pub mod record;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::devhost::{self, FunctionsHost, HostOptions};
use crate::email::settings::{self as email, EmailSettings, TransportSettings};
use crate::emulator::settings as emulator;
use crate::emulator::{Emulator, EmulatorSettings};
use crate::http_server::HttpLimits;
use crate::local_guard::LocalGuard;
use crate::settings::{Layered, Reader};
use crate::store::settings::{self as store, StoreSettings};
use crate::trace::{self, Telemetry, TraceExport};
use crate::webpubsub::DEFAULT_CONNECTION_SETTING;
use crate::webpubsub_service::settings as webpubsub;
use crate::webpubsub_service::{ServiceSettings, WebPubSubService};
use record::StackRecord;

/// The data folder the commands use when not told (`--data`).
pub const DEFAULT_DATA_DIR: &str = ".ordergrid";

/// Where the stack runs; everything else is a setting of the part it configures, read from the
/// environment (with `ordergrid dev`'s flags layered over it).
#[derive(Debug, Clone)]
pub struct StackSettings {
    /// The function app (host.json, function folders, infra/subscriptions.json).
    pub app_root: PathBuf,
    /// Everything the stack writes goes under here (`.ordergrid`).
    pub data_dir: PathBuf,
    /// Functions host port ([`devhost::DEFAULT_PORT`], as `func start`; 0 picks one).
    pub host_port: u16,
}

pub struct LocalStack {
    emulator: Emulator,
    host: FunctionsHost,
    webpubsub: WebPubSubService,
    /// Absolute.
    data_dir: PathBuf,
    /// The email transport, for people.
    email: String,
    store: String,
    /// The folder store's folder, when the records go there.
    store_dir: Option<PathBuf>,
    /// `ORDERGRID_OPERATORS` as the handler gets it.
    operators: String,
    /// The host stand-in's spans.
    host_telemetry: Telemetry,
}

impl LocalStack {
    /// Starts everything; returns once the handler answered its readiness probe. The emulator
    /// and the handler read `env` with the stack's wiring layered over it: the emulator's data
    /// under the data folder, its Functions host the stand-in; the subscriptions file, dead
    /// letters, store and outbox under the app and data folders unless `env` names others.
    pub async fn build(
        settings: StackSettings,
        env: &HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        app::check(&settings.app_root, env)?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("failed to create {}", settings.data_dir.display()))?;
        // The handler runs in the app's folder, as the host runs it: give it absolute paths.
        let data = &std::fs::canonicalize(&settings.data_dir)
            .with_context(|| format!("failed to resolve {}", settings.data_dir.display()))?;
        let host_listener = devhost::bind(settings.host_port).await?;
        let host_url = format!("http://127.0.0.1:{}", host_listener.local_addr()?.port());
        let emulator_env = Layered::over(env)
            .set(&emulator::DATA, data.join("emulator").display())
            .set(&emulator::FUNCTIONS_BASE_URL, host_url)
            .or(
                &emulator::SUBSCRIPTIONS,
                settings
                    .app_root
                    .join(emulator::SUBSCRIPTIONS.default)
                    .display(),
            )
            .or(&emulator::DEAD_LETTERS, data.join("dead-letters").display())
            .or(&emulator::TRACES, true);
        let emulator_settings = EmulatorSettings::from_env(emulator_env.env())?;
        let keeps_traces = emulator_settings.traces;
        let emulator = Emulator::build(emulator_settings).await?;
        let webpubsub_env =
            Layered::over(env).set(&webpubsub::DATA, data.join("webpubsub").display());
        let webpubsub =
            WebPubSubService::build(ServiceSettings::from_env(webpubsub_env.env())?).await?;
        let orders = emulator.keys().iter().find(|k| k.topic == "orders").context(
            "the subscriptions file has no `orders` topic, which the OrderProcessor's output binding publishes to",
        )?;
        // The handler runs in the app's folder, as the host runs it: its paths are absolute.
        let store_path = match Reader::new(env).raw(&store::STORE_PATH) {
            Some(path) => std::path::absolute(path)?,
            None => data.join("store"),
        };
        let handler_env = Layered::over(env)
            .set(&store::STORE_PATH, store_path.display())
            .or(&email::OUTBOX_PATH, data.join("outbox").display());
        let store_settings = StoreSettings::from_env(handler_env.env())?;
        let store = store_settings.describe();
        let store_dir = match store_settings {
            StoreSettings::Folder { .. } => Some(store_path.clone()),
            StoreSettings::Blob { .. } => None,
        };
        let mut reader = Reader::new(handler_env.env());
        let email = match EmailSettings::read(&mut reader).transport {
            TransportSettings::Outbox { path } => format!("outbox {}", path.display()),
            TransportSettings::Smtp(smtp) => format!("smtp {}:{}", smtp.host, smtp.port),
        };
        reader.finish(())?;
        let mut app_settings: HashMap<String, String> = HashMap::new();
        app_settings.insert(
            "OrdersTopic__topicEndpointUri".into(),
            emulator.topic_endpoint("orders"),
        );
        app_settings.insert(
            "OrdersTopic__topicKey".into(),
            orders.key1.expose_secret().to_owned(),
        );
        // The handler inherits the environment; these are what the stack adds (the store path is
        // used by the folder store only, ORDERGRID_STORE=blob sends records to Blob Storage).
        for setting in [&store::STORE_PATH, &email::OUTBOX_PATH] {
            app_settings.insert(
                setting.name.to_owned(),
                Reader::new(handler_env.env()).string(setting),
            );
        }
        app_settings.insert(
            DEFAULT_CONNECTION_SETTING.into(),
            webpubsub.connection_string(),
        );
        // On 127.0.0.1 every caller is the developer; on Azure the setting defaults to nobody.
        let operators_setting = &crate::functions::settings::OPERATORS;
        let operators = Reader::new(env)
            .raw(operators_setting)
            .unwrap_or("*")
            .to_owned();
        app_settings.insert(operators_setting.name.into(), operators.clone());
        // The host stand-in and the handler send their spans to the dashboard too, besides any
        // OTEL_EXPORTER_OTLP_ENDPOINT of the environment.
        if keeps_traces {
            app_settings.insert(
                trace::TRACE_SINK.name.into(),
                emulator.base_url().to_owned(),
            );
        }
        let host_telemetry = Telemetry::start(
            &TraceExport::from_env(
                Layered::over(env)
                    .set_some(
                        &trace::TRACE_SINK,
                        keeps_traces.then(|| emulator.base_url().to_owned()),
                    )
                    .env(),
            ),
            "ordergrid-functions-host",
            None,
        )?;
        let host = FunctionsHost::with_listener(
            &settings.app_root,
            app_settings,
            host_listener,
            HostOptions {
                tracer: host_telemetry.tracer(),
                guard: LocalGuard::read(&Reader::new(env)),
                http: HttpLimits::read(&mut Reader::new(env)),
            },
        )
        .await?;
        // The dashboard's view of the function app: the host's failed invocations, the store
        // and the outbox the handler writes.
        let outbox = match EmailSettings::read(&mut Reader::new(handler_env.env())).transport {
            TransportSettings::Outbox { path } => Some(path),
            TransportSettings::Smtp(_) => None,
        };
        emulator.attach_app(std::sync::Arc::new(app_view::LocalAppView::new(
            host.failures(),
            StoreSettings::from_env(handler_env.env())?,
            outbox,
        )));
        Ok(Self {
            emulator,
            host,
            webpubsub,
            data_dir: data.clone(),
            email,
            store,
            store_dir,
            operators,
            host_telemetry,
        })
    }

    /// Records where the stack listens in `<data>/stack.json`, for the other commands to find
    /// it. Called once the stack is ready and before the banner is printed, so whoever reads
    /// the banner finds the record; [`Self::run_until_stopped`] removes it.
    pub fn write_record(&self) -> anyhow::Result<()> {
        self.record().write(&self.data_dir).with_context(|| {
            format!(
                "failed to write {}",
                self.data_dir.join(record::FILE).display()
            )
        })
    }

    /// Where the stack listens, as `<data>/stack.json` records it (no secrets).
    pub fn record(&self) -> StackRecord {
        StackRecord {
            functions_host_url: Some(self.host.base_url().to_owned()),
            webpubsub_url: Some(self.webpubsub.base_url().to_owned()),
            data_dir: self.data_dir.clone(),
            store_dir: self.store_dir.clone(),
            ..StackRecord::of_emulator(&self.emulator, &self.data_dir.join("emulator"))
        }
    }

    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    pub fn host(&self) -> &FunctionsHost {
        &self.host
    }

    /// Where everything is, and how to publish an order: each line says what the settings in
    /// effect make true (the email transport, the store, whether HTTPS takes Entra ID tokens,
    /// whether the key-less endpoint is served, who may open the board).
    pub fn summary(&self) -> String {
        let endpoint = self.emulator.topic_endpoint("orders");
        let key = self
            .emulator
            .keys()
            .iter()
            .find(|k| k.topic == "orders")
            .map(|k| k.key1.expose_secret().to_owned())
            .unwrap_or_default();
        let handler = match self.host.worker().state() {
            devhost::worker::WorkerState::Ready { pid, port } => {
                format!("pid {pid}, 127.0.0.1:{port}")
            }
            other => format!("{other:?}"),
        };
        let mut out = String::new();
        let _ = writeln!(out, "ordergrid local stack is ready\n");
        let _ = writeln!(out, "  Event Grid topic   {endpoint}");
        let _ = writeln!(out, "  topic key          {key}");
        if let (Some(https), Some(certificate)) =
            (self.emulator.https_url(), self.emulator.certificate())
        {
            let (identity_endpoint, _) = self.emulator.identity();
            let accepted = if self.emulator.accepts_entra() {
                "keys, SAS tokens, Entra ID tokens"
            } else {
                "keys, SAS tokens; Entra ID tokens refused: ORDERGRID_EMULATOR_ENTRA=off"
            };
            let _ = writeln!(
                out,
                "  over HTTPS         {https}/orders/api/events ({accepted})"
            );
            let _ = writeln!(out, "  local CA           {}", certificate.ca().display());
            if self.emulator.accepts_entra() {
                let _ = writeln!(
                    out,
                    "  managed identity   IDENTITY_ENDPOINT={identity_endpoint} IDENTITY_HEADER=$(cat {})",
                    self.emulator.identity_header_file().display()
                );
            }
        }
        let _ = writeln!(out, "  emulator dashboard {}/", self.emulator.base_url());
        let _ = writeln!(
            out,
            "  Functions host     {} ({})",
            self.host.base_url(),
            self.host.function_names().join(", ")
        );
        let _ = writeln!(
            out,
            "  Web PubSub         {} (hub orders; {}={})",
            self.webpubsub.base_url(),
            DEFAULT_CONNECTION_SETTING,
            self.webpubsub.connection_string()
        );
        if self.host.function_names().iter().any(|f| f == "web") {
            let board = match self.operators.as_str() {
                "*" => String::new(),
                names => {
                    format!(" (only for {names}, by App Service Authentication's principal name)")
                }
            };
            let _ = writeln!(
                out,
                "  order tracker      {}/api/web/tracker?orderId=<id>   operators' board {}/api/web/board{board}",
                self.host.base_url(),
                self.host.base_url()
            );
        }
        for (function, why) in self.host.not_loaded() {
            let _ = writeln!(out, "  NOT LOADED         {function}: {why}");
        }
        let _ = writeln!(out, "  custom handler     {handler}");
        let _ = writeln!(out, "  data folder        {}", self.data_dir.display());
        let _ = writeln!(out, "  store              {}", self.store);
        let _ = writeln!(out, "  dead letters       {}", self.emulator.dead_letters());
        let _ = writeln!(out, "  email              {}", self.email);
        let _ = writeln!(out, "\nPublish a test order:\n");
        // `publish` finds this stack through <data>/stack.json; from another folder, or with
        // another data folder, it needs to be told which.
        let data = match std::env::current_dir() {
            Ok(cwd) if cwd.join(DEFAULT_DATA_DIR) == self.data_dir => String::new(),
            _ => format!(" --data {}", self.data_dir.display()),
        };
        let _ = writeln!(
            out,
            "  ordergrid publish{data} --order-id 12345 --customer-id 67890 --value 150.00 --email customer@example.com"
        );
        if self.emulator.simple_publish() {
            let _ = writeln!(
                out,
                "\nor with the key-less endpoint (the original Flask broker's curl command):\n"
            );
            let _ = writeln!(
                out,
                "  curl -X POST {}/publish -H \"Content-Type: application/json\" -d '{{\"eventType\": \"NewOrder\", \"data\": {{\"orderId\": \"12345\", \"customerId\": \"67890\", \"orderValue\": 150.0, \"customerEmail\": \"customer@example.com\"}}}}'",
                self.emulator.base_url()
            );
        }
        let _ = writeln!(
            out,
            "\nCtrl-C stops everything; pending deliveries resume on the next start."
        );
        out
    }

    /// Runs until `shutdown`; then stops the emulator (writing its progress), the host and the
    /// handler (SIGTERM, so in-flight invocations finish), and removes the stack's record.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let data_dir = self.data_dir.clone();
        let result = self.serve_until_stopped(shutdown).await;
        StackRecord::remove(&data_dir);
        result
    }

    async fn serve_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let (emulator_stop, host_stop, webpubsub_stop) = (stop.clone(), stop.clone(), stop.clone());
        let webpubsub = tokio::spawn(
            self.webpubsub
                .run_until_stopped(async move { webpubsub_stop.cancelled().await }),
        );
        let mut emulator = tokio::spawn(
            self.emulator
                .run_until_stopped(async move { emulator_stop.cancelled().await }),
        );
        let mut host = tokio::spawn(
            self.host
                .run_until_stopped(async move { host_stop.cancelled().await }),
        );
        // Stop on the signal, or as soon as either part stops on its own (a failure).
        let (emulator, host) = tokio::select! {
            () = shutdown => {
                stop.cancel();
                (emulator.await, host.await)
            }
            done = &mut emulator => {
                stop.cancel();
                (done, host.await)
            }
            done = &mut host => {
                stop.cancel();
                (emulator.await, done)
            }
        };
        self.host_telemetry.shutdown();
        emulator.context("the emulator task failed")??;
        host.context("the host task failed")??;
        webpubsub
            .await
            .context("the Web PubSub service's task failed")??;
        Ok(())
    }
}
