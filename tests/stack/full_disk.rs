//! A full disk (issue 14), on two small tmpfs this test mounts and fills to the last byte while
//! orders are published: first the emulator's (its spool), then the function app's (the store and
//! the outbox). What the emulator cannot keep it refuses with 503 in Azure's shape; what the
//! handler cannot record it answers non-2xx, so Event Grid retries; nothing acknowledged is lost
//! or corrupted. Once space returns, the stack goes on by itself: every acknowledged order is
//! recorded and emailed exactly once, and a restart on the same folders reads everything back.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Stack, eventually_async, new_order};

/// A tmpfs of `size` mounted at `at` for the test's lifetime (the test runs as root, as
/// `scripts/test` does: it installs packages with apt).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (scripts/test runs as root): {status}"
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem of `dir` to the last byte; returns the file holding it.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    while file.write_all(&[0u8]).is_ok() {}
    let _ = file.sync_all();
    path
}

/// What a failed wait needs to say why: the orders without an email, what the store says of
/// them, what the emulator says of each subscription, the dead letters and the stack's last
/// lines that are not INFO.
async fn diagnose(stack: &Stack, accepted: &BTreeSet<usize>, emails: &BTreeSet<String>) -> String {
    let missing: Vec<String> = accepted
        .iter()
        .map(|i| format!("disk-{i}"))
        .filter(|id| !emails.contains(&format!("{id}.eml")))
        .collect();
    let (orders, rejected) = stack.orders().await;
    let states: Vec<String> = missing
        .iter()
        .map(|id| {
            format!(
                "{id}: {}",
                orders.get(id).map_or("not recorded", String::as_str)
            )
        })
        .collect();
    let mut subscriptions = Vec::new();
    for name in ["order-processor", "email-notifier", "order-status-feed"] {
        let view = stack.subscription(name).await;
        subscriptions.push(format!(
            "{name}: {:?}, pending {}",
            view.counters, view.pending
        ));
    }
    let dead_letters: Vec<String> = files_under(&stack.dir.join(".ordergrid/dead-letters"));
    let warnings: Vec<String> = stack
        .output
        .all()
        .into_iter()
        .filter(|l| !l.contains(r#""level":"INFO""#))
        .collect();
    let tail = warnings[warnings.len().saturating_sub(40)..].join("\n");
    format!(
        "missing: {states:?}\nrejected: {rejected:?}\n{}\ndead letters: {dead_letters:?}\n\
         the stack's last lines but INFO:\n{tail}",
        subscriptions.join("\n")
    )
}

/// Every file under `dir`, by its path relative to `dir`.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                found.push(relative.display().to_string());
            }
        }
    }
    found
}

fn order(i: usize) -> Value {
    let id = format!("disk-{i}");
    new_order(&id, &id, "10.00", &format!("buyer{i}@example.com"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_what_it_cannot_keep_and_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let emulator_disk = dir.path().join(".ordergrid");
    let app_disk = dir.path().join("app");
    for disk in [&emulator_disk, &app_disk] {
        std::fs::create_dir_all(disk).unwrap();
    }
    let _emulator_tmpfs = Tmpfs::mount(&emulator_disk, "24m");
    let _app_tmpfs = Tmpfs::mount(&app_disk, "24m");
    let env = [
        (
            "ORDERGRID_STORE_PATH",
            app_disk.join("store").display().to_string(),
        ),
        (
            "ORDERGRID_OUTBOX_PATH",
            app_disk.join("outbox").display().to_string(),
        ),
    ];
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.001"]).await;
    let emails = || -> BTreeSet<String> {
        std::fs::read_dir(app_disk.join("outbox"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".eml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".ordergrid/emulator/topic-keys.json")).unwrap(),
    )
    .unwrap();
    let key = keys["orders"][0].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let publish = async |i: usize| {
        client
            .post(format!("{}?api-version=2018-01-01", stack.topic_endpoint))
            .header("aeg-sas-key", &key)
            .json(&order(i))
            .send()
            .await
            .unwrap()
    };

    let mut accepted = BTreeSet::new();
    for i in 0..20 {
        assert_eq!(publish(i).await.status(), 200);
        accepted.insert(i);
    }
    // The emulator's disk fills up under load: publishes go on, and those that cannot be kept
    // are refused.
    let filler = fill(&emulator_disk);
    let mut refused = 0;
    for i in 20..60 {
        let answer = publish(i).await;
        match answer.status().as_u16() {
            200 => {
                accepted.insert(i);
            }
            503 => {
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
                refused += 1;
            }
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "a full disk must refuse what it cannot keep");
    std::fs::remove_file(filler).unwrap();

    // The function app's disk fills up: the emulator accepts, the handler cannot record or send,
    // answers non-2xx, and Event Grid retries until space returns.
    let filler = fill(&app_disk);
    for i in 60..70 {
        assert_eq!(publish(i).await.status(), 200);
        accepted.insert(i);
    }
    let retried_before = stack.subscription("order-processor").await.counters.retried;
    eventually_async(
        "failed deliveries to the handler",
        Duration::from_secs(30),
        async || {
            let retried = stack.subscription("order-processor").await.counters.retried;
            (retried > retried_before).then_some(())
        },
    )
    .await;
    assert!(
        (60..70).all(|i| !emails().contains(&format!("disk-{i}.eml"))),
        "nothing sent while the app's disk is full"
    );
    std::fs::remove_file(filler).unwrap();

    // Space returns: everything acknowledged is recorded and emailed, once.
    let all_emailed = || {
        let emails = emails();
        let all = accepted
            .iter()
            .all(|i| emails.contains(&format!("disk-{i}.eml")));
        all.then_some(emails)
    };
    let Some(outbox) =
        ordergrid_testing::poll(Duration::from_secs(60), async || all_emailed()).await
    else {
        panic!(
            "timed out after 60s waiting for an email for every acknowledged order\n{}",
            diagnose(&stack, &accepted, &emails()).await
        );
    };
    assert_eq!(
        outbox.len(),
        accepted.len(),
        "exactly one email per acknowledged order"
    );
    let (orders, _) = stack.orders().await;
    for i in &accepted {
        assert_eq!(
            orders.get(&format!("disk-{i}")).map(String::as_str),
            Some("sent"),
            "disk-{i}: {orders:?}"
        );
    }
    // And after a restart on the same folder, it all reads back, nothing sent twice.
    stack.interrupt().await;
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.001"]).await;
    let (orders, _) = stack.orders().await;
    assert_eq!(orders.len(), accepted.len(), "{orders:?}");
    assert_eq!(emails().len(), accepted.len());
    stack.interrupt().await;
}
