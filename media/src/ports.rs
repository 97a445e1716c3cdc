//! RTP/RTCP port pairs handed out from the configured range.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use crate::MediaError;

/// Free and used port pairs. Pair `i` is RTP port `first + 2i` with RTCP on
/// the port above (RFC 3550 section 11).
///
/// The free pairs are kept in a list with each pair's place in it. Taking
/// a random free pair and giving one back then cost the same with 20,000
/// pairs as with 20; a scan of the range per call showed up in profiles of
/// the call benchmark.
#[derive(Debug)]
pub(crate) struct PortAllocator {
    first: u16,
    /// Indices of the free pairs, in no order.
    free: Vec<u16>,
    /// Index of each pair in `free`, `None` while it is in use.
    place: Vec<Option<u16>>,
    /// Count of pairs in use by the spare thread, bound or being bound.
    /// It changes under the same lock as the pairs, so
    /// [`PortAllocator::held_by_sessions`] does not count a pair that the
    /// spare thread took but has not yet put in its list.
    spare: usize,
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
        // At most 32,768 pairs fit in the port space, so indices fit in u16.
        let pairs = (end - start).div_ceil(2);
        Ok(PortAllocator {
            first: start,
            free: (0..pairs).collect(),
            place: (0..pairs).map(Some).collect(),
            spare: 0,
        })
    }

    pub(crate) fn pair_count(&self) -> usize {
        self.place.len()
    }

    /// Marks a free pair as used and returns its RTP port. `random` picks
    /// which of the free pairs: ports handed out in order would let a host
    /// guess the next call's port, and a port just freed would soon get
    /// late packets of the old call.
    pub(crate) fn allocate(&mut self, random: u32) -> Option<u16> {
        if self.free.is_empty() {
            return None;
        }
        let nth = usize::try_from(random).unwrap_or(0) % self.free.len();
        let index = self.free.swap_remove(nth);
        if let Some(&moved) = self.free.get(nth) {
            self.place[usize::from(moved)] = u16::try_from(nth).ok();
        }
        self.place[usize::from(index)] = None;
        Some(self.first + 2 * index)
    }

    pub(crate) fn release(&mut self, rtp_port: u16) {
        let index = rtp_port.wrapping_sub(self.first) / 2;
        // Only a pair in use goes back; a port outside the range or one
        // already free is ignored.
        if let Some(None) = self.place.get(usize::from(index)) {
            self.place[usize::from(index)] = u16::try_from(self.free.len()).ok();
            self.free.push(index);
        }
    }

    pub(crate) fn used(&self) -> usize {
        self.place.len() - self.free.len()
    }

    /// Counts the pairs in use by sessions or by an open in progress,
    /// without those of the spare thread.
    pub(crate) fn held_by_sessions(&self) -> usize {
        self.used().saturating_sub(self.spare)
    }
}

/// Holder of a leased pair, for [`PortAllocator::held_by_sessions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A session, or an open that will hand it to one.
    Session,
    /// The spare thread, until an open claims the bound leg.
    Spare,
}

/// A pair taken from the allocator, given back on drop.
#[derive(Debug)]
pub(crate) struct PortLease {
    allocator: Arc<Mutex<PortAllocator>>,
    rtp_port: u16,
    holder: Holder,
}

impl PortLease {
    pub(crate) fn take(
        allocator: &Arc<Mutex<PortAllocator>>,
        random: u32,
        holder: Holder,
    ) -> Option<PortLease> {
        let mut pairs = lock(allocator);
        let rtp_port = pairs.allocate(random)?;
        if holder == Holder::Spare {
            pairs.spare += 1;
        }
        Some(PortLease {
            allocator: Arc::clone(allocator),
            rtp_port,
            holder,
        })
    }

    pub(crate) fn rtp_port(&self) -> u16 {
        self.rtp_port
    }

    /// Hands a spare pair to a session.
    pub(crate) fn claim(&mut self) {
        if self.holder == Holder::Spare {
            let mut pairs = lock(&self.allocator);
            pairs.spare = pairs.spare.saturating_sub(1);
            self.holder = Holder::Session;
        }
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut pairs = lock(&self.allocator);
        pairs.release(self.rtp_port);
        if self.holder == Holder::Spare {
            pairs.spare = pairs.spare.saturating_sub(1);
        }
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
    fn releasing_a_free_or_foreign_port_changes_nothing() {
        let mut allocator = PortAllocator::new(&(30000..=30007)).expect("valid range");
        let port = allocator.allocate(1).expect("free pair");
        allocator.release(port);
        allocator.release(port);
        allocator.release(29998);
        allocator.release(30100);
        assert_eq!(allocator.used(), 0);
        let mut handed_out: Vec<u16> = (0..4).filter_map(|n| allocator.allocate(n)).collect();
        handed_out.sort_unstable();
        assert_eq!(handed_out, [30000, 30002, 30004, 30006]);
        assert_eq!(allocator.allocate(0), None);
    }

    #[test]
    fn lease_releases_on_drop() {
        let allocator = Arc::new(Mutex::new(
            PortAllocator::new(&(30000..=30003)).expect("valid range"),
        ));
        let lease = PortLease::take(&allocator, 1, Holder::Session).expect("free pair");
        assert_eq!(lease.rtp_port(), 30002);
        assert_eq!(lock(&allocator).used(), 1);
        drop(lease);
        assert_eq!(lock(&allocator).used(), 0);
    }

    #[test]
    fn spare_pairs_count_for_sessions_once_claimed() {
        let allocator = Arc::new(Mutex::new(
            PortAllocator::new(&(30000..=30007)).expect("valid range"),
        ));
        let session = PortLease::take(&allocator, 0, Holder::Session).expect("free pair");
        let mut claimed = PortLease::take(&allocator, 0, Holder::Spare).expect("free pair");
        let waiting = PortLease::take(&allocator, 0, Holder::Spare).expect("free pair");
        assert_eq!(lock(&allocator).used(), 3);
        assert_eq!(lock(&allocator).held_by_sessions(), 1);
        claimed.claim();
        claimed.claim();
        assert_eq!(lock(&allocator).held_by_sessions(), 2);
        drop(waiting);
        assert_eq!(lock(&allocator).held_by_sessions(), 2);
        drop(claimed);
        drop(session);
        let pairs = lock(&allocator);
        assert_eq!((pairs.used(), pairs.held_by_sessions()), (0, 0));
    }
}
