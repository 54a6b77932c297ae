//! The README's walk-through, run as written against a stack started as the README starts it.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    Observer, Stack, eventually, eventually_async, repo_root, run_readme_section,
    subscriptions_with_observer, test_python,
};

/// CLI, the seed's curl payload and the official Python SDK all publish NewOrders; each valid
/// order is recorded with one OrderAccepted and one email, the invalid one gets an OrderRejected
/// and no email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_processes_orders_from_the_cli_curl_and_the_python_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let (observer, observer_url) = Observer::start().await;
    let subscriptions = subscriptions_with_observer(dir.path(), &observer_url);
    let stack = Stack::start(
        dir.path(),
        &[(
            "ORDERGRID_EMULATOR_SUBSCRIPTIONS",
            subscriptions.display().to_string(),
        )],
        &[],
    )
    .await;

    let outputs = run_readme_section("walkthrough", &stack).await;
    let all = outputs.join("\n");
    assert!(
        all.contains(&format!("accepted 1 event(s) at {}", stack.topic_endpoint)),
        "publish found the stack on its free port: {all}"
    );
    // `orders show` of the rejected order explains it (issue 13).
    let rejected = outputs
        .iter()
        .find(|o| o.starts_with("order 12347"))
        .unwrap_or_else(|| panic!("no `orders show 12347` output in {all}"));
    assert!(
        rejected.contains("was rejected")
            && rejected.contains("orderValue")
            && rejected.contains("customerEmail"),
        "{rejected}"
    );

    // The official Python SDK publishes a fourth order with the topic key.
    let key = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(dir.path().join(".ordergrid/emulator/topic-keys.json")).unwrap(),
    )
    .unwrap()["orders"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let events = dir.path().join("sdk-events.json");
    std::fs::write(
        &events,
        json!([{"id": "sdk-1", "subject": "orders/12348", "eventType": "NewOrder", "eventTime": "2026-11-22T10:00:00Z", "dataVersion": "1.0",
                "data": {"orderId": "12348", "customerId": "c-1", "orderValue": "20.00", "currency": "EUR", "customerEmail": "sdk@example.com"}}])
        .to_string(),
    )
    .unwrap();
    let sdk = std::process::Command::new(test_python())
        .arg(repo_root().join("tests/support/eg_publish.py"))
        .args([
            "--endpoint",
            &stack.topic_endpoint,
            "--auth",
            "key",
            "--key",
            &key,
            "--events",
            events.to_str().unwrap(),
            "--schema",
            "eventgrid",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sdk.stdout).contains("\"ok\": true"),
        "{}",
        String::from_utf8_lossy(&sdk.stdout)
    );

    let valid = ["12345", "12346", "12348"];
    let outbox = eventually("one email per valid order", Duration::from_secs(30), || {
        let outbox = stack.outbox();
        (outbox.len() >= valid.len()).then_some(outbox)
    })
    .await;
    assert_eq!(outbox, valid.map(|id| format!("{id}.eml")));
    let accepted = eventually(
        "three OrderAccepted and one OrderRejected",
        Duration::from_secs(30),
        || {
            let accepted = observer.of_type("OrderAccepted");
            (accepted.len() >= 3 && !observer.of_type("OrderRejected").is_empty())
                .then_some(accepted)
        },
    )
    .await;
    let mut accepted_ids: Vec<String> = accepted
        .iter()
        .map(|e| e["data"]["orderId"].as_str().unwrap().to_owned())
        .collect();
    accepted_ids.sort();
    assert_eq!(accepted_ids, valid);
    let rejected = observer.of_type("OrderRejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["data"]["orderId"], "12347");

    let (orders, rejected_orders) = stack.orders().await;
    for id in valid {
        assert_eq!(
            orders.get(id).map(String::as_str),
            Some("sent"),
            "{orders:?}"
        );
    }
    assert_eq!(orders.len(), 3);
    assert_eq!(rejected_orders, ["12347"]);
    let email = std::fs::read_to_string(dir.path().join(".ordergrid/outbox/12345.eml")).unwrap();
    assert!(
        email.contains("Subject: We received your order 12345") && email.contains("150.00 USD"),
        "{email}"
    );

    // Nothing more arrives: exactly one email and one OrderAccepted per order.
    stack.interrupt().await;
    assert_eq!(observer.of_type("OrderAccepted").len(), 3);
}

/// The failure walk-through: SMTP down, retries on Azure's (scaled) schedule, a dead letter with
/// Azure's content; after a normal restart, redelivery sends exactly one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_walkthrough_dead_letters_and_redelivery_sends_the_email_once() {
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    // The README's failing start: its environment and its time scale.
    let failing = [
        "ORDERGRID_EMAIL_TRANSPORT=smtp",
        "ORDERGRID_SMTP_HOST=127.0.0.1",
        "ORDERGRID_SMTP_PORT=2",
        "ORDERGRID_SMTP_TLS=none",
        "--time-scale 0.0001",
    ];
    for setting in failing {
        assert!(
            readme.contains(setting),
            "the README's failure walk-through no longer says {setting}"
        );
    }
    let env: Vec<(&str, String)> = failing[..4]
        .iter()
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap();
            (k, v.to_owned())
        })
        .collect();
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.0001"]).await;
    run_readme_section("failure-walkthrough", &stack).await;
    let dead_letters = async |args: &[&str]| {
        let out = tokio::process::Command::new(crate::helpers::binary())
            .args(["emulator", "dead-letters"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dead = eventually_async(
        "the email notifier's dead letter",
        Duration::from_secs(60),
        async || {
            let text = dead_letters(&[]).await;
            text.contains("EMAIL-NOTIFIER/").then_some(text)
        },
    )
    .await;
    // DEAD-LETTERED AT, SUBSCRIPTION, REASON, EVENT, ORDER, BLOB (issue 13).
    let row: Vec<&str> = dead
        .lines()
        .find(|l| l.contains("EMAIL-NOTIFIER/"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row.len(), 6, "{dead}");
    assert!(row[0].ends_with('Z') && row[0].contains('T'), "{dead}");
    assert_eq!(
        row[1..3],
        ["EMAIL-NOTIFIER", "TimeToLiveExceeded"],
        "{dead}"
    );
    assert_eq!(row[4], "20001", "{dead}");
    let path = row[5];
    let blob = path.strip_prefix("dead-letters/").unwrap().to_owned();
    let parts: Vec<&str> = blob.split('/').collect();
    assert_eq!(parts.len(), 6, "SUB/yyyy/M/d/H/guid.json: {blob}");
    assert!(
        parts[2..5].iter().all(|p| !p.starts_with('0') || *p == "0"),
        "no zero padding: {blob}"
    );
    let content: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join(".ordergrid/dead-letters/dead-letters")
                .join(&blob),
        )
        .unwrap(),
    )
    .unwrap();
    let event = &content[0];
    assert_eq!(row[3], event["id"].as_str().unwrap(), "{dead}");
    // `--show` prints the dead letter in full.
    let shown: serde_json::Value =
        serde_json::from_str(&dead_letters(&["--show", path]).await).unwrap();
    assert_eq!(shown, content);
    assert_eq!(event["data"]["orderId"], "20001");
    assert_eq!(event["deadLetterReason"], "TimeToLiveExceeded");
    assert!(event["deliveryAttempts"].as_u64().unwrap() > 3, "{event}");
    assert_eq!(event["lastHttpStatusCode"], 500);
    assert_eq!(event["lastDeliveryOutcome"], "GenericError");
    assert!(event["publishTime"].is_string() && event["lastDeliveryAttemptTime"].is_string());
    // The order itself was recorded: only the email failed.
    assert_eq!(
        stack.orders().await.0.get("20001").map(String::as_str),
        Some("not sent")
    );
    stack.interrupt().await;

    let stack = Stack::start(dir.path(), &[], &[]).await;
    run_readme_section("redeliver-walkthrough", &stack).await;
    eventually("the redelivered email", Duration::from_secs(30), || {
        stack
            .outbox()
            .contains(&"20001.eml".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(stack.outbox(), ["20001.eml"]);
    assert_eq!(
        stack.orders().await.0.get("20001").map(String::as_str),
        Some("sent")
    );
}
