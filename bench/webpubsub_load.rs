//! Load generator and measurements for the fan-out of the local Web PubSub service
//! (`ordergrid webpubsub`), side by side with a peer: the seed document's backend written with
//! Node.js and `ws` (`bench/fanout_peer.mjs`).
//!
//! - `fanout`: starts one server as a child process (`--server ordergrid`, with `--protocol
//!   simple|json|reliable`, or `--server peer`), reads its idle RSS, opens `--clients` WebSocket
//!   connections to it (`/client/hubs/orders?access_token=…` with a token signed over the key of
//!   the connection string it printed; the peer's `/`), waits until they are all open and the
//!   server is idle again, and reads its RSS again: (after − before) ÷ clients is the RSS per
//!   connection. Then a ramp: for each broadcast rate of `--rates` (updates per second, open
//!   loop, each update sent at its scheduled time by its own task), `--warmup` seconds and then
//!   a `--duration` window, every update posted once (`POST /api/hubs/orders/:send` signed with
//!   the key, or the peer's `POST /broadcast`) and broadcast by the server to every client.
//!   Every received frame is timed against the moment its update was *scheduled*, so a stall
//!   delays every update queued behind it (no coordinated omission). The ramp stops after the
//!   first rate whose p99 passes `--stop-p99-ms` (1 s), or that lost a frame or a connection: a
//!   higher rate would only measure the backlog. A rate is *sustained* when its p99 is under
//!   `--p99-limit-ms` (100 ms) and nothing was lost; the highest sustained rate is reported.
//! - `summarize`: medians and spread across the runs recorded in `--results`.
//!
//! The payload is an order-status update of about `--payload-bytes` bytes that starts with
//! `{"run":R,"seq":S,`: the rate step and the update's sequence number, from which a receiver
//! finds its scheduled time. A simple client (and the peer's) receives exactly those bytes; a
//! JSON-subprotocol client receives them as `data` of a `message` frame; a reliable client also
//! acknowledges its sequence ids every 64 messages, as the official client does in batches.
//!
//! Frames delivered per second are those received during the window ÷ the window. Latencies
//! (p50/p99) are of the frames whose update was scheduled in the window, in 10 µs buckets, after
//! the run waited (up to 5 s) for the last of them. The generator shares the 2 cores with the
//! server: both processes' CPU time over each window is reported.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use futures::{SinkExt as _, StreamExt as _};
use ordergrid::webpubsub::token::{self, Claims};
use ordergrid::webpubsub::{AccessKey, WebPubSubConnection};
use ordergrid_testing::bench::{
    GeneratorArgs, Schedule, cpu_seconds, exit_code, http_client, machine_jiffies, round3,
    status_mib, summarize,
};
use ordergrid_testing::process::{Process, ordergrid};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

const HUB: &str = "orders";

#[derive(Parser, Clone)]
#[command(about = "Fan-out load generator for `ordergrid webpubsub` and the Node.js ws peer")]
struct Args {
    #[arg(long, value_enum, default_value = "fanout")]
    mode: Mode,
    #[command(flatten)]
    common: GeneratorArgs,
    /// Which server to measure.
    #[arg(long, value_enum, default_value = "ordergrid")]
    server: Server,
    /// The subprotocol ordergrid's clients use (the peer's clients are plain WebSockets).
    #[arg(long, value_enum, default_value = "simple")]
    protocol: Protocol,
    /// Concurrent WebSocket clients.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Broadcast rates to ramp through, updates per second, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,5,7,10,15,20,30")]
    rates: Vec<f64>,
    /// Seconds at each rate before the window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds at each rate.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// A rate is sustained when the p99 stays under this, nothing is lost and nobody dropped.
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// The ramp stops after a rate whose p99 is over this, or that lost a frame or a client
    /// (the rates past the limit above still show where each server's latency goes).
    #[arg(long, default_value_t = 1000.0)]
    stop_p99_ms: f64,
    /// Size of one update's JSON.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Node.js, for the peer.
    #[arg(long, default_value = "node")]
    node: String,
    /// The peer's script.
    #[arg(long, default_value = "bench/fanout_peer.mjs")]
    peer: String,
    /// CPUs the server is pinned to with `taskset -c` (e.g. `0-1`); none: not pinned.
    #[arg(long)]
    server_cpus: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Fanout,
    Summarize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Server {
    Ordergrid,
    Peer,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Protocol {
    Simple,
    Json,
    Reliable,
}

impl Protocol {
    fn subprotocol(self) -> Option<&'static str> {
        match self {
            Protocol::Simple => None,
            Protocol::Json => Some("json.webpubsub.azure.v1"),
            Protocol::Reliable => Some("json.reliable.webpubsub.azure.v1"),
        }
    }
}

fn main() -> std::process::ExitCode {
    exit_code(run(&Args::parse()))
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.mode == Mode::Summarize {
        return summarize(args.common.results.as_deref());
    }
    ensure!(
        args.rates.windows(2).all(|w| w[0] < w[1]) && !args.rates.is_empty(),
        "--rates must be ascending, e.g. 5,10,20"
    );
    if args.server == Server::Ordergrid {
        args.common.check_binary()?;
    }
    let runtime = args.common.runtime()?;
    let result = args
        .common
        .measure(None, || runtime.block_on(fanout(args)))?;
    println!("{result}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the receivers record, per rate step.

/// Latency buckets of 10 µs up to 5 s; later frames go to the last bucket.
const BUCKET_NS: u64 = 10_000;
const BUCKETS: usize = 500_000;

/// One rate step as the receivers see it: when update `seq` was scheduled, the window, and
/// the tallies.
struct Step {
    /// Nanoseconds after [`Shared::base`] at which update 0 is scheduled.
    start_ns: u64,
    interval_ns: f64,
    /// Updates from this sequence number on (up to `measured_end`) are measured.
    measured_from: u64,
    measured_end: u64,
    window_start_ns: u64,
    window_end_ns: u64,
    /// Frames received during the window (whatever their update).
    in_window: AtomicU64,
    /// Frames of measured updates, and their latencies.
    measured: AtomicU64,
    buckets: Vec<AtomicU64>,
}

impl Step {
    fn record(&self, seq: u64, now_ns: u64) {
        if (self.window_start_ns..self.window_end_ns).contains(&now_ns) {
            self.in_window.fetch_add(1, Ordering::Relaxed);
        }
        if (self.measured_from..self.measured_end).contains(&seq) {
            let due = self.start_ns + (seq as f64 * self.interval_ns) as u64;
            let bucket = (now_ns.saturating_sub(due) / BUCKET_NS) as usize;
            self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
            self.measured.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The `q` quantile in milliseconds (upper edge of its bucket).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.measured.load(Ordering::Relaxed);
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return ((i as u64 + 1) * BUCKET_NS) as f64 / 1e6;
            }
        }
        f64::NAN
    }
}

/// What every receiver task shares.
struct Shared {
    base: Instant,
    /// One slot per rate step, filled just before the step's first update is sent.
    steps: Vec<std::sync::OnceLock<Step>>,
    open: AtomicU64,
    dropped: AtomicU64,
    /// Frames that carried no readable `{"run":…,"seq":…` (the `connected` frame, acks).
    other_frames: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn received(&self, frame: &[u8]) {
        let now = self.now_ns();
        match run_and_seq(frame) {
            Some((run, seq)) => {
                if let Some(step) = self.steps.get(run).and_then(|s| s.get()) {
                    step.record(seq, now);
                }
            }
            None => {
                self.other_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `(run, seq)` from the first `{"run":R,"seq":S` in `frame`.
fn run_and_seq(frame: &[u8]) -> Option<(usize, u64)> {
    const KEY: &[u8] = b"{\"run\":";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let (run, rest) = number(&frame[at..])?;
    let rest = rest.strip_prefix(b",\"seq\":")?;
    let (seq, _) = number(rest)?;
    Some((run as usize, seq))
}

/// The decimal number at the start of `text`, and what follows it.
fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let value = std::str::from_utf8(&text[..digits]).ok()?.parse().ok()?;
    Some((value, &text[digits..]))
}

/// A reliable frame's `"sequenceId":N`.
fn sequence_id(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sequenceId\":";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    number(&frame[at..]).map(|(n, _)| n)
}

/// The update for step `run`, number `seq`: an order-status update padded to `size` bytes.
fn payload(run: usize, seq: u64, size: usize) -> String {
    let mut body = format!(
        r#"{{"run":{run},"seq":{seq},"orderId":"ord-{seq:08}","status":"accepted","reasons":[],"time":"2026-11-30T00:00:00.000Z","eventId":"{:032x}","pad":""#,
        (run as u128) << 64 | seq as u128
    );
    while body.len() + 2 < size {
        body.push('x');
    }
    body.push_str("\"}");
    body
}

// ---------------------------------------------------------------------------------------------
// The servers.

struct Target {
    process: Process,
    /// The client URL (token included).
    client_url: String,
    /// Where updates are posted, and the bearer token (ordergrid only).
    publish_url: String,
    bearer: Option<String>,
}

async fn start(args: &Args, dir: &std::path::Path) -> anyhow::Result<Target> {
    let pinned = |program: &str| -> Command {
        match &args.server_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(program);
                c
            }
            None => Command::new(program),
        }
    };
    match args.server {
        Server::Peer => {
            let mut command = pinned(&args.node);
            command
                .arg(&args.peer)
                .arg("0")
                .stdin(std::process::Stdio::null());
            let (process, base) = Process::spawn_listening(&mut command, Duration::from_secs(10))
                .await
                .context("failed to start the Node.js peer")?;
            Ok(Target {
                process,
                client_url: base.replace("http://", "ws://") + "/",
                publish_url: format!("{base}/broadcast"),
                bearer: None,
            })
        }
        Server::Ordergrid => {
            let mut command = match &args.server_cpus {
                Some(cpus) => {
                    let mut c = ordergrid("taskset", "-c");
                    c.arg(cpus).arg(&args.common.binary).arg("webpubsub");
                    c
                }
                None => ordergrid(&args.common.binary, "webpubsub"),
            };
            command
                .arg("--port")
                .arg("0")
                .arg("--data")
                .arg(dir)
                .env("ORDERGRID_LOG", "warn,ordergrid=info");
            let (process, base) = Process::spawn_listening(&mut command, Duration::from_secs(10))
                .await
                .context("failed to start ordergrid webpubsub")?;
            let connection_string = ordergrid_testing::poll(Duration::from_secs(10), async || {
                process
                    .stdout
                    .find_map(|l| l.starts_with("Endpoint=").then(|| l.clone()))
            })
            .await
            .context("ordergrid webpubsub printed no connection string")?;
            let connection = WebPubSubConnection::parse_connection_string(&connection_string)
                .map_err(anyhow::Error::msg)?;
            let key: AccessKey = connection.key().context("no key")?.clone();
            let sign =
                |url: &str| token::sign(&Claims::new(url, token::now_seconds(), 3 * 3600), &key);
            let client_http = format!("{base}/client/hubs/{HUB}");
            let publish_url = format!("{base}/api/hubs/{HUB}/:send");
            Ok(Target {
                process,
                client_url: format!(
                    "{}?access_token={}",
                    client_http.replace("http://", "ws://"),
                    sign(&client_http)
                ),
                bearer: Some(sign(&publish_url)),
                publish_url,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// Small buffers: 10,000 clients with tungstenite's default 128 KiB read buffer would take
/// 1.3 GB of the generator's memory.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn connect_one(
    url: &str,
    protocol: Option<&'static str>,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let mut request = url.into_client_request()?;
    if let Some(p) = protocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
    }
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(client_config()), true)
            .await
            .context("WebSocket handshake")?;
    Ok(ws)
}

/// Reads frames until the socket ends; a reliable client acknowledges every 64th sequence id.
async fn receive(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    shared: Arc<Shared>,
    reliable: bool,
) {
    let mut since_ack = 0u32;
    while let Some(frame) = ws.next().await {
        let bytes: Bytes = match frame {
            Ok(Message::Text(t)) => t.into(),
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        shared.received(&bytes);
        if reliable && let Some(id) = sequence_id(&bytes) {
            since_ack += 1;
            if since_ack >= 64 {
                since_ack = 0;
                let ack = format!(r#"{{"type":"sequenceAck","sequenceId":{id}}}"#);
                if ws.send(Message::text(ack)).await.is_err() {
                    break;
                }
            }
        }
    }
    shared.open.fetch_sub(1, Ordering::Relaxed);
    if !shared.stopping.load(Ordering::Relaxed) {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

fn rss_kib(pid: u32, field: &str) -> anyhow::Result<f64> {
    Ok(status_mib(pid, field)? * 1024.0)
}

/// Waits until `pid` used under 2% of a core for 1 s in a row (at most 20 s).
async fn settle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = cpu_seconds(&pid.to_string());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_seconds(&pid.to_string());
        if now - last < 0.02 {
            return;
        }
        last = now;
    }
}

async fn fanout(args: &Args) -> anyhow::Result<Value> {
    let dir = args.common.run_dir("webpubsub-")?;
    let mut target = start(args, dir.path()).await?;
    // `taskset` execs the server, so the child's pid is the server's.
    let server_pid = target.process.pid();
    settle(server_pid).await;
    let rss_before = rss_kib(server_pid, "VmRSS")?;

    let shared = Arc::new(Shared {
        base: Instant::now(),
        steps: (0..args.rates.len())
            .map(|_| std::sync::OnceLock::new())
            .collect(),
        open: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        other_frames: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
    });

    // Connect everyone, `connect_concurrency` at a time.
    let connect_started = Instant::now();
    let protocol = match args.server {
        Server::Ordergrid => args.protocol.subprotocol(),
        Server::Peer => None,
    };
    let reliable = args.server == Server::Ordergrid && args.protocol == Protocol::Reliable;
    let url = Arc::new(target.client_url.clone());
    let mut connecting = futures::stream::iter(0..args.clients)
        .map(|_| {
            let url = url.clone();
            async move { connect_one(&url, protocol).await }
        })
        .buffer_unordered(args.connect_concurrency);
    let mut failed_connects = 0u64;
    let mut first_error = None;
    while let Some(outcome) = connecting.next().await {
        match outcome {
            Ok(ws) => {
                shared.open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(receive(ws, shared.clone(), reliable));
            }
            Err(e) => {
                failed_connects += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    if failed_connects > 0 {
        bail!(
            "{failed_connects} of {} connections failed; the first: {}",
            args.clients,
            first_error.unwrap_or_default()
        );
    }
    settle(server_pid).await;
    let rss_connected = rss_kib(server_pid, "VmRSS")?;
    let rss_per_connection_bytes = (rss_connected - rss_before) * 1024.0 / args.clients as f64;
    eprintln!(
        "{:?}/{:?}: {} clients in {connect_s:.1} s; RSS {rss_before:.0} KiB idle, {rss_connected:.0} KiB with them: {rss_per_connection_bytes:.0} B per connection",
        args.server, args.protocol, args.clients
    );

    let http = http_client(Duration::from_secs(30))?;
    let mut steps = serde_json::Map::new();
    let mut sustained: Option<(f64, f64, f64, f64)> = None;
    let mut other_cores = 0.0f64;
    for (run, &rate) in args.rates.iter().enumerate() {
        let outcome = one_rate(args, &target, &shared, &http, server_pid, run, rate).await?;
        let ok = outcome["sustained"].as_bool().unwrap_or(false);
        other_cores = other_cores.max(outcome["other_cores"].as_f64().unwrap_or(0.0));
        eprintln!("  rate {rate}/s: {outcome}");
        if ok && sustained.is_none_or(|(r, ..)| r < rate) {
            sustained = Some((
                rate,
                outcome["frames_per_s"].as_f64().unwrap_or(0.0),
                outcome["p50_ms"].as_f64().unwrap_or(f64::NAN),
                outcome["p99_ms"].as_f64().unwrap_or(f64::NAN),
            ));
        }
        // A p99 of null (no frame measured) counts as overloaded too.
        let overloaded = outcome["p99_ms"]
            .as_f64()
            .is_none_or(|p99| p99 >= args.stop_p99_ms)
            || outcome["frames_lost"].as_u64() != Some(0)
            || outcome["connections_dropped"].as_u64() != Some(0);
        steps.insert(format!("r{rate:04}"), outcome);
        if overloaded {
            break;
        }
    }
    let rss_after = rss_kib(server_pid, "VmRSS")?;
    let rss_peak = rss_kib(server_pid, "VmHWM")?;
    shared.stopping.store(true, Ordering::Relaxed);
    let _ = target.process.kill();

    let (best_rate, best_frames, best_p50, best_p99) =
        sustained.unwrap_or((0.0, 0.0, f64::NAN, f64::NAN));
    Ok(json!({
        "label": args.common.label(),
        "server": format!("{:?}", args.server).to_lowercase(),
        "protocol": if args.server == Server::Peer { "ws".to_owned() } else { format!("{:?}", args.protocol).to_lowercase() },
        "clients": args.clients,
        "payload_bytes": args.payload_bytes,
        "connect_s": round3(connect_s),
        "rss_idle_kib": round3(rss_before),
        "rss_connected_kib": round3(rss_connected),
        "rss_per_connection_bytes": round3(rss_per_connection_bytes),
        "rss_after_ramp_kib": round3(rss_after),
        "rss_peak_kib": round3(rss_peak),
        "max_sustained_rate": best_rate,
        "max_sustained_frames_per_s": round3(best_frames),
        "max_sustained_p50_ms": round3(best_p50),
        "max_sustained_p99_ms": round3(best_p99),
        "steps": Value::Object(steps),
        // What the machine check reads: the most any window saw other processes use (the
        // server's CPU is not "other", as it would be to the generic check).
        "other_cpu_cores": round3(other_cores),
    }))
}

async fn one_rate(
    args: &Args,
    target: &Target,
    shared: &Arc<Shared>,
    http: &reqwest::Client,
    server_pid: u32,
    run: usize,
    rate: f64,
) -> anyhow::Result<Value> {
    let interval_ns = 1e9 / rate;
    let warmup_updates = (args.warmup * rate).round() as u64;
    let window_updates = (args.duration * rate).round() as u64;
    let total = warmup_updates + window_updates;
    // Start a little ahead so the schedule thread is running before the first update is due.
    let start = Instant::now() + Duration::from_millis(50);
    let start_ns = start.duration_since(shared.base).as_nanos() as u64;
    let window_start_ns = start_ns + (warmup_updates as f64 * interval_ns) as u64;
    let window_end_ns = start_ns + (total as f64 * interval_ns) as u64;
    let step = Step {
        start_ns,
        interval_ns,
        measured_from: warmup_updates,
        measured_end: total,
        window_start_ns,
        window_end_ns,
        in_window: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
    };
    if shared.steps[run].set(step).is_err() {
        bail!("rate step {run} ran twice");
    }
    let step = shared.steps[run].get().expect("just set");
    let open_at_start = shared.open.load(Ordering::Relaxed);
    let dropped_before = shared.dropped.load(Ordering::Relaxed);

    // CPU and machine counters at the window's edges.
    let window_start = shared.base + Duration::from_nanos(window_start_ns);
    let window_end = shared.base + Duration::from_nanos(window_end_ns);
    let spid = server_pid.to_string();
    let edges = tokio::spawn(async move {
        let take = move || {
            (
                machine_jiffies(),
                cpu_seconds(&spid),
                cpu_seconds("self"),
                Instant::now(),
            )
        };
        tokio::time::sleep_until(window_start.into()).await;
        let first = take();
        tokio::time::sleep_until(window_end.into()).await;
        (first, take())
    });

    let publish_failures = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut schedule = Schedule::start(start, total, rate);
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((seq, _)) = schedule.next().await {
        let body = payload(run, seq, args.payload_bytes);
        let mut request = http
            .post(&target.publish_url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(bearer) = &target.bearer {
            request = request.bearer_auth(bearer);
        }
        let (failures, first) = (publish_failures.clone(), first_failure.clone());
        tasks.spawn(async move {
            let outcome = match request.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("answered {}", r.status())),
                Err(e) => Err(format!("{e:#}")),
            };
            if let Err(why) = outcome {
                failures.fetch_add(1, Ordering::Relaxed);
                first.lock().unwrap().get_or_insert(why);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    schedule.finish().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (first, last) = edges.await?;

    // Wait (up to 5 s) for the measured updates' last frames.
    let expected = window_updates * open_at_start;
    ordergrid_testing::poll(Duration::from_secs(5), async || {
        (step.measured.load(Ordering::Relaxed) >= expected
            || shared.open.load(Ordering::Relaxed) == 0)
            .then_some(())
    })
    .await;

    let seconds = last.3.duration_since(first.3).as_secs_f64();
    let machine =
        (last.0.0 - first.0.0) / (last.0.1 - first.0.1) * ordergrid_testing::bench::cores();
    let server_cores = (last.1 - first.1) / seconds;
    let generator_cores = (last.2 - first.2) / seconds;
    let other = (machine - server_cores - generator_cores).max(0.0);

    let received = step.measured.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received);
    let dropped = shared.dropped.load(Ordering::Relaxed) - dropped_before;
    let p99 = step.quantile_ms(0.99);
    let failures = publish_failures.load(Ordering::Relaxed);
    let sustained = p99 < args.p99_limit_ms && lost == 0 && dropped == 0 && failures == 0;
    let mut out = json!({
        "rate": rate,
        "clients_open": open_at_start,
        "frames_per_s": round3(step.in_window.load(Ordering::Relaxed) as f64 / args.duration),
        "offered_frames_per_s": round3(rate * open_at_start as f64),
        "p50_ms": round3(step.quantile_ms(0.50)),
        "p90_ms": round3(step.quantile_ms(0.90)),
        "p99_ms": round3(p99),
        "p999_ms": round3(step.quantile_ms(0.999)),
        "max_ms": round3(step.quantile_ms(1.0)),
        "frames_measured": received,
        "frames_lost": lost,
        "connections_dropped": dropped,
        "publish_failures": failures,
        "server_cores": round3(server_cores),
        "generator_cores": round3(generator_cores),
        "machine_cores": round3(machine),
        "other_cores": round3(other),
        "sustained": sustained,
    });
    if let Some(why) = first_failure.lock().unwrap().take() {
        out["first_publish_failure"] = Value::String(why);
    }
    Ok(out)
}
