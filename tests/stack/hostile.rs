//! Hostile web pages (issue 14): a page of another origin cannot publish, redeliver, re-run a
//! handshake or post to the host stand-in's webhook, and a DNS-rebound name reads nothing; each
//! refused request reached the server and was refused there (its warning is in the stack's
//! output), and the CLI is unaffected. The Playwright side is `tests/support/browser_hostile.mjs`.

use serde_json::{Value, json};

use crate::helpers::{Stack, binary, succeeds};
use crate::node::{self, chromium};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_origin_changes_nothing_and_a_rebound_name_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]).await;
    let config = json!({
        "emulator": stack.emulator_url,
        "host": stack.host_url,
        "chromium": chromium(),
    });
    node::run(&stack, "browser_hostile.mjs", &[], config, 3).await;

    let refused = |path: &str, code: &str| {
        stack.output.find_map(|line| {
            let line: Value = serde_json::from_str(line).ok()?;
            (line["code"] == code && line["path"] == path).then_some(())
        })
    };
    for path in [
        "/publish",
        "/emulator/dead-letters/redeliver",
        "/emulator/subscriptions/order-processor/validate",
        "/runtime/webhooks/eventgrid",
    ] {
        assert!(
            refused(path, "CrossSiteRequest").is_some(),
            "{path} was refused by the server, not only by the browser:\n{}",
            stack.output.text()
        );
    }
    assert!(refused("/emulator/subscriptions", "HostNotAllowed").is_some());

    // The CLI sends neither Origin nor Sec-Fetch-Site: unaffected.
    let published = succeeds(
        tokio::process::Command::new(binary())
            .args([
                "publish",
                "--order-id",
                "H-1",
                "--customer-id",
                "c",
                "--value",
                "1.00",
                "--email",
                "a@b.example",
            ])
            .current_dir(dir.path()),
    )
    .await;
    assert!(published.contains("accepted 1 event"), "{published}");
    stack.interrupt().await;
}
