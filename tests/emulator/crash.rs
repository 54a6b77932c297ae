//! Crash safety of the real binary: `ordergrid emulator` is killed with SIGKILL mid-stream and
//! restarted on the same data folder. Every acknowledged event is still delivered (duplicates
//! allowed, and counted), and pending retries keep their attempt count and schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use ordergrid_testing::receiver::{Receiver, Reply};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::harness::{
    Installation, PATIENCE, dead_lettered, event, eventually_async, file, publish, topic, webhook,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_acknowledged_event() {
    const EVENTS: usize = 2000;
    const BATCH: usize = 20;
    let receiver = Receiver::start().await;
    let install = Installation::new(
        &file(vec![topic(
            "orders",
            vec![webhook("sink", &receiver.url("/sink"))],
        )]),
        0.001,
    );
    let client = reqwest::Client::new();
    let batches: Vec<Vec<Value>> = (0..EVENTS)
        .map(|i| event(&format!("k-{i:04}"), "NewOrder", json!({"n": i})))
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[Value]>::to_vec)
        .collect();

    let mut emulator = install.start().await;
    let mut acknowledged = BTreeSet::new();
    let mut killed_after = None;
    {
        let base = emulator.base.clone();
        let mut in_flight = futures::stream::iter(batches.iter().enumerate())
            .map(|(i, batch)| {
                let (client, base, key) = (client.clone(), base.clone(), install.key.clone());
                async move { (i, publish(&client, &base, &key, batch).await) }
            })
            .buffer_unordered(4);
        while let Some((i, status)) = in_flight.next().await {
            if status == 200 {
                acknowledged.insert(i);
            }
            if killed_after.is_none() && acknowledged.len() >= batches.len() / 3 {
                emulator.kill_9(); // mid-stream: publishes and deliveries in flight
                killed_after = Some(acknowledged.len());
            }
        }
    }
    let killed_after = killed_after.expect("the emulator was never killed");
    assert!(
        acknowledged.len() < batches.len(),
        "the kill landed after the stream ended"
    );

    let restarted = install.start().await;
    // The publisher retries what was not acknowledged, as a real one would.
    for (i, batch) in batches.iter().enumerate() {
        if !acknowledged.contains(&i) {
            assert_eq!(
                publish(&client, &restarted.base, &install.key, batch).await,
                200
            );
        }
    }
    let expected: BTreeSet<String> = batches
        .iter()
        .flatten()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let acknowledged_before_kill: BTreeSet<String> = acknowledged
        .iter()
        .flat_map(|&i| &batches[i])
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    eventually_async(
        "every acknowledged event at the receiver",
        Duration::from_secs(60),
        async || {
            let delivered: BTreeSet<String> = receiver.delivered_ids("/sink").into_iter().collect();
            expected.is_subset(&delivered).then_some(())
        },
    )
    .await;
    let delivered = receiver.delivered_ids("/sink");
    let unique: BTreeSet<&String> = delivered.iter().collect();
    let duplicates = delivered.len() - unique.len();
    // Only an event acknowledged before the kill was published exactly once, so only its
    // duplicates are the emulator's own replays. A batch whose 200 the kill swallowed may have
    // been durable, and partly delivered, already; the publisher's retry is then a second publish
    // of the same ids, which the emulator accepts and delivers again (it does not de-duplicate
    // by id, and Event Grid documents no such de-duplication either).
    let replayed_acknowledged = delivered
        .iter()
        .filter(|id| acknowledged_before_kill.contains(*id))
        .count()
        .saturating_sub(acknowledged_before_kill.len());
    let missing: Vec<&String> = acknowledged_before_kill
        .iter()
        .filter(|id| !unique.contains(id))
        .collect();
    let counters = restarted.subscriptions().await[0].counters;
    let report = format!(
        "{} of {EVENTS} events acknowledged before the kill ({} batches by the time of the \
         kill); {} deliveries, {duplicates} duplicates ({replayed_acknowledged} of events \
         acknowledged before the kill); replayed after restart: {}",
        acknowledged_before_kill.len(),
        killed_after,
        delivered.len(),
        counters.replayed_after_restart
    );
    assert!(missing.is_empty(), "lost {missing:?}; {report}");
    assert!(
        unique.iter().all(|id| expected.contains(*id)),
        "delivered an event nobody published; {report}"
    );
    assert!(
        replayed_acknowledged as u64 <= counters.replayed_after_restart,
        "more duplicates than the emulator owns up to; {report}"
    );
    println!("crash test: {report}");
}

/// Counts the durable `pending` records with `attempts` in the spool's state journal. The one
/// white-box look in these tests: it tells the test when the state it wants to crash on has
/// reached the file (a SIGKILL loses nothing the process has written), instead of guessing with
/// a sleep.
fn pending_records_with_attempts(data: &Path, attempts: u32) -> usize {
    let needle = format!("\"attempts\":{attempts},");
    let dir = data.join("spool/state");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let bytes = std::fs::read(e.path()).unwrap_or_default();
                    bytes
                        .windows(needle.len())
                        .filter(|w| *w == needle.as_bytes())
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_retries_and_their_schedule_survive_kill_9() {
    const EVENTS: usize = 5;
    // Scaled by 0.05, Azure's waits are 0.5 s before the second attempt and 1.5 s before the
    // third: time enough to kill and restart in between.
    let receiver = Receiver::start().await;
    receiver.always("/flaky", Reply::Status(500));
    let install = Installation::new(
        &file(vec![topic(
            "orders",
            vec![dead_lettered(
                webhook("flaky", &receiver.url("/flaky")),
                "dead-letters",
                30,
            )],
        )]),
        0.05,
    );
    let client = reqwest::Client::new();
    let mut emulator = install.start().await;
    let sent: Vec<Value> = (0..EVENTS)
        .map(|i| event(&format!("p-{i}"), "NewOrder", json!({"n": i})))
        .collect();
    assert_eq!(
        publish(&client, &emulator.base, &install.key, &sent).await,
        200
    );

    // Two failed attempts each, recorded in the state journal.
    let before: BTreeMap<String, (u32, String)> = eventually_async(
        "every event pending after its 2nd attempt",
        PATIENCE,
        async || {
            let pending = emulator.retries().await;
            let view: BTreeMap<String, (u32, String)> = pending
                .into_iter()
                .filter(|p| p.attempts == 2)
                .map(|p| (p.event_id.unwrap(), (2, p.due)))
                .collect();
            (view.len() == EVENTS && pending_records_with_attempts(&install.data(), 2) >= EVENTS)
                .then_some(view)
        },
    )
    .await;
    let counts_before: Vec<u32> = receiver
        .notifications("/flaky")
        .iter()
        .map(|r| r.delivery_count())
        .collect();
    assert_eq!(counts_before.iter().max(), Some(&1), "{counts_before:?}");

    emulator.kill_9();
    let attempts_before_kill = receiver.notifications("/flaky").len();
    let restarted = install.start().await;
    let pending = restarted.retries().await;
    let after: BTreeMap<String, (u32, String)> = pending
        .into_iter()
        .map(|p| (p.event_id.unwrap(), (p.attempts, p.due)))
        .collect();
    assert_eq!(after, before, "the pending retries after the restart");

    receiver.always("/flaky", Reply::Status(200));
    eventually_async(
        "every event delivered after the restart",
        PATIENCE,
        async || (receiver.delivered("/flaky").len() >= EVENTS).then_some(()),
    )
    .await;
    let after_restart = receiver
        .notifications("/flaky")
        .split_off(attempts_before_kill);
    for (id, (_, due)) in &before {
        let attempts: Vec<_> = after_restart
            .iter()
            .filter(|r| r.ids() == [id.clone()])
            .collect();
        let first = attempts
            .first()
            .unwrap_or_else(|| panic!("{id} not retried"));
        assert_eq!(
            first.delivery_count(),
            2,
            "{id}: the delivery count continues after the restart"
        );
        let due = OffsetDateTime::parse(due, &Rfc3339).unwrap();
        assert!(
            first.received >= due - time::Duration::milliseconds(2),
            "{id} was retried at {}, before it was due at {due}",
            first.received
        );
        assert!(attempts.last().unwrap().succeeded(), "{id}");
    }
}

#[tokio::test]
async fn a_graceful_restart_delivers_nothing_twice_and_keeps_counters_and_retries() {
    let receiver = Receiver::start().await;
    receiver.always("/later", Reply::Status(500));
    // At Azure's own timing the retries stay pending across the restart.
    let emulator = crate::harness::Setup::new(file(vec![topic(
        "orders",
        vec![
            webhook("hook", &receiver.url("/hook")),
            webhook("later", &receiver.url("/later")),
        ],
    )]))
    .time_scale(1.0)
    .start()
    .await;
    let sent: Vec<Value> = (0..3)
        .map(|i| event(&format!("g-{i}"), "NewOrder", json!({})))
        .collect();
    emulator.publish_ok("orders", &sent).await;
    let counters = emulator.wait_for_counter("hook", "delivered", 3).await;
    let retries = eventually_async("three pending retries", PATIENCE, async || {
        let pending = emulator.retries().await;
        (pending.len() == 3).then_some(pending)
    })
    .await;

    let emulator = emulator.restart().await;
    assert_eq!(
        emulator.counters("hook").await,
        counters,
        "counters survive a restart"
    );
    assert_eq!(emulator.retries().await, retries);
    emulator
        .publish_ok("orders", &[event("g-3", "NewOrder", json!({}))])
        .await;
    emulator.wait_for_counter("hook", "delivered", 4).await;
    let ids: Vec<String> = receiver
        .notifications("/hook")
        .iter()
        .flat_map(|r| r.ids())
        .collect();
    assert_eq!(ids.len(), 4, "nothing delivered twice: {ids:?}");
    // "later" tries the new event once; the three retries are not due for seconds.
    emulator.wait_for_counter("later", "retried", 4).await;
    assert_eq!(
        receiver.notifications("/later").len(),
        4,
        "no retry ran early"
    );
}
