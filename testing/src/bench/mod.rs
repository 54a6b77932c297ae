//! What the load generators (`bench/handler_load.rs`, `bench/emulator_load.rs`,
//! `bench/stack_load.rs`) share: the measurements ([`measurement`], re-exported here) and the
//! plumbing around them — the options every generator takes, its runtime and HTTP client, the
//! open-loop schedule, the snapshots at the edges of a measured window, failures, publishing to
//! a topic. The process under test is a [`crate::process::Process`].

mod measurement;

pub use measurement::*;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::Value;

/// The options every generator takes (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug)]
pub struct GeneratorArgs {
    /// The ordergrid binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ordergrid")]
    pub binary: PathBuf,
    /// Parent of the per-run data folders (on the real disk, never tmpfs).
    #[arg(long, default_value = "target/bench-tmp")]
    pub tmp: PathBuf,
    /// Worker threads of the generator's runtime; 1 leaves the most CPU to what is measured.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    #[command(flatten)]
    pub quiet: QuietArgs,
    /// Do not count the measured process's fsync and fdatasync calls with `perf stat`.
    #[arg(long)]
    pub no_perf: bool,
    /// Name of this configuration in the results file (runs with one label are summarised
    /// together).
    #[arg(long)]
    pub label: Option<String>,
    /// JSON-lines file to append this run's result to (read by `summarize`).
    #[arg(long)]
    pub results: Option<PathBuf>,
}

impl GeneratorArgs {
    /// Fails unless `--binary` is a file.
    pub fn check_binary(&self) -> anyhow::Result<()> {
        ensure!(
            self.binary.is_file(),
            "no ordergrid binary at {}: run `cargo build --release --bin ordergrid` first",
            self.binary.display()
        );
        Ok(())
    }

    /// Runs `measure` as [`measure_with_retries`] does, in `--tmp` (created if need be), and
    /// appends the kept result to `--results`.
    pub fn measure(
        &self,
        max_disk_reads: Option<f64>,
        measure: impl FnMut() -> anyhow::Result<Value>,
    ) -> anyhow::Result<Value> {
        std::fs::create_dir_all(&self.tmp)
            .with_context(|| format!("failed to create {}", self.tmp.display()))?;
        let quiet = self.quiet.options(&self.tmp, max_disk_reads);
        measure_with_retries(&quiet, self.results.as_deref(), measure)
    }

    /// A fresh run folder `<prefix>…` in `--tmp`, removed when dropped.
    pub fn run_dir(&self, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.tmp)
            .with_context(|| format!("failed to create a run folder in {}", self.tmp.display()))
    }

    /// The generator's runtime, with `--client-threads` workers.
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.client_threads.max(1))
            .enable_all()
            .build()
            .context("failed to start the generator's runtime")
    }

    /// `perf stat` counting the fsync calls of `pid`, unless `--no-perf` (or perf does not work).
    pub fn syscall_counter(&self, pid: u32) -> Option<SyscallCounter> {
        if self.no_perf {
            None
        } else {
            SyscallCounter::attach(pid)
        }
    }

    pub fn label(&self) -> String {
        self.label.clone().unwrap_or_default()
    }
}

/// A generator's exit: success, or the error's chain on stderr and failure.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The generator's HTTP/1.1 client: keep-alive connections without limit, no proxy, no Nagle.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .timeout(timeout)
        .build()
        .context("failed to build the HTTP client")
}

/// `b<milliseconds since the epoch>`: tells this run's ids from every other run's.
pub fn nonce() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("b{millis}")
}

/// How many requests failed, and why the first few did.
#[derive(Default, Clone, Debug)]
pub struct Failures {
    pub count: u64,
    pub first: Vec<String>,
}

impl Failures {
    const KEPT: usize = 5;

    pub fn add(&mut self, why: String) {
        self.count += 1;
        if self.first.len() < Self::KEPT {
            self.first.push(why);
        }
    }

    /// Adds another tally's failures.
    pub fn merge(&mut self, other: Failures) {
        self.count += other.count;
        let room = Self::KEPT.saturating_sub(self.first.len());
        self.first.extend(other.first.into_iter().take(room));
    }

    /// Prints the first reasons on stderr.
    pub fn print(&self) {
        for why in &self.first {
            eprintln!("failure: {why}");
        }
    }
}

/// An Event Grid topic to publish to with its key (`aeg-sas-key`).
#[derive(Clone)]
pub struct Topic {
    pub client: reqwest::Client,
    /// The publish URL, `api-version` included.
    pub url: String,
    pub key: String,
}

impl Topic {
    /// Publishes a JSON array of events; `Err` for anything but 200.
    pub async fn publish(&self, body: String) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("aeg-sas-key", &self.key)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("publish failed: {e:#}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("publish answered {status}: {text}"));
        }
        Ok(())
    }
}

/// Moments as nanoseconds after a base instant, plus one (so 0 can mean "not yet").
#[derive(Clone, Copy, Debug)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn ns(&self, at: Instant) -> u64 {
        at.duration_since(self.0).as_nanos() as u64 + 1
    }
}

/// One [`Clock`] reading per sequence number, written from any task (0: none yet).
pub struct Stamps(Vec<AtomicU64>);

impl Stamps {
    pub fn new(len: usize) -> Self {
        Self((0..len).map(|_| AtomicU64::new(0)).collect())
    }

    pub fn set(&self, seq: u64, ns: u64) {
        self.0[seq as usize].store(ns, Ordering::Relaxed);
    }

    /// Sets the stamp unless it was set already.
    pub fn set_first(&self, seq: u64, ns: u64) {
        let _ = self.0[seq as usize].compare_exchange(0, ns, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, seq: u64) -> u64 {
        self.0[seq as usize].load(Ordering::Relaxed)
    }
}

/// `total` due times `1/rate` apart from `start`, each sent (with its sequence number) at its
/// moment by a plain thread: tokio's timer has 1 ms granularity, nanosleep does not.
pub struct Schedule {
    due: tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    thread: std::thread::JoinHandle<()>,
}

impl Schedule {
    pub fn start(start: Instant, total: u64, rate: f64) -> Self {
        let interval_ns = 1e9 / rate;
        let (tx, due) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            for i in 0..total {
                let at = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if tx.send((i, at)).is_err() {
                    break;
                }
            }
        });
        Self { due, thread }
    }

    /// The next request that is due, when it is due; `None` after the last.
    pub async fn next(&mut self) -> Option<(u64, Instant)> {
        self.due.recv().await
    }

    pub fn finish(self) -> anyhow::Result<()> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the scheduler thread panicked"))
    }
}

/// Takes a snapshot (`take`) at `window_start` and another at `window_end`, on a task.
pub fn at_window_edges<T: Send + 'static>(
    window_start: Instant,
    window_end: Instant,
    take: impl Fn() -> T + Send + 'static,
) -> tokio::task::JoinHandle<(T, T)> {
    tokio::spawn(async move {
        tokio::time::sleep_until(window_start.into()).await;
        let first = take();
        tokio::time::sleep_until(window_end.into()).await;
        (first, take())
    })
}

/// What [`open_loop`] recorded.
pub struct OpenLoop {
    /// When each request was due ([`Clock`] readings).
    pub scheduled: Stamps,
    /// When each request was sent.
    pub sent: Stamps,
    /// Requests answered with success.
    pub acked: u64,
    pub failures: Failures,
    /// From sending to the answer, for the requests from `first_measured` on.
    pub request_latency: Latencies,
}

/// An open loop: request `seq` of `schedule`'s is sent by `request(seq)` in a task of its own at
/// its due time, however long earlier ones take (no coordinated omission).
pub async fn open_loop<F, R>(
    mut schedule: Schedule,
    total: u64,
    clock: Clock,
    first_measured: u64,
    request: F,
) -> anyhow::Result<OpenLoop>
where
    F: Fn(u64) -> R + Clone + Send + 'static,
    R: Future<Output = Result<(), String>> + Send,
{
    let stamps = Arc::new((Stamps::new(total as usize), Stamps::new(total as usize)));
    let tally = Arc::new(Mutex::new((
        0u64,
        Failures::default(),
        Latencies::default(),
    )));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((seq, at)) = schedule.next().await {
        let (stamps, tally, request) = (stamps.clone(), tally.clone(), request.clone());
        tasks.spawn(async move {
            stamps.0.set(seq, clock.ns(at));
            let now = Instant::now();
            stamps.1.set(seq, clock.ns(now));
            let outcome = request(seq).await;
            let latency = now.elapsed();
            let mut tally = tally.lock().unwrap();
            match outcome {
                Ok(()) => {
                    tally.0 += 1;
                    if seq >= first_measured {
                        tally.2.push(latency);
                    }
                }
                Err(why) => tally.1.add(why),
            }
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    schedule.finish()?;
    let (scheduled, sent) = Arc::into_inner(stamps).context("a request task outlived the run")?;
    let (acked, failures, request_latency) = Arc::into_inner(tally)
        .context("a request task outlived the run")?
        .into_inner()
        .unwrap();
    Ok(OpenLoop {
        scheduled,
        sent,
        acked,
        failures,
        request_latency,
    })
}

/// Merges the fields of `from` (a JSON object) into `into`.
pub fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}
