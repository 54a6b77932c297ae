//! The local stack on Azurite instead of the folder store, by a settings change only: orders
//! and the email ledger in Blob Storage, dead letters as blobs.

use std::process::Command;
use std::time::Duration;

use futures::TryStreamExt as _;
use ordergrid::blob::{BlobAccount, BlobConnection, BlobTiming};
use ordergrid::store::{BlobStore, Collection, RecordKey, RecordStore};
use ordergrid_testing::azurite::{Azurite, DEVSTORE_KEY};
use serde_json::Value;

use crate::helpers::{Stack, binary, eventually_async, free_port};

/// With the SMTP server down and Event Grid's clock 20,000 times faster, the order is recorded
/// in Azurite and the EmailNotifier's event is dead-lettered into Azurite once its time to live
/// (24 h, here 4.3 s) runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_keeps_orders_and_dead_letters_in_azurite_when_the_settings_say_so() {
    let azurite = Azurite::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = azurite.connection_string();
    let env = [
        ("ORDERGRID_STORE", "blob".to_owned()),
        ("ORDERGRID_STORAGE", storage.clone()),
        ("ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE", storage.clone()),
        ("ORDERGRID_EMAIL_TRANSPORT", "smtp".to_owned()),
        ("ORDERGRID_SMTP_HOST", "127.0.0.1".to_owned()),
        ("ORDERGRID_SMTP_PORT", free_port().to_string()),
        ("ORDERGRID_SMTP_TLS", "none".to_owned()),
        ("ORDERGRID_SMTP_TIMEOUT", "2s".to_owned()),
    ];
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.00005"]).await;
    let summary = stack.output.text();
    assert!(
        summary.contains(&format!(
            "store              blob {}",
            azurite.blob_endpoint()
        )),
        "{summary}"
    );
    assert!(
        summary.contains("dead letters       blob containers of"),
        "{summary}"
    );
    assert!(!summary.contains(DEVSTORE_KEY), "no key in the summary");

    let published = Command::new(binary())
        .args(["publish", "--endpoint", &stack.topic_endpoint])
        .args(["--order-id", "30001", "--customer-id", "67890"])
        .args(["--value", "150.00", "--email", "customer@example.com"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );

    let connection = BlobConnection::parse_connection_string(&storage).unwrap();
    let store = BlobStore::open(&connection, BlobTiming::default())
        .await
        .unwrap();
    let order = RecordKey::new(Collection::Orders, "30001").unwrap();
    let record = eventually_async("the order in Azurite", Duration::from_secs(30), || {
        let (store, order) = (&store, &order);
        async move { store.get(order).await.ok().flatten() }
    })
    .await;
    let record: Value = serde_json::from_slice(&record.body).unwrap();
    assert_eq!(record["order"]["orderId"], "30001");

    let container = BlobAccount::new(&connection, BlobTiming::default())
        .unwrap()
        .container("dead-letters");
    let name = eventually_async(
        "the EmailNotifier's dead letter",
        Duration::from_secs(60),
        || {
            let container = &container;
            async move {
                container
                    .list_blobs(None)
                    .ok()?
                    .try_collect::<Vec<_>>()
                    .await
                    .ok()?
                    .into_iter()
                    .filter_map(|b| b.name)
                    .find(|n| n.starts_with("EMAIL-NOTIFIER/"))
            }
        },
    )
    .await;
    let blob = container.blob_client(&name).download(None).await.unwrap();
    let events: Value = serde_json::from_slice(&blob.body.collect().await.unwrap()).unwrap();
    assert_eq!(events[0]["data"]["orderId"], "30001");
    assert_eq!(events[0]["deadLetterReason"], "TimeToLiveExceeded");

    // `ordergrid orders list` reads the same store when given the same settings.
    let listed = Command::new(binary())
        .args(["orders", "list"])
        .current_dir(dir.path())
        .env_clear()
        .env("ORDERGRID_STORE", "blob")
        .env("ORDERGRID_STORAGE", &storage)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.lines().any(|l| l.starts_with("30001")), "{listed}");
    // And the emulator lists the dead letter from its blob container.
    let dead_letters = Command::new(binary())
        .args(["emulator", "dead-letters", "--url", &stack.emulator_url])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&dead_letters.stdout).contains(&name),
        "{}",
        String::from_utf8_lossy(&dead_letters.stdout)
    );

    // Nothing went to the folders the stack uses by default.
    assert!(!dir.path().join(".ordergrid/store").exists());
    assert!(!dir.path().join(".ordergrid/dead-letters").exists());
    stack.interrupt().await;
}
