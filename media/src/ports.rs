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
        })
    }

    pub(crate) fn pair_count(&self) -> usize {
        self.in_use.len()
    }

    /// Marks a free pair as used and returns its RTP port. `random` picks
    /// which of the free pairs: ports handed out in order would let a host
    /// guess the next call's port, and a port just freed would soon get
    /// late packets of the old call.
    pub(crate) fn allocate(&mut self, random: u32) -> Option<u16> {
        let free = self.in_use.iter().filter(|used| !**used).count();
        if free == 0 {
            return None;
        }
        let nth = usize::try_from(random).unwrap_or(0) % free;
        let (index, slot) = self
            .in_use
            .iter_mut()
            .enumerate()
            .filter(|(_, used)| !**used)
            .nth(nth)?;
        *slot = true;
        // The range fits in u16 ports, so the pair index does too.
        let offset = u16::try_from(2 * index).ok()?;
        Some(self.first + offset)
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
    pub(crate) fn take(allocator: &Arc<Mutex<PortAllocator>>, random: u32) -> Option<PortLease> {
        let rtp_port = lock(allocator).allocate(random)?;
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
    fn picks_the_free_pair_the_random_value_names() {
        let mut allocator = PortAllocator::new(&(30000..=30007)).expect("valid range");
        assert_eq!(allocator.allocate(2), Some(30004));
        // Free pairs are now 30000, 30002 and 30006: 7 % 3 names the second.
        assert_eq!(allocator.allocate(7), Some(30002));
        assert_eq!(allocator.allocate(u32::MAX), Some(30006));
        assert_eq!(allocator.allocate(0), Some(30000));
        assert_eq!(allocator.allocate(0), None);
        assert_eq!(allocator.used(), 4);
        allocator.release(30002);
        assert_eq!(allocator.allocate(12345), Some(30002));
    }

    #[test]
    fn even_ports_across_the_whole_range() {
        let mut allocator = PortAllocator::new(&(30000..=30999)).expect("valid range");
        let mut ports = Vec::new();
        for random in (0..500u32).map(|n| n.wrapping_mul(2_654_435_761)) {
            ports.push(allocator.allocate(random).expect("free pair"));
        }
        assert!(ports.iter().all(|port| port % 2 == 0 && *port <= 30998));
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 500, "every pair handed out once");
        assert_eq!(allocator.allocate(0), None);
    }

    #[test]
    fn lease_releases_on_drop() {
        let allocator = Arc::new(Mutex::new(
            PortAllocator::new(&(30000..=30003)).expect("valid range"),
        ));
        let lease = PortLease::take(&allocator, 1).expect("free pair");
        assert_eq!(lease.rtp_port(), 30002);
        assert_eq!(lock(&allocator).used(), 1);
        drop(lease);
        assert_eq!(lock(&allocator).used(), 0);
    }
}
