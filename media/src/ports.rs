//! RTP/RTCP port pairs handed out from the configured range.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use crate::MediaError;

/// Free and used port pairs. Pair `i` is RTP port `first + 2i` with RTCP on
/// the port above (RFC 3550 section 11).
#[derive(Debug)]
pub(crate) struct PortAllocator {
    first: u16,
    in_use: Vec<bool>,
    /// Next pair to try. Pairs are handed out round-robin so that a port
    /// just freed is reused last, and late packets of the old call are
    /// unlikely to reach a new one.
    cursor: usize,
}

impl PortAllocator {
    /// Checks the range: an even, non-zero start and at least two pairs,
    /// one for each leg of a call.
    pub(crate) fn new(ports: &RangeInclusive<u16>) -> Result<PortAllocator, MediaError> {
        let (start, end) = (*ports.start(), *ports.end());
        let invalid = |reason| MediaError::InvalidPortRange { start, end, reason };
        if start == 0 {
            return Err(invalid("port 0 means any port to the OS"));
        }
        if start % 2 != 0 {
            return Err(invalid("the first port must be even, RTP uses even ports"));
        }
        if end < start || end - start < 3 {
            return Err(invalid(
                "at least 4 ports are needed, an RTP and RTCP pair per leg",
            ));
        }
        let pairs = usize::from(end - start + 1) / 2;
        Ok(PortAllocator {
            first: start,
            in_use: vec![false; pairs],
            cursor: 0,
        })
    }

    pub(crate) fn pair_count(&self) -> usize {
        self.in_use.len()
    }

    /// Marks the next free pair as used and returns its RTP port.
    pub(crate) fn allocate(&mut self) -> Option<u16> {
        let pairs = self.in_use.len();
        let offset = (0..pairs).find(|offset| !self.in_use[(self.cursor + offset) % pairs])?;
        let index = (self.cursor + offset) % pairs;
        self.in_use[index] = true;
        self.cursor = (index + 1) % pairs;
        Some(self.first + 2 * index as u16)
    }

    pub(crate) fn release(&mut self, rtp_port: u16) {
        let index = usize::from(rtp_port.wrapping_sub(self.first) / 2);
        if let Some(slot) = self.in_use.get_mut(index) {
            *slot = false;
        }
    }

    pub(crate) fn used(&self) -> usize {
        self.in_use.iter().filter(|used| **used).count()
    }
}

/// A pair taken from the allocator, given back on drop.
#[derive(Debug)]
pub(crate) struct PortLease {
    allocator: Arc<Mutex<PortAllocator>>,
    rtp_port: u16,
}

impl PortLease {
    pub(crate) fn take(allocator: &Arc<Mutex<PortAllocator>>) -> Option<PortLease> {
        let rtp_port = lock(allocator).allocate()?;
        Some(PortLease {
            allocator: Arc::clone(allocator),
            rtp_port,
        })
    }

    pub(crate) fn rtp_port(&self) -> u16 {
        self.rtp_port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&self.allocator).release(self.rtp_port);
    }
}

/// Locks the allocator, ignoring poisoning: every change to it is a single
/// assignment, so a holder that panicked cannot leave it half-updated.
pub(crate) fn lock(allocator: &Mutex<PortAllocator>) -> std::sync::MutexGuard<'_, PortAllocator> {
    allocator.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_ranges() {
        for range in [
            0..=10,
            20001..=20010,
            20000..=20002,
            RangeInclusive::new(20010, 20000),
        ] {
            let error = PortAllocator::new(&range).unwrap_err();
            assert!(
                matches!(error, MediaError::InvalidPortRange { .. }),
                "{range:?}"
            );
        }
    }

    #[test]
    fn odd_end_and_even_end_pair_counts() {
        assert_eq!(
            PortAllocator::new(&(20000..=20003))
                .map(|a| a.pair_count())
                .ok(),
            Some(2)
        );
        assert_eq!(
            PortAllocator::new(&(20000..=20004))
                .map(|a| a.pair_count())
                .ok(),
            Some(2)
        );
        assert_eq!(
            PortAllocator::new(&(20000..=20999))
                .map(|a| a.pair_count())
                .ok(),
            Some(500)
        );
    }

    #[test]
    fn allocates_even_ports_round_robin() {
        let mut allocator = PortAllocator::new(&(30000..=30005)).expect("valid range");
        assert_eq!(allocator.allocate(), Some(30000));
        assert_eq!(allocator.allocate(), Some(30002));
        allocator.release(30000);
        assert_eq!(allocator.allocate(), Some(30004));
        assert_eq!(allocator.allocate(), Some(30000));
        assert_eq!(allocator.allocate(), None);
        assert_eq!(allocator.used(), 3);
    }

    #[test]
    fn lease_releases_on_drop() {
        let allocator = Arc::new(Mutex::new(
            PortAllocator::new(&(30000..=30003)).expect("valid range"),
        ));
        let lease = PortLease::take(&allocator).expect("free pair");
        assert_eq!(lease.rtp_port(), 30000);
        assert_eq!(lock(&allocator).used(), 1);
        drop(lease);
        assert_eq!(lock(&allocator).used(), 0);
    }
}
