//! The local dashboard in real Chromium (issue 13), through `ordergrid dev` as the README runs it:
//! with the SMTP server down, find the failing order by its id and see the handler's real error,
//! watch its email's event dead-lettered; then, restarted with the outbox, redeliver that dead
//! letter from the page and see the email. The Playwright side is
//! `tests/support/browser_dashboard.mjs`; screenshots go to `target/test-artifacts/dashboard/`.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::helpers::{Stack, binary, repo_root, test_python};
use crate::live_feed::chromium;

fn artifacts() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs one phase of the script against `stack`; fails with its output unless it passes
/// `checks` checks. Returns the screenshots it kept.
async fn phase(stack: &Stack, phase: &str, order_id: &str, checks: usize) -> Vec<PathBuf> {
    let _ = test_python(); // installs tests/support/node_modules once, if needed
    let support = repo_root().join("tests/support");
    let config = json!({
        "emulator": stack.emulator_url,
        "topicEndpoint": stack.topic_endpoint,
        "binary": binary(),
        "stackDir": stack.dir,
        "chromium": chromium(),
        "artifacts": artifacts(),
        "orderId": order_id,
    });
    let started = Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(support.join("browser_dashboard.mjs"))
        .arg(phase)
        .arg(config.to_string())
        .current_dir(&support)
        .output()
        .await
        .expect("node runs (scripts/test-env installs tests/support/node_modules)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = format!(
        "browser_dashboard.mjs {phase} after {:?}\n--- stdout\n{stdout}--- stderr\n{}--- the stack\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr),
        stack.output.text()
    );
    assert!(output.status.success(), "{report}");
    let ok = stdout.lines().filter(|l| l.starts_with(r#"{"ok""#)).count();
    assert_eq!(ok, checks, "{report}");
    println!("{phase} passed in {:?}:\n{stdout}", started.elapsed());
    let shots: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["screenshot"].as_str().map(PathBuf::from))
        .collect();
    for shot in &shots {
        let bytes = std::fs::read(shot).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{}", shot.display());
    }
    shots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_finds_a_failing_order_shows_its_cause_and_redelivers_its_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    // The README's failure walk-through: email to an SMTP server that is not there.
    let smtp_down = [
        ("ORDERGRID_EMAIL_TRANSPORT", "smtp".to_owned()),
        ("ORDERGRID_SMTP_HOST", "127.0.0.1".to_owned()),
        ("ORDERGRID_SMTP_PORT", "2".to_owned()),
        ("ORDERGRID_SMTP_TLS", "none".to_owned()),
    ];
    let stack = Stack::start(dir.path(), &smtp_down, &["--time-scale", "0.0001"]).await;
    let shots = phase(&stack, "failing", "30001", 4).await;
    assert_eq!(shots.len(), 3);
    stack.interrupt().await;

    // The fault is gone: started normally, email goes to the outbox.
    let stack = Stack::start(dir.path(), &[], &[]).await;
    let shots = phase(&stack, "redeliver", "30001", 3).await;
    assert_eq!(shots.len(), 1);
    assert_eq!(stack.outbox(), ["30001.eml"]);
    stack.interrupt().await;
}
