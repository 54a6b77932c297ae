//! What every test binary needs: the repository's path, the test environment's Python (and the
//! `node_modules` it installs alongside), polling with a deadline, free ports, outbox files.
//! Included by each test crate with `#[path = ".../shared/mod.rs"] mod shared;`.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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

const POLL: Duration = Duration::from_millis(5);

/// Polls `check` until it returns `Some`; fails the test after `deadline`, naming `what`.
pub async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a check that has to await something.
pub async fn eventually_async<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
