//! What ordergrid's test binaries (`tests/`) and load generators (`bench/`) share, written once:
//!
//! - [`eventually`] / [`eventually_async`]: polling with a deadline (tests never sleep to wait);
//! - [`process`]: a child process with its output gathered and its logged port read, killed
//!   when dropped (`ordergrid serve`, `ordergrid emulator`, `ordergrid dev`, Azurite, …);
//! - [`smtp::SmtpSink`], a real SMTP server (aiosmtpd), [`otlp::OtlpReceiver`], a real OTLP
//!   traces receiver (the OpenTelemetry project's protobuf messages), and [`azurite::Azurite`],
//!   the real Blob Storage emulator;
//! - [`receiver::Receiver`], a webhook whose answers a test switches at run time;
//! - [`subscriptions`]: builders of the emulator's subscriptions file;
//! - [`bench`]: the load generators' measurements and plumbing;
//! - the repository's paths, the test environment's Python, free ports, outbox files.
//!
//! It does not depend on `ordergrid`: what needs the binary takes its path
//! (`env!("CARGO_BIN_EXE_ordergrid")` in a test, `--binary` in a generator).

pub mod azurite;
pub mod bench;
pub mod otlp;
pub mod process;
pub mod receiver;
pub mod smtp;
pub mod subscriptions;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository's root (the folder of ordergrid's `Cargo.toml`).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testing/ is a folder of the repository")
}

/// The Python with the test requirements (aiosmtpd, azure-eventgrid, …): `ORDERGRID_TEST_PYTHON`
/// (set by `scripts/test`), or the venv `scripts/test-env` builds, run here if needed so a plain
/// `cargo test` works too. `scripts/test-env` also installs `tests/support/node_modules`.
pub fn test_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("ORDERGRID_TEST_PYTHON") {
                return PathBuf::from(p);
            }
            let out = Command::new(repo_root().join("scripts/test-env"))
                .current_dir(repo_root())
                .stderr(Stdio::inherit())
                .output()
                .expect("failed to run scripts/test-env");
            assert!(
                out.status.success(),
                "scripts/test-env failed; see its output above"
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            PathBuf::from(
                stdout
                    .lines()
                    .last()
                    .expect("scripts/test-env printed nothing")
                    .trim(),
            )
        })
        .clone()
}

/// `ordergrid dev`'s options for ports the kernel picks (the stack prints where it listens).
pub const DEV_ON_FREE_PORTS: [&str; 8] = [
    "--webpubsub-port",
    "0",
    "--emulator-port",
    "0",
    "--host-port",
    "0",
    "--emulator-https-port",
    "0",
];

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(5);

/// Polls `check` until it returns `Some` or `within` has passed (then `None`): called at once,
/// then every few milliseconds, and once more at the deadline.
pub async fn poll<T>(within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it returns `Some`; fails the test after `deadline`, naming `what`.
/// A check that has to await something (an HTTP call, a child process) goes to
/// [`eventually_async`]: nothing blocks inside `check`.
pub async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    eventually_async(what, deadline, async || check()).await
}

/// [`eventually`] for a check that awaits.
pub async fn eventually_async<T>(
    what: &str,
    deadline: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    poll(deadline, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// `GET url`, insisting on an answer with a JSON body.
pub async fn get_json(url: &str) -> serde_json::Value {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = response.bytes().await.unwrap();
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e})"))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a process runs: it exists and is not a zombie waiting to be reaped.
pub fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|s| !s.starts_with('Z'))
    })
}

/// The `.eml` files in an outbox folder, sorted.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Starts `tests/support/<script>` under the test environment's Python with `args`; it prints
/// `READY <port>` once it listens, and stops when its stdin closes (so when the test process
/// dies) or when the [`process::Process`] is dropped.
pub fn support_script(script: &str, args: &[String]) -> (process::Process, u16) {
    let (ready, first_line) = std::sync::mpsc::channel();
    let process = process::Process::spawn_with_stdout(
        Command::new(test_python())
            .arg(repo_root().join("tests/support").join(script))
            .args(args)
            .stdin(Stdio::piped()),
        move |line| {
            let _ = ready.send(String::from_utf8_lossy(line).into_owned());
        },
    )
    .unwrap_or_else(|e| panic!("failed to start {script}: {e}"));
    let line = first_line
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_default();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{script} did not start: {line:?}\n{}",
                process.stderr.text()
            )
        });
    (process, port)
}
