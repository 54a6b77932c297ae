//! A real Azurite (the Blob Storage emulator, npm package `azurite` installed by
//! `scripts/test-env`) for a test: listening on 127.0.0.1 on a port it picks, its data in a
//! temporary folder, stopped when dropped.
//!
//! Azurite runs under a small `sh` wrapper that stops it (SIGTERM, so it saves its metadata,
//! which it otherwise only writes every 5 s) when the wrapper's stdin closes: when the test drops
//! the handle, stops it, or dies, so no Azurite outlives its test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::Process;
use crate::{eventually, repo_root, test_python};

/// Azurite's well-known account (public, documented; `ordergrid::blob::DEVSTORE_ACCOUNT`).
pub const DEVSTORE_ACCOUNT: &str = "devstoreaccount1";

/// Azurite's well-known key for `devstoreaccount1` (public, documented).
pub const DEVSTORE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Stops Azurite when stdin closes (SIGTERM; SIGKILL if it has not exited 10 s later).
const WRAPPER: &str = r#"
azurite="$1"; shift
"$azurite" "$@" </dev/null &
pid=$!
read -r _
kill -TERM "$pid" 2>/dev/null
( sleep 10; kill -KILL "$pid" 2>/dev/null ) &
killer=$!
wait "$pid"
kill "$killer" 2>/dev/null
"#;

pub struct Azurite {
    process: Option<Process>,
    port: u16,
    location: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Azurite {
    /// A fresh Azurite on a free port with an empty temporary folder.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut azurite = Self::start_at(dir.path(), 0).await;
        azurite._dir = Some(dir);
        azurite
    }

    /// Azurite on `port` (0: any free one) with its data in `location`.
    pub async fn start_at(location: &Path, port: u16) -> Self {
        test_python(); // runs scripts/test-env once, which installs node_modules
        let bin = repo_root().join("tests/support/node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test-env",
            bin.display()
        );
        let process = Process::spawn_merged(
            Command::new("sh")
                .arg("-c")
                .arg(WRAPPER)
                .arg("sh")
                .arg(&bin)
                .args(["--blobHost", "127.0.0.1", "--blobPort"])
                .arg(port.to_string())
                .arg("--location")
                .arg(location)
                .args(["--silent", "--disableTelemetry"])
                .stdin(Stdio::piped()),
        )
        .expect("failed to start sh for Azurite");
        let output = process.stdout.clone();
        let listening = eventually("Azurite to listen", Duration::from_secs(60), || {
            if let Some(line) = output.find_map(|l| {
                (l.contains("Exit due to") || l.contains("EADDRINUSE")).then(|| l.clone())
            }) {
                return Some(Err(line));
            }
            output.find_map(|line| {
                let (_, url) = line.split_once("successfully listens on http://127.0.0.1:")?;
                url.trim().parse::<u16>().ok().map(Ok)
            })
        })
        .await;
        let port = listening.unwrap_or_else(|line| {
            panic!(
                "Azurite did not start on port {port}: {line}\n{}",
                output.text()
            )
        });
        Self {
            process: Some(process),
            port,
            location: location.to_owned(),
            _dir: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{DEVSTORE_ACCOUNT}", self.port)
    }

    /// An account-key connection string for this Azurite.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};BlobEndpoint={}",
            self.blob_endpoint()
        )
    }

    /// What Azurite printed.
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.stdout.text())
            .unwrap_or_default()
    }

    /// Stops Azurite as `kill <pid>` would (SIGTERM) and waits until it has exited.
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            tokio::task::spawn_blocking(move || stop(process))
                .await
                .unwrap();
        }
    }

    /// Starts Azurite again on the same port and folder.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut restarted = Self::start_at(&self.location, self.port).await;
        self.process = restarted.process.take();
    }
}

/// Closes the wrapper's stdin, which stops Azurite with SIGTERM, and waits for it.
fn stop(mut process: Process) {
    drop(process.child.stdin.take());
    let _ = process.child.wait();
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            stop(process);
        }
    }
}
