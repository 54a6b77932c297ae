//! Load generator and measurements for the Event Grid emulator (`ordergrid emulator`).
//!
//! Every mode runs the real release binary as a child process with a fresh data folder under
//! `target/bench-tmp/` (the real disk, never tmpfs) and a subscriptions file with one topic,
//! `orders`, and `--subscriptions` WebHook subscriptions (`sub-1` … `sub-N`, two by default) that all match every event
//! (`includedEventTypes: ["NewOrder"]`, one event per delivery, Azure's default batching). Both
//! point at a receiver inside this process (axum on 127.0.0.1), which answers the validation
//! handshake and counts, per event and subscription, when it arrived.
//!
//! - `throughput`: `--publishers` closed-loop publishers POST batches of `--batch` events; a
//!   publisher waits while more than `--max-backlog` acknowledged events have not reached both
//!   subscribers yet, so the run measures what the emulator *sustains* end to end instead of
//!   letting the spool grow without bound. Counted over `--duration` seconds after `--warmup`.
//! - `latency`: open loop at `--rate` publish requests per second (one event each), every request
//!   in its own task at its scheduled time; latency per subscriber from the moment the request is
//!   sent (and from its scheduled time) to the receiver's arrival.
//! - `backlog`: `--events` events are published while the subscribers cannot take them
//!   (`--hold unvalidated`: the endpoints refused the validation handshake, so the emulator
//!   delivers nothing and the events wait in the spool; `--hold outage`: the endpoints validated
//!   and then answer 500, so the emulator retries up to its `max_pending` and the rest waits in
//!   the spool). The emulator's RSS is sampled throughout; then the receiver recovers (and the
//!   subscriptions are re-validated through the admin API) and the drain is timed.
//! - `summarize`: medians and spread across the runs recorded in `--results`.
//!
//! Every event acknowledged with 200 must reach both subscribers before a run passes (after the
//! measured window, the run waits for the drain), so the acknowledged-means-durable path is the
//! one measured. The generator shares the 2 cores with the emulator: its own CPU time is reported
//! next to the emulator's (by thread), and the machine's.

use std::collections::HashMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::{Parser, ValueEnum};
use ordergrid::emulator::admin::{AdminClient, SubscriptionView};
use ordergrid_testing::bench::{
    Clock, Failures, GeneratorArgs, Latencies, RssSampler, Schedule, Snapshot, Stamps,
    SyscallCounter, Topic, at_window_edges, dir_bytes, disk_stat_path, exit_code, http_client,
    merge, nonce, open_loop, round3, status_mib, summarize,
};
use ordergrid_testing::process::{Process, ordergrid};
use ordergrid_testing::receiver::validation_response;
use ordergrid_testing::subscriptions::{file, only, topic, webhook};
use serde_json::{Value, json};

#[derive(Parser, Clone)]
#[command(about = "Load generator and measurements for `ordergrid emulator`")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[command(flatten)]
    common: GeneratorArgs,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of load before measuring starts (its events are still checked for delivery).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// `throughput`: concurrent publishers, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// `throughput` and `backlog`: events per publish request.
    #[arg(long, default_value_t = 500)]
    batch: u64,
    /// `throughput`: acknowledged events not yet at both subscribers before publishers wait.
    #[arg(long, default_value_t = 20_000)]
    max_backlog: u64,
    /// `latency`: publish requests (of one event) per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// `backlog`: events to publish while the subscribers cannot take them.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// `backlog`: why the events cannot be delivered.
    #[arg(long, value_enum, default_value = "unvalidated")]
    hold: Hold,
    /// `ORDERGRID_EMULATOR_TIME_SCALE` (retry schedule, TTL); Azure's timing when unset.
    #[arg(long)]
    time_scale: Option<f64>,
    /// `ORDERGRID_EMULATOR_CONCURRENCY`, requests in flight per subscription (default 64).
    #[arg(long)]
    concurrency: Option<usize>,
    /// `maxEventsPerBatch` of every subscription (Azure's default is 1).
    #[arg(long, default_value_t = 1)]
    max_events_per_batch: u32,
    /// Subscriptions of the topic, each matching every event (1 to 64). "Both" in the results
    /// means all of them.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    subscriptions: u32,
    /// `throughput` through a peer instead of the emulator: `flask` is the seed's Flask broker
    /// (`--flask-broker`, run with `--python`), which takes one event per `POST /publish` and
    /// forwards it to every endpoint subscribed to its type before answering; `--batch` must
    /// be 1. The subscribers are the same receivers the emulator delivers to.
    #[arg(long, value_enum, default_value = "emulator")]
    broker: Broker,
    #[arg(long, default_value = "../shared/peers/flask_broker.py")]
    flask_broker: PathBuf,
    #[arg(long, default_value = "python3")]
    python: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Broker {
    Emulator,
    Flask,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Mode {
    Throughput,
    Latency,
    Backlog,
    Summarize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Hold {
    /// The endpoints refuse the validation handshake; nothing is delivered until re-validated.
    Unvalidated,
    /// The endpoints validated, then answer 500 until they recover.
    Outage,
}

fn subscription_names(args: &Args) -> Vec<String> {
    (1..=args.subscriptions)
        .map(|i| format!("sub-{i}"))
        .collect()
}

fn main() -> std::process::ExitCode {
    exit_code(run(&Args::parse()))
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.mode == Mode::Summarize {
        return summarize(args.common.results.as_deref());
    }
    args.common.check_binary()?;
    let result = args
        .common
        .measure(None, || args.common.runtime()?.block_on(measure(args)))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

async fn measure(args: &Args) -> anyhow::Result<Value> {
    let capacity = match args.mode {
        Mode::Latency => ((args.warmup + args.duration + 2.0) * args.rate) as usize + 16,
        Mode::Backlog => args.events as usize + 16,
        _ => 8_000_000,
    };
    let receiver = Arc::new(Receiver::new(
        args.subscriptions as usize,
        capacity,
        args.mode == Mode::Latency,
    ));
    match (args.mode, args.hold) {
        (Mode::Backlog, Hold::Unvalidated) => receiver.validate.store(false, Ordering::SeqCst),
        _ => receiver.validate.store(true, Ordering::SeqCst),
    }
    let receiver_addr = serve_receiver(receiver.clone()).await?;
    let mut result = match args.broker {
        Broker::Flask => {
            ensure!(
                args.mode == Mode::Throughput && args.batch == 1,
                "--broker flask measures --mode throughput with --batch 1 only"
            );
            flask_throughput(args, &receiver, receiver_addr).await?
        }
        Broker::Emulator => on_emulator(args, &receiver, receiver_addr).await?,
    };
    result["label"] = json!(args.common.label());
    result["client_threads"] = json!(args.common.client_threads);
    Ok(result)
}

/// The run against `ordergrid emulator`, with what only the emulator reports.
async fn on_emulator(
    args: &Args,
    receiver: &Arc<Receiver>,
    receiver_addr: SocketAddr,
) -> anyhow::Result<Value> {
    let dir = args.common.run_dir("emulator-")?;
    let mut emulator = EmulatorProcess::start(args, dir.path(), receiver_addr).await?;
    let result = match args.mode {
        Mode::Throughput => throughput(args, receiver, &mut emulator).await,
        Mode::Latency => latency(args, receiver, &mut emulator).await,
        Mode::Backlog => backlog(args, receiver, &mut emulator, dir.path()).await,
        Mode::Summarize => unreachable!(),
    };
    let stderr = emulator.process.stderr.all();
    let mut result = match result {
        Ok(result) => result,
        Err(e) => {
            for line in stderr.iter().rev().take(5) {
                eprintln!("emulator stderr: {line}");
            }
            return Err(e);
        }
    };
    let (fdatasyncs, fsyncs) = emulator.kill()?;
    result["emulator_fdatasyncs_total"] = json!(fdatasyncs);
    result["emulator_fsyncs_total"] = json!(fsyncs);
    result["emulator_stderr_lines"] = json!(stderr.len());
    result["emulator_stdout_lines"] = json!(emulator.process.stdout_lines());
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// The receiver: every subscription's webhook endpoint (`/s/<index>`).

struct Receiver {
    clock: Clock,
    /// Per event (by sequence number): bit `i` set once it reached subscription `i`.
    marks: Vec<AtomicU64>,
    /// The marks of an event that reached every subscription.
    all_marks: u64,
    /// `latency` only: each event's first arrival per subscriber.
    arrivals: Option<Vec<Stamps>>,
    delivered: Vec<AtomicU64>,
    /// Events that have reached every subscriber ("both", as the results call it).
    both: AtomicU64,
    duplicates: AtomicU64,
    unknown: AtomicU64,
    requests: Vec<AtomicU64>,
    /// Answer the validation handshake (else 503).
    validate: AtomicBool,
    /// Accept notifications (else 500).
    accept: AtomicBool,
    validations: AtomicU64,
    refused: AtomicU64,
}

impl Receiver {
    fn new(subscriptions: usize, capacity: usize, with_arrivals: bool) -> Self {
        let per_sub = || (0..subscriptions).map(|_| AtomicU64::new(0)).collect();
        Self {
            clock: Clock(Instant::now()),
            marks: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            all_marks: u64::MAX >> (64 - subscriptions),
            arrivals: with_arrivals
                .then(|| (0..subscriptions).map(|_| Stamps::new(capacity)).collect()),
            delivered: per_sub(),
            both: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            requests: per_sub(),
            validate: AtomicBool::new(true),
            accept: AtomicBool::new(true),
            validations: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn mark(&self, sub: usize, seq: u64, now_ns: u64) {
        let Some(mark) = self.marks.get(seq as usize) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let bit = 1u64 << sub;
        let before = mark.fetch_or(bit, Ordering::Relaxed);
        if before & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(arrivals) = &self.arrivals {
            arrivals[sub].set(seq, now_ns);
        }
        self.delivered[sub].fetch_add(1, Ordering::Relaxed);
        if before | bit == self.all_marks {
            self.both.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events at every subscriber, and deliveries in all.
    fn counts(&self) -> (u64, u64) {
        (
            self.both.load(Ordering::Relaxed),
            self.delivered
                .iter()
                .map(|d| d.load(Ordering::Relaxed))
                .sum(),
        )
    }
}

/// Sequence numbers of the events in a delivery: the number after each `"seq":` (the publisher
/// puts it first in `data`, and the emulator passes `data` through byte for byte).
fn sequence_numbers(body: &[u8]) -> impl Iterator<Item = u64> + '_ {
    const KEY: &[u8] = b"\"seq\":";
    let mut at = 0;
    std::iter::from_fn(move || {
        let found = body[at..].windows(KEY.len()).position(|w| w == KEY)?;
        let mut i = at + found + KEY.len();
        // Python's json (the Flask broker forwards with requests) writes `"seq": 1`.
        while body.get(i) == Some(&b' ') {
            i += 1;
        }
        let mut n = 0u64;
        while let Some(d) = body.get(i).filter(|b| b.is_ascii_digit()) {
            n = n * 10 + u64::from(d - b'0');
            i += 1;
        }
        at = i;
        Some(n)
    })
}

async fn receive(r: Arc<Receiver>, sub: usize, headers: HeaderMap, body: Bytes) -> Response {
    let now = r.clock.ns(Instant::now());
    r.requests[sub].fetch_add(1, Ordering::Relaxed);
    let kind = headers.get("aeg-event-type").map(|v| v.as_bytes());
    if kind == Some(b"SubscriptionValidation") {
        r.validations.fetch_add(1, Ordering::Relaxed);
        if !r.validate.load(Ordering::SeqCst) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the benchmark's receiver refuses validation for now",
            )
                .into_response();
        }
        return validation_response(&body);
    }
    if !r.accept.load(Ordering::Relaxed) {
        r.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    for seq in sequence_numbers(&body) {
        r.mark(sub, seq, now);
    }
    StatusCode::OK.into_response()
}

async fn serve_receiver(receiver: Arc<Receiver>) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/s/{sub}",
        post(
            move |UrlPath(sub): UrlPath<usize>, headers: HeaderMap, body: Bytes| async move {
                if sub >= receiver.delivered.len() {
                    return StatusCode::NOT_FOUND.into_response();
                }
                receive(receiver.clone(), sub, headers, body).await
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("failed to bind the receiver")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// The emulator process.

struct EmulatorProcess {
    process: Process,
    base_url: String,
    topic: Topic,
    perf: Option<SyscallCounter>,
    /// VmRSS once both subscriptions are validated (or have failed validation), before any load.
    rss_ready_mib: f64,
}

fn subscriptions_file(args: &Args, receiver: SocketAddr) -> Value {
    let subscription = |name: &str, path: &str| {
        let mut subscription = only(
            webhook(name, &format!("http://{receiver}/{path}")),
            &["NewOrder"],
        );
        let properties = &mut subscription["destination"]["properties"];
        properties["maxEventsPerBatch"] = json!(args.max_events_per_batch);
        properties["preferredBatchSizeInKilobytes"] = json!(64);
        subscription["eventDeliverySchema"] = json!("EventGridSchema");
        subscription["retryPolicy"] =
            json!({"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440});
        subscription
    };
    let subscriptions = subscription_names(args)
        .iter()
        .enumerate()
        .map(|(i, name)| subscription(name, &format!("s/{i}")))
        .collect();
    file(vec![topic("orders", subscriptions)])
}

impl EmulatorProcess {
    async fn start(args: &Args, dir: &Path, receiver: SocketAddr) -> anyhow::Result<Self> {
        let file = dir.join("subscriptions.json");
        fs::write(
            &file,
            serde_json::to_vec_pretty(&subscriptions_file(args, receiver))?,
        )
        .with_context(|| format!("failed to write {}", file.display()))?;
        let data = dir.join("data");
        let binary = &args.common.binary;
        let mut cmd = ordergrid(binary, "emulator");
        cmd.args(["--port", "0", "--subscriptions"])
            .arg(&file)
            .arg("--data")
            .arg(&data)
            // Plain HTTP is what is measured (binaries without HTTPS ignore this).
            .env("ORDERGRID_EMULATOR_HTTPS_PORT", "off")
            // Successful deliveries and publishes log nothing at info; failures and handshakes do.
            .env("ORDERGRID_LOG", "info");
        if let Some(scale) = args.time_scale {
            cmd.env("ORDERGRID_EMULATOR_TIME_SCALE", scale.to_string());
        }
        if let Some(concurrency) = args.concurrency {
            cmd.env("ORDERGRID_EMULATOR_CONCURRENCY", concurrency.to_string());
        }
        // Its stdout is counted, not kept.
        let mut process = Process::spawn_with_stdout(&mut cmd, |_| {})
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let port = process
            .wait_for_port(Duration::from_secs(20))
            .await
            .context("the emulator")?;
        let keys_path = data.join("topic-keys.json");
        let keys: HashMap<String, (String, String)> = serde_json::from_slice(
            &fs::read(&keys_path)
                .with_context(|| format!("failed to read {}", keys_path.display()))?,
        )
        .with_context(|| format!("{} is not the expected JSON", keys_path.display()))?;
        let key = keys
            .get("orders")
            .map(|k| k.0.clone())
            .context("no key for the orders topic")?;
        let base_url = format!("http://127.0.0.1:{port}");
        let topic = Topic {
            client: http_client(Duration::from_secs(60))?,
            url: format!("{base_url}/orders/api/events?api-version=2018-01-01"),
            key,
        };
        let perf = args.common.syscall_counter(process.pid());
        Ok(Self {
            process,
            base_url,
            topic,
            perf,
            rss_ready_mib: f64::NAN,
        })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    async fn subscriptions(&self) -> anyhow::Result<Vec<SubscriptionView>> {
        Ok(AdminClient::new(&self.base_url).subscriptions().await?)
    }

    /// Waits until every subscription's validation state is in `states`.
    async fn wait_for_validation(&self, states: &[&str], within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let subs = self.subscriptions().await?;
            if subs.iter().all(|s| states.contains(&s.validation.state())) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the subscriptions did not reach {states:?} within {within:?}: {subs:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn revalidate(&self, subscription: &str) -> anyhow::Result<()> {
        Ok(AdminClient::new(&self.base_url)
            .revalidate(subscription)
            .await?)
    }

    /// SIGKILL; then the fdatasync and fsync counts perf saw.
    fn kill(&mut self) -> anyhow::Result<(Option<f64>, Option<f64>)> {
        self.process.kill().context("failed to kill the emulator")?;
        Ok(self
            .perf
            .take()
            .map(SyscallCounter::finish)
            .unwrap_or((None, None)))
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing.

struct Publisher {
    topic: Topic,
    /// Distinguishes this run's event ids from every other run's.
    nonce: String,
    /// The Flask broker takes one event as a JSON object, not an array.
    single: bool,
}

impl Publisher {
    fn new(emulator: &EmulatorProcess) -> Self {
        Self {
            topic: emulator.topic.clone(),
            nonce: nonce(),
            single: false,
        }
    }

    /// A NewOrder event in the Event Grid schema, about 300 bytes; `seq` leads `data` so the
    /// receiver finds it without parsing.
    fn push_event(&self, body: &mut String, seq: u64) {
        use std::fmt::Write;
        let n = &self.nonce;
        let _ = write!(
            body,
            r#"{{"id":"{n}-{seq}","subject":"orders/{seq}","eventType":"NewOrder","eventTime":"2026-11-22T10:00:00.000Z","dataVersion":"1.0","data":{{"seq":{seq},"orderId":"{n}-{seq}","customerId":"67890","orderValue":150.0,"customerEmail":"customer@example.com"}}}}"#
        );
    }

    fn body(&self, first: u64, count: u64) -> String {
        let mut body = String::with_capacity(count as usize * 320 + 2);
        if self.single {
            self.push_event(&mut body, first);
            return body;
        }
        body.push('[');
        for seq in first..first + count {
            if seq > first {
                body.push(',');
            }
            self.push_event(&mut body, seq);
        }
        body.push(']');
        body
    }

    /// Publishes events `first..first + count`; `Err` for anything but 200.
    async fn publish(&self, first: u64, count: u64) -> Result<(), String> {
        self.topic.publish(self.body(first, count)).await
    }
}

/// Waits until `both` reaches `target` (or `within` passes); returns the time it took.
async fn wait_for_both(receiver: &Receiver, target: u64, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if receiver.both.load(Ordering::Relaxed) >= target {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

fn delivery_report(receiver: &Receiver) -> Value {
    let loaded = |counts: &[AtomicU64]| -> Vec<u64> {
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    };
    json!({
        "both": receiver.both.load(Ordering::Relaxed),
        "per_subscription": loaded(&receiver.delivered),
        "duplicates": receiver.duplicates.load(Ordering::Relaxed),
        "unknown_sequence_numbers": receiver.unknown.load(Ordering::Relaxed),
        "receiver_requests": loaded(&receiver.requests).iter().sum::<u64>(),
        "refused_while_holding": receiver.refused.load(Ordering::Relaxed),
        "validation_requests": receiver.validations.load(Ordering::Relaxed),
    })
}

/// Per subscription: the emulator's own counters and pending count.
async fn emulator_counters(emulator: &EmulatorProcess) -> Value {
    match emulator.subscriptions().await {
        Ok(subs) => Value::Object(
            subs.iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        json!({"counters": s.counters, "pending": s.pending, "validation": s.validation.state()}),
                    )
                })
                .collect(),
        ),
        Err(e) => json!(format!("{e:#}")),
    }
}

/// Waits until both subscriptions are validated, then notes the emulator's RSS; its pid, the
/// disk to watch and a publisher.
async fn ready_for_load(
    args: &Args,
    emulator: &mut EmulatorProcess,
) -> anyhow::Result<(u32, Option<PathBuf>, Arc<Publisher>)> {
    emulator
        .wait_for_validation(&["succeeded"], Duration::from_secs(20))
        .await?;
    let pid = emulator.pid();
    emulator.rss_ready_mib = status_mib(pid, "VmRSS")?;
    let disk = disk_stat_path(&args.common.tmp);
    Ok((pid, disk, Arc::new(Publisher::new(emulator))))
}

// ---------------------------------------------------------------------------------------------
// throughput

async fn throughput(
    args: &Args,
    receiver: &Arc<Receiver>,
    emulator: &mut EmulatorProcess,
) -> anyhow::Result<Value> {
    let (pid, disk, publisher) = ready_for_load(args, emulator).await?;
    let mut result = drive(args, receiver, ("emulator", pid), disk, publisher).await?;
    result["rss_ready_mib"] = json!(round3(emulator.rss_ready_mib));
    result["emulator_counters"] = emulator_counters(emulator).await;
    Ok(result)
}

/// The seed's Flask broker as a process: started on a free port, every receiver subscribed to
/// NewOrder, then the same load as the emulator's throughput run.
async fn flask_throughput(
    args: &Args,
    receiver: &Arc<Receiver>,
    receiver_addr: SocketAddr,
) -> anyhow::Result<Value> {
    let port = ordergrid_testing::free_port();
    let mut command = std::process::Command::new(&args.python);
    command.arg(&args.flask_broker).arg(port.to_string());
    let mut process = Process::spawn_with_stdout(&mut command, |_| {})
        .with_context(|| format!("failed to start {}", args.flask_broker.display()))?;
    let base = format!("http://127.0.0.1:{port}");
    let client = http_client(Duration::from_secs(60))?;
    for sub in 0..args.subscriptions {
        let endpoint = format!("http://{receiver_addr}/s/{sub}");
        ordergrid_testing::poll(Duration::from_secs(20), async || {
            let answer = client
                .post(format!("{base}/subscribe"))
                .json(&json!({"eventType": "NewOrder", "endpoint": endpoint}))
                .send()
                .await
                .ok()?;
            answer.status().is_success().then_some(())
        })
        .await
        .with_context(|| format!("the Flask broker on {base} took no subscription"))?;
    }
    let pid = process.pid();
    let rss_ready = status_mib(pid, "VmRSS")?;
    let publisher = Arc::new(Publisher {
        topic: Topic {
            client,
            url: format!("{base}/publish"),
            key: String::new(),
        },
        nonce: nonce(),
        single: true,
    });
    let disk = disk_stat_path(&args.common.tmp);
    let mut result = drive(args, receiver, ("broker", pid), disk, publisher).await?;
    result["rss_ready_mib"] = json!(round3(rss_ready));
    result["broker"] = json!("flask");
    process.kill().context("failed to stop the Flask broker")?;
    Ok(result)
}

/// `--publishers` tasks publishing `--batch` events per request, as fast as the broker
/// acknowledges while at most `--max-backlog` acknowledged events have not reached every
/// subscriber; the window's rates, CPU and RSS of the `broker` process.
async fn drive(
    args: &Args,
    receiver: &Arc<Receiver>,
    broker: (&'static str, u32),
    disk: Option<PathBuf>,
    publisher: Arc<Publisher>,
) -> anyhow::Result<Value> {
    let pid = broker.1;
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Failures::default()));
    let publish_latency = Arc::new(Mutex::new(Latencies::default()));
    let throttled_ms = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for _ in 0..args.publishers {
        let (publisher, next, acked, stop, receiver) = (
            publisher.clone(),
            next.clone(),
            acked.clone(),
            stop.clone(),
            receiver.clone(),
        );
        let (failures, publish_latency, throttled_ms) = (
            failures.clone(),
            publish_latency.clone(),
            throttled_ms.clone(),
        );
        let batch = args.batch;
        let max_backlog = args.max_backlog;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let backlog = acked
                    .load(Ordering::Relaxed)
                    .saturating_sub(receiver.both.load(Ordering::Relaxed));
                if backlog > max_backlog {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    throttled_ms.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let first = next.fetch_add(batch, Ordering::Relaxed);
                let sent = Instant::now();
                match publisher.publish(first, batch).await {
                    Ok(()) => {
                        acked.fetch_add(batch, Ordering::Relaxed);
                        let done = Instant::now();
                        if sent >= window_start && done <= window_end {
                            publish_latency.lock().unwrap().push(done - sent);
                        }
                    }
                    Err(why) => failures.lock().unwrap().add(why),
                }
            }
        }));
    }
    tokio::time::sleep_until(window_start.into()).await;
    let watched = [broker];
    let first = (
        Snapshot::take(&watched, disk.as_deref()),
        receiver.counts(),
        acked.load(Ordering::Relaxed),
        throttled_ms.load(Ordering::Relaxed),
    );
    // RSS through the window.
    let mut rss_max: f64 = 0.0;
    while Instant::now() < window_end {
        tokio::time::sleep(Duration::from_millis(250).min(window_end - Instant::now())).await;
        rss_max = rss_max.max(status_mib(pid, "VmRSS").unwrap_or(f64::NAN));
    }
    let last = (
        Snapshot::take(&watched, disk.as_deref()),
        receiver.counts(),
        acked.load(Ordering::Relaxed),
        throttled_ms.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let total_acked = acked.load(Ordering::Relaxed);
    let drain = wait_for_both(receiver, total_acked, Duration::from_secs(120)).await;
    let window = last.0.at.duration_since(first.0.at).as_secs_f64();
    let both_rate = (last.1.0 - first.1.0) as f64 / window;
    let deliveries_rate = (last.1.1 - first.1.1) as f64 / window;
    let published_rate = (last.2 - first.2) as f64 / window;
    let mut result = json!({
        "mode": "throughput",
        "subscriptions": args.subscriptions,
        "publishers": args.publishers,
        "batch": args.batch,
        "max_backlog": args.max_backlog,
        "max_events_per_batch": args.max_events_per_batch,
        "concurrency": args.concurrency.unwrap_or(64),
        "window_s": round3(window),
        "events_to_both_per_s": round3(both_rate),
        "deliveries_per_s": round3(deliveries_rate),
        "published_acked_per_s": round3(published_rate),
        "backlog_at_window_start": first.2.saturating_sub(first.1.0),
        "backlog_at_window_end": last.2.saturating_sub(last.1.0),
        "publishers_throttled_fraction": round3((last.3 - first.3) as f64 / 1000.0 / window / args.publishers as f64),
        "publish_request_latency": publish_latency.lock().unwrap().summary(),
        "acked_total": total_acked,
        "drained_after_s": drain.map(|d| round3(d.as_secs_f64())),
        "rss_max_in_window_mib": round3(rss_max),
        "rss_peak_mib": round3(status_mib(pid, "VmHWM")?),
        "delivered": delivery_report(receiver),
        "publish_failures": failures.lock().unwrap().count,
    });
    merge(&mut result, first.0.cpu_report(&last.0));
    println!(
        "throughput: {both_rate:.0} events/s to both subscribers ({deliveries_rate:.0} deliveries/s), published {published_rate:.0}/s; {} {} cores, generator {} cores, machine {} cores",
        broker.0,
        result[format!("{}_cpu_cores", broker.0)],
        result["generator_cpu_cores"],
        result["machine_busy_cores"]
    );
    check(receiver, total_acked, drain, &failures.lock().unwrap())?;
    Ok(result)
}

/// Every acknowledged event reached both subscribers, and no publish failed.
fn check(
    receiver: &Receiver,
    acked: u64,
    drain: Option<Duration>,
    failures: &Failures,
) -> anyhow::Result<()> {
    failures.print();
    ensure!(
        failures.count == 0,
        "{} publish requests failed",
        failures.count
    );
    ensure!(
        drain.is_some(),
        "{} acknowledged events, but only {} reached both subscribers",
        acked,
        receiver.both.load(Ordering::Relaxed)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// latency

async fn latency(
    args: &Args,
    receiver: &Arc<Receiver>,
    emulator: &mut EmulatorProcess,
) -> anyhow::Result<Value> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    let (pid, disk, publisher) = ready_for_load(args, emulator).await?;
    let total = ((args.warmup + args.duration) * args.rate).floor() as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let window_start = start + Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.duration);
    let first_measured = (args.warmup * args.rate).ceil() as u64;
    let schedule = Schedule::start(start, total, args.rate);
    let watched = [("emulator", pid)];
    let snapshots = at_window_edges(window_start, window_end, move || {
        Snapshot::take(&watched, disk.as_deref())
    });
    let mut run = open_loop(
        schedule,
        total,
        receiver.clock,
        first_measured,
        move |seq| {
            let publisher = publisher.clone();
            async move { publisher.publish(seq, 1).await }
        },
    )
    .await?;
    let (first, last) = snapshots.await.context("the snapshot task failed")?;
    let total_acked = run.acked;
    let drain = wait_for_both(receiver, total_acked, Duration::from_secs(60)).await;
    let arrivals = receiver.arrivals.as_ref().context("no arrival times")?;
    let mut per_sub = serde_json::Map::new();
    let mut all = Latencies::default();
    let mut all_scheduled = Latencies::default();
    let mut lag = Latencies::default();
    for seq in first_measured..total {
        let s = run.sent.get(seq);
        let sch = run.scheduled.get(seq);
        lag.push_us(s.saturating_sub(sch) / 1000);
    }
    for (sub, name) in subscription_names(args).iter().enumerate() {
        let mut from_send = Latencies::default();
        let mut missing = 0u64;
        for seq in first_measured..total {
            let s = run.sent.get(seq);
            let a = arrivals[sub].get(seq);
            if a == 0 || s == 0 {
                missing += 1;
                continue;
            }
            let sch = run.scheduled.get(seq);
            from_send.push_us(a.saturating_sub(s) / 1000);
            all.push_us(a.saturating_sub(s) / 1000);
            all_scheduled.push_us(a.saturating_sub(sch) / 1000);
        }
        let mut summary = from_send.summary();
        summary["missing"] = json!(missing);
        per_sub.insert(name.clone(), summary);
    }
    let mut result = json!({
        "mode": "latency",
        "target_rate": args.rate,
        "events_per_request": 1,
        "window_s": round3(last.at.duration_since(first.at).as_secs_f64()),
        "publish_to_delivery": Value::Object(per_sub),
        "publish_to_delivery_both_subscribers": all.summary(),
        "publish_to_delivery_from_scheduled": all_scheduled.summary(),
        "send_lag_behind_schedule": lag.summary(),
        "publish_request_latency": run.request_latency.summary(),
        "acked_total": total_acked,
        "rss_ready_mib": round3(emulator.rss_ready_mib),
        "rss_peak_mib": round3(status_mib(pid, "VmHWM")?),
        "delivered": delivery_report(receiver),
        "emulator_counters": emulator_counters(emulator).await,
    });
    merge(&mut result, first.cpu_report(&last));
    println!(
        "latency at {}/s: publish→delivery p50 {} ms, p99 {} ms, max {} ms (both subscribers); emulator {} cores, generator {} cores",
        args.rate,
        result["publish_to_delivery_both_subscribers"]["p50_ms"],
        result["publish_to_delivery_both_subscribers"]["p99_ms"],
        result["publish_to_delivery_both_subscribers"]["max_ms"],
        result["emulator_cpu_cores"],
        result["generator_cpu_cores"]
    );
    check(receiver, total_acked, drain, &run.failures)?;
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// backlog

async fn backlog(
    args: &Args,
    receiver: &Arc<Receiver>,
    emulator: &mut EmulatorProcess,
    dir: &Path,
) -> anyhow::Result<Value> {
    let pid = emulator.pid();
    let disk = disk_stat_path(&args.common.tmp);
    match args.hold {
        Hold::Unvalidated => {
            // Three attempts 5 s apart (scaled), then `failed`.
            emulator
                .wait_for_validation(&["failed"], Duration::from_secs(60))
                .await?;
        }
        Hold::Outage => {
            emulator
                .wait_for_validation(&["succeeded"], Duration::from_secs(20))
                .await?;
            receiver.accept.store(false, Ordering::SeqCst);
        }
    }
    emulator.rss_ready_mib = status_mib(pid, "VmRSS")?;
    let publisher = Arc::new(Publisher::new(emulator));
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Failures::default()));
    let watched = [("emulator", pid)];
    let publish_start = Snapshot::take(&watched, disk.as_deref());
    let sampler = RssSampler::start(pid);
    let mut tasks = Vec::new();
    for _ in 0..args.publishers {
        let (publisher, next, acked, failures) = (
            publisher.clone(),
            next.clone(),
            acked.clone(),
            failures.clone(),
        );
        let (batch, events) = (args.batch, args.events);
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= events {
                    break;
                }
                let count = batch.min(events - first);
                match publisher.publish(first, count).await {
                    Ok(()) => {
                        acked.fetch_add(count, Ordering::Relaxed);
                    }
                    Err(why) => failures.lock().unwrap().add(why),
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let publish_end = Snapshot::take(&watched, disk.as_deref());
    let rss_max_publishing = sampler.stop();
    let published = acked.load(Ordering::Relaxed);
    let publish_s = publish_end
        .at
        .duration_since(publish_start.at)
        .as_secs_f64();
    let rss_end_of_publishing = status_mib(pid, "VmRSS")?;
    // Held for a while with the backlog in place (the maintenance loop runs every 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rss_holding = status_mib(pid, "VmRSS")?;
    let hwm_holding = status_mib(pid, "VmHWM")?;
    let spool = dir.join("data/spool");
    let spool_events_bytes = dir_bytes(&spool.join("events"));
    let spool_state_bytes = dir_bytes(&spool.join("state"));
    let counters_holding = emulator_counters(emulator).await;
    let delivered_while_holding = receiver.counts();

    // Recovery: the endpoints come back.
    let sampler = RssSampler::start(pid);
    let drain_start = Snapshot::take(&watched, disk.as_deref());
    receiver.validate.store(true, Ordering::SeqCst);
    receiver.accept.store(true, Ordering::SeqCst);
    if args.hold == Hold::Unvalidated {
        for name in subscription_names(args) {
            emulator.revalidate(&name).await?;
        }
    }
    let drain = wait_for_both(receiver, published, Duration::from_secs(900)).await;
    let drain_end = Snapshot::take(&watched, disk.as_deref());
    let rss_max_draining = sampler.stop();
    let drained = receiver.counts();
    let rss_after_drain = status_mib(pid, "VmRSS")?;
    // Let the maintenance loop delete the delivered segments.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let spool_after_drain = dir_bytes(&spool.join("events")) + dir_bytes(&spool.join("state"));
    let drain_s = drain_end.at.duration_since(drain_start.at).as_secs_f64();
    let mib = |b: u64| round3(b as f64 / 1048576.0);
    let mut result = json!({
        "mode": "backlog",
        "hold": format!("{:?}", args.hold).to_lowercase(),
        "time_scale": args.time_scale.unwrap_or(1.0),
        "events": args.events,
        "batch": args.batch,
        "publishers": args.publishers,
        "published_acked": published,
        "publish_s": round3(publish_s),
        "published_per_s": round3(published as f64 / publish_s),
        "rss_ready_mib": round3(emulator.rss_ready_mib),
        "rss_max_while_publishing_mib": round3(rss_max_publishing),
        "rss_end_of_publishing_mib": round3(rss_end_of_publishing),
        "rss_holding_backlog_mib": round3(rss_holding),
        "rss_peak_until_drain_mib": round3(hwm_holding),
        "rss_max_while_draining_mib": round3(rss_max_draining),
        "rss_after_drain_mib": round3(rss_after_drain),
        "rss_peak_mib": round3(status_mib(pid, "VmHWM")?),
        "spool_events_mib": mib(spool_events_bytes),
        "spool_state_mib": mib(spool_state_bytes),
        "spool_bytes_per_event": round3(spool_events_bytes as f64 / published as f64),
        "spool_after_drain_mib": mib(spool_after_drain),
        "delivered_while_holding_both": delivered_while_holding.0,
        "deliveries_while_holding": delivered_while_holding.1,
        "emulator_while_holding": counters_holding,
        "drain_s": drain.map(|d| round3(d.as_secs_f64())),
        "drain_events_to_both_per_s": drain.map(|d| round3((drained.0 - delivered_while_holding.0) as f64 / d.as_secs_f64())),
        "delivered": delivery_report(receiver),
        "emulator_counters": emulator_counters(emulator).await,
    });
    let publishing = publish_start.cpu_report(&publish_end);
    let draining = drain_start.cpu_report(&drain_end);
    result["cpu_publishing"] = publishing.clone();
    result["cpu_draining"] = draining.clone();
    // The disturbance check looks at the larger of the two phases.
    for key in ["other_cpu_cores", "other_processes_cores"] {
        let a = publishing[key].as_f64().unwrap_or(0.0);
        let b = draining[key].as_f64().unwrap_or(0.0);
        result[key] = round3(a.max(b));
    }
    println!(
        "backlog ({:?}): {published} events published in {publish_s:.1} s; RSS max {rss_max_publishing:.1} MiB while publishing, {rss_holding:.1} MiB holding the backlog; spool {:.1} MiB; drained in {:.1} s ({} events/s to both), RSS max {rss_max_draining:.1} MiB while draining",
        args.hold,
        spool_events_bytes as f64 / 1048576.0,
        drain_s,
        result["drain_events_to_both_per_s"]
    );
    check(receiver, published, drain, &failures.lock().unwrap())?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_found_in_a_delivery() {
        let body = br#"[{"data":{"seq":17,"orderId":"x"},"id":"a"},{"data":{"seq":4}}]"#;
        assert_eq!(sequence_numbers(body).collect::<Vec<_>>(), vec![17, 4]);
        assert_eq!(sequence_numbers(b"[]").count(), 0);
        let forwarded = br#"{"data": {"seq": 23, "orderId": "x"}, "id": "a"}"#;
        assert_eq!(sequence_numbers(forwarded).collect::<Vec<_>>(), vec![23]);
    }
}
