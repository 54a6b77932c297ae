//! The blob store and the blob dead-letter sink on a real Azurite: several handler processes
//! sharing one account, Azurite stopped and restarted mid-stream, dead letters as blobs.
//! (The conformance suite for the blob store is in `store.rs`.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use futures::future::join_all;
use ordergrid::blob::BlobTiming;
use ordergrid::emulator::admin::{AdminClient, DeadLetterBlob, RedeliverRequest};
use ordergrid::emulator::dead_letter::DeadLetterStorage;
use ordergrid::emulator::settings::DeliverySettings;
use ordergrid::emulator::{Emulator, EmulatorSettings};
use ordergrid::eventgrid::sas::TopicKey;
use ordergrid::store::{BlobStore, Collection, RecordKey, RecordStore};
use ordergrid_testing::azurite::Azurite;
use ordergrid_testing::eventually_async;
use ordergrid_testing::receiver::{Receiver, Reply};
use ordergrid_testing::subscriptions::{dead_lettered, file, topic, webhook};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::events::{accepted_order, eg_event, envelope, new_order, order_accepted};
use crate::helpers::{
    Answer, RunningBinary, blob_account, blob_connection, eml_files, eventually, spawn_binary,
};

/// `ordergrid serve` on the blob store of `azurite`, its outbox in `outbox`.
async fn handler_on(azurite: &Azurite, outbox: &std::path::Path, timeout: &str) -> RunningBinary {
    spawn_binary(&[
        ("ORDERGRID_STORE", "blob"),
        ("ORDERGRID_STORAGE", &azurite.connection_string()),
        ("ORDERGRID_STORE_TIMEOUT", timeout),
        ("ORDERGRID_EMAIL_TRANSPORT", "outbox"),
        ("ORDERGRID_OUTBOX_PATH", outbox.to_str().unwrap()),
    ])
    .await
}

async fn store_of(azurite: &Azurite) -> BlobStore {
    BlobStore::open(&blob_connection(azurite), BlobTiming::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_across_three_processes_yield_one_order_one_accepted_one_email() {
    let azurite = Azurite::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outboxes: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("outbox-{i}")))
        .collect();
    let handlers = join_all(outboxes.iter().map(|o| handler_on(&azurite, o, "10s"))).await;
    let client = reqwest::Client::new();
    let processor = envelope(
        "OrderProcessor",
        eg_event("evt-shared", new_order("shared-1")),
    );
    let notifier = envelope(
        "EmailNotifier",
        order_accepted("evt-acc", accepted_order("shared-1")),
    );

    // Every process gets the same event many times at once, for both functions.
    let calls = handlers.iter().flat_map(|h| {
        (0..8).flat_map(|_| {
            [
                h.invoke(&client, "OrderProcessor", &processor),
                h.invoke(&client, "EmailNotifier", &notifier),
            ]
        })
    });
    let answers: Vec<Answer> = join_all(calls).await;
    let (processed, notified): (Vec<_>, Vec<_>) =
        answers.iter().enumerate().partition(|(i, _)| i % 2 == 0);

    assert!(
        processed.iter().all(|(_, a)| a.status == 200),
        "OrderProcessor answers: {:?}",
        processed.iter().map(|(_, a)| a.status).collect::<Vec<_>>()
    );
    // One OrderAccepted event across all processes: answers that raced the recorder may carry
    // it too (a redelivery re-emits), always identical; one delivery recorded the order.
    let mut accepted: Vec<Value> = processed.iter().flat_map(|(_, a)| a.emitted()).collect();
    accepted.dedup();
    assert_eq!(
        accepted.len(),
        1,
        "one OrderAccepted across all processes: {accepted:?}"
    );
    let recorded = processed
        .iter()
        .filter(|(_, a)| a.log().contains("recorded ("))
        .count();
    assert_eq!(recorded, 1, "exactly one delivery recorded the order");
    let store = store_of(&azurite).await;
    assert_eq!(
        store.list(Collection::Orders, "").await.unwrap(),
        ["shared-1"]
    );

    // Deliveries that found another process sending are told to retry (503).
    assert!(
        notified
            .iter()
            .all(|(_, a)| a.status == 200 || a.status == 503),
        "EmailNotifier answers: {:?}",
        notified.iter().map(|(_, a)| a.status).collect::<Vec<_>>()
    );
    let sent = notified
        .iter()
        .filter(|(_, a)| a.log().contains("sent to"))
        .count();
    assert_eq!(sent, 1, "exactly one delivery sent the email");
    // Event Grid retries the 503s, on any instance: by then the email is recorded as sent.
    for handler in &handlers {
        let retried = handler.invoke(&client, "EmailNotifier", &notifier).await;
        assert_eq!(retried.status, 200);
        assert!(retried.log().contains("already sent"), "{}", retried.log());
    }
    let emails: usize = outboxes.iter().map(|o| eml_files(o).len()).sum();
    assert_eq!(emails, 1, "one email across the three outboxes");
    let ledger = store
        .get(&RecordKey::new(Collection::EmailLedger, "shared-1").unwrap())
        .await
        .unwrap()
        .expect("a ledger entry");
    let ledger: Value = serde_json::from_slice(&ledger.body).unwrap();
    assert_eq!(ledger["state"], "sent");
}

/// What the stream saw for one order.
#[derive(Debug, Default, Clone)]
struct Seen {
    statuses: Vec<u16>,
    /// Every OrderAccepted an answer carried (a redelivery carries the same one again).
    accepted: Vec<Value>,
    /// Answered 200 with OrderAccepted before Azurite was stopped.
    acknowledged_before_stop: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azurite_stopped_and_restarted_mid_stream_loses_no_order_and_records_none_twice() {
    const ORDERS: usize = 40;
    let mut azurite = Azurite::start().await;
    let dir = tempfile::tempdir().unwrap();
    let handler = Arc::new(handler_on(&azurite, &dir.path().join("outbox"), "2s").await);
    let client = reqwest::Client::new();
    let processor = |i: usize| {
        envelope(
            "OrderProcessor",
            eg_event(&format!("evt-{i}"), new_order(&format!("o{i:03}"))),
        )
    };
    let seen: Arc<Mutex<BTreeMap<usize, Seen>>> = Arc::default();
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    // Three workers post the orders in turn, as Event Grid's deliveries would arrive.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (handler, client, seen, stopped, next) = (
                handler.clone(),
                client.clone(),
                seen.clone(),
                stopped.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= ORDERS {
                        return;
                    }
                    let was_stopped = stopped.load(std::sync::atomic::Ordering::SeqCst);
                    let answer = handler
                        .invoke(&client, "OrderProcessor", &processor(i))
                        .await;
                    let mut seen = seen.lock().unwrap();
                    let entry = seen.entry(i).or_default();
                    entry.statuses.push(answer.status);
                    entry.accepted.extend(answer.emitted());
                    entry.acknowledged_before_stop = !was_stopped
                        && !stopped.load(std::sync::atomic::Ordering::SeqCst)
                        && answer.status == 200
                        && answer.emitted().len() == 1;
                }
            })
        })
        .collect();

    let count = |f: fn(&Seen) -> bool| seen.lock().unwrap().values().filter(|s| f(s)).count();
    wait_for("10 orders acknowledged", Duration::from_secs(30), || {
        count(|s| s.statuses == [200]) >= 10
    })
    .await;
    stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    azurite.stop().await;
    wait_for(
        "a 503 while Azurite is down",
        Duration::from_secs(30),
        || count(|s| s.statuses.contains(&503)) >= 1,
    )
    .await;
    azurite.restart().await;
    for worker in workers {
        worker.await.unwrap();
    }

    let unavailable = count(|s| s.statuses.contains(&503));
    assert!(
        unavailable >= 1,
        "the handler answered 503 while Azurite was down"
    );
    assert!(
        seen.lock()
            .unwrap()
            .values()
            .all(|s| s.statuses.iter().all(|&st| st == 200 || st == 503)),
        "only 200 and 503: {:?}",
        seen.lock().unwrap()
    );

    // Event Grid retries every delivery that was not answered 200, until it is.
    let retry: Vec<usize> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| s.statuses.last() != Some(&200))
        .map(|(i, _)| *i)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in retry {
        loop {
            let answer = handler
                .invoke(&client, "OrderProcessor", &processor(i))
                .await;
            let mut seen = seen.lock().unwrap();
            let entry = seen.get_mut(&i).unwrap();
            entry.statuses.push(answer.status);
            entry.accepted.extend(answer.emitted());
            if answer.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "order {i} still fails: {entry:?}"
            );
        }
    }
    // And a few that were acknowledged arrive again (a duplicate delivery).
    let acknowledged: Vec<usize> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| s.acknowledged_before_stop)
        .map(|(i, _)| *i)
        .take(5)
        .collect();
    assert_eq!(acknowledged.len(), 5);
    for &i in &acknowledged {
        let answer = handler
            .invoke(&client, "OrderProcessor", &processor(i))
            .await;
        assert_eq!(answer.status, 200);
        let first = seen.lock().unwrap()[&i].accepted[0].clone();
        assert_eq!(
            answer.emitted(),
            [first],
            "o{i:03}: a redelivery carries the same OrderAccepted again"
        );
    }

    let store = store_of(&azurite).await;
    let expected: Vec<String> = (0..ORDERS).map(|i| format!("o{i:03}")).collect();
    assert_eq!(
        store.list(Collection::Orders, "").await.unwrap(),
        expected,
        "every order recorded, once"
    );
    for i in 0..ORDERS {
        let record = store
            .get(&RecordKey::new(Collection::Orders, &format!("o{i:03}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        let record: Value = serde_json::from_slice(&record.body).unwrap();
        assert_eq!(record["eventId"], format!("evt-{i}"));
    }
    // Every order's OrderAccepted went out, and it is one event: an order whose write reached
    // Azurite just as it stopped (the answer lost, so the delivery got 503) is found recorded by
    // its retry, which carries the same OrderAccepted, so nothing is lost and nothing differs.
    let seen = seen.lock().unwrap();
    for (i, s) in seen.iter() {
        let mut distinct = s.accepted.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            1,
            "o{i:03}: one OrderAccepted, never none, never two different: {s:?}"
        );
    }
}

async fn wait_for(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    eventually(what, deadline, || check().then_some(())).await
}

/// A webhook that completes Event Grid's validation handshake and refuses every event with 400,
/// which Event Grid does not retry: the event is dead-lettered at once.
async fn refusing_webhook() -> (String, Receiver) {
    let receiver = Receiver::start().await;
    receiver.always("/hook", Reply::Status(400));
    (receiver.url("/hook"), receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_blobs_with_azures_names_and_content_in_azurite() {
    let azurite = Azurite::start().await;
    let (hook, received) = refusing_webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let subscriptions = dir.path().join("subscriptions.json");
    std::fs::write(
        &subscriptions,
        file(vec![topic(
            "orders",
            vec![dead_lettered(
                webhook("Refusing-Hook", &hook),
                "dead-letters",
                30,
            )],
        )])
        .to_string(),
    )
    .unwrap();
    let key = TopicKey::generate();
    let settings = EmulatorSettings {
        port: 0,
        subscriptions_file: subscriptions,
        data_dir: dir.path().join("emulator"),
        dead_letters: DeadLetterStorage::Blob(blob_connection(&azurite)),
        key: Some(key.clone()),
        delivery: DeliverySettings {
            time_scale: 0.001,
            dead_letter_delay: Duration::ZERO,
            delivery_timeout: Duration::from_secs(5),
            ..DeliverySettings::default()
        },
        simple_publish: false,
        https_port: None,
        entra: ordergrid::emulator::entra::EntraMode::Off,
        traces: false,
        trace_export: Default::default(),
        guard: Default::default(),
        http: Default::default(),
        publish_buffer: 64 * 1024 * 1024,
    };
    let emulator = Emulator::build(settings).await.unwrap();
    let (endpoint, base) = (
        emulator.topic_endpoint("orders"),
        emulator.base_url().to_owned(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let stopping = stop.clone();
    let running =
        tokio::spawn(emulator.run_until_stopped(async move { stopping.cancelled().await }));

    let client = reqwest::Client::new();
    let before = OffsetDateTime::now_utc();
    let published = client
        .post(format!("{endpoint}?api-version=2018-01-01"))
        .header("aeg-sas-key", key.expose_secret())
        .json(&json!([{
            "id": "dl-blob-1",
            "subject": "orders/dl-blob-1",
            "eventType": "NewOrder",
            "eventTime": "2026-11-22T10:00:00Z",
            "data": {"orderId": "dl-blob-1", "orderValue": 12.50},
            "dataVersion": "1.0"
        }]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        published.status(),
        200,
        "{}",
        published.text().await.unwrap_or_default()
    );

    // The blob, as the SDK sees it in the container.
    let container = blob_account(&azurite).container("dead-letters");
    let names = eventually_async("the dead-letter blob", Duration::from_secs(30), || {
        let container = &container;
        async move {
            let names: Vec<String> = container
                .list_blobs(None)
                .unwrap()
                .try_collect::<Vec<_>>()
                .await
                .ok()?
                .into_iter()
                .filter_map(|b| b.name)
                .collect();
            (!names.is_empty()).then_some(names)
        }
    })
    .await;
    let after = OffsetDateTime::now_utc();
    assert_eq!(names.len(), 1, "{names:?}");
    let parts: Vec<&str> = names[0].split('/').collect();
    assert_eq!(parts.len(), 6, "{}", names[0]);
    assert_eq!(parts[0], "REFUSING-HOOK");
    let (year, month, day, hour) = (
        parts[1].parse::<i32>().unwrap(),
        parts[2].parse::<u8>().unwrap(),
        parts[3].parse::<u8>().unwrap(),
        parts[4].parse::<u8>().unwrap(),
    );
    assert!(
        [before, after].iter().any(|t| (t.year(), u8::from(t.month()), t.day(), t.hour())
            == (year, month, day, hour)),
        "{} is named after the UTC hour of the write, unpadded",
        names[0]
    );
    let guid = parts[5].strip_suffix(".json").expect("a .json blob");
    assert!(uuid::Uuid::parse_str(guid).is_ok(), "{guid}");

    let downloaded = container
        .blob_client(&names[0])
        .download(None)
        .await
        .unwrap();
    assert_eq!(
        downloaded.properties.content_type.as_deref(),
        Some("application/json")
    );
    let content: Value = serde_json::from_slice(&downloaded.body.collect().await.unwrap()).unwrap();
    let events = content.as_array().expect("a JSON array of events");
    assert_eq!(events.len(), 1);
    let dead = &events[0];
    assert_eq!(dead["id"], "dl-blob-1");
    assert_eq!(dead["data"]["orderValue"], 12.5);
    assert_eq!(dead["deadLetterReason"], "NonRetriableError");
    assert_eq!(dead["deliveryAttempts"], 1);
    assert_eq!(dead["lastHttpStatusCode"], 400);
    assert!(dead["lastDeliveryOutcome"].is_string());
    assert!(dead["publishTime"].is_string() && dead["lastDeliveryAttemptTime"].is_string());
    assert_eq!(
        received.notifications("/hook").len(),
        1,
        "one attempt, not retried"
    );

    // The emulator lists and redelivers it through the same sink; the blob is then deleted.
    let admin = AdminClient::new(&base);
    let mut listed: Vec<DeadLetterBlob> = admin
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.blob)
        .collect();
    assert!(
        listed[0].written_at.take().is_some(),
        "the blob's Last-Modified: {listed:?}"
    );
    assert_eq!(
        listed,
        [DeadLetterBlob {
            container: "dead-letters".into(),
            name: names[0].clone(),
            subscription: "REFUSING-HOOK".into(),
            written_at: None,
        }]
    );
    admin
        .redeliver(&RedeliverRequest {
            subscription: Some("Refusing-Hook".into()),
            ..RedeliverRequest::default()
        })
        .await
        .unwrap();
    eventually_async("the redelivery to arrive", Duration::from_secs(30), || {
        let received = &received;
        async move { (received.notifications("/hook").len() >= 2).then_some(()) }
    })
    .await;
    assert_eq!(
        received.notifications("/hook")[1].json()[0]["id"],
        "dl-blob-1"
    );
    let remaining: Vec<String> = container
        .list_blobs(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|b| b.name)
        .collect();
    assert!(
        !remaining.contains(&names[0]),
        "the redelivered blob is deleted: {remaining:?}"
    );

    stop.cancel();
    running.await.unwrap().unwrap();
}

/// A TCP proxy in front of Azurite that can swallow the next answer: it forwards the request,
/// and when the answer comes back, closes the client's connection instead of passing it on (a
/// write that landed, whose answer was lost).
struct LossyProxy {
    port: u16,
    drop_next_answer: Arc<std::sync::atomic::AtomicBool>,
}

impl LossyProxy {
    async fn start(upstream_port: u16) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let drop_next_answer = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = drop_next_answer.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(upstream) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut upstream_read, mut upstream_write) = upstream.into_split();
                    let requests = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match upstream_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if flag.swap(false, Ordering::SeqCst) {
                            break; // the answer is lost: drop the connection
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    requests.abort();
                });
            }
        });
        Self {
            port,
            drop_next_answer,
        }
    }

    fn lose_next_answer(&self) {
        self.drop_next_answer
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_is_still_reported_as_its_own_on_retry() {
    use ordergrid::store::{Created, Replaced};
    let azurite = Azurite::start().await;
    let port = azurite.port();
    let proxy = LossyProxy::start(port).await;
    let through_proxy = azurite
        .connection_string()
        .replace(&format!(":{port}/"), &format!(":{}/", proxy.port));
    let connection =
        ordergrid::blob::BlobConnection::parse_connection_string(&through_proxy).unwrap();
    let store = BlobStore::open(&connection, BlobTiming::default())
        .await
        .unwrap();
    let key = RecordKey::new(Collection::Orders, "lost-answer").unwrap();

    // The PUT lands, its 201 is lost, the SDK retries and gets 409: still our create.
    proxy.lose_next_answer();
    let Created::Created(etag) = store
        .create(&key, bytes::Bytes::from_static(b"mine"))
        .await
        .unwrap()
    else {
        panic!("the create that landed is reported as created, not as an existing record")
    };
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!((stored.body.as_ref(), &stored.etag), (&b"mine"[..], &etag));

    // Same for a replace: the retry's 412 finds our own write.
    proxy.lose_next_answer();
    let Replaced::Replaced(next) = store
        .replace(&key, bytes::Bytes::from_static(b"mine too"), &etag)
        .await
        .unwrap()
    else {
        panic!("the replace that landed is reported as replaced, not as a conflict")
    };
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (stored.body.as_ref(), &stored.etag),
        (&b"mine too"[..], &next)
    );
}
