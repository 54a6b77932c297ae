//! The same order delivered many times at once: one record, one OrderAccepted, one email.
//!
//! "One OrderAccepted" is one event: deliveries that raced the recorder may carry it too (a
//! redelivery re-emits, so an answer lost on the way cannot lose the event), always with the
//! same id, time and data, so a consumer keying on the event id sees it once.

use futures::future::join_all;

use crate::events::{accepted_order, eg_event, envelope, new_order, order_accepted};
use crate::helpers::spawn_app;

const DELIVERIES: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_deliveries_yield_one_record_one_accepted_one_email() {
    let app = spawn_app().await;
    let processor = envelope("OrderProcessor", eg_event("evt-dup", new_order("dup-1")));
    let notifier = envelope(
        "EmailNotifier",
        order_accepted("evt-acc", accepted_order("dup-1")),
    );

    let answers = join_all((0..DELIVERIES).flat_map(|_| {
        [
            app.invoke("OrderProcessor", &processor),
            app.invoke("EmailNotifier", &notifier),
        ]
    }))
    .await;
    let (processed, notified): (Vec<_>, Vec<_>) = answers
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);

    assert!(
        processed.iter().all(|(_, a)| a.status == 200),
        "OrderProcessor answers: {:?}",
        processed.iter().map(|(_, a)| a.status).collect::<Vec<_>>()
    );
    let mut accepted: Vec<serde_json::Value> =
        processed.iter().flat_map(|(_, a)| a.emitted()).collect();
    accepted.dedup();
    assert_eq!(
        accepted.len(),
        1,
        "one OrderAccepted event (however often it was carried): {accepted:?}"
    );
    assert_eq!(accepted[0]["eventType"], "OrderAccepted");
    let recorded = processed
        .iter()
        .filter(|(_, a)| a.log().contains("recorded ("))
        .count();
    assert_eq!(recorded, 1, "exactly one delivery recorded the order");
    assert_eq!(app.orders().await, ["dup-1"]);

    // EmailNotifier deliveries that raced the sender are told to retry (503), never acknowledged
    // before the email is out; every other answer is 200.
    assert!(
        notified
            .iter()
            .all(|(_, a)| a.status == 200 || a.status == 503)
    );
    let sent = notified
        .iter()
        .filter(|(_, a)| a.log().contains("sent to"))
        .count();
    assert_eq!(sent, 1, "exactly one delivery sent the email");
    // Event Grid retries the 503s; by then the email is recorded as sent.
    let retried = app.invoke("EmailNotifier", &notifier).await;
    assert_eq!(retried.status, 200);
    assert!(retried.log().contains("already sent"));
    assert_eq!(app.emails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_different_orders_at_once_are_each_recorded_once() {
    let app = spawn_app().await;
    let app = &app;
    let answers = join_all((0..200).map(|i| {
        let env = envelope(
            "OrderProcessor",
            eg_event(&format!("e{i}"), new_order(&format!("o{i:03}"))),
        );
        async move { app.invoke("OrderProcessor", &env).await }
    }))
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == 200 && a.emitted().len() == 1)
    );
    assert_eq!(app.orders().await.len(), 200);
}
