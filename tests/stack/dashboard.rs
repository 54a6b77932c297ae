//! The local dashboard in real Chromium (issue 13), through `ordergrid dev` as the README runs it:
//! with the SMTP server down, find the failing order by its id and see the handler's real error,
//! see the order's trace as a waterfall with the failed sends, watch its email's event
//! dead-lettered; then, restarted with the outbox, redeliver that dead letter from the page and see
//! the email, and its send in the trace. The Playwright side is
//! `tests/support/browser_dashboard.mjs`; screenshots go to `target/test-artifacts/dashboard/`.

use std::path::PathBuf;

use serde_json::json;

use crate::helpers::{Stack, binary};
use crate::node::{self, artifacts, chromium, screenshots};

/// Runs one phase of the script against `stack`; returns the screenshots it kept.
async fn phase(stack: &Stack, phase: &str, order_id: &str, checks: usize) -> Vec<PathBuf> {
    let config = json!({
        "emulator": stack.emulator_url,
        "topicEndpoint": stack.topic_endpoint,
        "binary": binary(),
        "stackDir": stack.dir,
        "chromium": chromium(),
        "artifacts": artifacts("dashboard"),
        "orderId": order_id,
    });
    let stdout = node::run(stack, "browser_dashboard.mjs", &[phase], config, checks).await;
    screenshots(&stdout)
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
    let shots = phase(&stack, "failing", "30001", 5).await;
    assert_eq!(shots.len(), 4);
    stack.interrupt().await;

    // The fault is gone: started normally, email goes to the outbox.
    let stack = Stack::start(dir.path(), &[], &[]).await;
    let shots = phase(&stack, "redeliver", "30001", 4).await;
    assert_eq!(shots.len(), 1);
    assert_eq!(stack.outbox(), ["30001.eml"]);
    stack.interrupt().await;
}
