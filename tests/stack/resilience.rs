//! Failures the stack recovers from: an email transport that is down and comes back, a handler
//! that crashes mid-stream, a stop and restart with deliveries pending.

use std::time::Duration;

use futures::future::join_all;
use ordergrid_testing::smtp::SmtpSink;

use crate::helpers::{
    Stack, eml_count, eventually, eventually_async, free_port, pid_alive, succeeds,
};

async fn publish(stack: &Stack, order_id: &str) {
    succeeds(
        tokio::process::Command::new(crate::helpers::binary())
            .args([
                "publish",
                "--endpoint",
                &stack.topic_endpoint,
                "--order-id",
                order_id,
                "--customer-id",
                "c",
            ])
            .args(["--value", "10.00", "--email", "buyer@example.com"])
            .current_dir(&stack.dir),
    )
    .await;
}

/// EmailNotifier fails while the SMTP server is down; Event Grid retries through the host
/// stand-in; once the server is up the email is sent exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_then_recovered_smtp_server_gets_exactly_one_email() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [
        ("ORDERGRID_EMAIL_TRANSPORT", "smtp".to_owned()),
        ("ORDERGRID_SMTP_HOST", "127.0.0.1".to_owned()),
        ("ORDERGRID_SMTP_PORT", port.to_string()),
        ("ORDERGRID_SMTP_TLS", "none".to_owned()),
        ("ORDERGRID_SMTP_TIMEOUT", "2s".to_owned()),
    ];
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.001"]).await;
    publish(&stack, "R-1").await;
    // Wait until Event Grid has retried the email delivery a few times.
    eventually_async("three retries", Duration::from_secs(30), async || {
        let email = stack.subscription("email-notifier").await;
        (email.counters.retried >= 3).then_some(())
    })
    .await;
    let maildir = dir.path().join("received");
    let _sink = SmtpSink::start(&maildir, port);
    eventually(
        "the email once the server is up",
        Duration::from_secs(60),
        || (eml_count(&maildir) >= 1).then_some(()),
    )
    .await;
    // Let any stray duplicate show up before counting: the delivery is settled once the
    // subscription has nothing pending.
    eventually_async(
        "the delivery to settle",
        Duration::from_secs(30),
        async || {
            let email = stack.subscription("email-notifier").await;
            (email.pending == 0 && email.counters.delivered == 1).then_some(())
        },
    )
    .await;
    assert_eq!(eml_count(&maildir), 1);
    assert_eq!(
        stack.orders().await.0.get("R-1").map(String::as_str),
        Some("sent")
    );
}

/// The handler is killed (SIGKILL) while orders stream in; the host stand-in restarts it, Event
/// Grid retries what failed meanwhile, and every order is recorded with one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_handler_is_restarted_and_no_order_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // A handler killed mid-send leaves that email claimed until the claim times out (2 min by
    // default); a short claim lets the retry take over within the test.
    let env = [("ORDERGRID_EMAIL_CLAIM_TIMEOUT", "1s".to_owned())];
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.001"]).await;
    let first_pid = stack.host_status().await["handler"]["pid"]
        .as_u64()
        .unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("K-{i:02}")).collect();
    let (early, late) = ids.split_at(20);
    join_all(early.iter().map(|id| publish(&stack, id))).await;
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &first_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    join_all(late.iter().map(|id| publish(&stack, id))).await;
    let status = eventually_async("a restarted handler", Duration::from_secs(30), async || {
        let status = stack.host_status().await;
        (status["handler"]["state"] == "ready"
            && status["handler"]["pid"].as_u64() != Some(first_pid))
        .then_some(status)
    })
    .await;
    assert!(status["handlerRestarts"].as_u64().unwrap() >= 1, "{status}");
    let (orders, rejected) = eventually_async(
        "every order recorded with its email sent",
        Duration::from_secs(60),
        async || {
            let (orders, rejected) = stack.orders().await;
            (orders.len() == ids.len() && orders.values().all(|state| state == "sent"))
                .then_some((orders, rejected))
        },
    )
    .await;
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(orders.len(), ids.len());
    // One file per order (a resend after a crash mid-send rewrites the same file).
    assert_eq!(
        stack.outbox(),
        ids.iter().map(|id| format!("{id}.eml")).collect::<Vec<_>>()
    );
}

/// Ctrl-C stops the stack and its handler; the next start resumes the pending delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_pending_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ORDERGRID_EMAIL_TRANSPORT", "smtp".to_owned()),
        ("ORDERGRID_SMTP_HOST", "127.0.0.1".to_owned()),
        ("ORDERGRID_SMTP_PORT", free_port().to_string()),
        ("ORDERGRID_SMTP_TLS", "none".to_owned()),
    ];
    // Event Grid's clock 10 times faster: the failed email's first retry is 1 s away.
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.1"]).await;
    let handler_pid = stack.host_status().await["handler"]["pid"]
        .as_u64()
        .unwrap();
    publish(&stack, "P-1").await;
    eventually_async(
        "the first failed attempt",
        Duration::from_secs(30),
        async || (stack.subscription("email-notifier").await.pending == 1).then_some(()),
    )
    .await;
    stack.interrupt().await;
    assert!(
        !std::path::Path::new(&format!("/proc/{handler_pid}")).exists(),
        "the handler process must stop with the stack"
    );
    // Started again with the outbox (the default): the pending retry, due within a second,
    // is delivered from the state the first run left.
    let stack = Stack::start(dir.path(), &[], &["--time-scale", "0.1"]).await;
    eventually(
        "the resumed delivery's email",
        Duration::from_secs(30),
        || stack.outbox().contains(&"P-1.eml".to_owned()).then_some(()),
    )
    .await;
    assert_eq!(
        stack.orders().await.0.get("P-1").map(String::as_str),
        Some("sent")
    );
}

/// A stack killed without the chance to stop its handler (SIGKILL, as when a terminal or CI
/// job is torn down) does not leave the handler running: the handler sees its parent go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stack_does_not_leave_its_handler_running() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]).await;
    let handler_pid = stack.host_status().await["handler"]["pid"]
        .as_u64()
        .unwrap();
    // A zombie waiting to be reaped has stopped running.
    let alive = pid_alive;
    assert!(alive(handler_pid));
    drop(stack); // SIGKILL, then waits for it
    eventually(
        "the orphaned handler to stop",
        Duration::from_secs(10),
        || (!alive(handler_pid)).then_some(()),
    )
    .await;
}
