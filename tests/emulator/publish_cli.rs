//! `ordergrid publish`, the CLI on the azure_core pipeline, against the emulator: a key, a SAS
//! token it signs, CloudEvents, events from stdin, and a refusal shown with the service's message.

use std::io::Write;
use std::process::{Command, Stdio};

use ordergrid_testing::receiver::Receiver;
use serde_json::{Value, json};

use crate::harness::{PATIENCE, eventually_async, orders_and_audit};

/// Runs `ordergrid publish <args>` off the runtime, with `stdin` fed to it.
async fn publish(args: Vec<String>, stdin: Option<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ordergrid"))
            .arg("publish")
            .args(&args)
            .env("ORDERGRID_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn order_flags(order_id: &str) -> Vec<String> {
    [
        "--order-id",
        order_id,
        "--customer-id",
        "c-1",
        "--value",
        "150.00",
        "--email",
        "a@example.com",
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn delivered(receiver: &Receiver, path: &str, n: usize) -> Vec<Value> {
    eventually_async(&format!("{n} deliveries at {path}"), PATIENCE, async || {
        let events = receiver.delivered(path);
        (events.len() >= n).then_some(events)
    })
    .await
}

#[tokio::test]
async fn the_cli_publishes_a_new_order_with_the_key_and_with_a_sas_token_it_signs() {
    let (receiver, emulator) = orders_and_audit().await;
    let key = emulator.key("orders").expose_secret().to_owned();
    for (auth, order) in [("key", "K-1"), ("sas", "S-1")] {
        let mut args = vec![
            "--endpoint".into(),
            emulator.endpoint("orders"),
            "--key".into(),
            key.clone(),
            "--auth".into(),
            auth.into(),
        ];
        args.extend(order_flags(order));
        let out = publish(args, None).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{auth}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("accepted 1 event(s)")
                && stdout.contains(&format!("subject=orders/{order}")),
            "{stdout}"
        );
    }
    let events = delivered(&receiver, "/orders", 2).await;
    for event in &events {
        assert_eq!(event["eventType"], "NewOrder");
        assert_eq!(event["dataVersion"], "1.0");
    }
    // The amount went out as a JSON string, exactly as typed (numbers are rounded by the host).
    let raw: Vec<String> = receiver
        .notifications("/orders")
        .iter()
        .map(|r| r.text())
        .collect();
    assert!(
        raw.iter()
            .all(|body| body.contains(r#""orderValue":"150.00""#)),
        "{raw:?}"
    );
}

#[tokio::test]
async fn the_cli_publishes_cloud_events_and_events_from_stdin() {
    let (receiver, emulator) = orders_and_audit().await;
    let key = emulator.key("audit").expose_secret().to_owned();
    let mut args = vec![
        "--endpoint".into(),
        emulator.endpoint("audit"),
        "--key".into(),
        key.clone(),
        "--schema".into(),
        "cloudevents".into(),
    ];
    args.extend(order_flags("CE-1"));
    let out = publish(args, None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdin_events = json!([
        {"specversion": "1.0", "id": "in-1", "source": "/stdin", "type": "Audit.Entry", "data": {"n": 1}},
        {"specversion": "1.0", "id": "in-2", "source": "/stdin", "type": "Audit.Entry", "data": {"n": 2}}
    ]);
    let args = [
        "--endpoint",
        &emulator.endpoint("audit"),
        "--key",
        &key,
        "--schema",
        "cloudevents",
        "--file",
        "-",
    ]
    .map(str::to_owned)
    .to_vec();
    let out = publish(args, Some(stdin_events.to_string())).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted 2 event(s)"));
    let events = delivered(&receiver, "/audit", 3).await;
    let mut types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["Audit.Entry", "Audit.Entry", "NewOrder"]);
    assert!(events.iter().all(|e| e["specversion"] == "1.0"));
}

#[tokio::test]
async fn a_refused_publish_exits_non_zero_with_the_services_message() {
    let (_receiver, emulator) = orders_and_audit().await;
    let wrong = ordergrid::eventgrid::sas::TopicKey::generate()
        .expose_secret()
        .to_owned();
    let mut args = vec![
        "--endpoint".into(),
        emulator.endpoint("orders"),
        "--key".into(),
        wrong,
    ];
    args.extend(order_flags("W-1"));
    let out = publish(args, None).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401 Unauthorized"), "{stderr}");
    assert!(
        stderr.contains("The request authorization key is not authorized"),
        "the service's own message: {stderr}"
    );
    // An invalid event is refused with Azure's validation message.
    let key = emulator.key("orders").expose_secret().to_owned();
    let args = [
        "--endpoint",
        &emulator.endpoint("orders"),
        "--key",
        &key,
        "--file",
        "-",
    ]
    .map(str::to_owned)
    .to_vec();
    let out = publish(
        args,
        Some(json!([{"id": "x", "eventType": "T"}]).to_string()),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("400 BadRequest") && stderr.contains("requires 'subject' property"),
        "{stderr}"
    );
}
