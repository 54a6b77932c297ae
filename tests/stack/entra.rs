//! `ordergrid publish --auth entra` against the local stack, over its HTTPS
//! endpoint, with a token from the stack's managed-identity endpoint (the environment the stack
//! prints), trusting the stack's development CA; the order goes all the way to its email.

use std::time::Duration;

use crate::helpers::{Stack, binary, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordergrid_publish_with_entra_id_reaches_the_local_stack_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]).await;
    let summary = stack.output.text();
    let field = |label: &str| {
        summary
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("the summary has no {label:?} line:\n{summary}"))
            .trim()
            .to_owned()
    };
    let https = field("over HTTPS").split(' ').next().unwrap().to_owned();
    // `IDENTITY_ENDPOINT=<url> IDENTITY_HEADER=$(cat <file>)`: the secret is not printed.
    let identity = field("managed identity");
    let (endpoint, header) = identity.split_once(' ').unwrap();
    let endpoint = endpoint.strip_prefix("IDENTITY_ENDPOINT=").unwrap();
    let file = header
        .strip_prefix("IDENTITY_HEADER=$(cat ")
        .and_then(|f| f.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{identity}"));
    let secret = std::fs::read_to_string(file).unwrap();
    assert!(
        !summary.contains(secret.trim()),
        "the summary shows no secret"
    );
    let env = [
        ("IDENTITY_ENDPOINT", endpoint),
        ("IDENTITY_HEADER", secret.trim()),
    ];
    assert!(
        dir.path().join(".ordergrid/emulator/tls/ca.pem").is_file(),
        "the stack made its CA"
    );

    let out = std::process::Command::new(binary())
        .args(["publish", "--auth", "entra", "--endpoint", &https])
        .args([
            "--order-id",
            "E-1",
            "--customer-id",
            "c",
            "--value",
            "12.34",
        ])
        .args(["--email", "entra@example.com"])
        .current_dir(dir.path())
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the order's email", Duration::from_secs(30), || {
        stack.outbox().contains(&"E-1.eml".to_owned()).then_some(())
    })
    .await;

    // Without the managed identity's environment the CLI says what to set.
    let out = std::process::Command::new(binary())
        .args(["publish", "--auth", "entra", "--endpoint", &https])
        .args(["--order-id", "E-2", "--customer-id", "c", "--value", "1.00"])
        .args(["--email", "entra@example.com"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("IDENTITY_ENDPOINT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stack.interrupt().await;
}
