//! Memory under bursts (issue 14): thousands of concurrent publishes, then many large but legal
//! bodies at once, against `ordergrid emulator` as a process (its RSS read from /proc). What a
//! burst allocates is bounded while it lasts and returned after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use ordergrid_testing::bench::status_mib;
use ordergrid_testing::receiver::Receiver;
use serde_json::json;

use crate::harness::{Installation, PATIENCE, event, eventually_async, hook_file};

/// What this test allows the emulator's resident memory to grow by, over its idle size, while
/// bursts arrive and once they are over. The design's bound while they arrive: the publish
/// buffer (`ORDERGRID_EMULATOR_PUBLISH_BUFFER`, 64 MiB) and what is in flight to the webhook
/// (`ORDERGRID_EMULATOR_CONCURRENCY`, 64, times 900 KiB), each held about twice over (the body
/// and the event made of it, the delivery and its send buffer): some 240 MiB, whatever the
/// burst's size. Measured (30 Nov 2026, mimalloc for small blocks, glibc for large ones, and the
/// spool's window of recent events): 98 to 148 MiB over idle at the peak, 23 to 28 MiB after
/// (the window keeps up to 16 MiB of the last bodies until an idle emulator ages it out).
const PEAK_GROWTH_MIB: u64 = 320;
/// Bodies of 900 KiB in the second burst: 440 MiB.
const LARGE_BURST: usize = 500;
const AFTER_GROWTH_MIB: u64 = 64;

fn rss_kib(pid: u32) -> u64 {
    (status_mib(pid, "VmRSS").unwrap_or(0.0) * 1024.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_publishes_and_large_bodies_leave_memory_bounded() {
    let receiver = Receiver::start().await;
    let install = Installation::new(&hook_file(&receiver), 1.0);
    let emulator = install.start().await;
    let pid = emulator.process.pid();
    let key = &install.key;
    let url = format!("{}/orders/api/events?api-version=2018-01-01", emulator.base);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let publish = |body: String| {
        client
            .post(&url)
            .header("aeg-sas-key", key.expose_secret())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Warm up, then the idle size.
    for i in 0..20 {
        let answer =
            publish(json!([event(&format!("w-{i}"), "NewOrder", json!({"n": i}))]).to_string())
                .await;
        assert_eq!(answer.unwrap().status(), 200);
    }
    let idle = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(idle));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    // 2,000 small publishes at once.
    let small = join_all((0..2_000).map(|i| {
        publish(json!([event(&format!("s-{i}"), "NewOrder", json!({"n": i}))]).to_string())
    }))
    .await;
    assert!(
        small
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.status() == 200))
    );
    // Bodies of 900 KiB (one event whose data is a long string) at once: a burst of 100, then one
    // of 500 (440 MiB, more than the bound below). Each is accepted whole and delivered before the
    // next.
    let filler = "x".repeat(900 * 1024);
    let mut delivered = 2_020;
    let mut peaks = Vec::new();
    for (burst, size) in [(0, 100), (1, LARGE_BURST)] {
        let large = join_all((0..size).map(|i| {
            publish(
                json!([event(
                    &format!("l-{burst}-{i}"),
                    "NewOrder",
                    json!({"pad": filler})
                )])
                .to_string(),
            )
        }))
        .await;
        assert!(
            large
                .iter()
                .all(|a| a.as_ref().is_ok_and(|a| a.status() == 200)),
            "large but legal bodies are accepted"
        );
        delivered += size;
        eventually_async("every event delivered", PATIENCE, async || {
            (receiver.delivered_ids("/hook").len() >= delivered).then_some(())
        })
        .await;
        peaks.push(peak.load(Ordering::Relaxed));
    }
    sampler.abort();
    // Given back once the runtime's workers collect (each at most once a second when it runs
    // out of work; `allocator` in src/main.rs).
    let after = eventually_async("memory given back after the bursts", PATIENCE, async || {
        let rss = rss_kib(pid);
        (rss.saturating_sub(idle) < AFTER_GROWTH_MIB * 1024).then_some(rss)
    })
    .await;
    let mib = |kib: u64| kib / 1024;
    println!(
        "memory: idle {} MiB; peak {} MiB after 100 large bodies, {} MiB after {LARGE_BURST} more; {} MiB after",
        mib(idle),
        mib(peaks[0]),
        mib(peaks[1]),
        mib(after)
    );
    // Bounded: the large burst's bodies alone are more than the bound, so staying under it means
    // they were never all held at once.
    assert!(LARGE_BURST as u64 * 900 / 1024 > PEAK_GROWTH_MIB);
    assert!(
        peaks[1] - idle < PEAK_GROWTH_MIB * 1024,
        "peak grew by {} MiB",
        mib(peaks[1] - idle)
    );
}
