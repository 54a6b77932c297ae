//! Where a running stack listens, recorded in its data folder (`<data>/stack.json`) so that every
//! other command (`publish`, `emulator status …`) finds it without being told its ports.
//!
//! Invariants:
//! - the record is written once the stack is ready, atomically (a temporary file renamed over
//!   it), so a reader sees a whole record or none, and it is removed on a clean stop;
//! - it holds addresses and paths only, never a secret: the topic keys, the Web PubSub key and
//!   the managed identity's secret stay in their own files;
//! - a record is trusted only while its process lives and its emulator answers `/health`: a
//!   record left by a killed stack reads as "not running", not as a stack to send to.
//!
//! `ordergrid emulator` (the emulator alone) records itself the same way in its own data folder
//! (`.ordergrid/emulator/stack.json` by default), where the finder looks second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The record's file name inside the data folder.
pub const FILE: &str = "stack.json";

/// How long the finder waits for the recorded emulator's `/health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// `<data>/stack.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackRecord {
    /// The emulator's base URL (`http://127.0.0.1:<port>`): its admin API and dashboard.
    pub emulator_url: String,
    /// Each topic's publish endpoint over HTTP, by topic name.
    pub topics: BTreeMap<String, String>,
    /// The emulator's HTTPS base URL (`https://localhost:<port>`), when HTTPS is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_url: Option<String>,
    /// The Functions host stand-in's base URL (absent for the emulator alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions_host_url: Option<String>,
    /// The local Web PubSub service's base URL (absent for the emulator alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webpubsub_url: Option<String>,
    /// The data folder, absolute.
    pub data_dir: PathBuf,
    /// The emulator's own data folder (topic keys, development CA), absolute.
    pub emulator_data_dir: PathBuf,
    /// The folder store's folder, when records go to the folder store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_dir: Option<PathBuf>,
    /// Where the emulator takes spans for its dashboard (OTLP/HTTP), when it keeps traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sink: Option<String>,
    /// The process serving all of it.
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
}

/// Why no running stack was found, each saying how to point at one.
#[derive(Debug, thiserror::Error)]
pub enum NoStack {
    #[error(
        "no ordergrid stack is running for the data folder {}: it holds no {FILE}; {HINT}",
        data.display()
    )]
    NotStarted { data: PathBuf },
    #[error(
        "no ordergrid stack is running for the data folder {}: the one recorded in {} (pid {pid}) has stopped; {HINT}",
        data.display(), record.display()
    )]
    Stopped {
        data: PathBuf,
        record: PathBuf,
        pid: u32,
    },
    #[error(
        "the ordergrid stack recorded in {} (pid {pid}) does not answer at {url}: {why}; {HINT}",
        record.display()
    )]
    NotAnswering {
        record: PathBuf,
        pid: u32,
        url: String,
        why: String,
    },
    #[error("{} is unreadable: {why}; {HINT}", record.display())]
    Unreadable { record: PathBuf, why: String },
}

const HINT: &str = "start one with `ordergrid dev` (in the app's folder), or point at one: \
                    --data <its data folder>, --endpoint <topic URL> (publish), \
                    --url <emulator URL> (emulator …)";

impl StackRecord {
    /// The emulator's part of a record: its URLs and topics; `emulator_data` is its data folder
    /// (absolute), which is also the record's data folder until a stack names its own.
    pub fn of_emulator(emulator: &crate::emulator::Emulator, emulator_data: &Path) -> Self {
        Self {
            emulator_url: emulator.base_url().to_owned(),
            topics: emulator
                .keys()
                .iter()
                .map(|k| (k.topic.clone(), emulator.topic_endpoint(&k.topic)))
                .collect(),
            https_url: emulator.https_url().map(str::to_owned),
            functions_host_url: None,
            webpubsub_url: None,
            data_dir: emulator_data.to_owned(),
            emulator_data_dir: emulator_data.to_owned(),
            store_dir: None,
            trace_sink: emulator
                .keeps_traces()
                .then(|| emulator.base_url().to_owned()),
            pid: std::process::id(),
            started_at: crate::eventgrid::now_rfc3339(),
        }
    }

    /// Writes `<data>/stack.json` atomically.
    pub fn write(&self, data: &Path) -> std::io::Result<()> {
        let path = data.join(FILE);
        let temporary = data.join(format!(".{FILE}.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, &path)
    }

    /// Removes `<data>/stack.json` if it is this process's (another stack may have replaced it).
    pub fn remove(data: &Path) {
        let path = data.join(FILE);
        let ours = read(&path).is_ok_and(|r| r.pid == std::process::id());
        if ours && let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(error = %e, path = %path.display(), "could not remove the stack record");
        }
    }

    /// The publish endpoint of `topic`, over HTTPS when `https` (for Microsoft Entra ID tokens).
    pub fn topic_endpoint(&self, topic: &str, https: bool) -> Option<String> {
        if https {
            let base = self.https_url.as_deref()?;
            self.topics
                .contains_key(topic)
                .then(|| format!("{base}/{topic}/api/events"))
        } else {
            self.topics.get(topic).cloned()
        }
    }
}

/// The record in the data folder `data`, whether or not its stack still runs (its files stay).
pub fn recorded(data: &Path) -> Option<StackRecord> {
    read(&data.join(FILE)).ok()
}

fn read(path: &Path) -> Result<StackRecord, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The stack running for the data folder `data`: `<data>/stack.json` (what `ordergrid dev`
/// writes), else `<data>/emulator/stack.json` (the emulator alone), once its process is alive
/// and its emulator answers.
pub async fn find(data: &Path) -> Result<StackRecord, NoStack> {
    let path = [data.join(FILE), data.join("emulator").join(FILE)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| NoStack::NotStarted {
            data: data.to_owned(),
        })?;
    let record = read(&path).map_err(|why| NoStack::Unreadable {
        record: path.clone(),
        why,
    })?;
    if !process_alive(record.pid) {
        return Err(NoStack::Stopped {
            data: data.to_owned(),
            record: path,
            pid: record.pid,
        });
    }
    let url = format!("{}/health", record.emulator_url);
    let answer = reqwest::Client::builder()
        .timeout(HEALTH_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())
        .map(|client| client.get(&url).send());
    let why = match answer {
        Ok(request) => match request.await {
            Ok(response) if response.status().is_success() => return Ok(record),
            Ok(response) => format!("it answered {}", response.status()),
            Err(e) => format!("{e}"),
        },
        Err(e) => e,
    };
    Err(NoStack::NotAnswering {
        record: path,
        pid: record.pid,
        url,
        why,
    })
}

/// Whether `pid` runs (and is not a zombie). Where `/proc` is missing (not Linux) it cannot be
/// told, and the emulator's answer alone decides.
fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|state| !state.starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &Path, pid: u32) -> StackRecord {
        StackRecord {
            emulator_url: "http://127.0.0.1:9".into(),
            topics: [(
                "orders".into(),
                "http://127.0.0.1:9/orders/api/events".into(),
            )]
            .into(),
            https_url: Some("https://localhost:10".into()),
            functions_host_url: None,
            webpubsub_url: None,
            data_dir: data.to_owned(),
            emulator_data_dir: data.join("emulator"),
            store_dir: None,
            trace_sink: None,
            pid,
            started_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn without_a_record_the_error_says_how_to_start_or_point_at_a_stack() {
        let dir = tempfile::tempdir().unwrap();
        let err = find(dir.path()).await.unwrap_err();
        assert!(matches!(err, NoStack::NotStarted { .. }), "{err}");
        let text = err.to_string();
        for hint in ["ordergrid dev", "--endpoint", "--url", "--data"] {
            assert!(text.contains(hint), "{text}");
        }
    }

    #[tokio::test]
    async fn a_record_whose_process_is_gone_is_not_a_running_stack() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (or reused by then, which the health
        // check catches).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        record(dir.path(), pid).write(dir.path()).unwrap();
        let err = find(dir.path()).await.unwrap_err();
        assert!(
            matches!(err, NoStack::Stopped { .. } | NoStack::NotAnswering { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_live_process_whose_emulator_does_not_answer_is_not_a_running_stack() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = record(dir.path(), std::process::id());
        r.emulator_url = format!("http://127.0.0.1:{port}");
        r.write(dir.path()).unwrap();
        let err = find(dir.path()).await.unwrap_err();
        assert!(matches!(err, NoStack::NotAnswering { .. }), "{err}");
    }

    #[test]
    fn the_record_is_written_whole_removed_by_its_process_only_and_holds_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let r = record(dir.path(), std::process::id());
        r.write(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE], "no temporary file left");
        assert_eq!(read(&dir.path().join(FILE)).unwrap(), r);
        assert_eq!(
            r.topic_endpoint("orders", true).as_deref(),
            Some("https://localhost:10/orders/api/events")
        );
        assert_eq!(r.topic_endpoint("billing", false), None);
        record(dir.path(), 1).write(dir.path()).unwrap();
        StackRecord::remove(dir.path());
        assert!(dir.path().join(FILE).is_file(), "another process's record");
        r.write(dir.path()).unwrap();
        StackRecord::remove(dir.path());
        assert!(!dir.path().join(FILE).exists());
    }
}
