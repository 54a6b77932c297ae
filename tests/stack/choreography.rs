//! The email always matches the recorded order. The same order id is published
//! many times at once with different values; through the whole choreography (emulator, host
//! stand-in, handler: NewOrder → OrderProcessor → OrderAccepted → EmailNotifier →
//! OrderConfirmationSent) each order gets exactly one email, and it states the recorded order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::{Observer, Stack, binary, eventually, new_order, subscriptions_with_observer};

const ORDERS: usize = 4;
const VALUES_PER_ORDER: usize = 8;

fn distinct_ids(events: &[Value], order_id: &str) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["data"]["orderId"] == order_id)
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_publishes_of_one_order_id_get_one_email_stating_the_recorded_order() {
    let dir = tempfile::tempdir().unwrap();
    let (observer, observer_url) = Observer::start().await;
    let subscriptions = subscriptions_with_observer(dir.path(), &observer_url);
    let env = [(
        "ORDERGRID_EMULATOR_SUBSCRIPTIONS",
        subscriptions.display().to_string(),
    )];
    let stack = Stack::start(dir.path(), &env, &["--time-scale", "0.001"]).await;
    let keys: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".ordergrid/emulator/topic-keys.json")).unwrap(),
    )
    .unwrap();
    let key = keys["orders"][0].as_str().unwrap().to_owned();

    // Every order id published VALUES_PER_ORDER times, each with its own value, all at once.
    let client = reqwest::Client::new();
    let published = join_all(
        (0..ORDERS)
            .flat_map(|o| (0..VALUES_PER_ORDER).map(move |v| (o, v)))
            .map(|(o, v)| {
                let event = new_order(
                    &format!("race-{o}-{v}"),
                    &format!("race-{o}"),
                    &format!("{}.{v:02}", 10 + v),
                    &format!("buyer{o}@example.com"),
                );
                client
                    .post(format!("{}?api-version=2018-01-01", stack.topic_endpoint))
                    .header("aeg-sas-key", &key)
                    .json(&event)
                    .send()
            }),
    )
    .await;
    for answer in published {
        assert_eq!(answer.unwrap().status(), 200);
    }

    let sent = eventually(
        "one OrderConfirmationSent per order",
        Duration::from_secs(60),
        || {
            let sent = observer.of_type("OrderConfirmationSent");
            let orders: BTreeSet<&str> = sent
                .iter()
                .filter_map(|e| e["data"]["orderId"].as_str())
                .collect();
            let rejected = observer.of_type("OrderRejected").len();
            (orders.len() == ORDERS && rejected >= ORDERS * (VALUES_PER_ORDER - 1)).then_some(sent)
        },
    )
    .await;
    assert_eq!(
        stack.outbox().len(),
        ORDERS,
        "one email per order: {:?}",
        stack.outbox()
    );
    let accepted = observer.of_type("OrderAccepted");
    let rejected = observer.of_type("OrderRejected");
    for o in 0..ORDERS {
        let order_id = format!("race-{o}");
        assert_eq!(
            distinct_ids(&accepted, &order_id).len(),
            1,
            "{order_id}: one OrderAccepted"
        );
        assert_eq!(
            distinct_ids(&sent, &order_id).len(),
            1,
            "{order_id}: one OrderConfirmationSent"
        );
        assert_eq!(
            distinct_ids(&rejected, &order_id).len(),
            VALUES_PER_ORDER - 1,
            "{order_id}: every other value is rejected as a reused order id"
        );

        // The recorded order, as `ordergrid orders show` reads it, and the email.
        let shown = std::process::Command::new(binary())
            .args(["orders", "show", &order_id])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        let record: Value = serde_json::from_slice(&shown.stdout).unwrap();
        let recorded = record["order"]["order"]["orderValue"]
            .as_str()
            .unwrap()
            .to_owned();
        let email =
            std::fs::read_to_string(dir.path().join(format!(".ordergrid/outbox/{order_id}.eml")))
                .unwrap();
        assert!(
            email.contains(&format!("{recorded} USD")),
            "{order_id}: the email does not state the recorded {recorded}:\n{email}"
        );
        let stated: BTreeMap<usize, bool> = (0..VALUES_PER_ORDER)
            .map(|v| (v, email.contains(&format!("{}.{v:02} USD", 10 + v))))
            .collect();
        assert_eq!(
            stated.values().filter(|s| **s).count(),
            1,
            "{order_id}: the email states one value only: {stated:?}"
        );
        // The OrderAccepted the email was sent for is the recorded order's.
        let winner = accepted
            .iter()
            .find(|e| e["data"]["orderId"] == *order_id)
            .unwrap();
        assert_eq!(winner["data"]["orderValue"], recorded.as_str());
        assert_eq!(winner["data"]["sourceEventId"], record["order"]["eventId"]);
    }
    stack.interrupt().await;
}
