//! A local Azure Event Grid: the seed's Flask broker done properly.
//!
//! Topics and subscriptions come from `infra/subscriptions.json`, the file the Bicep deploys.
//! Publishers use Event Grid's real publish API (keys, SAS tokens, both schemas, Azure's limits
//! and errors); events are durable before the publish is acknowledged; each subscription's
//! dispatcher delivers with Azure's headers, batching, validation handshakes, retry schedule,
//! time to live and dead-lettering.
//!
//! The flow of an event, by module: [`api`] (the publish API, the admin API and the managed
//! identity endpoint over HTTP and HTTPS, [`tls`], with keys, SAS and [`entra`] tokens) parses it
//! once into an [`event::Event`] and makes it durable in the [`spool`]; each subscription's
//! [`delivery`] dispatcher picks it from there if its [`filter`] matches, delivers it and
//! retries, or hands it to [`dead_letter`]. Topics and subscriptions come from
//! [`subscriptions`] (read with [`arm_json`]'s strict helpers); [`settings`] holds every setting,
//! [`admin`] the admin API's views and client, [`clock`] the wall clock. The dashboard
//! ([`api::dashboard`]) reads what happened from [`activity`], which the dispatchers, the publish
//! API and an indexer tailing the spool keep up to date.
//!
//! Invariants (ARCHITECTURE.md 1, 4–6): an acknowledged event survives crashes and is delivered
//! at least once or dead-lettered; subscriptions are defined once, in the file; every Azure
//! duration is a setting; the emulator listens on 127.0.0.1 only and compares keys in constant
//! time, never logging them.

pub mod activity;
pub mod admin;
pub mod api;
pub mod arm_json;
pub mod clock;
pub mod dead_letter;
pub mod delivery;
pub mod entra;
pub mod event;
pub mod filter;
pub mod settings;
pub mod spool;
pub mod subscriptions;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use self::api::{ApiState, TopicState};
use self::dead_letter::{BlobSink, DeadLetterSink, DeadLetterStorage, FolderSink};
use self::delivery::{Dispatcher, SubscriptionRuntime, handshake, webhook};
use self::entra::EntraMode;
pub use self::settings::EmulatorSettings;
use self::spool::{Spool, SpoolError};
use self::subscriptions::SubscriptionsFile;
use crate::eventgrid::sas::TopicKey;
use crate::http_server::{self, HttpLimits};
use crate::journal::JournalOptions;
use crate::trace::{SpanSink, Telemetry};

/// A topic's access keys as shown to users; persisted under the data folder.
#[derive(Debug, Clone)]
pub struct TopicKeys {
    pub topic: String,
    pub key1: TopicKey,
    pub key2: TopicKey,
}

pub struct Emulator {
    listener: tokio::net::TcpListener,
    https: Option<tls::TlsListener>,
    api: Arc<ApiState>,
    dispatchers: Vec<Dispatcher>,
    keys: Vec<TopicKeys>,
    telemetry: Telemetry,
    http: HttpLimits,
}

impl Emulator {
    /// Loads the subscriptions file, opens the spool (recovering what was in flight), binds
    /// `127.0.0.1:<port>` (and the HTTPS port), and connects to the dead-letter storage.
    /// Nothing is delivered until [`Emulator::run_until_stopped`].
    pub async fn build(settings: EmulatorSettings) -> anyhow::Result<Self> {
        let file = SubscriptionsFile::load(&settings.subscriptions_file)?;
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port)))
                .await
                .with_context(|| format!("failed to listen on 127.0.0.1:{}", settings.port))?;
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("failed to create {}", settings.data_dir.display()))?;
        let (https, https_url, certificate) = match settings.https_port {
            None => (None, None, None),
            Some(port) => {
                let tcp =
                    tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                        .await
                        .with_context(|| {
                            format!("failed to listen for HTTPS on 127.0.0.1:{port}")
                        })?;
                let url = format!("https://localhost:{}", tcp.local_addr()?.port());
                let (certificate, config) =
                    tls::DevCertificate::load_or_create(&settings.data_dir)?;
                (
                    Some(tls::TlsListener::new(tcp, config)?),
                    Some(url),
                    Some(certificate),
                )
            }
        };
        let identity = entra::LocalIdentity::load_or_create(&settings.data_dir)?;
        if settings.entra == EntraMode::Local {
            tracing::info!(
                "Microsoft Entra ID tokens are accepted over HTTPS by form, audience and expiry, not signature (local mode, like Azurite's --oauth basic)"
            );
        }
        let keys = load_keys(&settings.data_dir, &file, settings.key.as_ref())?;
        let (spool, mut recovered) =
            Spool::open(&settings.data_dir.join("spool"), JournalOptions::default())
                .map_err(|e| anyhow::anyhow!("failed to open the emulator's spool: {e}"))?;
        let spool = Arc::new(spool);
        let dead_letters: Arc<dyn DeadLetterSink> = match &settings.dead_letters {
            DeadLetterStorage::Folder(path) => Arc::new(FolderSink::new(path.clone())),
            DeadLetterStorage::Blob(connection) => {
                let containers = file
                    .topics
                    .iter()
                    .flat_map(|t| &t.subscriptions)
                    .filter_map(|s| s.dead_letter.as_ref().map(|d| d.container.clone()));
                Arc::new(BlobSink::connect(connection, containers).await?)
            }
        };
        let delivery = Arc::new(settings.delivery.clone());
        let sender = webhook::Sender::new(delivery.delivery_timeout, delivery.max_in_flight)
            .map_err(anyhow::Error::msg)?;

        let activity = Arc::new(activity::Activity::new(
            file.topics.iter().map(|t| t.name.to_string()).collect(),
            file.topics
                .iter()
                .flat_map(|t| {
                    t.subscriptions
                        .iter()
                        .map(move |s| format!("{}/{}", t.name, s.name))
                })
                .collect(),
            activity::metrics::BUCKET_MS,
        ));
        let traces = settings
            .traces
            .then(|| Arc::new(activity::traces::TraceStore::new(activity.clone())));
        let telemetry = Telemetry::start(
            &settings.trace_export,
            "ordergrid-emulator",
            traces.clone().map(|t| t as Arc<dyn SpanSink>),
        )?;
        let mut dispatchers = Vec::new();
        let mut runtimes = Vec::new();
        for topic in &file.topics {
            for subscription in &topic.subscriptions {
                let key = format!("{}/{}", topic.name, subscription.name);
                let (mut dispatcher, rt) = Dispatcher::new(
                    topic.name.as_str(),
                    topic.input_schema,
                    subscription.clone(),
                    spool.clone(),
                    sender.clone(),
                    dead_letters.clone(),
                    delivery.clone(),
                    recovered.remove(&key),
                    activity.clone(),
                    telemetry.tracer(),
                );
                dispatcher.persist_start().await?;
                dispatchers.push(dispatcher);
                runtimes.push(rt);
            }
        }
        let topics = file
            .topics
            .iter()
            .map(|t| {
                let k = keys.iter().find(|k| k.topic == t.name.as_str());
                TopicState {
                    name: t.name.to_string(),
                    schema: t.input_schema,
                    resource_id: crate::eventgrid::protocol::topic_resource_id(t.name.as_str()),
                    keys: k
                        .map(|k| vec![k.key1.clone(), k.key2.clone()])
                        .unwrap_or_default(),
                }
            })
            .collect();
        let api = Arc::new(ApiState {
            topics,
            spool,
            runtimes,
            dead_letters,
            sender,
            delivery,
            base_url,
            started: Instant::now(),
            simple_publish: settings.simple_publish,
            entra: settings.entra,
            identity,
            https_url,
            certificate,
            activity,
            dashboard_token: api::dashboard::new_token(),
            app: std::sync::OnceLock::new(),
            traces,
            guard: settings.guard.clone(),
            publish_buffer: Arc::new(tokio::sync::Semaphore::new(settings.publish_buffer / 1024)),
        });
        Ok(Self {
            listener,
            https,
            api,
            dispatchers,
            keys,
            telemetry,
            http: settings.http,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn base_url(&self) -> &str {
        &self.api.base_url
    }

    pub fn keys(&self) -> &[TopicKeys] {
        &self.keys
    }

    /// Where dead letters go (a folder, or blob containers of an account), for people.
    pub fn dead_letters(&self) -> String {
        self.api.dead_letters.describe()
    }

    /// The publish endpoint of a topic: `http://127.0.0.1:<port>/<topic>/api/events`.
    pub fn topic_endpoint(&self, topic: &str) -> String {
        format!("{}/{topic}/api/events", self.api.base_url)
    }

    /// The HTTPS base URL (`https://localhost:<port>`), when HTTPS is on.
    pub fn https_url(&self) -> Option<&str> {
        self.api.https_url.as_deref()
    }

    /// Whether the key-less `POST /publish` is served (`ORDERGRID_EMULATOR_SIMPLE_PUBLISH`).
    pub fn simple_publish(&self) -> bool {
        self.api.simple_publish
    }

    /// Whether Microsoft Entra ID bearer tokens are accepted over HTTPS
    /// (`ORDERGRID_EMULATOR_ENTRA`).
    pub fn accepts_entra(&self) -> bool {
        matches!(self.api.entra, entra::EntraMode::Local)
    }

    /// The development certificate HTTPS uses, when it is on.
    pub fn certificate(&self) -> Option<&tls::DevCertificate> {
        self.api.certificate.as_ref()
    }

    /// The managed-identity endpoint (`IDENTITY_ENDPOINT`) and its secret (`IDENTITY_HEADER`).
    pub fn identity(&self) -> (String, &str) {
        (
            format!("{}/identity/token", self.api.base_url),
            self.api.identity.secret(),
        )
    }

    /// The file holding the managed identity's secret, for people to `cat` rather than see.
    pub fn identity_header_file(&self) -> std::path::PathBuf {
        self.api.identity.file().to_owned()
    }

    /// Gives the dashboard the function app's side (the handler's answers, records, email);
    /// the local stack does, once. A second call changes nothing.
    pub fn attach_app(&self, app: Arc<dyn api::dashboard::AppView>) {
        let _ = self.api.app.set(app);
    }

    /// Whether the dashboard keeps traces (`ORDERGRID_EMULATOR_TRACES`), taking OTLP at
    /// `/v1/traces`.
    pub fn keeps_traces(&self) -> bool {
        self.api.traces.is_some()
    }

    pub fn runtimes(&self) -> &[Arc<SubscriptionRuntime>] {
        &self.api.runtimes
    }

    /// Validates webhook endpoints, runs the dispatchers and serves the API until `shutdown`;
    /// then stops taking requests, lets dispatchers write their final watermarks, and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let telemetry = self.telemetry.clone();
        let mut tasks = Vec::new();
        for rt in &self.api.runtimes {
            let (rt, sender, settings, base) = (
                rt.clone(),
                self.api.sender.clone(),
                self.api.delivery.clone(),
                self.api.base_url.clone(),
            );
            tokio::spawn(async move { handshake::validate(&rt, &sender, &settings, &base).await });
        }
        for dispatcher in self.dispatchers {
            tasks.push(tokio::spawn(dispatcher.run_until_stopped(stop.clone())));
        }
        let indexer = tokio::spawn(activity::indexer::run_indexer_until_stopped(
            self.api.spool.clone(),
            self.api.runtimes.clone(),
            self.api.activity.clone(),
            stop.clone(),
        ));
        let maintenance = tokio::spawn(run_maintenance_until_stopped(
            self.api.clone(),
            stop.clone(),
        ));
        let router = api::router(self.api.clone());
        let limits = self.http;
        let https = self.https.map(|listener| {
            let router = router.clone().layer(axum::Extension(api::Transport::Https));
            let stop = stop.clone();
            tokio::spawn(async move {
                http_server::serve(
                    listener,
                    router,
                    limits,
                    async move { stop.cancelled().await },
                )
                .await
            })
        });
        let served = http_server::serve(self.listener, router, limits, shutdown).await;
        stop.cancel();
        if let Some(https) = https {
            let _ = https.await;
        }
        for task in tasks {
            let _ = task.await;
        }
        let _ = maintenance.await;
        let _ = indexer.await;
        telemetry.shutdown();
        served.context("the emulator's HTTP server failed")
    }
}

/// Periodically deletes spool segments no subscription needs, ages the spool's window of recent
/// events (an idle emulator lets it go within two ticks), and compacts the state journal once it
/// has grown: roll it, have every dispatcher restate itself, delete the old segments.
async fn run_maintenance_until_stopped(api: Arc<ApiState>, stop: CancellationToken) {
    const STATE_COMPACTION_BYTES: u64 = 32 * 1024 * 1024;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut state_base = api.spool.state_end();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        api.spool.age_window();
        if let Some(low) = api.runtimes.iter().filter_map(|rt| rt.low_position()).min()
            && let Err(e) = api.spool.forget_events_before(low)
        {
            tracing::warn!(error = %e, "failed to delete old spool segments");
        }
        let end = api.spool.state_end();
        let grown = end.segment > state_base.segment
            || end.offset.saturating_sub(state_base.offset) > STATE_COMPACTION_BYTES;
        if grown && end.offset > STATE_COMPACTION_BYTES {
            match compact_state(&api).await {
                Ok(base) => state_base = base,
                Err(e) => tracing::warn!(error = %e, "failed to compact the delivery state"),
            }
        }
    }
}

async fn compact_state(api: &ApiState) -> Result<crate::journal::Position, SpoolError> {
    let from = api.spool.roll_state().await?;
    for rt in &api.runtimes {
        rt.checkpoint().await?;
    }
    api.spool.forget_state_before(from)?;
    Ok(from)
}

/// Reads `<data>/topic-keys.json`, generating two keys for topics that have none; a configured
/// key replaces key1 of every topic. The file is created owner-readable only.
fn load_keys(
    data_dir: &Path,
    file: &SubscriptionsFile,
    configured: Option<&TopicKey>,
) -> anyhow::Result<Vec<TopicKeys>> {
    let path = data_dir.join("topic-keys.json");
    let mut stored: BTreeMap<String, (String, String)> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not readable JSON", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let mut changed = false;
    let mut keys = Vec::new();
    for topic in &file.topics {
        let entry = stored.entry(topic.name.to_string()).or_insert_with(|| {
            changed = true;
            (
                TopicKey::generate().expose_secret().to_owned(),
                TopicKey::generate().expose_secret().to_owned(),
            )
        });
        let key1 = match configured {
            Some(key) => key.clone(),
            None => TopicKey::parse(&entry.0)
                .with_context(|| format!("key1 of topic {} in {}", topic.name, path.display()))?,
        };
        let key2 = TopicKey::parse(&entry.1)
            .with_context(|| format!("key2 of topic {} in {}", topic.name, path.display()))?;
        keys.push(TopicKeys {
            topic: topic.name.to_string(),
            key1,
            key2,
        });
    }
    if changed {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("json.tmp");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        out.write_all(&serde_json::to_vec_pretty(&stored)?)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(keys)
}
