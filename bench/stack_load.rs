//! Load generator and measurements for the local stack (`ordergrid dev`).
//!
//! Every run starts the real release binary as a user would (`ordergrid dev --app <repo>`), with a
//! fresh data folder under `target/bench-tmp/` (the real disk) and ports picked by the kernel
//! (`--emulator-port 0 --host-port 0`), and stops it with SIGTERM as Ctrl-C would.
//!
//! - `startup`: `--runs` times: from just before the process is spawned to the moment the line
//!   `ordergrid local stack is ready` arrives on its stdout (printed after the custom handler
//!   answered its readiness probe). The handler's own `startup_ms` (spawn to first answered
//!   probe, as the host stand-in logs it) is reported next to it.
//! - `rate`: open loop at `--rate` NewOrder publishes per second, each order its own publish
//!   request with a distinct order id, for `--duration` seconds after `--warmup`. The email
//!   outbox is watched with inotify (`IN_MOVED_TO`: the notifier writes a temporary name, flushes
//!   it and renames it to `<orderId>.eml`); latency runs from just before each publish request is
//!   sent to the moment the watcher thread reads the rename event.
//! - `summarize`: medians and spread across the runs recorded in `--results`.
//!
//! The generator shares the 2 cores with the stack (one process: emulator + host stand-in) and
//! the handler (its child); each one's CPU is reported.

use std::fs;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use futures::StreamExt as _;
use ordergrid::webpubsub::{TokenRequest, WebPubSubClient, WebPubSubConnection};
use ordergrid_testing::DEV_ON_FREE_PORTS;
use ordergrid_testing::bench::{
    Clock, GeneratorArgs, Latencies, Schedule, Snapshot, Stamps, SyscallCounter, Topic,
    at_window_edges, disk_stat_path, exit_code, http_client, median, merge, nonce, open_loop,
    round3, status_mib, summarize,
};
use ordergrid_testing::process::Process;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
#[command(about = "Load generator and measurements for `ordergrid dev`")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[command(flatten)]
    common: GeneratorArgs,
    /// The function app: the repository root (host.json, function folders, infra/).
    #[arg(long, default_value = ".")]
    app: PathBuf,
    /// `startup`: stacks to start, one after the other.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// `rate`: NewOrder publishes per second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to wait after the window for the last emails.
    #[arg(long, default_value_t = 120.0)]
    drain_timeout: f64,
    /// `ORDERGRID_LOG` for the stack and its handler; unset means their default (info).
    #[arg(long)]
    log: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Mode {
    Startup,
    Rate,
    Summarize,
}

const READY_LINE: &str = "ordergrid local stack is ready";

fn main() -> std::process::ExitCode {
    exit_code(run(&Args::parse()))
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.mode == Mode::Summarize {
        return summarize(args.common.results.as_deref());
    }
    ensure!(
        args.app.join("host.json").is_file(),
        "{} has no host.json: --app must be the repository root",
        args.app.display()
    );
    args.common.check_binary()?;
    let result = args.common.measure(None, || {
        let mut result = match args.mode {
            Mode::Startup => startup(args)?,
            Mode::Rate => args.common.runtime()?.block_on(rate(args))?,
            Mode::Summarize => unreachable!(),
        };
        result["label"] = json!(args.common.label());
        Ok(result)
    })?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The stack process.

struct Stack {
    process: Process,
    /// When the process was spawned, and when the ready line arrived.
    spawned: Instant,
    ready_at: Instant,
    topic_endpoint: String,
    topic_key: String,
    handler_pid: Option<u32>,
    /// `startup_ms` of the host stand-in's "custom handler ready" log line.
    handler_startup_ms: Option<f64>,
    /// The local Web PubSub service's connection string, from the summary.
    webpubsub: Option<String>,
}

enum Line {
    Ready(Instant),
    Summary(String),
    HandlerStartup(f64),
}

impl Stack {
    fn start(args: &Args, data: &Path) -> anyhow::Result<Self> {
        let binary = &args.common.binary;
        let mut cmd = Command::new(binary);
        cmd.arg("dev")
            .arg("--data")
            .arg(data)
            .args(DEV_ON_FREE_PORTS)
            .arg("--app")
            .arg(&args.app)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        if let Some(log) = &args.log {
            cmd.env("ORDERGRID_LOG", log);
        }
        let (tx, rx) = mpsc::channel::<Line>();
        let spawned = Instant::now();
        let mut summary: Option<String> = None;
        let mut process = Process::spawn_with_stdout(&mut cmd, move |line| {
            let now = Instant::now();
            let text = String::from_utf8_lossy(line);
            if text.contains(READY_LINE) {
                let _ = tx.send(Line::Ready(now));
                summary = Some(String::new());
                return;
            }
            if let Some(s) = summary.as_mut() {
                if text.contains("Ctrl-C stops everything") {
                    let _ = tx.send(Line::Summary(std::mem::take(s)));
                    summary = None;
                } else {
                    s.push_str(&text);
                    s.push('\n');
                }
                return;
            }
            if text.contains("custom handler ready")
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && let Some(ms) = v["startup_ms"].as_f64()
            {
                let _ = tx.send(Line::HandlerStartup(ms));
            }
        })
        .with_context(|| format!("failed to start {}", binary.display()))?;
        let deadline = spawned + Duration::from_secs(60);
        let (mut ready_at, mut summary, mut handler_startup_ms) = (None, None, None);
        while summary.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Line::Ready(at)) => ready_at = Some(at),
                Ok(Line::Summary(s)) => summary = Some(s),
                Ok(Line::HandlerStartup(ms)) => handler_startup_ms = Some(ms),
                Err(_) => {
                    let _ = process.kill();
                    bail!(
                        "the stack printed no ready summary within 60 s:\n{}",
                        process.stderr.text()
                    );
                }
            }
        }
        let summary = summary.unwrap_or_default();
        let field = |name: &str| {
            summary
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let topic_endpoint =
            field("Event Grid topic").context("no topic endpoint in the summary")?;
        let topic_key = field("topic key").context("no topic key in the summary")?;
        let handler_pid = field("custom handler").and_then(|v| {
            v.strip_prefix("pid ")?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        });
        let webpubsub = summary.lines().find_map(|l| {
            let (_, rest) = l.split_once("WebPubSubConnectionString=")?;
            Some(rest.trim_end().trim_end_matches(')').to_owned())
        });
        Ok(Self {
            process,
            spawned,
            ready_at: ready_at.context("no ready line")?,
            topic_endpoint,
            topic_key,
            handler_pid,
            handler_startup_ms,
            webpubsub,
        })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM, as Ctrl-C; SIGKILL after 15 s. Then makes sure the handler is gone too.
    fn stop(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let _ = self.process.signal("TERM");
        loop {
            if self.process.child.try_wait()?.is_some() {
                break;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = self.process.kill();
                eprintln!("warning: the stack ignored SIGTERM for 15 s; killed it");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let stopped = started.elapsed();
        if let Some(pid) = self.handler_pid {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("warning: the handler (pid {pid}) outlived the stack; killing it");
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        Ok(stopped)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if matches!(self.process.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// startup

fn startup(args: &Args) -> anyhow::Result<Value> {
    let mut ready = Latencies::default();
    let mut handler = Vec::new();
    let mut stop = Latencies::default();
    let mut rss = Vec::new();
    let mut handler_rss = Vec::new();
    for run in 0..args.runs {
        let dir = args.common.run_dir("stack-startup-")?;
        let mut stack = Stack::start(args, &dir.path().join(".ordergrid"))
            .with_context(|| format!("run {run}"))?;
        ready.push(stack.ready_at - stack.spawned);
        if let Some(ms) = stack.handler_startup_ms {
            handler.push(ms);
        }
        // Idle a moment, then the resident memory of both processes.
        std::thread::sleep(Duration::from_millis(500));
        rss.push(status_mib(stack.pid(), "VmRSS").unwrap_or(f64::NAN));
        if let Some(pid) = stack.handler_pid {
            handler_rss.push(status_mib(pid, "VmRSS").unwrap_or(f64::NAN));
        }
        stop.push(stack.stop()?);
    }
    let mut summary = ready.summary();
    let handler_median = median(&mut handler);
    summary["handler_startup_ms_median"] = round3(handler_median);
    summary["handler_startup_ms_max"] = round3(handler.iter().copied().fold(f64::NAN, f64::max));
    let result = json!({
        "mode": "startup",
        "runs": args.runs,
        "ready": summary,
        "stop_after_sigterm": stop.summary(),
        "stack_rss_idle_median_mib": round3(median(&mut rss)),
        "handler_rss_idle_median_mib": round3(median(&mut handler_rss)),
    });
    println!(
        "startup ({} runs): command to ready p50 {} ms, p90 {} ms, max {} ms (handler spawn to ready p50 {handler_median} ms)",
        args.runs, result["ready"]["p50_ms"], result["ready"]["p90_ms"], result["ready"]["max_ms"]
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// rate

/// Watches a folder for `<prefix><seq>.eml` files renamed into it and records, per sequence
/// number, when the watcher read the event (0 means not yet).
struct OutboxWatcher {
    arrivals: Arc<Stamps>,
    seen: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutboxWatcher {
    fn start(dir: &Path, prefix: String, clock: Clock, capacity: usize) -> anyhow::Result<Self> {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC).context("inotify_init1 failed")?;
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CREATE,
        )
        .with_context(|| format!("failed to watch {}", dir.display()))?;
        let arrivals = Arc::new(Stamps::new(capacity));
        let seen = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (arrivals, seen, stop) = (arrivals.clone(), seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("outbox-watcher".into())
                .spawn(move || {
                    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
                    let mut reader = inotify::Reader::new(&fd, &mut buf);
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(event) = reader.next() else { break };
                        let now = clock.ns(Instant::now());
                        if !event.events().contains(inotify::ReadFlags::MOVED_TO) {
                            continue;
                        }
                        let Some(name) = event.file_name().and_then(|n| n.to_str().ok()) else {
                            continue;
                        };
                        let seq = name
                            .strip_suffix(".eml")
                            .and_then(|n| n.strip_prefix(prefix.as_str()))
                            .and_then(|n| n.parse::<u64>().ok());
                        if let Some(seq) = seq.filter(|&s| s < arrivals.len() as u64) {
                            arrivals.set_first(seq, now);
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .context("failed to start the outbox watcher")?
        };
        Ok(Self {
            arrivals,
            seen,
            stop,
            dir: dir.to_owned(),
            thread: Some(thread),
        })
    }

    /// Stops the watcher thread: it blocks in `read`, so wake it with a file of our own.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = fs::write(self.dir.join("benchmark-stop"), b"");
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for OutboxWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The operators' board as a client of the local Web PubSub service (the simple protocol, in the
/// operators' group by its token): records, per order, when its `confirmationSent` update arrived,
/// the last hop of the choreography (NewOrder → OrderAccepted → email → OrderConfirmationSent →
/// OrderStatusFeed → Web PubSub).
struct FeedWatcher {
    arrivals: Arc<Stamps>,
    seen: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FeedWatcher {
    async fn start(
        connection_string: &str,
        prefix: String,
        clock: Clock,
        capacity: usize,
    ) -> anyhow::Result<Self> {
        const HUB: &str = "orders";
        let connection = WebPubSubConnection::parse_connection_string(connection_string)
            .map_err(anyhow::Error::msg)?;
        let client = WebPubSubClient::new(connection, None)?;
        let request = TokenRequest {
            groups: vec!["operators".into()],
            minutes_to_expire: 180,
            ..TokenRequest::default()
        };
        let token = client
            .sign_client_token(HUB, &request)
            .context("the connection string has no key")?;
        let url = client.connection().client_url(HUB, &token);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("the operators' board could not connect to the local Web PubSub")?;
        let arrivals = Arc::new(Stamps::new(capacity));
        let seen = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (arrivals, seen) = (arrivals.clone(), seen.clone());
            async move {
                while let Some(Ok(message)) = ws.next().await {
                    let now = clock.ns(Instant::now());
                    let Ok(text) = message.to_text() else {
                        continue;
                    };
                    let Ok(update) = serde_json::from_str::<Value>(text) else {
                        continue;
                    };
                    if update["status"] != "confirmationSent" {
                        continue;
                    }
                    let seq = update["orderId"]
                        .as_str()
                        .and_then(|id| id.strip_prefix(prefix.as_str()))
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|&s| s < arrivals.len() as u64);
                    // A redelivered status event is a second update: counted once.
                    if let Some(seq) = seq
                        && arrivals.get(seq) == 0
                    {
                        arrivals.set_first(seq, now);
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Ok(Self {
            arrivals,
            seen,
            task,
        })
    }
}

impl Drop for FeedWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Orders {
    topic: Topic,
    prefix: String,
}

impl Orders {
    fn order_id(&self, seq: u64) -> String {
        format!("{}{seq}", self.prefix)
    }

    /// One NewOrder, its own publish request, as `ordergrid publish` would send it.
    async fn publish(&self, seq: u64) -> Result<(), String> {
        let id = self.order_id(seq);
        self.topic
            .publish(format!(
                r#"[{{"id":"evt-{id}","subject":"orders/{id}","eventType":"NewOrder","eventTime":"2026-11-22T10:00:00.000Z","dataVersion":"1.0","data":{{"orderId":"{id}","customerId":"67890","orderValue":150.00,"customerEmail":"customer@example.com"}}}}]"#
            ))
            .await
    }
}

async fn rate(args: &Args) -> anyhow::Result<Value> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    let dir = args.common.run_dir("stack-rate-")?;
    let data = dir.path().join(".ordergrid");
    let outbox = data.join("outbox");
    fs::create_dir_all(&outbox)
        .with_context(|| format!("failed to create {}", outbox.display()))?;
    let clock = Clock(Instant::now());
    let total = ((args.warmup + args.duration) * args.rate).floor() as u64;
    let prefix = format!("{}-", nonce());
    let mut watcher = OutboxWatcher::start(&outbox, prefix.clone(), clock, total as usize)?;
    let mut stack = Stack::start(args, &data)?;
    let stack_pid = stack.pid();
    let handler_pid = stack
        .handler_pid
        .context("the summary names no handler pid")?;
    let perf = args.common.syscall_counter(handler_pid);
    let connection = (stack.webpubsub.as_deref())
        .context("the stack's summary names no WebPubSubConnectionString")?;
    let feed = FeedWatcher::start(connection, prefix.clone(), clock, total as usize).await?;
    let orders = Arc::new(Orders {
        topic: Topic {
            client: http_client(Duration::from_secs(60))?,
            url: format!("{}?api-version=2018-01-01", stack.topic_endpoint),
            key: stack.topic_key.clone(),
        },
        prefix,
    });
    let disk = disk_stat_path(&args.common.tmp);
    let start = Instant::now() + Duration::from_millis(20);
    let window_start = start + Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.duration);
    let first_measured = (args.warmup * args.rate).ceil() as u64;
    let schedule = Schedule::start(start, total, args.rate);
    let watched = [("stack", stack_pid), ("handler", handler_pid)];
    let snapshots = at_window_edges(window_start, window_end, move || {
        Snapshot::take(&watched, disk.as_deref())
    });
    let mut run = open_loop(schedule, total, clock, first_measured, move |seq| {
        let orders = orders.clone();
        async move { orders.publish(seq).await }
    })
    .await?;
    let (first, last) = snapshots.await.context("the snapshot task failed")?;
    // Wait for the emails of every acknowledged order.
    let acked_total = run.acked;
    let drain_started = Instant::now();
    while watcher.seen.load(Ordering::Relaxed) < acked_total
        && drain_started.elapsed().as_secs_f64() < args.drain_timeout
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let emails = watcher.seen.load(Ordering::Relaxed);
    let last_email_after_window_s = drain_started.elapsed().as_secs_f64();
    while feed.seen.load(Ordering::Relaxed) < acked_total
        && drain_started.elapsed().as_secs_f64() < args.drain_timeout
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let confirmations = feed.seen.load(Ordering::Relaxed);
    let last_confirmation_after_window_s = drain_started.elapsed().as_secs_f64();
    let stack_rss_peak = status_mib(stack_pid, "VmHWM").unwrap_or(f64::NAN);
    let handler_rss_peak = status_mib(handler_pid, "VmHWM").unwrap_or(f64::NAN);
    let handler_threads = fs::read_dir(format!("/proc/{handler_pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    stack.stop()?;
    watcher.stop();
    let (fdatasyncs, fsyncs) = perf.map(SyscallCounter::finish).unwrap_or((None, None));
    let mut from_send = Latencies::default();
    let mut from_scheduled = Latencies::default();
    let mut lag = Latencies::default();
    let mut missing = 0u64;
    let mut to_feed = Latencies::default();
    let mut missing_on_feed = 0u64;
    for seq in first_measured..total {
        let s = run.sent.get(seq);
        match feed.arrivals.get(seq) {
            f if s != 0 && f != 0 => to_feed.push_us(f.saturating_sub(s) / 1000),
            _ => missing_on_feed += 1,
        }
        let sch = run.scheduled.get(seq);
        let a = watcher.arrivals.get(seq);
        lag.push_us(s.saturating_sub(sch) / 1000);
        if a == 0 || s == 0 {
            missing += 1;
            continue;
        }
        from_send.push_us(a.saturating_sub(s) / 1000);
        from_scheduled.push_us(a.saturating_sub(sch) / 1000);
    }
    let window = last.at.duration_since(first.at).as_secs_f64();
    let mut result = json!({
        "mode": "rate",
        "target_rate": args.rate,
        "window_s": round3(window),
        "orders_measured": total - first_measured,
        "publish_to_email": from_send.summary(),
        "publish_to_confirmation_on_feed": to_feed.summary(),
        "confirmations_on_feed_total": confirmations,
        "missing_on_feed_in_window": missing_on_feed,
        "confirmation_drain_wait_s": round3(last_confirmation_after_window_s),
        "publish_to_email_from_scheduled": from_scheduled.summary(),
        "send_lag_behind_schedule": lag.summary(),
        "publish_request_latency": run.request_latency.summary(),
        "acked_total": acked_total,
        "emails_total": emails,
        "missing_in_window": missing,
        "drain_wait_s": round3(last_email_after_window_s),
        "publish_failures": run.failures.count,
        "stack_rss_peak_mib": round3(stack_rss_peak),
        "handler_rss_peak_mib": round3(handler_rss_peak),
        "handler_threads_at_end": handler_threads,
        "handler_fdatasyncs_total": fdatasyncs,
        "handler_fsyncs_total": fsyncs,
        "ready_ms": round3((stack.ready_at - stack.spawned).as_secs_f64() * 1000.0),
        "stack_stdout_lines": stack.process.stdout_lines(),
        "stack_stderr_lines": stack.process.stderr.len(),
    });
    merge(&mut result, first.cpu_report(&last));
    println!(
        "rate {}/s: publish→email p50 {} ms, p99 {} ms, max {} ms; {emails}/{acked_total} emails; publish→confirmation on the feed p50 {} ms, p99 {} ms, {confirmations}/{acked_total}; stack {} cores, handler {} cores, generator {} cores",
        args.rate,
        result["publish_to_email"]["p50_ms"],
        result["publish_to_email"]["p99_ms"],
        result["publish_to_email"]["max_ms"],
        result["publish_to_confirmation_on_feed"]["p50_ms"],
        result["publish_to_confirmation_on_feed"]["p99_ms"],
        result["stack_cpu_cores"],
        result["handler_cpu_cores"],
        result["generator_cpu_cores"]
    );
    run.failures.print();
    for line in stack.process.stderr.all().iter().take(5) {
        eprintln!("stack stderr: {line}");
    }
    ensure!(
        run.failures.count == 0,
        "{} publish requests failed",
        run.failures.count
    );
    ensure!(
        emails >= acked_total,
        "{acked_total} orders acknowledged but only {emails} emails within {} s after the window",
        args.drain_timeout
    );
    ensure!(
        confirmations >= acked_total,
        "{acked_total} orders acknowledged but only {confirmations} confirmations reached the operators' feed within {} s after the window",
        args.drain_timeout
    );
    Ok(result)
}
