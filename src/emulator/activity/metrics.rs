//! Counts and delivery latency over time, as the portal's charts show them: [`BUCKETS`] buckets
//! of `bucket_ms` each, per topic (published, unmatched, publish failed) and per subscription
//! (delivered, failed attempts, dead-lettered, and a latency histogram from which p50 and p99
//! are read).
//!
//! Bounds: `(topics + subscriptions) × BUCKETS` buckets, each a few counters and, for
//! subscriptions, [`BINS`] `u32`s: a few hundred KB for a hundred subscriptions. A latency is
//! binned on a √2 scale from 0.1 ms, so a percentile is read as its bin's upper edge (at most
//! 41 % above the true value), which is what a chart needs.

use serde::{Deserialize, Serialize};

/// The width of a bucket: the portal's charts' finest grain is a minute; locally, runs are short.
pub const BUCKET_MS: i64 = 10_000;
/// Buckets kept per series (with 10 s buckets, the last 10 minutes).
pub const BUCKETS: usize = 60;
/// Latency bins: 0.1 ms × √2^i, the last open-ended (past ~20 minutes).
pub const BINS: usize = 48;

#[derive(Clone, Default)]
struct TopicBucket {
    start_ms: i64,
    published: u32,
    unmatched: u32,
    publish_failed: u32,
}

#[derive(Clone)]
struct SubscriptionBucket {
    start_ms: i64,
    delivered: u32,
    failed: u32,
    dead_lettered: u32,
    latency: [u32; BINS],
}

impl Default for SubscriptionBucket {
    fn default() -> Self {
        Self {
            start_ms: 0,
            delivered: 0,
            failed: 0,
            dead_lettered: 0,
            latency: [0; BINS],
        }
    }
}

pub struct Metrics {
    bucket_ms: i64,
    topics: Vec<(String, Vec<TopicBucket>)>,
    subscriptions: Vec<Vec<SubscriptionBucket>>,
}

/// One bucket of a topic's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicPoint {
    pub start_ms: i64,
    pub published: u32,
    pub unmatched: u32,
    pub publish_failed: u32,
}

/// One bucket of a subscription's series; latencies in milliseconds, absent without attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPoint {
    pub start_ms: i64,
    pub delivered: u32,
    pub failed: u32,
    pub dead_lettered: u32,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Every series, oldest bucket first, ending with the current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub bucket_ms: i64,
    pub topics: Vec<(String, Vec<TopicPoint>)>,
    pub subscriptions: Vec<Vec<SubscriptionPoint>>,
}

fn bin(ms: f64) -> usize {
    if ms <= 0.1 {
        return 0;
    }
    // log base √2 of ms / 0.1
    let i = ((ms / 0.1).log2() * 2.0).ceil();
    (i as usize).min(BINS - 1)
}

fn bin_upper(i: usize) -> f64 {
    0.1 * 2f64.powf(i as f64 / 2.0)
}

fn percentile(bins: &[u32; BINS], p: f64) -> Option<f64> {
    let total: u64 = bins.iter().map(|n| u64::from(*n)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, n) in bins.iter().enumerate() {
        seen += u64::from(*n);
        if seen >= rank {
            return Some((bin_upper(i) * 100.0).round() / 100.0);
        }
    }
    None
}

/// The bucket for `at_ms` in a ring, reset when it last held an older period.
fn slot<B: Default + HasStart>(ring: &mut [B], bucket_ms: i64, at_ms: i64) -> Option<&mut B> {
    let period = at_ms.div_euclid(bucket_ms);
    let index = period.rem_euclid(ring.len() as i64) as usize;
    let b = &mut ring[index];
    let begins = period * bucket_ms;
    if b.start() < begins {
        *b = B::default();
        b.set_start(begins);
    } else if b.start() > begins {
        return None; // older than the ring holds
    }
    Some(b)
}

trait HasStart {
    fn start(&self) -> i64;
    fn set_start(&mut self, ms: i64);
}

impl HasStart for TopicBucket {
    fn start(&self) -> i64 {
        self.start_ms
    }

    fn set_start(&mut self, ms: i64) {
        self.start_ms = ms;
    }
}

impl HasStart for SubscriptionBucket {
    fn start(&self) -> i64 {
        self.start_ms
    }

    fn set_start(&mut self, ms: i64) {
        self.start_ms = ms;
    }
}

impl Metrics {
    pub fn new(topics: Vec<String>, subscriptions: usize, bucket_ms: i64) -> Self {
        Self {
            bucket_ms: bucket_ms.max(1),
            topics: topics
                .into_iter()
                .map(|t| (t, vec![TopicBucket::default(); BUCKETS]))
                .collect(),
            subscriptions: vec![vec![SubscriptionBucket::default(); BUCKETS]; subscriptions],
        }
    }

    fn topic(&mut self, topic: &str, at_ms: i64) -> Option<&mut TopicBucket> {
        let bucket_ms = self.bucket_ms;
        let (_, ring) = self.topics.iter_mut().find(|(t, _)| t == topic)?;
        slot(ring, bucket_ms, at_ms)
    }

    fn subscription(&mut self, index: u16, at_ms: i64) -> Option<&mut SubscriptionBucket> {
        let bucket_ms = self.bucket_ms;
        let ring = self.subscriptions.get_mut(index as usize)?;
        slot(ring, bucket_ms, at_ms)
    }

    pub fn published(&mut self, topic: &str, at_ms: i64, unmatched: bool) {
        if let Some(b) = self.topic(topic, at_ms) {
            b.published += 1;
            b.unmatched += u32::from(unmatched);
        }
    }

    pub fn publish_failed(&mut self, topic: &str, at_ms: i64) {
        if let Some(b) = self.topic(topic, at_ms) {
            b.publish_failed += 1;
        }
    }

    pub fn attempted(
        &mut self,
        subscription: u16,
        at_ms: i64,
        latency_ms: f64,
        failed: bool,
        events: usize,
    ) {
        if let Some(b) = self.subscription(subscription, at_ms) {
            if failed {
                b.failed += 1;
            } else {
                b.delivered += events as u32;
            }
            b.latency[bin(latency_ms)] += 1;
        }
    }

    pub fn dead_lettered(&mut self, subscription: u16, at_ms: i64, events: usize) {
        if let Some(b) = self.subscription(subscription, at_ms) {
            b.dead_lettered += events as u32;
        }
    }

    pub fn series(&self, now_ms: i64) -> Series {
        let current = now_ms.div_euclid(self.bucket_ms);
        let starts: Vec<i64> = (0..BUCKETS as i64)
            .rev()
            .map(|back| (current - back) * self.bucket_ms)
            .collect();
        let find = |start: i64, ring_start: i64| ring_start == start;
        Series {
            bucket_ms: self.bucket_ms,
            topics: self
                .topics
                .iter()
                .map(|(name, ring)| {
                    let points = starts
                        .iter()
                        .map(|&s| {
                            let b = ring.iter().find(|b| find(s, b.start_ms));
                            TopicPoint {
                                start_ms: s,
                                published: b.map_or(0, |b| b.published),
                                unmatched: b.map_or(0, |b| b.unmatched),
                                publish_failed: b.map_or(0, |b| b.publish_failed),
                            }
                        })
                        .collect();
                    (name.clone(), points)
                })
                .collect(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|ring| {
                    starts
                        .iter()
                        .map(|&s| match ring.iter().find(|b| find(s, b.start_ms)) {
                            Some(b) => SubscriptionPoint {
                                start_ms: s,
                                delivered: b.delivered,
                                failed: b.failed,
                                dead_lettered: b.dead_lettered,
                                p50_ms: percentile(&b.latency, 0.5),
                                p99_ms: percentile(&b.latency, 0.99),
                            },
                            None => SubscriptionPoint {
                                start_ms: s,
                                delivered: 0,
                                failed: 0,
                                dead_lettered: 0,
                                p50_ms: None,
                                p99_ms: None,
                            },
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_from_the_bins_upper_edges() {
        let mut m = Metrics::new(vec!["t".into()], 1, 1000);
        for i in 0..99 {
            m.attempted(0, 5_000, 1.0 + f64::from(i) * 0.001, false, 1);
        }
        m.attempted(0, 5_100, 500.0, false, 1);
        let series = m.series(5_500);
        let last = series.subscriptions[0].last().unwrap();
        assert_eq!(last.delivered, 100);
        let p50 = last.p50_ms.unwrap();
        assert!((1.0..=1.42).contains(&p50), "{p50}");
        let p99 = last.p99_ms.unwrap();
        assert!((1.0..=1.42).contains(&p99), "{p99}");
        assert!(
            series.subscriptions[0][..BUCKETS - 1]
                .iter()
                .all(|p| p.p50_ms.is_none())
        );
    }

    #[test]
    fn a_bucket_is_reused_for_a_later_period_and_old_reports_are_ignored() {
        let mut m = Metrics::new(vec!["t".into()], 0, 1000);
        m.published("t", 1_000, false);
        m.published("t", 1_000 + 1000 * BUCKETS as i64, true);
        m.published("t", 1_000, false);
        let series = m.series(1_000 + 1000 * BUCKETS as i64);
        let points = &series.topics[0].1;
        assert_eq!(points.last().unwrap().published, 1);
        assert_eq!(points.last().unwrap().unmatched, 1);
        assert_eq!(points.iter().map(|p| p.published).sum::<u32>(), 1);
    }
}
