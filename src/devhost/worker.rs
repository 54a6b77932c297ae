//! The custom handler process, run as the Functions host runs it (`DefaultHttpWorkerService`,
//! `HttpFunctionInvocationDispatcher`, `WorkerProcess` in Azure/azure-functions-host):
//! - started with the app settings plus `FUNCTIONS_CUSTOMHANDLER_PORT` (a free port),
//!   `FUNCTIONS_CUSTOMHANDLER_WORKER_ID` and `FUNCTIONS_APP_ROOT_PATH`; ready once `GET /` gets
//!   any answer within the initialization timeout (the stand-in probes from 1 ms, backing off to
//!   the host's 25 ms);
//! - an invocation that runs past `functionTimeout` fails, and the handler is killed and started
//!   again ("A function timeout has occurred. Restarting worker process…"); such restarts do not
//!   count as errors;
//! - a handler that exits (or fails to start) is an error: the first two are restarted, the third
//!   within 30 minutes stops the application, as the host's `StopApplication()` does;
//! - stopping, restarting and timing out kill the process outright (`Process.Kill()`): no
//!   SIGTERM, no drain, so a handler must never acknowledge what it has not made durable.
//!
//! Invariant: invocations only go to a handler that answered the readiness probe; while it is
//! restarting they wait (up to four initialization timeouts, as the host's invoker does) and
//! otherwise fail, so Event Grid retries them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::manifest::AppManifest;
use crate::trace::{self, TraceParent};

/// Handler errors within [`ERROR_WINDOW`] that stop the application (the host's threshold).
const ERROR_THRESHOLD: usize = 3;
const ERROR_WINDOW: Duration = Duration::from_secs(30 * 60);
/// The longest pause between readiness probes of a starting handler (they start at 1 ms).
const MAX_PROBE_PAUSE: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum WorkerState {
    Starting,
    Ready {
        pid: u32,
        port: u16,
    },
    Restarting {
        reason: String,
    },
    /// The application stopped: the handler failed too often.
    Failed {
        reason: String,
    },
    Stopped,
}

/// Why an invocation got no answer from the handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("{0}")]
    Unavailable(String),
    #[error("Timeout value of {} was exceeded by function: Functions.{function}", timespan(*.timeout))]
    TimedOut { function: String, timeout: Duration },
}

/// A .NET `TimeSpan` as the host prints it: `hh:mm:ss`.
fn timespan(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The handler's answer to an invocation.
pub struct Answered {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
}

/// What the host tells the handler of an invocation besides its envelope: its id
/// (`X-Azure-Functions-InvocationId`) and its trace context (`traceparent`).
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub id: &'a str,
    pub traceparent: TraceParent,
}

pub struct Worker {
    state: watch::Sender<WorkerState>,
    restarts: AtomicU32,
    client: reqwest::Client,
    /// How long an invocation waits for a (re)starting handler.
    ready_timeout: Duration,
    function_timeout: Option<Duration>,
    /// Asks the supervisor to kill and restart the handler listening on a port (after an
    /// invocation on it timed out), naming the invocation.
    restart: mpsc::UnboundedSender<(String, u16)>,
}

impl Worker {
    pub fn state(&self) -> WorkerState {
        self.state.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<WorkerState> {
        self.state.subscribe()
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

    /// `POST /<function>` with an invocation envelope, within `functionTimeout`. A timeout fails
    /// the invocation and restarts the handler.
    pub async fn invoke(
        &self,
        function: &str,
        invocation: Invocation<'_>,
        envelope: Vec<u8>,
    ) -> Result<Answered, InvokeError> {
        let Invocation {
            id: invocation_id,
            traceparent,
        } = invocation;
        let port = self.ready_port().await.map_err(InvokeError::Unavailable)?;
        let request = async {
            let response = self
                .client
                .post(format!("http://127.0.0.1:{port}/{function}"))
                .header("content-type", "application/json; charset=utf-8")
                .header("x-azure-functions-invocationid", invocation_id)
                .header("x-azure-functions-hostversion", HOST_VERSION)
                .header(trace::TRACEPARENT, traceparent.to_string())
                .header(
                    "user-agent",
                    concat!(
                        "Azure-Functions-Host/",
                        env!("CARGO_PKG_VERSION"),
                        " (ordergrid stand-in)"
                    ),
                )
                .body(envelope)
                .send()
                .await
                .map_err(|e| format!("the custom handler did not answer: {e}"))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("the custom handler's answer broke off: {e}"))?;
            Ok(Answered {
                status,
                content_type,
                body,
            })
        };
        let Some(timeout) = self.function_timeout else {
            return request.await.map_err(InvokeError::Unavailable);
        };
        match tokio::time::timeout(timeout, request).await {
            Ok(answered) => answered.map_err(InvokeError::Unavailable),
            Err(_) => {
                tracing::error!(
                    function,
                    invocation_id,
                    "Timeout value of {} exceeded by function 'Functions.{function}' (Id: '{invocation_id}'). Initiating cancellation.",
                    timespan(timeout)
                );
                let _ = self.restart.send((invocation_id.to_owned(), port));
                Err(InvokeError::TimedOut {
                    function: function.to_owned(),
                    timeout,
                })
            }
        }
    }
}

const HOST_VERSION: &str = concat!("ordergrid-devhost/", env!("CARGO_PKG_VERSION"));

/// Starts the handler and keeps it running until `stop`; returns once it first answered the
/// readiness probe (or failed to).
pub async fn start(
    manifest: &AppManifest,
    settings: HashMap<String, String>,
    initialization_timeout: Duration,
    stop: CancellationToken,
) -> anyhow::Result<(Arc<Worker>, tokio::task::JoinHandle<()>)> {
    let executable = manifest.resolve_executable()?;
    let arguments = manifest.expanded_arguments(&settings);
    let (restart, restarts) = mpsc::unbounded_channel();
    let worker = Arc::new(Worker {
        state: watch::Sender::new(WorkerState::Starting),
        restarts: AtomicU32::new(0),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .context("failed to build the host's HTTP client")?,
        ready_timeout: initialization_timeout * (ERROR_THRESHOLD as u32 + 1),
        function_timeout: manifest.function_timeout,
        restart,
    });
    let supervisor = Supervisor {
        worker: worker.clone(),
        executable: executable.clone(),
        arguments,
        working_dir: manifest.working_dir.clone(),
        root: manifest.root.clone(),
        settings,
        initialization_timeout,
    };
    let mut state = worker.state.subscribe();
    let task = tokio::spawn(supervisor.run_until_stopped(stop, restarts));
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
    initialization_timeout: Duration,
}

/// How one run of the handler ended.
enum Ended {
    Stopped,
    /// Killed after an invocation timed out; restarted without counting an error.
    TimedOut(String),
    Error(String),
}

impl Supervisor {
    async fn run_until_stopped(
        self,
        stop: CancellationToken,
        mut restarts: mpsc::UnboundedReceiver<(String, u16)>,
    ) {
        let mut errors: Vec<Instant> = Vec::new();
        loop {
            let reason = match self.run_once(&stop, &mut restarts).await {
                Ended::Stopped => {
                    self.worker.state.send_replace(WorkerState::Stopped);
                    return;
                }
                Ended::TimedOut(invocation_id) => {
                    tracing::warn!(
                        "A function timeout has occurred. Restarting worker process executing invocationId '{invocation_id}'."
                    );
                    format!("restarting after invocation {invocation_id} timed out")
                }
                Ended::Error(reason) => {
                    errors.retain(|t| t.elapsed() < ERROR_WINDOW);
                    errors.push(Instant::now());
                    if errors.len() >= ERROR_THRESHOLD {
                        let reason = format!(
                            "{reason}; that is {ERROR_THRESHOLD} handler errors within 30 minutes, so the \
                             application stops, as the Functions host does (\"Exceeded http worker restart \
                             retry count. Shutting down Functions Host\")"
                        );
                        tracing::error!(reason = %reason, "custom handler failed");
                        self.worker
                            .state
                            .send_replace(WorkerState::Failed { reason });
                        return;
                    }
                    tracing::error!(reason = %reason, "custom handler stopped; restarting it");
                    reason
                }
            };
            self.worker.restarts.fetch_add(1, Ordering::Relaxed);
            self.worker
                .state
                .send_replace(WorkerState::Restarting { reason });
        }
    }

    /// Runs the handler once: start, wait for readiness, wait for exit, a restart request or stop.
    async fn run_once(
        &self,
        stop: &CancellationToken,
        restarts: &mut mpsc::UnboundedReceiver<(String, u16)>,
    ) -> Ended {
        let port = match free_port() {
            Ok(port) => port,
            Err(e) => return Ended::Error(format!("no free port: {e}")),
        };
        let spawned = Command::new(&self.executable)
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
            // the handler itself, instead of both racing a restart.
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Ended::Error(format!(
                    "failed to start {}: {e}",
                    self.executable.display()
                ));
            }
        };
        let pid = child.id().unwrap_or(0);
        let started = Instant::now();
        let probe = format!("http://127.0.0.1:{port}/");
        // Probe soon and then back off: a custom handler is usually ready in milliseconds, one
        // that loads a lot may take seconds.
        let mut pause = Duration::from_millis(1);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ended::Error(format!(
                    "the custom handler exited with {status} before it was ready"
                ));
            }
            if self.worker.client.get(&probe).send().await.is_ok() {
                break;
            }
            if started.elapsed() > self.initialization_timeout {
                let _ = child.kill().await;
                return Ended::Error(format!(
                    "the custom handler did not answer GET / on port {port} within {:?}",
                    self.initialization_timeout
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => {
                    let _ = child.kill().await;
                    return Ended::Stopped;
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
        loop {
            tokio::select! {
                status = child.wait() => return Ended::Error(match status {
                    Ok(status) => format!("the custom handler (pid {pid}) exited with {status}"),
                    Err(e) => format!("lost the custom handler (pid {pid}): {e}"),
                }),
                Some((invocation_id, on_port)) = restarts.recv() => {
                    // A timeout on an earlier process is about one already gone.
                    if on_port == port {
                        let _ = child.kill().await;
                        return Ended::TimedOut(invocation_id);
                    }
                }
                () = stop.cancelled() => {
                    let _ = child.kill().await;
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// A port that was free a moment ago (as the host's `GetUnusedTcpPort`).
fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
        .local_addr()
        .map(|a| a.port())
}
