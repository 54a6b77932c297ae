//! EmailNotifier: one confirmation per accepted order, `OrderConfirmationSent` or
//! `OrderConfirmationFailed` emitted (the same event on every redelivery), classified failures,
//! claim takeover.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ordergrid::email::{EmailTransport, MemoryTransport, OutgoingEmail, SendError};
use ordergrid::store::{Collection, Created, MemoryStore, RecordKey, RecordStore};
use serde_json::{Value, json};

use crate::events::{accepted_order, envelope, order_accepted};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn env(id: &str, data: Value) -> Value {
    envelope("EmailNotifier", order_accepted(id, data))
}

async fn app_with_memory(claim: Duration) -> (TestApp, Arc<MemoryStore>, Arc<MemoryTransport>) {
    let store = Arc::new(MemoryStore::new());
    let (app, transport) = app_on(store.clone(), claim).await;
    (app, store, transport)
}

/// An app on `store`, which other apps may share (as processes share Blob Storage), sending into
/// memory.
async fn app_on(store: Arc<MemoryStore>, claim: Duration) -> (TestApp, Arc<MemoryTransport>) {
    let transport = Arc::new(MemoryTransport::new());
    let app = spawn_app_with(
        tempfile::tempdir().unwrap(),
        store,
        transport.clone(),
        Default::default(),
        claim,
    )
    .await;
    (app, transport)
}

/// `delivery` finds another delivery's live claim: answered 503 (retry later), nothing sent.
async fn waits_for_the_claim(app: &TestApp, transport: &MemoryTransport, delivery: &Value) {
    let busy = app.invoke("EmailNotifier", delivery).await;
    assert_eq!(busy.status, 503, "{}", busy.json);
    assert!(
        busy.error_message()
            .contains("being sent by another delivery"),
        "{}",
        busy.json
    );
    assert!(transport.sent().is_empty());
}

async fn ledger(store: &dyn RecordStore, order: &str) -> Value {
    let key = RecordKey::new(Collection::EmailLedger, order).unwrap();
    serde_json::from_slice(&store.get(&key).await.unwrap().unwrap().body).unwrap()
}

#[tokio::test]
async fn a_valid_order_gets_one_confirmation_in_the_outbox() {
    let app = spawn_app().await;
    let answer = app
        .invoke("EmailNotifier", &env("e1", accepted_order("12345")))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(
        answer
            .log()
            .contains("confirmation for order 12345 sent to customer@example.com"),
        "{}",
        answer.log()
    );
    let [sent] = answer.emitted().try_into().unwrap();
    assert_eq!(sent["eventType"], "OrderConfirmationSent");
    assert_eq!(sent["subject"], "orders/12345");
    assert_eq!(sent["data"]["orderId"], "12345");
    assert_eq!(sent["data"]["acceptedEventId"], "e1");
    assert_eq!(
        sent["data"]["messageId"],
        "<order-12345.confirmation@shop.example>"
    );
    let [file] = app.emails().try_into().unwrap();
    assert_eq!(file.file_name().unwrap(), "12345.eml");
    let raw = std::fs::read_to_string(&file).unwrap();
    for needle in [
        "To: customer@example.com",
        "From: Shop <orders@shop.example>",
        "Subject: We received your order 12345",
        "Message-ID: <order-12345.confirmation@shop.example>",
        "text/plain",
        "text/html",
        "150.00 USD",
        "67890",
    ] {
        assert!(raw.contains(needle), "{needle} missing from\n{raw}");
    }
    assert_eq!(ledger(app.store.as_ref(), "12345").await["state"], "sent");

    let again = app
        .invoke("EmailNotifier", &env("e1", accepted_order("12345")))
        .await;
    assert_eq!(again.status, 200);
    assert!(again.log().contains("already sent"), "{}", again.log());
    assert_eq!(app.emails().len(), 1);
    assert_eq!(
        again.emitted(),
        [sent],
        "a redelivery emits the same OrderConfirmationSent, in case the first answer was lost"
    );
}

/// The email states the accepted order, whatever the limits say now: it was accepted under them.
#[tokio::test]
async fn the_email_states_the_order_as_accepted() {
    let app = spawn_app().await;
    let mut data = accepted_order("77");
    data["orderValue"] = json!("2000000.00");
    data["items"] = json!([{"sku": "S", "name": "Desk", "quantity": 1, "unitPrice": "2000000.00"}]);
    let answer = app.invoke("EmailNotifier", &env("e77", data)).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let raw = std::fs::read_to_string(&app.emails()[0]).unwrap();
    assert!(raw.contains("2000000.00 USD"), "{raw}");
}

/// OrderAccepted is OrderProcessor's; data it would not write is a broken contract (a deployment
/// problem), answered non-2xx so Event Grid retries and finally dead-letters it.
#[tokio::test]
async fn an_order_accepted_that_is_not_a_recorded_order_fails_the_invocation() {
    let app = spawn_app().await;
    let answer = app
        .invoke(
            "EmailNotifier",
            &env("e1", json!({"orderId": "9", "customerEmail": "nope"})),
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.json);
    assert!(
        answer
            .error_message()
            .contains("not an order as OrderProcessor records it"),
        "{}",
        answer.json
    );
    assert!(app.emails().is_empty());
}

#[tokio::test]
async fn a_transient_send_failure_is_retried_and_ends_in_exactly_one_email() {
    let (app, store, transport) = app_with_memory(Duration::from_secs(60)).await;
    transport.fail_with(Some(SendError::Transient("connection refused".into())));
    let delivery = env("e1", accepted_order("5"));
    let failed = app.invoke("EmailNotifier", &delivery).await;
    assert_eq!(failed.status, 503, "{}", failed.json);
    assert!(failed.error_message().contains("connection refused"));
    // The claim was released, so the retry does not wait for it to expire.
    assert!(
        store
            .get(&RecordKey::new(Collection::EmailLedger, "5").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    transport.fail_with(None);
    assert_eq!(app.invoke("EmailNotifier", &delivery).await.status, 200);
    assert_eq!(app.invoke("EmailNotifier", &delivery).await.status, 200);
    assert_eq!(transport.sent().len(), 1);
}

#[tokio::test]
async fn a_permanent_refusal_is_recorded_and_not_retried() {
    let (app, store, transport) = app_with_memory(Duration::from_secs(60)).await;
    transport.fail_with(Some(SendError::Permanent("550 recipient rejected".into())));
    let delivery = env("e1", accepted_order("6"));
    let answer = app.invoke("EmailNotifier", &delivery).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(
        answer.log().contains("refused permanently"),
        "{}",
        answer.log()
    );
    let [failed] = answer.emitted().try_into().unwrap();
    assert_eq!(failed["eventType"], "OrderConfirmationFailed");
    assert!(failed["data"]["reason"].as_str().unwrap().contains("550"));
    let entry = ledger(store.as_ref(), "6").await;
    assert_eq!(entry["state"], "failed");
    assert!(entry["reason"].as_str().unwrap().contains("550"));
    transport.fail_with(None);
    let again = app.invoke("EmailNotifier", &delivery).await;
    assert_eq!(again.status, 200);
    assert!(
        transport.sent().is_empty(),
        "a permanent failure is not retried"
    );
    assert_eq!(
        again.emitted(),
        [failed],
        "the same OrderConfirmationFailed"
    );
}

#[tokio::test]
async fn a_live_claim_makes_other_deliveries_retry_and_an_expired_one_is_taken_over() {
    let (app, store, transport) = app_with_memory(Duration::from_secs(60)).await;
    let key = RecordKey::new(Collection::EmailLedger, "8").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let claim = |lease_until: time::OffsetDateTime| {
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        Bytes::from(json!({"state": "sending", "eventId": "other", "claimedAt": fmt(now), "leaseUntil": fmt(lease_until)}).to_string())
    };
    // Another delivery claimed the email and is (as far as anyone knows) still sending it.
    let Created::Created(etag) = store
        .create(&key, claim(now + Duration::from_secs(60)))
        .await
        .unwrap()
    else {
        panic!("the key was fresh")
    };
    let delivery = env("e1", accepted_order("8"));
    waits_for_the_claim(&app, &transport, &delivery).await;

    // That delivery's process died: its lease ran out. The next delivery takes over and sends.
    store
        .replace(&key, claim(now - Duration::from_secs(1)), &etag)
        .await
        .unwrap();
    let answer = app.invoke("EmailNotifier", &delivery).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(transport.sent().len(), 1);
    assert_eq!(ledger(store.as_ref(), "8").await["state"], "sent");
}

#[tokio::test]
async fn an_unreachable_ledger_fails_the_invocation_and_sends_nothing() {
    let (app, store, transport) = app_with_memory(Duration::from_secs(60)).await;
    store.set_unavailable(true);
    let answer = app
        .invoke("EmailNotifier", &env("e1", accepted_order("3")))
        .await;
    assert_eq!(answer.status, 503);
    assert!(transport.sent().is_empty());
}

/// The mail server took the email, then the store went down before `sent` was recorded: the
/// delivery fails (Event Grid retries), and the retry records what was sent instead of sending a
/// second email, whether the claim is still live or has expired.
#[tokio::test]
async fn an_email_sent_while_the_store_went_down_is_recorded_by_the_retry_not_sent_again() {
    /// Takes the store down as the server accepts the message.
    struct StoreFailsAfterSend {
        store: Arc<MemoryStore>,
        transport: Arc<MemoryTransport>,
    }
    #[async_trait::async_trait]
    impl EmailTransport for StoreFailsAfterSend {
        async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
            let sent = self.transport.send(email).await;
            self.store.set_unavailable(true);
            sent
        }
        fn describe(&self) -> String {
            "memory, then the store goes down".to_owned()
        }
    }

    for expire in [false, true] {
        let store = Arc::new(MemoryStore::new());
        let transport = Arc::new(MemoryTransport::new());
        let email = Arc::new(StoreFailsAfterSend {
            store: store.clone(),
            transport: transport.clone(),
        });
        // Recording is retried for half the claim's lease: 100 ms here.
        let claim = Duration::from_millis(200);
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_app_with(dir, store.clone(), email, Default::default(), claim).await;
        let delivery = env("e1", accepted_order("31"));

        let failed = app.invoke("EmailNotifier", &delivery).await;
        assert_eq!(failed.status, 503, "{}", failed.json);
        assert!(
            failed
                .error_message()
                .contains("was sent but could not be recorded"),
            "{}",
            failed.json
        );
        store.set_unavailable(false);
        let mut claimed = ledger(store.as_ref(), "31").await;
        assert_eq!(claimed["state"], "sending");
        if expire {
            // The lease ran out before the retry came.
            claimed["leaseUntil"] = json!("2026-01-01T00:00:00Z");
            let key = RecordKey::new(Collection::EmailLedger, "31").unwrap();
            let etag = store.get(&key).await.unwrap().unwrap().etag;
            let body = Bytes::from(claimed.to_string());
            store.replace(&key, body, &etag).await.unwrap();
        }

        let retried = app.invoke("EmailNotifier", &delivery).await;
        assert_eq!(retried.status, 200, "expired {expire}: {}", retried.json);
        assert!(retried.log().contains("recorded now, not sending again"));
        assert_eq!(transport.sent().len(), 1, "expired {expire}: one email");
        let entry = ledger(store.as_ref(), "31").await;
        assert_eq!(entry["state"], "sent");
        let [sent] = retried.emitted().try_into().unwrap();
        assert_eq!(sent["eventType"], "OrderConfirmationSent");
        assert_eq!(sent["data"]["messageId"], entry["messageId"]);
    }
}

/// A full disk fails the outbox and the store at once: the send fails and the claim cannot be
/// released. The retry in the same process takes its own claim back at once (it knows nothing was
/// sent) instead of waiting out the lease; another process sharing the store still waits.
#[tokio::test]
async fn a_claim_a_failed_send_could_not_release_is_taken_back_by_this_process_only() {
    /// Fails the send and takes the store down with it, until `recovered`.
    struct DiskFull {
        store: Arc<MemoryStore>,
        transport: Arc<MemoryTransport>,
        recovered: std::sync::atomic::AtomicBool,
    }
    #[async_trait::async_trait]
    impl EmailTransport for DiskFull {
        async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
            if self.recovered.load(std::sync::atomic::Ordering::SeqCst) {
                return self.transport.send(email).await;
            }
            self.store.set_unavailable(true);
            Err(SendError::Transient("No space left on device".into()))
        }
        fn describe(&self) -> String {
            "memory, on a disk that fills up".to_owned()
        }
    }

    let store = Arc::new(MemoryStore::new());
    let transport = Arc::new(MemoryTransport::new());
    let email = Arc::new(DiskFull {
        store: store.clone(),
        transport: transport.clone(),
        recovered: false.into(),
    });
    // A lease far longer than the test: only taking the claim back lets the retry through.
    let lease = Duration::from_secs(3600);
    let app = spawn_app_with(
        tempfile::tempdir().unwrap(),
        store.clone(),
        email.clone(),
        Default::default(),
        lease,
    )
    .await;
    let delivery = env("e1", accepted_order("41"));
    let failed = app.invoke("EmailNotifier", &delivery).await;
    assert_eq!(failed.status, 503, "{}", failed.json);
    assert!(failed.error_message().contains("No space left on device"));
    store.set_unavailable(false);
    email
        .recovered
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        ledger(store.as_ref(), "41").await["state"],
        "sending",
        "the claim could not be released"
    );

    // Another process cannot know whether anything was sent under the claim: it waits.
    let (other, other_transport) = app_on(store.clone(), lease).await;
    waits_for_the_claim(&other, &other_transport, &delivery).await;

    let retried = app.invoke("EmailNotifier", &delivery).await;
    assert_eq!(retried.status, 200, "{}", retried.json);
    assert_eq!(transport.sent().len(), 1);
    assert_eq!(ledger(store.as_ref(), "41").await["state"], "sent");
}
