//! The custom handler process, run as the Functions host runs it: started with the app settings
//! plus `FUNCTIONS_CUSTOMHANDLER_PORT` (a free port), `FUNCTIONS_CUSTOMHANDLER_WORKER_ID` and
//! `FUNCTIONS_APP_ROOT_PATH`; ready once `GET /` gets any answer (polled every 25 ms, within the
//! initialization timeout); restarted when it exits. Like the host, the stand-in gives up after
//! 3 restarts within 30 minutes, and then reports the handler as failed.
//!
//! Invariant: invocations only go to a handler that answered the readiness probe; while it is
//! restarting they wait (up to the initialization timeout) and otherwise fail, so Event Grid
//! retries them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::manifest::AppManifest;

/// How many restarts within [`RESTART_WINDOW`] the host tolerates.
const MAX_RESTARTS: usize = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(30 * 60);
/// The longest pause between readiness probes of a starting handler (they start at 1 ms).
const MAX_PROBE_PAUSE: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum WorkerState {
    Starting,
    Ready { pid: u32, port: u16 },
    Restarting { reason: String },
    Failed { reason: String },
    Stopped,
}

pub struct Worker {
    state: watch::Sender<WorkerState>,
    restarts: AtomicU32,
    client: reqwest::Client,
    ready_timeout: Duration,
}

impl Worker {
    pub fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The handler's port once it is ready, waiting through a restart.
    async fn ready_port(&self) -> Result<u16, String> {
        let mut state = self.state.subscribe();
        let wait = async {
            loop {
                match &*state.borrow_and_update() {
                    WorkerState::Ready { port, .. } => return Ok(*port),
                    WorkerState::Failed { reason } => {
                        return Err(format!("the custom handler has failed: {reason}"));
                    }
                    WorkerState::Stopped => return Err("the host is stopping".to_owned()),
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err("the host stopped".to_owned());
                }
            }
        };
        tokio::time::timeout(self.ready_timeout, wait)
            .await
            .unwrap_or_else(|_| Err("the custom handler did not become ready in time".to_owned()))
    }

    /// `POST /<function>` with an invocation envelope; the status and body of the answer.
    pub async fn invoke(
        &self,
        function: &str,
        invocation_id: &str,
        envelope: Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), String> {
        let port = self.ready_port().await?;
        let response = self
            .client
            .post(format!("http://127.0.0.1:{port}/{function}"))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-azure-functions-invocationid", invocation_id)
            .header(
                "x-azure-functions-hostversion",
                concat!("ordergrid-devhost/", env!("CARGO_PKG_VERSION")),
            )
            .body(envelope)
            .send()
            .await
            .map_err(|e| format!("the custom handler did not answer: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("the custom handler's answer broke off: {e}"))?;
        Ok((status, body))
    }
}

/// Starts the handler and keeps it running until `stop`; returns once it first answered the
/// readiness probe (or failed to).
pub async fn start(
    manifest: &AppManifest,
    settings: HashMap<String, String>,
    ready_timeout: Duration,
    stop: CancellationToken,
) -> anyhow::Result<(Arc<Worker>, tokio::task::JoinHandle<()>)> {
    let executable = manifest.resolve_executable()?;
    let arguments = manifest.expanded_arguments(&settings);
    let worker = Arc::new(Worker {
        state: watch::Sender::new(WorkerState::Starting),
        restarts: AtomicU32::new(0),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .context("failed to build the host's HTTP client")?,
        ready_timeout,
    });
    let supervisor = Supervisor {
        worker: worker.clone(),
        executable: executable.clone(),
        arguments,
        working_dir: manifest.working_dir.clone(),
        root: manifest.root.clone(),
        settings,
        ready_timeout,
    };
    let mut state = worker.state.subscribe();
    let task = tokio::spawn(supervisor.run_until_stopped(stop));
    loop {
        match &*state.borrow_and_update() {
            WorkerState::Ready { .. } => return Ok((worker, task)),
            WorkerState::Failed { reason } => bail!(
                "the custom handler {} failed to start: {reason}",
                executable.display()
            ),
            _ => {}
        }
        if state.changed().await.is_err() {
            bail!("the host stopped before the custom handler was ready");
        }
    }
}

struct Supervisor {
    worker: Arc<Worker>,
    executable: std::path::PathBuf,
    arguments: Vec<String>,
    working_dir: std::path::PathBuf,
    root: std::path::PathBuf,
    settings: HashMap<String, String>,
    ready_timeout: Duration,
}

impl Supervisor {
    async fn run_until_stopped(self, stop: CancellationToken) {
        let mut failures: Vec<Instant> = Vec::new();
        loop {
            let reason = match self.run_once(&stop).await {
                Ok(()) => {
                    self.worker.state.send_replace(WorkerState::Stopped);
                    return;
                }
                Err(reason) => reason,
            };
            failures.retain(|t| t.elapsed() < RESTART_WINDOW);
            failures.push(Instant::now());
            if failures.len() > MAX_RESTARTS {
                let reason = format!(
                    "{reason}; exceeded {MAX_RESTARTS} restarts within 30 minutes, giving up as the host does"
                );
                tracing::error!(reason = %reason, "custom handler failed");
                self.worker
                    .state
                    .send_replace(WorkerState::Failed { reason });
                return;
            }
            tracing::error!(reason = %reason, "custom handler stopped; restarting it");
            self.worker.restarts.fetch_add(1, Ordering::Relaxed);
            self.worker
                .state
                .send_replace(WorkerState::Restarting { reason });
        }
    }

    /// Runs the handler once: start, wait for readiness, wait for exit or stop. `Ok` on stop.
    async fn run_once(&self, stop: &CancellationToken) -> Result<(), String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let mut child = Command::new(&self.executable)
            .args(&self.arguments)
            .current_dir(&self.working_dir)
            .envs(&self.settings)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env(
                "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
                uuid::Uuid::new_v4().to_string(),
            )
            .env("FUNCTIONS_APP_ROOT_PATH", &self.root)
            .env(crate::shutdown::EXIT_WITH_PARENT, "true")
            .stdin(Stdio::null())
            // Its own process group: a terminal's Ctrl-C reaches the stand-in, which then stops
            // the handler itself (SIGTERM), instead of both racing a restart.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("failed to start {}: {e}", self.executable.display()))?;
        let pid = child.id().unwrap_or(0);
        let started = Instant::now();
        let probe = format!("http://127.0.0.1:{port}/");
        // Probe soon and then back off: a custom handler is usually ready in milliseconds, one
        // that loads a lot may take seconds.
        let mut pause = Duration::from_millis(1);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the custom handler exited with {status} before it was ready"
                ));
            }
            if self.worker.client.get(&probe).send().await.is_ok() {
                break;
            }
            if started.elapsed() > self.ready_timeout {
                let _ = child.kill().await;
                return Err(format!(
                    "the custom handler did not answer GET / on port {port} within {:?}",
                    self.ready_timeout
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => {
                    let _ = child.kill().await;
                    return Ok(());
                }
            }
            pause = (pause * 2).min(MAX_PROBE_PAUSE);
        }
        tracing::info!(
            pid,
            port,
            startup_ms = started.elapsed().as_millis() as u64,
            "custom handler ready"
        );
        self.worker
            .state
            .send_replace(WorkerState::Ready { pid, port });
        tokio::select! {
            status = child.wait() => Err(match status {
                Ok(status) => format!("the custom handler (pid {pid}) exited with {status}"),
                Err(e) => format!("lost the custom handler (pid {pid}): {e}"),
            }),
            () = stop.cancelled() => {
                terminate(&mut child, pid).await;
                Ok(())
            }
        }
    }
}

/// SIGTERM first (the handler finishes in-flight invocations), then SIGKILL after 10 s.
async fn terminate(child: &mut tokio::process::Child, pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// A port that was free a moment ago (as the host's `GetUnusedTcpPort`).
fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
        .local_addr()
        .map(|a| a.port())
}
