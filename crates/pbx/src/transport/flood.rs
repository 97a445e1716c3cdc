//! Per-source token buckets: one limits SIP requests over every transport,
//! applied before parsing, so one address that floods the PBX cannot crowd
//! out everyone else's requests in the engine's queue; another limits new
//! stream connections. Addresses of trunks are exempt: a carrier
//! legitimately sends many calls from few addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sip_server::network::IpNetwork;

/// Entries kept before idle ones are swept; a flood from many forged
/// addresses then costs a sweep, not unbounded memory.
const MAX_SOURCES: usize = 65_536;

/// Time without a dropped request after which the next drop counts as a
/// new flood and is logged again.
const FLOOD_QUIET: Duration = Duration::from_secs(10);

/// Token bucket per source address.
#[derive(Debug)]
pub(crate) struct FloodGuard {
    /// Requests per second a source may send on average; 0 turns the
    /// guard off.
    rate: f64,
    /// Requests a source may send at once after a quiet spell.
    burst: f64,
    exempt: Vec<IpNetwork>,
    sources: HashMap<IpAddr, Bucket>,
    dropped: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Time of the last dropped request, so that a flood is logged when it
    /// starts, not once per request.
    last_drop: Option<Instant>,
}

/// The decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    /// Dropped; `first` is set for the first drop of a flood.
    Drop {
        first: bool,
    },
}

impl FloodGuard {
    pub(crate) fn new(rate_per_sec: u32, exempt: Vec<IpNetwork>) -> FloodGuard {
        let rate = f64::from(rate_per_sec);
        FloodGuard {
            rate,
            burst: (rate * 2.0).max(10.0),
            exempt,
            sources: HashMap::new(),
            dropped: 0,
        }
    }

    /// Takes one token for a request from `source` at `now`.
    pub(crate) fn check(&mut self, source: IpAddr, now: Instant) -> Verdict {
        if self.rate == 0.0 || self.exempt.iter().any(|net| net.contains(source)) {
            return Verdict::Accept;
        }
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sweep(now);
        }
        let burst = self.burst;
        let bucket = self.sources.entry(source).or_insert(Bucket {
            tokens: burst,
            refilled: now,
            last_drop: None,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Accept;
        }
        self.dropped += 1;
        // A flood goes on while the source keeps running out of tokens, even
        // though the refill lets a request through now and then, so only a
        // drop after a quiet spell starts a new one.
        let first = bucket
            .last_drop
            .is_none_or(|last| now.saturating_duration_since(last) >= FLOOD_QUIET);
        bucket.last_drop = Some(now);
        Verdict::Drop { first }
    }

    /// Requests dropped since start.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Forgets sources whose bucket has refilled: they are not flooding.
    fn sweep(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        self.sources.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens + elapsed * rate < burst
        });
        if self.sources.len() >= MAX_SOURCES {
            // Every entry is busy: start over rather than grow.
            self.sources.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn burst_then_rate_per_source() {
        let mut guard = FloodGuard::new(100, Vec::new());
        let start = Instant::now();
        let flooding = ip("192.0.2.7");
        let accepted = (0..1000)
            .filter(|_| guard.check(flooding, start) == Verdict::Accept)
            .count();
        assert_eq!(accepted, 200, "the burst is twice the rate");
        assert_eq!(guard.dropped(), 800);
        // Another address is not affected by the flood.
        assert_eq!(guard.check(ip("192.0.2.8"), start), Verdict::Accept);
        // Half a second refills 50 requests.
        let later = start + Duration::from_millis(500);
        let accepted = (0..100)
            .filter(|_| guard.check(flooding, later) == Verdict::Accept)
            .count();
        assert_eq!(accepted, 50);
    }

    #[test]
    fn first_drop_of_a_flood_is_marked() {
        let mut guard = FloodGuard::new(5, Vec::new());
        let now = Instant::now();
        let source = ip("198.51.100.1");
        for _ in 0..10 {
            assert_eq!(guard.check(source, now), Verdict::Accept);
        }
        assert_eq!(guard.check(source, now), Verdict::Drop { first: true });
        assert_eq!(guard.check(source, now), Verdict::Drop { first: false });
        // The refill lets requests through, but the flood goes on.
        let later = now + Duration::from_secs(1);
        assert_eq!(guard.check(source, later), Verdict::Accept);
        for _ in 0..4 {
            guard.check(source, later);
        }
        assert_eq!(guard.check(source, later), Verdict::Drop { first: false });
        // A drop after a quiet spell starts a new flood.
        let quiet = later + FLOOD_QUIET;
        for _ in 0..10 {
            assert_eq!(guard.check(source, quiet), Verdict::Accept);
        }
        assert_eq!(guard.check(source, quiet), Verdict::Drop { first: true });
    }

    #[test]
    fn trunks_and_zero_rate_are_exempt() {
        let trunk: IpNetwork = "203.0.113.0/24".parse().unwrap();
        let mut guard = FloodGuard::new(1, vec![trunk]);
        let now = Instant::now();
        assert!((0..1000).all(|_| guard.check(ip("203.0.113.9"), now) == Verdict::Accept));
        let mut off = FloodGuard::new(0, Vec::new());
        assert!((0..1000).all(|_| off.check(ip("192.0.2.1"), now) == Verdict::Accept));
    }

    #[test]
    fn many_sources_stay_bounded() {
        let mut guard = FloodGuard::new(1, Vec::new());
        let now = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            let source = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            guard.check(source, now);
        }
        assert!(guard.sources.len() <= MAX_SOURCES);
    }
}
