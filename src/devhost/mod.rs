//! A stand-in for the Azure Functions host, for running the function app locally without Core
//! Tools: it reads the repository's real `host.json` and `*/function.json`, loads the functions
//! whose bindings have their settings (as the host's indexing does), runs the custom handler the
//! way the host does (`worker`: timeouts, kills, restarts, stopping after three errors), and
//! serves the Event Grid extension's webhook (`webhook`) that Event Grid (or the local emulator)
//! delivers to, handing the handler events as the host's JSON library rewrites them
//! (`newtonsoft`), and HTTP-triggered functions under the route prefix (`http`). It carries out
//! the bindings the functions declare (`bindings`): the `webPubSubConnection` input
//! (`webpubsub`), and the `eventGrid` and `webPubSub` outputs (`outputs`).
//!
//! What it does not do: other trigger and binding types (a function using one does not load,
//! saying why), keys on the webhook or on HTTP functions (as Core Tools, it does not enforce them
//! locally), forwarding HTTP requests as they are (`enableForwardingHttpRequest`), or
//! identity-based Event Grid output publishing (it uses `<connection>__topicKey` against the local
//! emulator instead of a managed identity).

pub mod answers;
pub mod binding_data;
pub mod bindings;
pub mod http;
pub mod manifest;
pub mod newtonsoft;
pub mod outputs;
pub mod webhook;
pub mod webpubsub;
pub mod worker;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::routing::{any, get};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::manifest::AppManifest;
use self::worker::{Worker, WorkerState};
use crate::local_guard::LocalGuard;
use crate::trace::Tracer;

/// The host's initialization timeout (code default 30 s).
pub const INITIALIZATION_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HostState {
    pub manifest: AppManifest,
    /// Functions that did not load, with why.
    pub not_loaded: Vec<(String, String)>,
    pub settings: HashMap<String, String>,
    pub worker: Arc<Worker>,
    /// One publisher per output target (endpoint setting), so connections are reused.
    pub publishers:
        std::sync::Mutex<HashMap<String, Arc<crate::eventgrid::publisher::PublisherClient>>>,
    /// One Web PubSub client per connection setting.
    pub web_pubsub: std::sync::Mutex<HashMap<String, crate::webpubsub::WebPubSubClient>>,
    /// The HTTP-triggered functions' routes.
    pub http: http::Routes,
    /// The causes of failed Event Grid invocations, for the dashboard.
    pub failures: Arc<answers::FailedInvocations>,
    /// A span for each invocation (off unless an OTLP endpoint is set).
    pub tracer: Tracer,
}

/// How the stand-in runs, besides the app and its settings.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// A span for each invocation (off unless an OTLP endpoint is set).
    pub tracer: Tracer,
    /// What it refuses from hostile pages (see [`crate::local_guard`]).
    pub guard: LocalGuard,
    /// Timeouts and the connection cap of its listener (see [`crate::http_server`]).
    pub http: crate::http_server::HttpLimits,
}

impl HostState {
    /// A loaded function, by its exact name.
    pub fn function(&self, name: &str) -> Option<&manifest::FunctionManifest> {
        self.manifest
            .function(name)
            .filter(|f| !self.not_loaded.iter().any(|(n, _)| *n == f.name))
    }
}

pub struct FunctionsHost {
    listener: tokio::net::TcpListener,
    state: Arc<HostState>,
    supervisor: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    guard: LocalGuard,
    http: crate::http_server::HttpLimits,
}

impl FunctionsHost {
    /// Reads the app at `root`, binds `127.0.0.1:<port>` (0 picks one), starts the custom
    /// handler with `settings` as its app settings and waits until it is ready.
    pub async fn build(
        root: &Path,
        settings: HashMap<String, String>,
        port: u16,
        options: HostOptions,
    ) -> anyhow::Result<Self> {
        Self::with_listener(root, settings, bind(port).await?, options).await
    }

    /// As [`FunctionsHost::build`], on a listener bound beforehand (so its URL can be given to
    /// Event Grid before the host starts).
    pub async fn with_listener(
        root: &Path,
        settings: HashMap<String, String>,
        listener: tokio::net::TcpListener,
        options: HostOptions,
    ) -> anyhow::Result<Self> {
        let manifest = AppManifest::load(root)?;
        let not_loaded: Vec<(String, String)> = manifest
            .functions
            .iter()
            .filter_map(|f| f.load_error(&settings).map(|why| (f.name.clone(), why)))
            .collect();
        for (function, why) in &not_loaded {
            tracing::error!(function = %function, "the function is not loaded: {why}");
        }
        let stop = CancellationToken::new();
        let (worker, supervisor) = worker::start(
            &manifest,
            settings.clone(),
            INITIALIZATION_TIMEOUT,
            stop.clone(),
        )
        .await?;
        let http = http::Routes::new(
            manifest
                .functions
                .iter()
                .filter(|f| !not_loaded.iter().any(|(n, _)| *n == f.name)),
            &settings,
        );
        Ok(Self {
            listener,
            state: Arc::new(HostState {
                manifest,
                not_loaded,
                settings,
                worker,
                publishers: Default::default(),
                web_pubsub: Default::default(),
                http,
                failures: Default::default(),
                tracer: options.tracer,
            }),
            guard: options.guard,
            http: options.http,
            supervisor,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The causes of failed Event Grid invocations (bounded; see [`answers`]).
    pub fn failures(&self) -> Arc<answers::FailedInvocations> {
        self.state.failures.clone()
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.state.worker
    }

    /// The functions that loaded.
    pub fn function_names(&self) -> Vec<String> {
        self.state
            .manifest
            .functions
            .iter()
            .filter(|f| self.state.function(&f.name).is_some())
            .map(|f| f.name.clone())
            .collect()
    }

    /// The functions that did not load, with why.
    pub fn not_loaded(&self) -> &[(String, String)] {
        &self.state.not_loaded
    }

    /// Serves until `shutdown`, or until the handler failed too often, which stops the
    /// application with an error, as the real host does.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = Router::new()
            .route("/runtime/webhooks/{extension}", any(webhook::eventgrid))
            .route("/admin/host/status", get(status))
            .route("/", get(|| async { "ordergrid Functions host stand-in\n" }))
            .fallback(http::serve)
            // The host's body limit applies to every request, the Event Grid webhook's too
            // (`HttpRequestBodySizeMiddleware` runs before any route).
            .layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(self.state.http.body_limit).unwrap_or(usize::MAX),
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.guard.clone(),
                crate::local_guard::layer,
            ))
            .with_state(self.state.clone());
        let mut states = self.state.worker.subscribe();
        let failed = async move {
            loop {
                if let WorkerState::Failed { reason } = &*states.borrow_and_update() {
                    return Some(reason.clone());
                }
                if states.changed().await.is_err() {
                    return None;
                }
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stopping = async move {
            tokio::select! {
                () = shutdown => {}
                reason = failed => { let _ = tx.send(reason); }
            }
        };
        let served = crate::http_server::serve(self.listener, router, self.http, stopping).await;
        self.stop.cancel();
        let _ = self.supervisor.await;
        served.context("the Functions host stand-in failed")?;
        match rx.await {
            Ok(Some(reason)) => {
                anyhow::bail!("the Functions host stand-in stopped the application: {reason}")
            }
            _ => Ok(()),
        }
    }
}

/// The port `func start` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7071;

/// Binds `127.0.0.1:<port>`.
pub async fn bind(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .with_context(|| format!("failed to listen on 127.0.0.1:{port}"))
}

async fn status(State(host): State<Arc<HostState>>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "state": "Running",
        "functions": host.manifest.functions.iter().filter(|f| host.function(&f.name).is_some()).map(|f| &f.name).collect::<Vec<_>>(),
        "notLoaded": host.not_loaded.iter().map(|(f, why)| json!({"function": f, "reason": why})).collect::<Vec<_>>(),
        "handler": host.worker.state(),
        "handlerRestarts": host.worker.restarts(),
    }))
}
