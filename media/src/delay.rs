//! How long datagrams wait in the relay: from the kernel's receive
//! timestamp (`SO_TIMESTAMPNS`, taken when the datagram reached the
//! socket's queue) to the return of the `sendto` that forwards it. The
//! wait for the relay's thread to be scheduled and the time in the socket's
//! queue are both inside it. The peers' own delays are not.
//!
//! Each session counts into a plain array on its own task and adds it to
//! the relay's shared histogram when it flushes its recording (every
//! 100 ms) and when it closes, so the packet path touches no shared cache
//! line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram's buckets, in microseconds; a last bucket
/// without bound takes the rest. Dense around 1 ms, the target for the
/// 99th percentile.
pub const RELAY_DELAY_BOUNDS_US: [u64; 19] = [
    25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000,
    20_000, 50_000, 100_000,
];
const BUCKETS: usize = RELAY_DELAY_BOUNDS_US.len() + 1;

/// A session's counts since its last merge.
#[derive(Debug, Default)]
pub(crate) struct LocalDelays {
    counts: [u64; BUCKETS],
    sum_ns: u64,
}

impl LocalDelays {
    pub(crate) fn record(&mut self, delay: Duration) {
        let micros = delay.as_micros();
        let bucket = RELAY_DELAY_BOUNDS_US.partition_point(|&bound| u128::from(bound) < micros);
        self.counts[bucket] += 1;
        self.sum_ns = self
            .sum_ns
            .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds the counts to `shared` and starts again from zero.
    pub(crate) fn merge_into(&mut self, shared: &SharedDelays) {
        for (total, count) in shared.counts.iter().zip(&mut self.counts) {
            if *count > 0 {
                total.fetch_add(std::mem::take(count), Ordering::Relaxed);
            }
        }
        shared
            .sum_ns
            .fetch_add(std::mem::take(&mut self.sum_ns), Ordering::Relaxed);
    }
}

/// The relay-wide histogram, shared by the sessions of one [`crate::Relay`].
#[derive(Debug, Default)]
pub(crate) struct SharedDelays {
    counts: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl SharedDelays {
    pub(crate) fn snapshot(&self) -> RelayDelays {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(RELAY_DELAY_BOUNDS_US.len());
        for (bound, count) in RELAY_DELAY_BOUNDS_US.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let count = cumulative + self.counts[BUCKETS - 1].load(Ordering::Relaxed);
        RelayDelays {
            buckets,
            count,
            sum: Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed)),
        }
    }
}

/// Builds the histogram from per-bucket counts (the last one for delays
/// over every bound), as a relay worker reports them.
pub(crate) fn from_counts(counts: &[u64], sum: Duration) -> RelayDelays {
    let mut cumulative: u64 = 0;
    let mut buckets = Vec::with_capacity(RELAY_DELAY_BOUNDS_US.len());
    for (index, bound) in RELAY_DELAY_BOUNDS_US.iter().enumerate() {
        cumulative = counts
            .get(index)
            .map_or(cumulative, |count| cumulative.saturating_add(*count));
        buckets.push((*bound, cumulative));
    }
    let over = counts
        .get(RELAY_DELAY_BOUNDS_US.len())
        .copied()
        .unwrap_or(0);
    RelayDelays {
        buckets,
        count: cumulative.saturating_add(over),
        sum,
    }
}

/// Returns the per-bucket counts of `delays`, overflow last: the inverse
/// of [`from_counts`].
pub(crate) fn counts_of(delays: &RelayDelays) -> (Vec<u64>, Duration) {
    let mut counts = Vec::with_capacity(BUCKETS);
    let mut below = 0;
    for (_, cumulative) in &delays.buckets {
        counts.push(cumulative - below);
        below = *cumulative;
    }
    counts.push(delays.count - below);
    (counts, delays.sum)
}

/// The relay's delays since it started, in the shape of a Prometheus
/// histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayDelays {
    /// Each bucket's upper bound in microseconds with the number of
    /// datagrams at or under it (cumulative), in rising order.
    pub buckets: Vec<(u64, u64)>,
    /// All datagrams counted, those over the last bound included.
    pub count: u64,
    /// The sum of their delays.
    pub sum: Duration,
}

impl RelayDelays {
    /// Returns the smallest bucket bound, in microseconds, under which at least
    /// `fraction` of the datagrams fell, or `None` if the bound is past the
    /// last bucket or nothing was counted.
    pub fn quantile_bound_us(&self, fraction: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let needed = (self.count as f64 * fraction).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= needed)
            .map(|(bound, _)| *bound)
    }

    /// Subtracts an earlier snapshot of the same relay, for the delays of
    /// one period.
    pub fn since(&self, earlier: &RelayDelays) -> RelayDelays {
        RelayDelays {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|((bound, now), (_, before))| (*bound, now.saturating_sub(*before)))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_fill_first_fitting_bucket() {
        let shared = SharedDelays::default();
        let mut local = LocalDelays::default();
        for micros in [0, 25, 26, 999, 1_000, 1_001, 100_000, 100_001, 9_000_000] {
            local.record(Duration::from_micros(micros));
        }
        local.merge_into(&shared);
        let delays = shared.snapshot();
        assert_eq!(delays.count, 9);
        let at = |bound: u64| {
            delays
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map(|(_, count)| *count)
        };
        assert_eq!(at(25), Some(2));
        assert_eq!(at(50), Some(3));
        assert_eq!(at(1_000), Some(5));
        assert_eq!(at(1_500), Some(6));
        assert_eq!(at(100_000), Some(7));
        assert_eq!(delays.sum, Duration::from_micros(9_203_052));
        // Merging emptied the session's counts.
        local.merge_into(&shared);
        assert_eq!(shared.snapshot().count, 9);
    }

    #[test]
    fn quantile_bounds_and_periods() {
        let shared = SharedDelays::default();
        let mut local = LocalDelays::default();
        for _ in 0..98 {
            local.record(Duration::from_micros(90));
        }
        local.record(Duration::from_micros(700));
        local.record(Duration::from_micros(4_000));
        local.merge_into(&shared);
        let first = shared.snapshot();
        assert_eq!(first.quantile_bound_us(0.5), Some(100));
        assert_eq!(first.quantile_bound_us(0.99), Some(800));
        assert_eq!(first.quantile_bound_us(1.0), Some(5_000));
        local.record(Duration::from_secs(1));
        local.merge_into(&shared);
        let second = shared.snapshot();
        let period = second.since(&first);
        assert_eq!(period.count, 1);
        assert_eq!(period.quantile_bound_us(0.5), None);
        assert_eq!(RelayDelays::default().quantile_bound_us(0.5), None);
    }
}
