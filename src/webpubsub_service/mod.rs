//! A local Azure Web PubSub service: what the live order feed, the Functions bindings and the
//! official clients use, on 127.0.0.1, with no .NET and no Docker (Microsoft's emulator needs
//! one or the other).
//!
//! - [`client`]: the client endpoint `/client/hubs/{hub}` (and `/client/?hub=`): access
//!   tokens checked as the service checks them, the `json.webpubsub.azure.v1` and
//!   `json.reliable.webpubsub.azure.v1` subprotocols and simple clients;
//! - [`rest`]: the REST data plane the server SDKs and the `webPubSub` output binding call;
//! - [`hub`] and [`session`]: who a message goes to, and each connection's queue;
//! - [`frames`]: the subprotocols' frames.
//!
//! Invariants:
//! - nothing is kept on disk but the access key; messages live in memory only as long as a
//!   reliable client may still come back for them ([`settings::RECOVERY_WINDOW`]);
//! - a bad token, a bad frame or a slow client closes that one connection with the service's
//!   answer and never touches another;
//! - the key is never logged; a presented key's signature is checked in constant time.

pub mod client;
pub mod frames;
pub mod hub;
pub mod rest;
pub mod session;
pub mod settings;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use settings::ServiceSettings;

use crate::local_guard::LocalGuard;
use crate::webpubsub::AccessKey;

/// Azure's limit on one message: "plain text, binary, or JSON format, with a maximum size of
/// 1 MB" (concept-service-internals). Client frames and REST bodies above it are refused.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// What the client endpoint and the REST API share.
pub struct Service {
    key: AccessKey,
    hubs: hub::Hubs,
    recovery_window: Duration,
    max_unacked: usize,
    stop: CancellationToken,
    guard: LocalGuard,
}

pub struct WebPubSubService {
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    base_url: String,
    http: crate::http_server::HttpLimits,
}

impl WebPubSubService {
    /// Binds `127.0.0.1:<port>` and loads (or makes) the access key. Nothing is served until
    /// [`WebPubSubService::run_until_stopped`].
    pub async fn build(settings: ServiceSettings) -> anyhow::Result<Self> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port)))
                .await
                .with_context(|| format!("failed to listen on 127.0.0.1:{}", settings.port))?;
        let base_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let key = match settings.key {
            Some(key) => key,
            None => load_or_create_key(&settings.data_dir)?,
        };
        Ok(Self {
            listener,
            http: settings.http,
            base_url,
            service: Arc::new(Service {
                key,
                hubs: hub::Hubs::default(),
                recovery_window: settings.recovery_window,
                max_unacked: settings.max_unacked,
                stop: CancellationToken::new(),
                guard: settings.guard,
            }),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The connection string a server SDK or the Functions extension takes, in the form
    /// Microsoft's emulator prints (`Endpoint=http://…;Port=…;AccessKey=…;Version=1.0;`).
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={};Version=1.0;",
            self.port(),
            self.service.key.expose_secret()
        )
    }

    /// Serves until `shutdown`, then closes every client connection (1001, going away).
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(self.service.clone());
        let service = self.service.clone();
        // No Nagle: a frame written while the client has not yet acknowledged the previous one
        // would otherwise wait for that acknowledgement (up to the client's delayed-ACK timer),
        // and a broadcast is one small write per client. Node's `ws` sets it too.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = crate::http_server::serve(listener, app, self.http, async move {
            shutdown.await;
            service.stop.cancel();
            service.hubs.close_all("the service is stopping");
        })
        .await;
        served.context("the Web PubSub service's HTTP server failed")
    }
}

/// The whole HTTP surface: the client endpoint and the REST data plane.
pub fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route(
            "/client/hubs/{hub}",
            axum::routing::get(client::connect_to_hub),
        )
        .route("/client", axum::routing::get(client::connect))
        .route("/client/", axum::routing::get(client::connect))
        .fallback(rest::handle)
        .layer(axum::middleware::from_fn_with_state(
            service.guard.clone(),
            crate::local_guard::layer,
        ))
        .with_state(service)
}

/// The key kept in `<data>/access-key` (0600), made on first start: a connection string
/// someone copied keeps working after a restart.
fn load_or_create_key(data_dir: &Path) -> anyhow::Result<AccessKey> {
    let path = data_dir.join("access-key");
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(AccessKey::new(text.trim()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create {}", data_dir.display()))?;
    let key = AccessKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(&path)
            .with_context(|| format!("failed to write {}", path.display()))?,
        key.expose_secret().as_bytes(),
    )?;
    Ok(key)
}
