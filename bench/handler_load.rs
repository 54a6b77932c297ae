//! Load generator and measurements for the custom handler (`ordergrid serve`).
//!
//! Every mode runs the real release binary as a child process, the way the Functions host does,
//! with a fresh store and outbox folder under `target/bench-tmp/` (the real disk, never tmpfs):
//!
//! - `startup`: spawn, poll `GET /` until it answers 200, then idle 1 s and read `VmRSS`;
//! - `max`: closed loop, `--concurrency` keep-alive connections posting distinct NewOrder
//!   envelopes to `/OrderProcessor` for `--duration` seconds;
//! - `rate`: open loop at `--rate` requests per second, latency measured from each request's
//!   *scheduled* send time (no coordinated omission);
//! - `fsync-baseline`: append one order-sized frame and `fdatasync` it, in a loop: the rate a
//!   store without group commit could reach;
//! - `summarize`: medians and spread across the runs recorded in `--results`.
//!
//! After `max` and `rate` the server is killed with SIGKILL and the store folder is reopened with
//! [`FolderStore::open`]: every order answered 200 must be there (acknowledged means written).
//! That `fdatasync` ran is shown by counting the server's `fdatasync` calls (`perf stat` on the
//! syscall tracepoint, when `perf` works) and the disk's flush requests (`/sys/dev/block/*/stat`).
//!
//! The generator shares the machine with the server; it reports its own CPU time next to the
//! server's (and the server's per thread) so the split is visible, and the slowest requests with
//! their order sequence numbers, so a stall can be tied to the store's size. Before each run it
//! waits for an idle machine, and it repeats a run that other processes disturbed (CPU or disk
//! reads). Each measuring mode appends one JSON line to `--results`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use ordergrid::store::{Collection, FolderStore, FolderStoreOptions, RecordStore};
use ordergrid_testing::bench::{
    Disk, Failures, GeneratorArgs, Latencies, Schedule, all_processes, at_window_edges, cores,
    cpu_seconds, disk_stat_path, exit_code, http_client, machine_jiffies, median, nonce, round3,
    status_mib, summarize,
};
use ordergrid_testing::process::{Process, ordergrid};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Load generator and measurements for `ordergrid serve`")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    /// `--tmp` also holds the fsync baseline file.
    #[command(flatten)]
    common: GeneratorArgs,
    /// `ORDERGRID_LOG` for the handler: `warn` silences the per-invocation info line.
    #[arg(long, default_value = "warn")]
    log: String,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Arrivals per second for `rate` (and `fsync-baseline --paced`).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of load before measuring starts (its orders are still checked for durability).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Processes to start in `startup`.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Seconds to leave a started handler alone before reading its idle RSS.
    #[arg(long, default_value_t = 1.0)]
    idle: f64,
    /// `fsync-baseline` at `--rate` syncs per second instead of back to back.
    #[arg(long)]
    paced: bool,
    /// Bytes per `fdatasync` in `fsync-baseline` (one order's journal frame is about 290).
    #[arg(long, default_value_t = 288)]
    fsync_bytes: usize,
    /// `max` and `rate` against a peer instead of `ordergrid serve`: a script run with `--node`
    /// (e.g. `../shared/peers/node_handler.js`), given `FUNCTIONS_CUSTOMHANDLER_PORT` as the
    /// Functions host would. Peers keep orders in memory, so nothing is checked as stored.
    #[arg(long)]
    peer: Option<PathBuf>,
    #[arg(long, default_value = "node")]
    node: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Startup,
    Max,
    Rate,
    FsyncBaseline,
    Summarize,
}

fn main() -> std::process::ExitCode {
    exit_code(run(&Args::parse()))
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.mode == Mode::Summarize {
        return summarize(args.common.results.as_deref());
    }
    args.common.measure(Some(50.0), || match args.mode {
        Mode::Startup => startup(args),
        Mode::FsyncBaseline => fsync_baseline(args),
        Mode::Max | Mode::Rate => {
            args.common.check_binary()?;
            args.common.runtime()?.block_on(load(args))
        }
        Mode::Summarize => unreachable!(),
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The handler process.

struct Server {
    process: Process,
    addr: SocketAddr,
    /// The run's data folder; removed when dropped.
    dir: tempfile::TempDir,
}

impl Server {
    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// SIGKILL, so nothing the handler could still do after answering is counted as durable.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill().context("failed to kill the handler")?;
        Ok(())
    }
}

/// The handler's environment, as the Functions host would set it; nothing else is inherited.
fn handler_command(args: &Args, dir: &Path, port: u16) -> Command {
    let mut cmd = ordergrid(&args.common.binary, "serve");
    cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("ORDERGRID_LOG", &args.log)
        .env("ORDERGRID_STORE_PATH", dir.join("store"))
        .env("ORDERGRID_OUTBOX_PATH", dir.join("outbox"));
    cmd
}

/// Starts the handler on port 0 with stdout and stderr piped (as the host reads them) and
/// waits until it answers `GET /`.
///
/// The port is read from the kernel's socket table (`/proc/<pid>/net/tcp`), not from the
/// "listening" log line: that line is INFO, so `ORDERGRID_LOG=warn` suppresses it.
fn start_server(args: &Args) -> anyhow::Result<Server> {
    let dir = args.common.run_dir("run-")?;
    let mut command = match &args.peer {
        Some(script) => {
            let mut c = Command::new(&args.node);
            c.arg(script)
                .env("FUNCTIONS_CUSTOMHANDLER_PORT", free_port()?.to_string());
            c
        }
        None => handler_command(args, dir.path(), 0),
    };
    // Its stdout is counted, not kept.
    let process = Process::spawn_with_stdout(&mut command, |_| {})
        .with_context(|| format!("failed to start {:?}", command.get_program()))?;
    let mut server = Server {
        process,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Some(port) = listening_port(server.pid()) {
            break port;
        }
        if let Some(status) = server.process.child.try_wait()? {
            bail!(
                "the handler exited with {status} before listening:\n{}",
                server.process.stderr.text()
            );
        }
        ensure!(
            Instant::now() < deadline,
            "the handler did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    server.addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while !probe(server.addr) {
        ensure!(
            Instant::now() < deadline,
            "the handler did not answer GET / within 10 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(server)
}

/// The TCP port a process is listening on, from its socket inodes and `/proc/<pid>/net/tcp`.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: HashSet<u64> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| {
            let target = fs::read_link(entry.ok()?.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(3) == Some(&"0A");
        let ours = fields
            .get(9)
            .and_then(|i| i.parse::<u64>().ok())
            .is_some_and(|i| inodes.contains(&i));
        if !(listening && ours) {
            return None;
        }
        u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()
    })
}

/// One readiness probe on a fresh connection: `GET /`, true on a 200 status line.
fn probe(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    while got.len() < 12 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

/// A port the kernel considers free right now (the Functions host picks one the same way).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("failed to find a port")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// CPU and disk accounting.

/// Bytes a process has caused to be sent to storage (`write_bytes` of `/proc/<pid>/io`).
fn written_bytes(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// A snapshot of everything a measurement window is the difference of.
struct Counters {
    at: Instant,
    server_cpu: f64,
    generator_cpu: f64,
    machine_busy: f64,
    machine_total: f64,
    disk: Disk,
    server_written: f64,
    /// CPU seconds of every process, by pid: `(command, seconds)`.
    processes: HashMap<u32, (String, f64)>,
    /// CPU seconds of each of the server's threads, by tid: `(thread name, seconds)`.
    server_threads: HashMap<u32, (String, f64)>,
}

impl Counters {
    fn take(server_pid: u32, disk: Option<&Path>) -> Self {
        let (machine_busy, machine_total) = machine_jiffies();
        Self {
            at: Instant::now(),
            server_cpu: cpu_seconds(&server_pid.to_string()),
            generator_cpu: cpu_seconds("self"),
            machine_busy,
            machine_total,
            disk: Disk::read(disk),
            server_written: written_bytes(server_pid),
            processes: all_processes(),
            server_threads: tasks_of(server_pid),
        }
    }

    /// CPU cores used by each kind of server thread (summed by thread name) in the window.
    fn server_thread_cores(&self, last: &Counters, window: f64) -> Value {
        let mut by_name: BTreeMap<&str, f64> = BTreeMap::new();
        for (tid, (name, seconds)) in &last.server_threads {
            let before = self.server_threads.get(tid).map_or(0.0, |(_, s)| *s);
            *by_name.entry(name.as_str()).or_default() += (seconds - before) / window;
        }
        by_name
            .into_iter()
            .map(|(name, cores)| (name.to_owned(), round3(cores)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// The busiest processes other than the server and the generator between two snapshots
    /// (`"command": cores`), and their total in cores. A process that started after the first
    /// snapshot counts from zero; one that ended before the second is missed (the machine-wide
    /// figure still has it).
    fn others(&self, last: &Counters, server_pid: u32, window: f64) -> (Value, f64) {
        let me = std::process::id();
        let mut by_command: HashMap<&str, f64> = HashMap::new();
        for (pid, (command, seconds)) in &last.processes {
            if *pid == server_pid || *pid == me {
                continue;
            }
            let before = self.processes.get(pid).map_or(0.0, |(_, s)| *s);
            *by_command.entry(command.as_str()).or_default() += (seconds - before) / window;
        }
        let total = by_command.values().sum();
        let mut top: Vec<(&str, f64)> = by_command.into_iter().filter(|(_, c)| *c > 0.0).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: serde_json::Map<String, Value> = top
            .into_iter()
            .take(4)
            .map(|(command, cores)| (command.to_owned(), round3(cores)))
            .collect();
        (Value::Object(top), total)
    }
}

/// `(thread name, CPU seconds)` of every thread of a process.
fn tasks_of(pid: u32) -> HashMap<u32, (String, f64)> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let tid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let path = format!("{pid}/task/{tid}");
            let name = fs::read_to_string(format!("/proc/{path}/comm")).ok()?;
            let seconds = cpu_seconds(&path);
            seconds
                .is_finite()
                .then(|| (tid, (name.trim().to_owned(), seconds)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// startup

fn startup(args: &Args) -> anyhow::Result<Value> {
    args.common.check_binary()?;
    let mut ready = Latencies::default();
    let mut rss = Vec::with_capacity(args.runs);
    let mut probes = Vec::with_capacity(args.runs);
    let mut exec_floor = Latencies::default();
    for run in 0..args.runs {
        let dir = args.common.run_dir("run-")?;
        // Like the Functions host: pick the port, pass it in, poll until the handler answers.
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stdout = File::create(dir.path().join("stdout.log"))?;
        let stderr = File::create(dir.path().join("stderr.log"))?;
        let started = Instant::now();
        let mut child = handler_command(args, dir.path(), port)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("failed to start {}", args.common.binary.display()))?;
        let mut attempts = 0u32;
        let answered = loop {
            attempts += 1;
            if probe(addr) {
                break started.elapsed();
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "run {run}: the handler exited with {status}: {}",
                    fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
                );
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("run {run}: no answer to GET / within 10 s");
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        ready.push(answered);
        probes.push(f64::from(attempts));
        // The floor under that: exec, dynamic loading and exit, with no runtime or store.
        let exec_started = Instant::now();
        let status = Command::new(&args.common.binary)
            .arg("--version")
            .env_clear()
            .stdout(Stdio::null())
            .status()
            .context("failed to run the handler with --version")?;
        ensure!(status.success(), "`ordergrid --version` failed: {status}");
        exec_floor.push(exec_started.elapsed());
        std::thread::sleep(Duration::from_secs_f64(args.idle));
        rss.push(status_mib(child.id(), "VmRSS")?);
        child.kill()?;
        child.wait()?;
    }
    let mut summary = ready.summary();
    let rss_median = median(&mut rss);
    let rss_max = rss.iter().copied().fold(f64::NAN, f64::max);
    summary["rss_idle_median_mib"] = round3(rss_median);
    summary["rss_idle_max_mib"] = round3(rss_max);
    summary["probe_attempts_median"] = json!(median(&mut probes));
    let result = json!({
        "mode": "startup",
        "label": args.common.label.clone().unwrap_or_else(|| format!("startup-{}", args.log)),
        "log": args.log,
        "runs": args.runs,
        "ready": summary,
        "version_exec": exec_floor.summary(),
    });
    println!(
        "startup ({} runs, ORDERGRID_LOG={}): ready p50 {} ms, p90 {} ms, max {} ms; idle RSS median {:.2} MiB (max {:.2}); `--version` exec-to-exit p50 {} ms",
        args.runs,
        args.log,
        result["ready"]["p50_ms"],
        result["ready"]["p90_ms"],
        result["ready"]["max_ms"],
        rss_median,
        rss_max,
        result["version_exec"]["p50_ms"]
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// fsync-baseline

fn fsync_baseline(args: &Args) -> anyhow::Result<Value> {
    let path = args
        .common
        .tmp
        .join(format!("fsync-baseline-{}.log", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let frame = vec![0x5au8; args.fsync_bytes];
    let mut latencies = Latencies::default();
    let mut offset = 0u64;
    let disk = disk_stat_path(&args.common.tmp);
    let disk_before = Disk::read(disk.as_deref());
    let started = Instant::now();
    let until = Duration::from_secs_f64(args.duration);
    let interval = args.paced.then(|| Duration::from_secs_f64(1.0 / args.rate));
    // The store's pattern exactly: append at the end of the segment, then fdatasync.
    while started.elapsed() < until {
        if let Some(interval) = interval {
            let at = started + interval * latencies.0.len() as u32;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
        file.write_all_at(&frame, offset)
            .context("failed to write the baseline file")?;
        offset += frame.len() as u64;
        let t = Instant::now();
        file.sync_data().context("fdatasync failed")?;
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let disk_after = Disk::read(disk.as_deref());
    drop(file);
    fs::remove_file(&path).with_context(|| format!("failed to remove {}", path.display()))?;
    let count = latencies.0.len();
    let rate = count as f64 / elapsed;
    let result = json!({
        "mode": "fsync-baseline",
        "label": args.common.label.clone().unwrap_or_else(|| "fsync-baseline".into()),
        "paced_rate": if args.paced { json!(args.rate) } else { Value::Null },
        "bytes_per_sync": args.fsync_bytes,
        "disk_reads_in_window": round3(disk_after.reads - disk_before.reads),
        "disk_flushes_in_window": round3(disk_after.flushes - disk_before.flushes),
        "syncs_per_s": round3(rate),
        "sync": latencies.summary(),
    });
    println!(
        "fsync baseline: {count} x (append {} B + fdatasync) in {elapsed:.1} s = {rate:.0}/s; fdatasync p50 {} ms, p99 {} ms, max {} ms",
        args.fsync_bytes,
        result["sync"]["p50_ms"],
        result["sync"]["p99_ms"],
        result["sync"]["max_ms"]
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// max and rate

/// Envelopes for distinct orders: the host's shape (see `tests/handler/events.rs`), with the order
/// id spliced into a pre-rendered template so building one costs a few small copies.
struct Envelopes {
    parts: Vec<String>,
    prefix: String,
}

impl Envelopes {
    const HOLE: &'static str = "@@ID@@";

    fn new() -> Self {
        let data = json!({
            "orderId": Self::HOLE,
            "customerId": "67890",
            "orderValue": 150.0,
            "customerEmail": "customer@example.com"
        });
        let event = json!({
            "id": format!("evt-{}", Self::HOLE),
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.EventGrid/topics/orders",
            "subject": "orders",
            "eventType": "NewOrder",
            "eventTime": "2026-11-22T10:00:00.0000000Z",
            "data": data,
            "dataVersion": "1.0",
            "metadataVersion": "1"
        });
        let envelope = json!({
            "Data": { "event": event },
            "Metadata": {
                "data": data,
                "sys": {
                    "MethodName": "OrderProcessor",
                    "UtcNow": "2026-11-22T10:00:00.123Z",
                    "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"
                }
            }
        });
        Self {
            parts: envelope
                .to_string()
                .split(Self::HOLE)
                .map(str::to_owned)
                .collect(),
            prefix: format!("{}-", nonce()),
        }
    }

    fn order_id(&self, n: u64) -> String {
        format!("{}{n}", self.prefix)
    }

    fn body(&self, order_id: &str) -> String {
        let mut body =
            String::with_capacity(self.parts.iter().map(String::len).sum::<usize>() + 96);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                body.push_str(order_id);
            }
            body.push_str(part);
        }
        body
    }
}

/// Just enough of the invocation response to check it: one `OrderAccepted` in `outputEvents`.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(rename = "Outputs", borrow)]
    outputs: Outputs<'a>,
}

#[derive(Deserialize)]
struct Outputs<'a> {
    /// The Node.js peer names its output binding `outputEvent`.
    #[serde(rename = "outputEvents", alias = "outputEvent", borrow, default)]
    output_events: Vec<Emitted<'a>>,
}

#[derive(Deserialize)]
struct Emitted<'a> {
    #[serde(rename = "eventType", borrow)]
    event_type: std::borrow::Cow<'a, str>,
}

struct Target {
    client: reqwest::Client,
    url: String,
    envelopes: Envelopes,
    next: AtomicU64,
}

impl Target {
    /// Posts one new order; returns its sequence number (how many orders were sent before it)
    /// and `Err` for anything but a 200 with one `OrderAccepted`.
    async fn post_new_order(&self) -> (u64, Result<(), String>) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n, self.post(n).await)
    }

    async fn post(&self, n: u64) -> Result<(), String> {
        let order_id = self.envelopes.order_id(n);
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", format!("inv-{order_id}"))
            .body(self.envelopes.body(&order_id))
            .send()
            .await
            .map_err(|e| format!("request failed: {e:#}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer failed: {e:#}"))?;
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        let answer: Answer<'_> = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "unreadable answer ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        match answer.outputs.output_events.as_slice() {
            [one] if one.event_type == "OrderAccepted" => Ok(()),
            _ => Err(format!(
                "expected one OrderAccepted in Outputs.outputEvents: {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }
}

/// What every request task records.
#[derive(Default)]
struct Tally {
    ok: u64,
    failures: Failures,
    /// Measured from the scheduled send time (`rate`) or the actual send time (`max`).
    latency: Latencies,
    /// `rate` only: from the actual send time, i.e. the server's service time plus the client's.
    service: Latencies,
    /// Requests whose answer came inside the measured window.
    in_window: u64,
    /// The slowest measured requests: `(latency µs, order sequence number)`.
    slowest: Vec<(u64, u64)>,
}

impl Tally {
    const SLOWEST: usize = 8;

    fn note_slow(&mut self, latency: Duration, seq: u64) {
        self.slowest.push((latency.as_micros() as u64, seq));
        if self.slowest.len() > 4 * Self::SLOWEST {
            self.keep_slowest();
        }
    }

    fn keep_slowest(&mut self) {
        self.slowest.sort_unstable_by(|a, b| b.cmp(a));
        self.slowest.truncate(Self::SLOWEST);
    }
}

async fn load(args: &Args) -> anyhow::Result<Value> {
    let mut server = start_server(args)?;
    let pid = server.pid();
    let rss_ready = status_mib(pid, "VmRSS")?;
    let perf = args.common.syscall_counter(pid);
    let disk = disk_stat_path(&args.common.tmp);
    let target = Arc::new(Target {
        client: http_client(Duration::from_secs(30))?,
        url: format!("http://{}/OrderProcessor", server.addr),
        envelopes: Envelopes::new(),
        next: AtomicU64::new(0),
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(args.warmup);
    let window_end = window_start + Duration::from_secs_f64(args.duration);

    // Snapshots at the edges of the measured window.
    let snapshots = at_window_edges(window_start, window_end, move || {
        Counters::take(pid, disk.as_deref())
    });

    match args.mode {
        Mode::Max => run_closed_loop(args, &target, &tally, window_start, window_end).await,
        _ => run_open_loop(args, &target, &tally, start, window_start, window_end).await?,
    }
    let (first, last) = snapshots.await.context("the snapshot task failed")?;
    let rss_after = status_mib(pid, "VmRSS")?;
    let hwm = status_mib(pid, "VmHWM")?;
    let threads = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });

    // Acknowledged must mean stored: kill the handler outright and reopen its folder.
    server.kill()?;
    let fdatasyncs = perf.and_then(|c| c.finish().0);
    let store_dir = server.store_dir();
    let stored = if args.peer.is_some() {
        None
    } else {
        let store = FolderStore::open(&store_dir, FolderStoreOptions::default())
            .with_context(|| format!("failed to reopen {}", store_dir.display()))?;
        let stored = store
            .list(Collection::Orders, "")
            .await
            .context("failed to list the stored orders")?
            .len() as u64;
        Some(stored)
    };
    let stdout_lines = server.process.stdout_lines();
    let stderr_lines = server.process.stderr.all();

    let mut tally = tally.lock().unwrap();
    let window = last.at.duration_since(first.at).as_secs_f64();
    let server_cores = (last.server_cpu - first.server_cpu) / window;
    let generator_cores = (last.generator_cpu - first.generator_cpu) / window;
    let machine_cores = if last.machine_total > first.machine_total {
        (last.machine_busy - first.machine_busy) / (last.machine_total - first.machine_total)
            * cores()
    } else {
        f64::NAN
    };
    let (others_top, others_total) = first.others(&last, pid, window);
    let throughput = tally.in_window as f64 / window;
    let disk_flushes = last.disk.flushes - first.disk.flushes;
    let mib = |bytes: f64| round3(bytes / (1024.0 * 1024.0));
    let mut result = json!({
        "mode": if args.mode == Mode::Max { "max" } else { "rate" },
        "label": args.common.label(),
        "server": if args.peer.is_some() { "peer" } else { "ordergrid" },
        "log": args.log,
        "concurrency": if args.mode == Mode::Max { json!(args.concurrency) } else { Value::Null },
        "target_rate": if args.mode == Mode::Rate { json!(args.rate) } else { Value::Null },
        "client_threads": args.common.client_threads,
        "window_s": round3(window),
        "throughput_rps": round3(throughput),
        "latency": tally.latency.summary(),
        "ok_total": tally.ok,
        "failed": tally.failures.count,
        "stored_orders": stored,
        "server_cpu_cores": round3(server_cores),
        "server_thread_cores": first.server_thread_cores(&last, window),
        "generator_cpu_cores": round3(generator_cores),
        "machine_busy_cores": round3(machine_cores),
        // Kernel threads (ext4 journal, block I/O), perf, and anything else running.
        "other_cpu_cores": round3(machine_cores - server_cores - generator_cores),
        "other_processes_cores": round3(others_total),
        "other_top": others_top,
        "rss_ready_mib": round3(rss_ready),
        "rss_after_mib": round3(rss_after),
        "rss_peak_mib": round3(hwm),
        "server_threads": threads,
        "fdatasyncs_total": fdatasyncs,
        "orders_per_fdatasync": fdatasyncs.map(|f| round3(tally.ok as f64 / f)),
        "disk_flushes_in_window": round3(disk_flushes),
        "orders_per_disk_flush_in_window": round3(tally.in_window as f64 / disk_flushes),
        "disk_writes_in_window": round3(last.disk.writes - first.disk.writes),
        // The handler reads nothing from disk: reads in the window are someone else's.
        "disk_reads_in_window": round3(last.disk.reads - first.disk.reads),
        "disk_written_mib_in_window": mib((last.disk.sectors_written - first.disk.sectors_written) * 512.0),
        "server_written_mib_in_window": mib(last.server_written - first.server_written),
        "disk_busy_fraction_in_window": round3((last.disk.busy_ms - first.disk.busy_ms) / 1000.0 / window),
        "handler_stdout_lines": stdout_lines,
        "handler_stderr_lines": stderr_lines.len(),
    });
    if args.mode == Mode::Rate {
        result["service_latency"] = tally.service.summary();
    }
    // Where in the run the stalls were: the sequence number says how many orders the store
    // held (about) when each slowest request was sent.
    tally.keep_slowest();
    result["slowest"] = tally
        .slowest
        .iter()
        .map(|(us, seq)| json!({"ms": round3(*us as f64 / 1000.0), "order_seq": seq}))
        .collect();
    println!("{}", serde_json::to_string_pretty(&result)?);
    tally.failures.print();
    for line in stderr_lines.iter().take(5) {
        eprintln!("handler stderr: {line}");
    }
    ensure!(
        tally.failures.count == 0,
        "{} of {} requests failed",
        tally.failures.count,
        tally.failures.count + tally.ok
    );
    if let Some(stored) = stored {
        ensure!(
            stored == tally.ok,
            "{} orders answered 200 but {stored} are in the store after the handler was killed",
            tally.ok
        );
    }
    Ok(result)
}

/// `--concurrency` tasks, each with at most one request in flight, until the window ends.
async fn run_closed_loop(
    args: &Args,
    target: &Arc<Target>,
    tally: &Arc<Mutex<Tally>>,
    window_start: Instant,
    window_end: Instant,
) {
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let target = target.clone();
            let tally = tally.clone();
            tokio::spawn(async move {
                let mut mine = Tally::default();
                while Instant::now() < window_end {
                    let sent = Instant::now();
                    let (seq, outcome) = target.post_new_order().await;
                    let done = Instant::now();
                    match outcome {
                        Ok(()) => {
                            mine.ok += 1;
                            if sent >= window_start && done <= window_end {
                                mine.latency.push(done - sent);
                                mine.note_slow(done - sent, seq);
                            }
                            if done >= window_start && done <= window_end {
                                mine.in_window += 1;
                            }
                        }
                        Err(why) => mine.failures.add(why),
                    }
                }
                let mut all = tally.lock().unwrap();
                all.ok += mine.ok;
                all.in_window += mine.in_window;
                all.latency.0.extend(mine.latency.0);
                all.slowest.extend(mine.slowest);
                all.keep_slowest();
                all.failures.merge(mine.failures);
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Requests at fixed intervals from `start`, each in its own task, however long earlier ones take.
async fn run_open_loop(
    args: &Args,
    target: &Arc<Target>,
    tally: &Arc<Mutex<Tally>>,
    start: Instant,
    window_start: Instant,
    window_end: Instant,
) -> anyhow::Result<()> {
    ensure!(args.rate > 0.0, "--rate must be positive");
    let total = ((window_end - start).as_secs_f64() * args.rate).floor() as u64;
    let mut schedule = Schedule::start(start, total, args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((_, scheduled)) = schedule.next().await {
        let target = target.clone();
        let tally = tally.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            let (seq, outcome) = target.post_new_order().await;
            let done = Instant::now();
            let mut all = tally.lock().unwrap();
            match outcome {
                Ok(()) => {
                    all.ok += 1;
                    if scheduled >= window_start && scheduled < window_end {
                        all.latency.push(done - scheduled);
                        all.note_slow(done - scheduled, seq);
                        all.service.push(done - sent);
                        all.in_window += 1;
                    }
                }
                Err(why) => all.failures.add(why),
            }
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    schedule.finish()
}
