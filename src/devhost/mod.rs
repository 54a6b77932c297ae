//! A stand-in for the Azure Functions host, for running the function app locally without Core
//! Tools: it reads the repository's real `host.json` and `*/function.json`, runs the custom
//! handler the way the host does (`worker`), and serves the Event Grid extension's webhook
//! (`webhook`) that Event Grid (or the local emulator) delivers to.
//!
//! What it does not do: other trigger types, HTTP-triggered functions, keys on the webhook (as
//! Core Tools, it does not enforce them locally), or identity-based output publishing (it uses
//! `<connection>__topicKey` against the local emulator instead of a managed identity).

pub mod manifest;
pub mod webhook;
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
use self::worker::Worker;

/// The host's initialization timeout (code default 30 s).
pub const INITIALIZATION_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HostState {
    pub manifest: AppManifest,
    pub settings: HashMap<String, String>,
    pub worker: Arc<Worker>,
    /// One publisher per output target (endpoint setting), so connections are reused.
    pub publishers:
        std::sync::Mutex<HashMap<String, Arc<crate::eventgrid::publisher::PublisherClient>>>,
}

pub struct FunctionsHost {
    listener: tokio::net::TcpListener,
    state: Arc<HostState>,
    supervisor: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl FunctionsHost {
    /// Reads the app at `root`, binds `127.0.0.1:<port>` (0 picks one), starts the custom
    /// handler with `settings` as its app settings and waits until it is ready.
    pub async fn build(
        root: &Path,
        settings: HashMap<String, String>,
        port: u16,
    ) -> anyhow::Result<Self> {
        Self::with_listener(root, settings, bind(port).await?).await
    }

    /// As [`FunctionsHost::build`], on a listener bound beforehand (so its URL can be given to
    /// Event Grid before the host starts).
    pub async fn with_listener(
        root: &Path,
        settings: HashMap<String, String>,
        listener: tokio::net::TcpListener,
    ) -> anyhow::Result<Self> {
        let manifest = AppManifest::load(root)?;
        let stop = CancellationToken::new();
        let (worker, supervisor) = worker::start(
            &manifest,
            settings.clone(),
            INITIALIZATION_TIMEOUT,
            stop.clone(),
        )
        .await?;
        Ok(Self {
            listener,
            state: Arc::new(HostState {
                manifest,
                settings,
                worker,
                publishers: Default::default(),
            }),
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

    pub fn worker(&self) -> &Arc<Worker> {
        &self.state.worker
    }

    pub fn function_names(&self) -> Vec<String> {
        self.state
            .manifest
            .functions
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = Router::new()
            .route("/runtime/webhooks/{extension}", any(webhook::eventgrid))
            .route("/admin/host/status", get(status))
            .route("/", get(|| async { "ordergrid Functions host stand-in\n" }))
            .with_state(self.state.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        self.stop.cancel();
        let _ = self.supervisor.await;
        served.context("the Functions host stand-in failed")
    }
}

/// Binds `127.0.0.1:<port>`.
pub async fn bind(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .with_context(|| format!("failed to listen on 127.0.0.1:{port}"))
}

async fn status(State(host): State<Arc<HostState>>) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "state": "Running",
        "functions": host.manifest.functions.iter().map(|f| &f.name).collect::<Vec<_>>(),
        "handler": host.worker.state(),
        "handlerRestarts": host.worker.restarts(),
    }))
}
