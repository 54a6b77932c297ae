//! The live order feed through the whole local stack, seen by real clients (issue 12): Debian's
//! Chromium driven by Playwright opens the tracker and the board (`tests/support/browser_feed.mjs`),
//! and the official `@azure/web-pubsub-client` connects with what the negotiate function hands
//! out (`tests/support/webpubsub_negotiate.mjs`), while orders go through `ordergrid dev`.
//!
//! Each test starts its own stack on free ports and runs one scenario of a Node script, which
//! asserts and prints one `{"ok": …}` line per check; the test fails with the script's output.
//! Screenshots go to `target/test-artifacts/live-feed/`.

use serde_json::json;

use crate::helpers::{Stack, binary};
use crate::node::{self, artifacts, chromium, screenshots};

/// `node tests/support/<script>` against `stack`, with where everything is.
async fn run_node(stack: &Stack, script: &str, args: &[&str], checks: usize) -> String {
    let browser = script == "browser_feed.mjs";
    let config = json!({
        "host": stack.host_url,
        "topicEndpoint": stack.topic_endpoint,
        "binary": binary(),
        "stackDir": stack.dir,
        "chromium": if browser { Some(chromium()) } else { None },
        "artifacts": artifacts("live-feed"),
        "webpubsub": stack.webpubsub_connection_string,
    });
    node::run(stack, script, args, config, checks).await
}

async fn browser(scenario: &str, env: &[(&str, String)], checks: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), env, &["--time-scale", "0.001"]).await;
    let stdout = run_node(&stack, "browser_feed.mjs", &[scenario], checks).await;
    stack.interrupt().await;
    stdout
}

/// Opened before the order exists, the tracker shows accepted, then confirmation sent, each once
/// in its timeline; a tracker for another order receives none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_opened_before_its_order_follows_it_live_and_another_order_sees_none_of_it() {
    let stdout = browser("tracker", &[], 3).await;
    assert_eq!(screenshots(&stdout).len(), 1, "{stdout}");
}

/// The operators' board: several orders updating in place, one rejected with its reasons, the
/// count per status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_updates_each_order_in_place_with_counts_and_rejection_reasons() {
    let stdout = browser("board", &[], 3).await;
    assert_eq!(screenshots(&stdout).len(), 1, "{stdout}");
}

/// Exactly once as the user sees it: every status event delivered twice, one timeline entry each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_status_events_show_once_in_the_tracker() {
    browser("duplicate", &[], 1).await;
}

/// Cut off briefly (within the service's 30 s recovery window), the page recovers the same
/// connection and the service replays what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_cut_off_briefly_gets_what_it_missed_replayed() {
    browser("brief-cut", &[], 3).await;
}

/// Cut off longer than the service keeps a dropped connection (300 ms here), the page says it
/// lost the connection, reconnects and refetches the status it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_cut_off_past_the_recovery_window_reconnects_and_shows_what_it_missed() {
    let env = [("ORDERGRID_WEBPUBSUB_RECOVERY_WINDOW", "300ms".to_owned())];
    browser("long-cut", &env, 3).await;
}

/// The official `@azure/web-pubsub-client` with negotiate's URLs: a customer's token gets its
/// order's updates and nothing else and is refused (Forbidden) joining another group or sending;
/// the board's (`ORDERGRID_OPERATORS=*` locally) gets every order's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_with_negotiated_tokens_gets_its_order_only_and_may_not_join_or_send() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &["--time-scale", "0.001"]).await;
    run_node(&stack, "webpubsub_negotiate.mjs", &[], 4).await;
    stack.interrupt().await;
}
