//! The command line around a running stack (issue 13): the other commands find `ordergrid dev`
//! through its record instead of assuming its default ports, say clearly when none runs, say an
//! error once, and `dev` refuses a folder that is not an app and tells the truth in its banner.

use std::path::Path;
use std::time::{Duration, Instant};

use ordergrid_testing::DEV_ON_FREE_PORTS;
use serde_json::Value;

use crate::helpers::{Stack, binary, eventually};

/// A command that cannot find a stack must fail well before a request would time out.
const FAST: Duration = Duration::from_secs(10);

/// `ordergrid <args>` in `dir` with a clean environment (no `ORDERGRID_*`): its exit status,
/// stdout and stderr, and how long it took.
async fn run_in(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String, Duration) {
    let started = Instant::now();
    let out = tokio::process::Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

const PUBLISH: [&str; 9] = [
    "publish",
    "--order-id",
    "31001",
    "--customer-id",
    "c-1",
    "--value",
    "10.00",
    "--email",
    "customer@example.com",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_on_free_ports_is_found_by_publish_and_emulator_status_with_no_url_given() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]).await;
    assert_ne!(
        stack.emulator_url, "http://127.0.0.1:7080",
        "the test needs a stack off the default port"
    );

    let (ok, stdout, stderr, _) = run_in(dir.path(), &PUBLISH, &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("accepted 1 event(s) at {}", stack.topic_endpoint)),
        "{stdout}"
    );
    let (ok, stdout, stderr, _) = run_in(dir.path(), &["emulator", "status"], &[]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!("emulator at {}: healthy", stack.emulator_url)),
        "{stdout}"
    );
    // From another folder, naming the data folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let data = dir.path().join(".ordergrid");
    let data = data.to_str().unwrap();
    let (ok, stdout, stderr, _) = run_in(
        elsewhere.path(),
        &["emulator", "deliveries", "--data", data],
        &[],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("AT"), "{stdout}");

    // The record: where everything listens, and no secret.
    let record_path = dir.path().join(".ordergrid/stack.json");
    let text = std::fs::read_to_string(&record_path).unwrap();
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(record["emulatorUrl"], stack.emulator_url.as_str());
    assert_eq!(record["topics"]["orders"], stack.topic_endpoint.as_str());
    assert_eq!(record["functionsHostUrl"], stack.host_url.as_str());
    assert!(
        record["httpsUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:")
    );
    assert!(
        record["webpubsubUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(record["pid"], stack.process.pid());
    assert!(record["startedAt"].is_string() && record["dataDir"].is_string());
    let topic_key = serde_json::from_slice::<Value>(
        &std::fs::read(dir.path().join(".ordergrid/emulator/topic-keys.json")).unwrap(),
    )
    .unwrap()["orders"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let access_key = stack
        .webpubsub_connection_string
        .split(';')
        .find_map(|part| part.strip_prefix("AccessKey="))
        .unwrap()
        .to_owned();
    for secret in [topic_key.as_str(), access_key.as_str(), "AccessKey"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // A clean stop removes the record; the commands then say no stack runs.
    stack.interrupt().await;
    assert!(!record_path.exists(), "the record outlived its stack");
    let (ok, _, stderr, took) = run_in(dir.path(), &PUBLISH, &[]).await;
    assert!(!ok && took < FAST, "{stderr} after {took:?}");
    assert!(stderr.contains("no ordergrid stack is running"), "{stderr}");
}

#[tokio::test]
async fn with_no_stack_the_commands_fail_fast_saying_how_to_start_or_point_at_one_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = [("ORDERGRID_LOG_FORMAT", "text")];
    for args in [
        &PUBLISH[..],
        &["emulator", "status"],
        &["emulator", "deliveries"],
        &["emulator", "retries"],
        &["emulator", "dead-letters"],
        &["emulator", "redeliver", "--subscription", "email-notifier"],
    ] {
        let (ok, stdout, stderr, took) = run_in(dir.path(), args, &text).await;
        assert!(!ok, "{args:?} succeeded: {stdout}");
        assert!(took < FAST, "{args:?} took {took:?}");
        let message = "no ordergrid stack is running for the data folder .ordergrid";
        assert_eq!(stderr.matches(message).count(), 1, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "said once: {stderr}");
        for hint in ["ordergrid dev", "--data", "--endpoint", "--url"] {
            assert!(stderr.contains(hint), "{args:?}: {stderr}");
        }
    }
    // A record left behind by a stack that was killed is not a running stack.
    std::fs::create_dir_all(dir.path().join(".ordergrid")).unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(
        dir.path().join(".ordergrid/stack.json"),
        serde_json::json!({"emulatorUrl": "http://127.0.0.1:9", "topics": {"orders": "http://127.0.0.1:9/orders/api/events"},
                           "dataDir": "/nowhere", "emulatorDataDir": "/nowhere/emulator", "pid": pid, "startedAt": "2026-01-01T00:00:00Z"})
        .to_string(),
    )
    .unwrap();
    let (ok, _, stderr, took) = run_in(dir.path(), &["emulator", "status"], &text).await;
    assert!(!ok && took < FAST, "{stderr} after {took:?}");
    assert!(
        stderr.contains("has stopped") || stderr.contains("does not answer"),
        "{stderr}"
    );
}

/// Regression (issue 13): the error was logged and printed again.
#[tokio::test]
async fn a_failing_command_says_its_error_once_as_text_or_as_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let message = "--customer-id is required to build a NewOrder";
    let args = [
        "publish",
        "--endpoint",
        "http://127.0.0.1:9/api/events",
        "--order-id",
        "1",
    ];

    let (ok, _, stderr, _) = run_in(dir.path(), &args, &[("ORDERGRID_LOG_FORMAT", "text")]).await;
    assert!(!ok);
    assert_eq!(stderr.matches(message).count(), 1, "{stderr}");
    assert_eq!(stderr, format!("error: {message} (or give --file)\n"));

    let (ok, _, stderr, _) = run_in(dir.path(), &args, &[("ORDERGRID_LOG_FORMAT", "json")]).await;
    assert!(!ok);
    assert_eq!(stderr.matches(message).count(), 1, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line: Value = serde_json::from_str(lines[0]).expect("stderr is JSON lines");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(line["error"].as_str().unwrap().contains(message), "{line}");
}

#[tokio::test]
async fn dev_in_a_folder_that_is_not_an_app_fails_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["dev"];
    args.extend(DEV_ON_FREE_PORTS);
    let (ok, _, stderr, took) =
        run_in(dir.path(), &args, &[("ORDERGRID_LOG_FORMAT", "text")]).await;
    assert!(!ok && took < FAST, "{stderr} after {took:?}");
    let folder = std::fs::canonicalize(dir.path()).unwrap();
    assert!(stderr.contains("is not a function app"), "{stderr}");
    for looked_for in [
        folder.join("host.json"),
        folder.join("*/function.json"),
        folder.join("infra/subscriptions.json"),
    ] {
        assert!(
            stderr.contains(looked_for.to_str().unwrap()),
            "{} not named: {stderr}",
            looked_for.display()
        );
    }
    assert!(stderr.contains("--app"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Regression (issue 13): the banner must say what the settings in effect make true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_tells_the_truth_about_smtp_entra_the_key_less_endpoint_and_the_board() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ORDERGRID_EMAIL_TRANSPORT", "smtp"),
        ("ORDERGRID_SMTP_HOST", "127.0.0.1"),
        ("ORDERGRID_SMTP_PORT", "2"),
        ("ORDERGRID_SMTP_TLS", "none"),
        ("ORDERGRID_EMULATOR_ENTRA", "off"),
        ("ORDERGRID_EMULATOR_SIMPLE_PUBLISH", "false"),
        ("ORDERGRID_OPERATORS", "alice@example.com"),
    ]
    .map(|(k, v)| (k, v.to_owned()));
    let stack = Stack::start(dir.path(), &env, &[]).await;
    let banner = eventually("the whole banner", Duration::from_secs(30), || {
        let text = stack.output.text();
        let start = text.find("ordergrid local stack is ready")?;
        let end = text[start..].find("Ctrl-C stops everything")? + start;
        Some(text[start..end].to_owned())
    })
    .await;
    let line = |label: &str| {
        banner
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in:\n{banner}"))
            .to_owned()
    };
    assert_eq!(
        line("email").split_whitespace().collect::<Vec<_>>(),
        ["email", "smtp", "127.0.0.1:2"]
    );
    assert!(!banner.to_lowercase().contains("outbox"), "{banner}");
    assert!(
        line("over HTTPS").contains("Entra ID tokens refused"),
        "{banner}"
    );
    assert!(!banner.contains("managed identity"), "{banner}");
    assert!(
        !banner.contains("/publish"),
        "the key-less endpoint is off:\n{banner}"
    );
    assert!(
        line("order tracker").contains("only for alice@example.com"),
        "{banner}"
    );
    // The publish hint is the command that works from here.
    let hint = line("ordergrid publish");
    assert_eq!(
        hint.trim(),
        "ordergrid publish --order-id 12345 --customer-id 67890 --value 150.00 --email customer@example.com"
    );
    let mut args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    args[2] = "31002";
    let (ok, stdout, stderr, _) = run_in(dir.path(), &args, &[]).await;
    assert!(
        ok && stdout.contains(&stack.topic_endpoint),
        "{stdout}{stderr}"
    );
    stack.interrupt().await;
}
