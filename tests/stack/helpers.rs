//! Starting `ordergrid dev` on free ports, an observer webhook, README commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ordergrid::emulator::admin::{AdminClient, SubscriptionView};
use ordergrid_testing::DEV_ON_FREE_PORTS;
use ordergrid_testing::process::{Lines, Process, ordergrid};
use ordergrid_testing::receiver::Receiver;
use ordergrid_testing::subscriptions::{only, webhook};
pub use ordergrid_testing::{
    eventually, eventually_async, free_port, get_json, pid_alive, repo_root, test_python,
};
use serde_json::Value;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ordergrid")
}

/// A running `ordergrid dev`, in `dir` (its `.ordergrid` folder is the stack's data folder).
pub struct Stack {
    pub process: Process,
    pub dir: PathBuf,
    pub topic_endpoint: String,
    pub emulator_url: String,
    pub host_url: String,
    /// The local Web PubSub service's connection string (`WebPubSubConnectionString`).
    pub webpubsub_connection_string: String,
    /// What it printed, stdout and stderr, in order.
    pub output: Lines,
}

impl Stack {
    /// `ordergrid dev` with the README's defaults except free ports and `extra` arguments, in
    /// `dir`, with `env` added to a clean environment.
    pub async fn start(dir: &Path, env: &[(&str, String)], extra: &[&str]) -> Stack {
        let mut process = Process::spawn_merged(
            ordergrid(binary(), "dev")
                .args(["--app", repo_root().to_str().unwrap()])
                .args(DEV_ON_FREE_PORTS)
                .args(extra)
                .current_dir(dir)
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
        )
        .unwrap();
        let output = process.stdout.clone();
        let find = |label: &str| {
            output.find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .map(|rest| rest.trim().split(' ').next().unwrap().to_owned())
            })
        };
        // The summary's lines are read one by one: "ready" can be seen before the lines after it.
        let ready = ordergrid_testing::poll(Duration::from_secs(60), async || {
            let webpubsub = output.find_map(|l| {
                let (_, rest) = l.split_once("WebPubSubConnectionString=")?;
                Some(rest.trim_end().trim_end_matches(')').to_owned())
            });
            if let (Some(topic), Some(host), Some(webpubsub)) =
                (find("Event Grid topic"), find("Functions host"), webpubsub)
            {
                return Some(Ok((topic, host, webpubsub)));
            }
            let exited = process.child.try_wait().unwrap();
            exited.map(|status| Err(format!("ordergrid dev exited with {status}")))
        })
        .await
        .unwrap_or_else(|| Err("the stack did not print its summary".to_owned()));
        let (topic_endpoint, host_url, webpubsub_connection_string) =
            ready.unwrap_or_else(|why| panic!("{why}:\n{}", output.text()));
        let emulator_url = topic_endpoint
            .trim_end_matches("/orders/api/events")
            .to_owned();
        Stack {
            process,
            dir: dir.to_owned(),
            topic_endpoint,
            emulator_url,
            host_url,
            webpubsub_connection_string,
            output,
        }
    }

    /// Ctrl-C, as a terminal would send it; waits for a clean exit.
    pub async fn interrupt(mut self) {
        self.process.signal("INT").unwrap();
        let status = eventually("the stack to stop", Duration::from_secs(30), || {
            self.process.child.try_wait().unwrap()
        })
        .await;
        assert!(
            status.success(),
            "ordergrid dev exited with {status}:\n{}",
            self.output.text()
        );
    }

    /// The host stand-in's view of the handler (`/admin/host/status`).
    pub async fn host_status(&self) -> Value {
        get_json(&format!("{}/admin/host/status", self.host_url)).await
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
    pub async fn orders(&self) -> (HashMap<String, String>, Vec<String>) {
        let text = succeeds(
            tokio::process::Command::new(binary())
                .args(["orders", "list"])
                .current_dir(&self.dir)
                .env_clear(),
        )
        .await;
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

/// Runs `command` to its end without blocking the runtime; its stdout, failing the test (with its
/// stderr) unless it exits with 0.
pub async fn succeeds(command: &mut tokio::process::Command) -> String {
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the shell commands of the README section between `<!-- {marker}:start -->` and
/// `<!-- {marker}:end -->`, one by one, as a user would in `dir`, with `ordergrid` being the
/// built binary and the README's `127.0.0.1:7080` being this stack's emulator. The `ordergrid`
/// commands are told nothing of the stack's ports: they find it as a user's would, through its
/// record in `.ordergrid`.
///
/// A command that changes something (a publish, a redelivery) runs once. One that reads what the
/// stack did is run again until it succeeds, for up to [`READER_PATIENCE`]: the README's reader
/// types it a moment after the publish before it, by when the stack has processed that; a test
/// types at once, and `orders show` of an order not yet recorded fails.
pub async fn run_readme_section(marker: &str, stack: &Stack) -> Vec<String> {
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
    let mut outputs = Vec::new();
    for command in &commands {
        let script = format!(
            "ordergrid() {{ {:?} \"$@\"; }}\n{}",
            binary(),
            command.replace("127.0.0.1:7080", emulator)
        );
        let run = async || {
            tokio::process::Command::new("bash")
                .args(["-c", &script])
                .current_dir(&stack.dir)
                .env_remove("ORDERGRID_EMULATOR_URL")
                .env_remove("ORDERGRID_TOPIC_ENDPOINT")
                .output()
                .await
                .unwrap()
        };
        let changes = [
            "ordergrid publish",
            "curl -X POST",
            "ordergrid emulator redeliver",
        ]
        .iter()
        .any(|c| command.trim_start().starts_with(c));
        let out = if changes {
            run().await
        } else {
            let mut last = None;
            let succeeded = ordergrid_testing::poll(READER_PATIENCE, async || {
                let out = run().await;
                if out.status.success() {
                    return Some(out);
                }
                last = Some(out);
                None
            })
            .await;
            succeeded.or(last).expect("the command ran at least once")
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "README command failed: {command}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(stdout);
    }
    outputs
}

/// How long a README command that reads the stack's state may take to succeed.
const READER_PATIENCE: Duration = Duration::from_secs(30);

/// A webhook that records the events delivered to it (and answers the validation handshake):
/// a [`Receiver`] on `/events`.
pub struct Observer(Receiver);

impl Observer {
    pub async fn start() -> (Observer, String) {
        let receiver = Receiver::start().await;
        let url = receiver.url("/events");
        (Observer(receiver), url)
    }

    pub fn of_type(&self, event_type: &str) -> Vec<Value> {
        self.0
            .delivered("/events")
            .into_iter()
            .filter(|e| e["eventType"] == event_type)
            .collect()
    }
}

/// The repository's subscriptions file plus a webhook subscription for every status event the
/// functions emit.
pub fn subscriptions_with_observer(dir: &Path, observer_url: &str) -> PathBuf {
    subscriptions_with(
        dir,
        only(
            webhook("observer", observer_url),
            &[
                "OrderAccepted",
                "OrderRejected",
                "OrderConfirmationSent",
                "OrderConfirmationFailed",
            ],
        ),
    )
}

/// The repository's subscriptions file plus `subscription` on the `orders` topic, written in
/// `dir`.
pub fn subscriptions_with(dir: &Path, subscription: Value) -> PathBuf {
    let mut file: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("infra/subscriptions.json")).unwrap(),
    )
    .unwrap();
    file["topics"][0]["subscriptions"]
        .as_array_mut()
        .unwrap()
        .push(subscription);
    let path = dir.join("subscriptions.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    path
}

/// A publish body of one `NewOrder` event (Event Grid schema) for `order_id`, as a shop sends it.
pub fn new_order(event_id: &str, order_id: &str, value: &str, email: &str) -> Value {
    serde_json::json!([{
        "id": event_id,
        "eventType": "NewOrder",
        "subject": format!("orders/{order_id}"),
        "eventTime": "2026-11-30T12:00:00Z",
        "dataVersion": "1.0",
        "data": {
            "orderId": order_id,
            "customerId": "c",
            "orderValue": value,
            "customerEmail": email
        }
    }])
}

pub fn eml_count(dir: &Path) -> usize {
    ordergrid_testing::eml_files(dir).len()
}
