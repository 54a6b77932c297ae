//! Starting `ordergrid dev` on free ports, an observer webhook, SMTP sinks, README commands.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ordergrid::emulator::admin::{AdminClient, SubscriptionView};
use serde_json::{Value, json};

pub use crate::shared::{eventually, eventually_async, free_port, repo_root, test_python};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ordergrid")
}

/// A running `ordergrid dev`, in `dir` (its `.ordergrid` folder is the stack's data folder).
pub struct Stack {
    pub child: Child,
    pub dir: PathBuf,
    pub topic_endpoint: String,
    pub emulator_url: String,
    pub host_url: String,
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Stack {
    /// `ordergrid dev` with the README's defaults except free ports and `extra` arguments, in
    /// `dir`, with `env` added to a clean environment.
    pub async fn start(dir: &Path, env: &[(&str, String)], extra: &[&str]) -> Stack {
        let mut child = Command::new(binary())
            .arg("dev")
            .args([
                "--app",
                repo_root().to_str().unwrap(),
                "--emulator-port",
                "0",
                "--host-port",
                "0",
                "--emulator-https-port",
                "0",
            ])
            .args(extra)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ORDERGRID_LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let find = |output: &Arc<Mutex<Vec<String>>>, label: &str| {
            output.lock().unwrap().iter().find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .map(|rest| rest.trim().split(' ').next().unwrap().to_owned())
            })
        };
        let started = Instant::now();
        loop {
            if output
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("local stack is ready"))
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ordergrid dev exited with {status}:\n{}",
                    output.lock().unwrap().join("\n")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the stack did not start:\n{}",
                output.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let topic_endpoint =
            find(&output, "Event Grid topic").expect("the summary names the topic endpoint");
        let host_url =
            find(&output, "Functions host").expect("the summary names the Functions host");
        let emulator_url = topic_endpoint
            .trim_end_matches("/orders/api/events")
            .to_owned();
        Stack {
            child,
            dir: dir.to_owned(),
            topic_endpoint,
            emulator_url,
            host_url,
            output,
        }
    }

    /// Ctrl-C, as a terminal would send it; waits for a clean exit.
    pub async fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = eventually("the stack to stop", Duration::from_secs(30), || {
            self.child.try_wait().unwrap()
        })
        .await;
        assert!(
            status.success(),
            "ordergrid dev exited with {status}:\n{}",
            self.output.lock().unwrap().join("\n")
        );
    }

    /// The host stand-in's view of the handler (`/admin/host/status`).
    pub async fn host_status(&self) -> Value {
        reqwest::get(format!("{}/admin/host/status", self.host_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The emulator's view of one subscription.
    pub async fn subscription(&self, name: &str) -> SubscriptionView {
        let all = AdminClient::new(&self.emulator_url)
            .subscriptions()
            .await
            .unwrap();
        all.into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no subscription {name}"))
    }

    pub fn outbox(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join(".ordergrid/outbox"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `ordergrid orders list`, parsed: order id → confirmation state, plus rejected order ids.
    pub fn orders(&self) -> (HashMap<String, String>, Vec<String>) {
        let out = Command::new(binary())
            .args(["orders", "list"])
            .current_dir(&self.dir)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (accepted, rejected) = text.split_once("REJECTED EVENT").unwrap_or((&text, ""));
        let orders = accepted
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("(none)") && !l.trim().is_empty())
            .map(|l| {
                let cells: Vec<&str> = l
                    .split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect();
                (cells[0].to_owned(), cells[4].to_owned())
            })
            .collect();
        let rejected = rejected
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
            .collect();
        (orders, rejected)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the shell commands of the README section between `<!-- {marker}:start -->` and
/// `<!-- {marker}:end -->`, one by one, as a user would in `dir`, with `ordergrid` being the
/// built binary and the README's `127.0.0.1:7080` being this stack's emulator.
pub fn run_readme_section(marker: &str, stack: &Stack) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {marker}:start -->"))
        .unwrap_or_else(|| panic!("README has no {marker} section"));
    let end = readme[start..]
        .find(&format!("<!-- {marker}:end -->"))
        .unwrap()
        + start;
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if in_block && !line.trim().is_empty() {
            commands.push(line.to_owned());
        }
    }
    assert!(!commands.is_empty(), "the {marker} section has no commands");
    let emulator = stack.emulator_url.trim_start_matches("http://");
    commands
        .iter()
        .map(|command| {
            let script = format!(
                "ordergrid() {{ {:?} \"$@\"; }}\n{}",
                binary(),
                command.replace("127.0.0.1:7080", emulator)
            );
            let out = Command::new("bash")
                .args(["-c", &script])
                .current_dir(&stack.dir)
                .env("ORDERGRID_EMULATOR_URL", &stack.emulator_url)
                .env("ORDERGRID_TOPIC_ENDPOINT", &stack.topic_endpoint)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "README command failed: {command}\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        })
        .collect()
}

/// A webhook that records the events delivered to it (and answers the validation handshake).
#[derive(Clone, Default)]
pub struct Observer {
    pub events: Arc<Mutex<Vec<Value>>>,
}

async fn observe(State(observer): State<Observer>, headers: HeaderMap, body: Bytes) -> Response {
    let events: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
    if headers
        .get("aeg-event-type")
        .is_some_and(|v| v == "SubscriptionValidation")
    {
        let code = events[0]["data"]["validationCode"].clone();
        return axum::Json(json!({"validationResponse": code})).into_response();
    }
    observer.events.lock().unwrap().extend(events);
    axum::http::StatusCode::OK.into_response()
}

impl Observer {
    pub async fn start() -> (Observer, String) {
        let observer = Observer::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/events", post(observe))
            .with_state(observer.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (observer, url)
    }

    pub fn of_type(&self, event_type: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["eventType"] == event_type)
            .cloned()
            .collect()
    }
}

/// The repository's subscriptions file plus a webhook subscription for every status event the
/// functions emit.
pub fn subscriptions_with_observer(dir: &Path, observer_url: &str) -> PathBuf {
    let mut file: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("infra/subscriptions.json")).unwrap(),
    )
    .unwrap();
    file["topics"][0]["subscriptions"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "observer",
            "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": observer_url}},
            "filter": {"includedEventTypes": [
                "OrderAccepted", "OrderRejected", "OrderConfirmationSent", "OrderConfirmationFailed"
            ]}
        }));
    let path = dir.join("subscriptions.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    path
}

/// A real SMTP server (aiosmtpd) on `port` (0: any), storing messages in `maildir`.
pub struct SmtpSink {
    child: Child,
}

impl SmtpSink {
    pub fn start(maildir: &Path, port: u16) -> SmtpSink {
        let mut child = Command::new(test_python())
            .arg(repo_root().join("tests/support/smtp_sink.py"))
            .args([
                "--maildir",
                maildir.to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("READY "),
            "the SMTP sink did not start: {line:?}"
        );
        SmtpSink { child }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn eml_count(dir: &Path) -> usize {
    crate::shared::eml_files(dir).len()
}
