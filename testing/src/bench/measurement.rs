//! Measuring on a shared 2-core machine, for the load generators under `bench/`:
//!
//! - a quiet machine before each run ([`wait_for_quiet`]) and a check afterwards that nobody
//!   else used the CPU or the disk during it ([`measure_with_retries`] repeats disturbed runs);
//! - CPU time per process and per thread name (`/proc/<pid>/task/*/stat`), the machine's busy
//!   time (`/proc/stat`), the disk's counters (`/sys/dev/block/*/stat`), RSS (`/proc/<pid>/status`);
//! - latency quantiles (nearest rank), and `summarize`: `median [min – max]` of every numeric
//!   field across the JSON lines of one label.
//!
//! Invariant: every figure is read from the kernel's counters at the edges of a measured window;
//! nothing is estimated.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

/// How to keep a run from measuring someone else's work.
#[derive(Clone, Debug)]
pub struct QuietOptions {
    /// Where the runs write (its disk is watched).
    pub tmp: PathBuf,
    /// Before measuring, wait until the machine's CPU use stays below this many cores.
    pub quiet_below: f64,
    /// Give up waiting after this many seconds, and measure anyway (with a warning).
    pub quiet_timeout: f64,
    /// Repeat a run if other processes used more than this many cores during it.
    pub max_other: f64,
    /// Repeat a run if the disk served more reads than this during it (`None`: reads allowed).
    pub max_disk_reads: Option<f64>,
    /// Runs to try before keeping a disturbed one.
    pub attempts: usize,
}

/// The command-line options every generator shares, for [`QuietOptions`].
#[derive(clap::Args, Clone, Debug)]
pub struct QuietArgs {
    /// Before measuring, wait until the machine's CPU use stays below this many cores.
    #[arg(long, default_value_t = 0.1)]
    pub quiet_below: f64,
    /// Give up waiting for a quiet machine after this many seconds, and measure anyway.
    #[arg(long, default_value_t = 1800.0)]
    pub quiet_timeout: f64,
    /// Repeat a run if other processes used more than this many cores during it.
    #[arg(long, default_value_t = 0.25)]
    pub max_other: f64,
    /// Runs to try before keeping a disturbed one.
    #[arg(long, default_value_t = 3)]
    pub attempts: usize,
}

impl QuietArgs {
    pub fn options(&self, tmp: &Path, max_disk_reads: Option<f64>) -> QuietOptions {
        QuietOptions {
            tmp: tmp.to_owned(),
            quiet_below: self.quiet_below,
            quiet_timeout: self.quiet_timeout,
            max_other: self.max_other,
            max_disk_reads,
            attempts: self.attempts,
        }
    }
}

pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(2.0, |n| n.get() as f64)
}

/// Runs `measure` once the machine is quiet; repeats it (up to `attempts`) when the result's
/// `other_cpu_cores` (or the machine-wide figure minus the generator's own CPU) exceeds
/// `max_other`. Appends the kept result as one JSON line to `results`.
pub fn measure_with_retries(
    quiet: &QuietOptions,
    results: Option<&Path>,
    mut measure: impl FnMut() -> anyhow::Result<Value>,
) -> anyhow::Result<Value> {
    let mut discarded = Vec::new();
    let mut result = loop {
        let (waited, busy_before) = wait_for_quiet(quiet);
        let before = (machine_jiffies(), cpu_seconds("self"), Instant::now());
        let mut result = measure()?;
        let after = (machine_jiffies(), cpu_seconds("self"), Instant::now());
        let busy = (after.0.0 - before.0.0) / (after.0.1 - before.0.1) * cores();
        result["machine_busy_cores_whole_run"] = round3(busy);
        result["quiet_wait_s"] = round3(waited);
        result["busy_before_cores"] = round3(busy_before);
        let other = result["other_cpu_cores"]
            .as_f64()
            .unwrap_or_else(|| {
                busy - (after.1 - before.1) / after.2.duration_since(before.2).as_secs_f64()
            })
            .max(result["other_processes_cores"].as_f64().unwrap_or(0.0));
        let reads = result["disk_reads_in_window"].as_f64().unwrap_or(0.0);
        let disturbed =
            other > quiet.max_other || quiet.max_disk_reads.is_some_and(|limit| reads > limit);
        if !disturbed || discarded.len() + 1 >= quiet.attempts {
            if disturbed {
                eprintln!(
                    "warning: other processes used {other:.2} cores and the disk served {reads} reads \
                     during the last of {} attempts; keeping it",
                    quiet.attempts
                );
            }
            result["other_cpu_cores_checked"] = round3(other);
            break result;
        }
        eprintln!(
            "discarded: other processes used {other:.2} cores (limit {}), the disk served {reads} \
             reads (limit {:?}); measuring again",
            quiet.max_other, quiet.max_disk_reads
        );
        discarded.push(round3(other));
    };
    result["discarded_attempts_other_cores"] = Value::Array(discarded);
    if let Some(path) = results {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        writeln!(file, "{result}")
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(result)
}

/// Flushes everyone's dirty pages (so their write-back does not land in the measurement), then
/// waits until, for two consecutive seconds, the machine used less than `quiet_below` cores and
/// the disk was busy less than 2% of the time. Returns the seconds waited and the busy cores of
/// the last sample.
pub fn wait_for_quiet(quiet: &QuietOptions) -> (f64, f64) {
    let disk = disk_stat_path(&quiet.tmp);
    let started = Instant::now();
    let mut quiet_samples = 0;
    let _ = Command::new("sync").status();
    let mut last = (machine_jiffies(), Disk::read(disk.as_deref()));
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = (machine_jiffies(), Disk::read(disk.as_deref()));
        let busy = (now.0.0 - last.0.0) / (now.0.1 - last.0.1) * cores();
        let disk_busy_ms = now.1.busy_ms - last.1.busy_ms;
        last = now;
        // NaN (no disk statistics) counts as quiet.
        let disk_quiet = disk_busy_ms.is_nan() || disk_busy_ms < 20.0;
        quiet_samples = if busy < quiet.quiet_below && disk_quiet {
            quiet_samples + 1
        } else {
            0
        };
        let waited = started.elapsed().as_secs_f64();
        if quiet_samples >= 2 {
            return (waited, busy);
        }
        if waited > quiet.quiet_timeout {
            eprintln!(
                "warning: the machine is still busy ({busy:.2} cores, disk {disk_busy_ms:.0} ms/s) \
                 after {waited:.0} s; measuring anyway"
            );
            return (waited, busy);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU, memory and disk counters.

/// USER_HZ is 100 on every Linux architecture Rust targets.
const TICKS_PER_SECOND: f64 = 100.0;

/// `(utime + stime)` in seconds from the text of a `/proc/.../stat` file.
fn stat_seconds(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

fn stat_command(stat: &str) -> Option<String> {
    Some(stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_owned())
}

/// CPU seconds (user + system) a process has used, all threads (`"self"` for this process).
pub fn cpu_seconds(pid: &str) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_seconds(&s))
        .unwrap_or(f64::NAN)
}

/// CPU seconds of a process's live threads, summed by thread name (`tokio-runtime-w`,
/// `journal-writer`, …). Threads that already exited are missing (their time is in the
/// process total only).
pub fn thread_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let (Some(name), Some(seconds)) = (stat_command(&stat), stat_seconds(&stat)) {
            *by_name.entry(name).or_insert(0.0) += seconds;
        }
    }
    by_name
}

/// Busy and total jiffies of the whole machine, from `/proc/stat`.
pub fn machine_jiffies() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return (f64::NAN, f64::NAN);
    };
    let values: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …), in MiB.
pub fn status_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

/// The largest `VmRSS` of a process, sampled every 100 ms on a thread until [`RssSampler::stop`].
pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut max: f64 = 0.0;
                while !stop.load(Ordering::Relaxed) {
                    max = max.max(status_mib(pid, "VmRSS").unwrap_or(0.0));
                    std::thread::sleep(Duration::from_millis(100));
                }
                max
            })
        };
        Self { stop, thread }
    }

    /// The largest RSS seen, in MiB.
    pub fn stop(self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(f64::NAN)
    }
}

/// `(command, CPU seconds)` of every process, from `/proc/<pid>/stat`.
pub fn all_processes() -> HashMap<u32, (String, f64)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, (stat_command(&stat)?, stat_seconds(&stat)?)))
        })
        .collect()
}

/// The `/sys/dev/block/<major>:<minor>/stat` of the device holding `path`.
pub fn disk_stat_path(path: &Path) -> Option<PathBuf> {
    let dev = fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let own = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    // A partition's flush requests are counted on the whole disk.
    let parent = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/../stat"));
    [parent, own].into_iter().find(|p| p.is_file())
}

/// Counters of the disk holding the data folders (`Documentation/block/stat.rst`).
#[derive(Clone, Copy, Default)]
pub struct Disk {
    pub reads: f64,
    pub writes: f64,
    pub sectors_written: f64,
    /// Milliseconds the device had I/O in flight.
    pub busy_ms: f64,
    pub flushes: f64,
}

impl Disk {
    pub fn read(stat: Option<&Path>) -> Self {
        let text = stat
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default();
        let fields: Vec<f64> = text
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or(f64::NAN);
        Self {
            reads: field(0),
            writes: field(4),
            sectors_written: field(6),
            busy_ms: field(9),
            flushes: field(15),
        }
    }
}

/// Bytes under `dir`, recursively (apparent file sizes).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Everything a measurement window is the difference of, for a set of named processes.
pub struct Snapshot {
    pub at: Instant,
    /// `(name, pid, CPU seconds, by thread name)`.
    pub watched: Vec<(String, u32, f64, BTreeMap<String, f64>)>,
    pub generator_cpu: f64,
    pub generator_threads: BTreeMap<String, f64>,
    pub machine_busy: f64,
    pub machine_total: f64,
    pub disk: Disk,
    pub processes: HashMap<u32, (String, f64)>,
}

impl Snapshot {
    pub fn take(watched: &[(&str, u32)], disk: Option<&Path>) -> Self {
        let (machine_busy, machine_total) = machine_jiffies();
        Self {
            at: Instant::now(),
            watched: watched
                .iter()
                .map(|(name, pid)| {
                    (
                        (*name).to_owned(),
                        *pid,
                        cpu_seconds(&pid.to_string()),
                        thread_seconds(*pid),
                    )
                })
                .collect(),
            generator_cpu: cpu_seconds("self"),
            generator_threads: thread_seconds(std::process::id()),
            machine_busy,
            machine_total,
            disk: Disk::read(disk),
            processes: all_processes(),
        }
    }

    /// CPU in cores over the window from `self` to `last`: each watched process (total and by
    /// thread name), the generator, the machine, and everything else (`other_cpu_cores`, the
    /// kernel's own threads included, and `other_processes_cores`, by process).
    pub fn cpu_report(&self, last: &Snapshot) -> Value {
        let window = last.at.duration_since(self.at).as_secs_f64();
        let mut report = serde_json::Map::new();
        let mut watched_total = 0.0;
        let mut watched_pids = vec![std::process::id()];
        for ((name, pid, first, first_threads), (_, _, second, second_threads)) in
            self.watched.iter().zip(&last.watched)
        {
            let cores = (second - first) / window;
            watched_total += cores;
            watched_pids.push(*pid);
            report.insert(format!("{name}_cpu_cores"), round3(cores));
            report.insert(
                format!("{name}_threads_cores"),
                threads_report(first_threads, second_threads, window),
            );
        }
        let generator = (last.generator_cpu - self.generator_cpu) / window;
        report.insert("generator_cpu_cores".into(), round3(generator));
        report.insert(
            "generator_threads_cores".into(),
            threads_report(&self.generator_threads, &last.generator_threads, window),
        );
        let machine = if last.machine_total > self.machine_total {
            (last.machine_busy - self.machine_busy) / (last.machine_total - self.machine_total)
                * cores()
        } else {
            f64::NAN
        };
        report.insert("machine_busy_cores".into(), round3(machine));
        report.insert(
            "other_cpu_cores".into(),
            round3(machine - watched_total - generator),
        );
        let mut by_command: HashMap<&str, f64> = HashMap::new();
        for (pid, (command, seconds)) in &last.processes {
            if watched_pids.contains(pid) {
                continue;
            }
            let before = self.processes.get(pid).map_or(0.0, |(_, s)| *s);
            *by_command.entry(command.as_str()).or_default() += (seconds - before) / window;
        }
        let total: f64 = by_command.values().sum();
        let mut top: Vec<(&str, f64)> = by_command.into_iter().filter(|(_, c)| *c > 0.0).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        report.insert("other_processes_cores".into(), round3(total));
        report.insert(
            "other_top".into(),
            Value::Object(
                top.into_iter()
                    .take(4)
                    .map(|(command, cores)| (command.to_owned(), round3(cores)))
                    .collect(),
            ),
        );
        report.insert(
            "disk_flushes_in_window".into(),
            round3(last.disk.flushes - self.disk.flushes),
        );
        report.insert(
            "disk_writes_in_window".into(),
            round3(last.disk.writes - self.disk.writes),
        );
        report.insert(
            "disk_reads_in_window".into(),
            round3(last.disk.reads - self.disk.reads),
        );
        report.insert(
            "disk_written_mib_in_window".into(),
            round3((last.disk.sectors_written - self.disk.sectors_written) * 512.0 / 1048576.0),
        );
        report.insert(
            "disk_busy_fraction_in_window".into(),
            round3((last.disk.busy_ms - self.disk.busy_ms) / 1000.0 / window),
        );
        Value::Object(report)
    }
}

fn threads_report(
    first: &BTreeMap<String, f64>,
    last: &BTreeMap<String, f64>,
    window: f64,
) -> Value {
    Value::Object(
        last.iter()
            .map(|(name, seconds)| {
                let before = first.get(name).copied().unwrap_or(0.0);
                (name.clone(), round3((seconds - before) / window))
            })
            .filter(|(_, cores)| cores.as_f64().is_some_and(|c| c >= 0.005))
            .collect(),
    )
}

/// Counts a process's `fdatasync` and `fsync` calls with `perf stat` until it exits.
pub struct SyscallCounter(Child);

impl SyscallCounter {
    pub fn attach(pid: u32) -> Option<Self> {
        let child = Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync",
                "-p",
            ])
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        // Give perf a moment to open its counters before the load starts.
        std::thread::sleep(Duration::from_millis(300));
        Some(Self(child))
    }

    /// `(fdatasync, fsync)` counts, once the process has exited (perf then prints and exits).
    pub fn finish(self) -> (Option<f64>, Option<f64>) {
        let Self(perf) = self;
        let Ok(out) = perf.wait_with_output() else {
            return (None, None);
        };
        let text = String::from_utf8_lossy(&out.stderr);
        let count = |event: &str| {
            text.lines()
                .find(|l| l.contains(event))
                .and_then(|l| l.split(',').next()?.trim().parse().ok())
        };
        (count("sys_enter_fdatasync"), count("sys_enter_fsync"))
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/// Latencies in microseconds.
#[derive(Default, Clone)]
pub struct Latencies(pub Vec<u64>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros() as u64);
    }

    pub fn push_us(&mut self, us: u64) {
        self.0.push(us);
    }

    /// The `q` quantile (nearest rank) in milliseconds.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1] as f64 / 1000.0
    }

    pub fn summary(&mut self) -> Value {
        json!({
            "p50_ms": round3(self.quantile_ms(0.50)),
            "p90_ms": round3(self.quantile_ms(0.90)),
            "p99_ms": round3(self.quantile_ms(0.99)),
            "p999_ms": round3(self.quantile_ms(0.999)),
            "max_ms": round3(self.quantile_ms(1.0)),
            "samples": self.0.len(),
            "over_2ms": self.0.iter().filter(|us| **us > 2_000).count(),
            "over_5ms": self.0.iter().filter(|us| **us > 5_000).count(),
            "over_10ms": self.0.iter().filter(|us| **us > 10_000).count(),
        })
    }
}

pub fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// For each label: every numeric field as `median [min – max]` over the runs with that label in
/// the `--results` file.
pub fn summarize(results: Option<&Path>) -> anyhow::Result<()> {
    let path = results.context("summarize needs --results")?;
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    let mut order = Vec::new();
    let mut groups: BTreeMap<String, Vec<BTreeMap<String, f64>>> = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let label = value["label"].as_str().unwrap_or("").to_owned();
        let mut flat = BTreeMap::new();
        flatten("", &value, &mut flat);
        if !groups.contains_key(&label) {
            order.push(label.clone());
        }
        groups.entry(label).or_default().push(flat);
    }
    for label in order {
        let runs = &groups[&label];
        println!("\n== {label} ({} runs): median [min – max]", runs.len());
        let mut keys: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let mut values: Vec<f64> = runs.iter().filter_map(|r| r.get(key).copied()).collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mid = median(&mut values);
            println!("  {key:<52} {mid:>12.3}  [{lo:.3} – {hi:.3}]");
        }
    }
    Ok(())
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, f64>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(prefix.to_owned(), x);
            }
        }
        _ => {}
    }
}
