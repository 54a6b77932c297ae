//! Nothing the emulator acknowledges is dropped. Random and adversarial events
//! (deep nesting, numbers beyond `f64`, unicode, long strings, odd types in filtered keys) are
//! published; every event answered 200 must end up delivered to every subscription whose filter
//! matches it (with its `data` byte for byte as sent) or dead-lettered there, and nowhere else;
//! every refusal must be for a reason the event really has; the counters must add up.
//!
//! The filters' verdicts come from an oracle written here, independent of `emulator::filter`:
//! each filtered value is drawn from a pool that says whether it matches.

use std::collections::{BTreeMap, BTreeSet};

use ordergrid_testing::receiver::{Receiver, Reply};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;
use serde_json::value::RawValue;

use crate::harness::*;

/// Values a filtered key takes, each with whether the subscription's filter matches it.
type Pool = &'static [(&'static str, bool)];

/// `data.amount` values for `NumberGreaterThanOrEquals 100` (arrays not enabled): text, matches.
const AMOUNTS: Pool = &[
    ("100", true),
    ("1e2", true),
    ("1E+2", true),
    ("100.000000000000000000001", true),
    ("99.99999999999999999999999", false),
    ("1e309", true),
    ("-1e309", false),
    ("1e-400", false),
    ("123456789012345678901234567890", true),
    ("-0", false),
    ("\"100\"", false),
    ("true", false),
    ("[100,200]", false),
    ("null", false),
    ("{\"v\":100}", false),
];

/// `data.tier` values for `StringIn ["gold"]` with arrays enabled.
const TIERS: Pool = &[
    ("\"gold\"", true),
    ("\"GOLD\"", true),
    ("\"golden\"", false),
    ("[\"silver\",\"Gold\"]", true),
    ("[[\"gold\"]]", false),
    ("[1,{\"gold\":1}]", false),
    ("5", false),
    ("null", false),
    ("\"g\\u006fld\"", true),
];

/// `data.flag` values for `BoolEquals true` with arrays enabled.
const FLAGS: Pool = &[
    ("true", true),
    ("false", false),
    ("\"true\"", false),
    ("1", false),
    ("[false,true]", true),
    ("[]", false),
    ("null", false),
];

const EVENT_TYPES: &[&str] = &["NewOrder", "neworder", "Other", "ÑewOrder", "New Order"];
const SUBJECTS: &[&str] = &[
    "orders/1",
    "ORDERS/abc",
    "other/orders/",
    "orders",
    "órders/x",
];

/// One generated event: what the oracle needs to know about it, and its `data` text.
#[derive(Debug, Clone)]
struct Generated {
    event_type: usize,
    subject: usize,
    amount: Option<usize>,
    tier: Option<usize>,
    flag: Option<usize>,
    /// The rest of `data`: arbitrary JSON, and how deep it nests.
    payload: (String, usize),
}

impl Generated {
    fn data(&self) -> String {
        let mut members = vec![format!("\"payload\":{}", self.payload.0)];
        let pools: [(&str, Option<usize>, Pool); 3] = [
            ("amount", self.amount, AMOUNTS),
            ("tier", self.tier, TIERS),
            ("flag", self.flag, FLAGS),
        ];
        for (name, choice, pool) in pools {
            if let Some(i) = choice {
                members.push(format!("\"{name}\":{}", pool[i].0));
            }
        }
        // Compact, as sent; the emulator must deliver it unchanged.
        format!("{{{}}}", members.join(","))
    }

    /// Levels the event nests: the event object, `data`, then the payload.
    fn depth(&self) -> usize {
        // A string payload is generated with serde_json, so it holds no brackets of its own.
        2 + self.payload.1
    }

    fn matches(&self, subscription: &str) -> bool {
        let hit = |choice: Option<usize>, pool: Pool| choice.is_some_and(|i| pool[i].1);
        match subscription {
            "all" | "flaky" | "batched" => true,
            "typed" => {
                EVENT_TYPES[self.event_type].to_lowercase() == "neworder"
                    && SUBJECTS[self.subject].to_lowercase().starts_with("orders/")
            }
            "big" => hit(self.amount, AMOUNTS),
            "tier" => hit(self.tier, TIERS),
            "flag" => hit(self.flag, FLAGS),
            other => unreachable!("no subscription {other}"),
        }
    }
}

/// Arbitrary JSON text with its nesting depth: unicode and long strings, numbers of every size,
/// sometimes nested far beyond what Event Grid accepts.
fn payload() -> impl Strategy<Value = (String, usize)> {
    let number = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,5})?",
    ];
    let string = prop_oneof![
        "\\PC{0,24}",
        "[\\u{0}-\\u{1f}\"\\\\]{0,8}",
        "\\PC{2000,4000}",
    ]
    .prop_map(|s| serde_json::to_string(&s).unwrap());
    let leaf = prop_oneof![
        Just(("null".to_owned(), 0)),
        any::<bool>().prop_map(|b| (b.to_string(), 0)),
        number.prop_map(|n| (n, 0)),
        string.prop_map(|s| (s, 0)),
        Just(("\"\\ud800 lone\"".to_owned(), 0)),
    ];
    let tree = leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| {
                let depth = 1 + items.iter().map(|(_, d)| *d).max().unwrap_or(0);
                let texts: Vec<String> = items.into_iter().map(|(t, _)| t).collect();
                (format!("[{}]", texts.join(",")), depth)
            }),
            prop::collection::vec(("\\PC{0,8}", inner), 0..5).prop_map(|members| {
                let depth = 1 + members.iter().map(|(_, (_, d))| *d).max().unwrap_or(0);
                let texts: Vec<String> = members
                    .into_iter()
                    .map(|(k, (t, _))| format!("{}:{t}", serde_json::to_string(&k).unwrap()))
                    .collect();
                (format!("{{{}}}", texts.join(",")), depth)
            }),
        ]
    });
    // Now and then, wrapped in enough arrays to come near or past the limit.
    (tree, prop_oneof![8 => Just(0usize), 1 => 55usize..70]).prop_map(|((text, depth), wrap)| {
        (
            format!("{}{text}{}", "[".repeat(wrap), "]".repeat(wrap)),
            depth + wrap,
        )
    })
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        0..EVENT_TYPES.len(),
        0..SUBJECTS.len(),
        prop::option::of(0..AMOUNTS.len()),
        prop::option::of(0..TIERS.len()),
        prop::option::of(0..FLAGS.len()),
        payload(),
    )
        .prop_map(
            |(event_type, subject, amount, tier, flag, payload)| Generated {
                event_type,
                subject,
                amount,
                tier,
                flag,
                payload,
            },
        )
}

/// How deep an event may nest (the emulator's `json::MAX_EVENT_DEPTH`, restated so this test
/// needs nothing of the emulator's to read what it delivers).
const MAX_EVENT_DEPTH: usize = 63;

/// The id and the text of `data` of each event in a delivery or dead-letter blob (a JSON array).
/// serde_json's raw values keep numbers as sent and have no nesting limit.
fn ids_and_data(body: &[u8]) -> Vec<(String, String)> {
    let events: Vec<BTreeMap<String, Box<RawValue>>> =
        serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "not an array of events ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
    events
        .iter()
        .map(|event| {
            let id: String = serde_json::from_str(event["id"].get()).unwrap();
            (
                id,
                event
                    .get("data")
                    .map(|d| d.get().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_acknowledged_event_is_delivered_or_dead_lettered_where_it_matches() {
    let receiver = Receiver::start().await;
    receiver.always("/tier", Reply::Status(500));
    receiver.always("/flag", Reply::Status(400));
    receiver.reply("/flaky", vec![Reply::Status(500); 4], Reply::Status(200));
    let mut typed = webhook("typed", &receiver.url("/typed"));
    typed["filter"] = json!({"includedEventTypes": ["NewOrder"], "subjectBeginsWith": "orders/"});
    let mut big = webhook("big", &receiver.url("/big"));
    big["filter"] = json!({"advancedFilters": [
        {"operatorType": "NumberGreaterThanOrEquals", "key": "data.amount", "value": 100}
    ]});
    let mut tier = dead_lettered(webhook("tier", &receiver.url("/tier")), "dead-letters", 2);
    tier["filter"] = json!({"enableAdvancedFilteringOnArrays": true, "advancedFilters": [
        {"operatorType": "StringIn", "key": "Data.Tier", "values": ["gold"]}
    ]});
    let mut flag = dead_lettered(webhook("flag", &receiver.url("/flag")), "dead-letters", 30);
    flag["filter"] = json!({"enableAdvancedFilteringOnArrays": true, "advancedFilters": [
        {"operatorType": "BoolEquals", "key": "data.flag", "value": true}
    ]});
    let mut batched = webhook("batched", &receiver.url("/batched"));
    batched["destination"]["properties"]["maxEventsPerBatch"] = json!(7);
    let subscriptions = [
        webhook("all", &receiver.url("/all")),
        webhook("flaky", &receiver.url("/flaky")),
        batched,
        typed,
        big,
        tier,
        flag,
    ];
    let names: Vec<String> = subscriptions
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let emulator = Setup::new(file(vec![topic("orders", subscriptions.to_vec())]))
        .start()
        .await;
    for name in &names {
        emulator.wait_for_validation(name, "succeeded").await;
    }

    let mut runner = TestRunner::default();
    let batches = prop::collection::vec(prop::collection::vec(generated(), 1..6), 40);
    let batches = batches.new_tree(&mut runner).unwrap().current();
    let mut accepted: BTreeMap<String, Generated> = BTreeMap::new();
    let mut refused = 0;
    for (b, batch) in batches.iter().enumerate() {
        let texts: Vec<String> = batch
            .iter()
            .enumerate()
            .map(|(i, g)| {
                format!(
                    r#"{{"id":"e{b}-{i}","eventType":{},"subject":{},"eventTime":"{}","data":{},"dataVersion":"1.0"}}"#,
                    serde_json::to_string(EVENT_TYPES[g.event_type]).unwrap(),
                    serde_json::to_string(SUBJECTS[g.subject]).unwrap(),
                    now_rfc3339(),
                    g.data()
                )
            })
            .collect();
        let body = format!("[{}]", texts.join(","));
        let response = emulator
            .publish_request("orders")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let message = response.text().await.unwrap();
        let too_deep = batch.iter().any(|g| g.depth() > MAX_EVENT_DEPTH);
        if too_deep {
            assert_eq!(
                status, 400,
                "a batch nesting too deeply was answered {status}: {message}"
            );
            assert!(message.contains("nests too deeply"), "{message}");
            refused += 1;
        } else {
            assert_eq!(status, 200, "a valid batch was refused: {message}\n{body}");
            for (i, g) in batch.iter().enumerate() {
                accepted.insert(format!("e{b}-{i}"), g.clone());
            }
        }
    }
    assert!(
        !accepted.is_empty(),
        "nothing was accepted ({refused} refused)"
    );
    eprintln!(
        "{} events accepted, {refused} batches refused",
        accepted.len()
    );

    let expected = |name: &str| -> BTreeSet<String> {
        accepted
            .iter()
            .filter(|(_, g)| g.matches(name))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let delivered = |path: &str| -> Vec<(String, String)> {
        receiver
            .to(path)
            .iter()
            .filter(|r| r.is_notification() && r.succeeded())
            .flat_map(|r| ids_and_data(&r.body))
            .collect()
    };
    let dead_lettered = || -> BTreeMap<String, BTreeSet<String>> {
        let mut by_subscription: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in emulator.dead_letter_files() {
            let blob = std::fs::read(emulator.dead_letter_dir.join(&file)).unwrap();
            let subscription = file.iter().nth(1).unwrap().to_str().unwrap().to_lowercase();
            by_subscription
                .entry(subscription)
                .or_default()
                .extend(ids_and_data(&blob).into_iter().map(|(id, _)| id));
        }
        by_subscription
    };
    for name in ["all", "flaky", "batched", "typed", "big"] {
        let want = expected(name);
        let got = eventually_async(
            &format!("{} events delivered to {name}", want.len()),
            PATIENCE,
            async || {
                let got: BTreeSet<String> = delivered(&format!("/{name}"))
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                (got.len() >= want.len()).then_some(got)
            },
        )
        .await;
        assert_eq!(got, want, "{name} got other events than its filter matches");
        eprintln!("{name}: {} delivered", got.len());
        for (id, data) in delivered(&format!("/{name}")) {
            assert_eq!(data, accepted[&id].data(), "{name} got {id}'s data changed");
        }
    }
    for name in ["tier", "flag"] {
        let want = expected(name);
        let got = eventually_async(
            &format!("{} events dead-lettered by {name}", want.len()),
            PATIENCE,
            async || {
                let got = dead_lettered().remove(name).unwrap_or_default();
                (got.len() >= want.len()).then_some(got)
            },
        )
        .await;
        assert_eq!(
            got, want,
            "{name} dead-lettered other events than its filter matches"
        );
        eprintln!("{name}: {} dead-lettered", got.len());
    }
    for name in &names {
        let want = expected(name).len() as u64;
        let counters = eventually_async(
            &format!("{name}'s counters to settle"),
            PATIENCE,
            async || {
                let c = emulator.counters(name).await;
                let settled = c.delivered + c.dead_lettered;
                (settled >= want).then_some(c)
            },
        )
        .await;
        assert_eq!(counters.matched, want, "{name}: {counters:?}");
        assert_eq!(
            counters.delivered + counters.dead_lettered,
            want,
            "{name}: every matched event is delivered or dead-lettered once: {counters:?}"
        );
        assert_eq!(counters.dropped, 0, "{name}: {counters:?}");
    }
    assert!(emulator.retries().await.is_empty());
}
