//! The official SDKs against the emulator: Python `azure-eventgrid` (`tests/support/eg_publish.py`)
//! and JavaScript `@azure/eventgrid` (`tests/support/eg_publish.mjs`), each with the key and with
//! a SAS token it generates itself, in both schemas, and the events arrive at the receiver.
//!
//! The scripts print one JSON line, `{"ok": true}` or `{"ok": false, "status": …}`; they never
//! print the key or the token.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{
    PATIENCE, TestEmulator, eventually_async, orders_and_audit, repo_root, run, sorted, test_python,
};

#[derive(Debug, Clone, Copy)]
enum Sdk {
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Schema {
    EventGrid,
    CloudEvents,
}

fn events_for(schema: Schema, prefix: &str) -> Value {
    let ids = [format!("{prefix}-a"), format!("{prefix}-b")];
    match schema {
        Schema::EventGrid => json!(
            ids.iter()
                .map(|id| json!({
                    "id": id, "subject": format!("orders/{id}"), "eventType": "NewOrder",
                    "eventTime": "2026-05-01T12:00:00Z", "dataVersion": "1.0",
                    "data": {"orderId": id, "total": 10.25}
                }))
                .collect::<Vec<_>>()
        ),
        Schema::CloudEvents => json!(
            ids.iter()
                .map(|id| json!({
                    "specversion": "1.0", "id": id, "source": "/sdk", "type": "Audit",
                    "time": "2026-05-01T12:00:00Z", "data": {"orderId": id}
                }))
                .collect::<Vec<_>>()
        ),
    }
}

/// One run of an SDK script: one `send`, so one publish request.
struct Run {
    sdk: Sdk,
    topic: &'static str,
    schema: Schema,
    auth: &'static str,
    sas_expiry_seconds: i64,
    events: Value,
}

impl Run {
    fn ids(&self) -> Vec<String> {
        self.events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Runs the script against `emulator`; returns its JSON verdict.
    async fn publish(&self, emulator: &TestEmulator, dir: &Path) -> Value {
        let Run {
            sdk,
            topic,
            schema,
            auth,
            sas_expiry_seconds,
            events,
        } = self;
        let events_file = dir.join(format!("{sdk:?}-{topic}-{auth}-{sas_expiry_seconds}.json"));
        std::fs::write(&events_file, events.to_string()).unwrap();
        let support = repo_root().join("tests/support");
        let mut command = match sdk {
            Sdk::Python => {
                let mut c = Command::new(test_python());
                c.arg(support.join("eg_publish.py"));
                c
            }
            Sdk::Js => {
                let mut c = Command::new("node");
                c.arg(support.join("eg_publish.mjs")).current_dir(&support);
                c
            }
        };
        command
            .arg("--endpoint")
            .arg(emulator.endpoint(topic))
            .args(["--auth", auth, "--key", emulator.key(topic).expose_secret()])
            .arg("--events")
            .arg(&events_file)
            .arg("--schema")
            .arg(match schema {
                Schema::EventGrid => "eventgrid",
                Schema::CloudEvents => "cloudevents",
            })
            .arg(format!("--sas-expiry-seconds={sas_expiry_seconds}"));
        let out = run(command).await;
        // The command line holds the key: report the status and stderr, never the command.
        assert!(
            out.status.success(),
            "the {sdk:?} script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("the {sdk:?} script printed no verdict ({e}): {stdout}"))
    }
}

async fn publishes_with_key_and_own_sas_in_both_schemas(sdk: Sdk) {
    let _ = test_python(); // builds the venv and node_modules once, if needed
    let (receiver, emulator) = orders_and_audit().await;
    let dir = tempfile::tempdir().unwrap();
    let mut runs = vec![];
    for (topic, schema) in [
        ("orders", Schema::EventGrid),
        ("audit", Schema::CloudEvents),
    ] {
        for auth in ["key", "sas"] {
            let prefix = format!("{sdk:?}-{auth}-{topic}").to_lowercase();
            runs.push(Run {
                sdk,
                topic,
                schema,
                auth,
                sas_expiry_seconds: 3600,
                events: events_for(schema, &prefix),
            });
        }
    }
    let verdicts =
        futures::future::join_all(runs.iter().map(|r| r.publish(&emulator, dir.path()))).await;
    for (run, verdict) in runs.iter().zip(&verdicts) {
        assert_eq!(
            verdict["ok"], true,
            "{sdk:?} {} {} to {}: {verdict}",
            run.auth, run.topic, run.topic
        );
    }
    let expected = |schema: Schema| {
        sorted(
            runs.iter()
                .filter(|r| r.schema == schema)
                .flat_map(Run::ids),
        )
    };
    let (expected_orders, expected_audit) =
        (expected(Schema::EventGrid), expected(Schema::CloudEvents));
    eventually_async(&format!("the {sdk:?} SDK's events"), PATIENCE, async || {
        (receiver.delivered_ids("/orders") == expected_orders
            && receiver.delivered_ids("/audit") == expected_audit)
            .then_some(())
    })
    .await;
    let delivered = receiver.delivered("/orders");
    assert!(
        delivered
            .iter()
            .all(|e| e["data"]["total"] == 10.25 && e["dataVersion"] == "1.0"),
        "{delivered:?}"
    );

    // A token the SDK minted already expired is refused with 401.
    let expired = Run {
        sdk,
        topic: "orders",
        schema: Schema::EventGrid,
        auth: "sas",
        sas_expiry_seconds: -60,
        events: events_for(Schema::EventGrid, "expired"),
    }
    .publish(&emulator, dir.path())
    .await;
    assert_eq!(expired["ok"], false, "{expired}");
    assert_eq!(expired["status"], 401, "{expired}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_publishes_with_its_key_and_sas_credentials_in_both_schemas() {
    publishes_with_key_and_own_sas_in_both_schemas(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdk_publishes_with_its_key_and_sas_credentials_in_both_schemas() {
    publishes_with_key_and_own_sas_in_both_schemas(Sdk::Js).await;
}
