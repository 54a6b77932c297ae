//! Crash safety: kill -9 mid-stream loses no acknowledged order and records none twice.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::StreamExt;
use ordergrid::store::{Collection, FolderStore, FolderStoreOptions, RecordStore};

use crate::events::{eg_event, envelope, new_order};
use crate::helpers::spawn_binary;

const ORDERS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_stream_loses_no_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let outbox_dir = dir.path().join("o");
    let env = [
        ("ORDERGRID_STORE_PATH", store_dir.to_str().unwrap()),
        ("ORDERGRID_OUTBOX_PATH", outbox_dir.to_str().unwrap()),
    ];
    let envelopes: Vec<_> = (0..ORDERS)
        .map(|i| {
            envelope(
                "OrderProcessor",
                eg_event(&format!("e{i}"), new_order(&format!("c{i:04}"))),
            )
        })
        .collect();
    let client = reqwest::Client::new();

    let mut handler = spawn_binary(&env).await;
    // Order id → the OrderAccepted its acknowledged answer carried.
    let mut acknowledged = std::collections::BTreeMap::new();
    {
        // At most 32 in flight, so the kill lands with most of the stream still unsent.
        let mut in_flight = futures::stream::iter(envelopes.iter().enumerate())
            .map(|(i, env)| {
                let (client, url) = (client.clone(), format!("{}/OrderProcessor", handler.base));
                async move {
                    let sent = client
                        .post(url)
                        .body(env.to_string())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(r) if r.status() == 200 => r.json::<serde_json::Value>().await.ok(),
                        _ => None,
                    };
                    (i, answer)
                }
            })
            .buffer_unordered(32);
        while let Some((i, answer)) = in_flight.next().await {
            if let Some(answer) = answer {
                acknowledged.insert(
                    format!("c{i:04}"),
                    answer["Outputs"]["outputEvents"][0].clone(),
                );
            }
            if acknowledged.len() == ORDERS / 4
                && handler.process.child.try_wait().unwrap().is_none()
            {
                handler.process.kill().unwrap(); // SIGKILL, mid-stream
            }
        }
    }
    assert!(acknowledged.len() >= ORDERS / 4);
    assert!(
        acknowledged.len() < ORDERS,
        "the crash came too late to test anything"
    );

    // Every acknowledged order is in the store, readable.
    {
        let store = FolderStore::open(&store_dir, FolderStoreOptions::default()).unwrap();
        let recorded: BTreeSet<String> = store
            .list(Collection::Orders, "")
            .await
            .unwrap()
            .into_iter()
            .collect();
        let lost: Vec<_> = acknowledged
            .keys()
            .filter(|id| !recorded.contains(*id))
            .collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    }

    // Event Grid redelivers everything after the restart: nothing acknowledged is recorded
    // twice, and every order's OrderAccepted goes out, the acknowledged ones' unchanged.
    drop(handler);
    let handler = spawn_binary(&env).await;
    for (i, env) in envelopes.iter().enumerate() {
        let id = format!("c{i:04}");
        let answer = handler.invoke(&client, "OrderProcessor", env).await;
        assert_eq!(answer.status, 200);
        let [accepted] = answer
            .emitted()
            .try_into()
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        if let Some(first) = acknowledged.get(&id) {
            assert!(
                answer.log().contains("already recorded"),
                "{id} was recorded twice: {}",
                answer.log()
            );
            assert_eq!(
                &accepted, first,
                "{id}: the redelivery's OrderAccepted differs from the first"
            );
        }
    }
    let store = FolderStore::snapshot(&store_dir).unwrap();
    assert_eq!(
        store.list(Collection::Orders, "").await.unwrap().len(),
        ORDERS
    );
}
