//! The live order feed through the whole local stack, seen by real clients (issue 12): Debian's
//! Chromium driven by Playwright opens the tracker and the board (`tests/support/browser_feed.mjs`),
//! and the official `@azure/web-pubsub-client` connects with what the negotiate function hands
//! out (`tests/support/webpubsub_negotiate.mjs`), while orders go through `ordergrid dev`.
//!
//! Each test starts its own stack on free ports and runs one scenario of a Node script, which
//! asserts and prints one `{"ok": …}` line per check; the test fails with the script's output.
//! Screenshots go to `target/test-artifacts/live-feed/`.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::helpers::{Stack, binary, repo_root, test_python};

/// Debian's Chromium (`scripts/test` installs it: `scripts/apt-install chromium chromium`), or
/// `ORDERGRID_CHROMIUM`.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("ORDERGRID_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .expect(
            "chromium is not on PATH: install Debian's with `scripts/apt-install chromium chromium` \
             (scripts/test does), or point ORDERGRID_CHROMIUM at a Chromium",
        )
}

fn artifacts() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts/live-feed");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `node tests/support/<script> <args…> <config>` against `stack`; fails the test with the
/// script's output unless it exits with 0 after printing `checks` ok lines. Returns its stdout.
async fn run_node(stack: &Stack, script: &str, args: &[&str], checks: usize) -> String {
    let _ = test_python(); // installs tests/support/node_modules once, if needed
    let support = repo_root().join("tests/support");
    let browser = script == "browser_feed.mjs";
    let config = json!({
        "host": stack.host_url,
        "topicEndpoint": stack.topic_endpoint,
        "binary": binary(),
        "stackDir": stack.dir,
        "chromium": if browser { Some(chromium()) } else { None },
        "artifacts": artifacts(),
        "webpubsub": stack.webpubsub_connection_string,
    });
    let started = Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(support.join(script))
        .args(args)
        .arg(config.to_string())
        .current_dir(&support)
        .output()
        .await
        .expect("node runs (scripts/test-env installs tests/support/node_modules)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = format!(
        "{script} {args:?} after {:?}\n--- stdout\n{stdout}--- stderr\n{}--- the stack\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr),
        stack.output.text()
    );
    assert!(output.status.success(), "{report}");
    let ok = stdout.lines().filter(|l| l.starts_with(r#"{"ok""#)).count();
    assert_eq!(ok, checks, "{report}");
    println!(
        "{script} {args:?} passed in {:?}:\n{stdout}",
        started.elapsed()
    );
    stdout
}

async fn browser(scenario: &str, env: &[(&str, String)], checks: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), env, &["--time-scale", "0.001"]).await;
    let stdout = run_node(&stack, "browser_feed.mjs", &[scenario], checks).await;
    stack.interrupt().await;
    stdout
}

/// Screenshots the script saved, which must exist and be PNGs.
fn screenshots(stdout: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["screenshot"].as_str().map(PathBuf::from))
        .collect();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            file.display()
        );
        println!("screenshot kept: {}", file.display());
    }
    files
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
