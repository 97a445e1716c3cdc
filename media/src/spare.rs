//! Leg sockets bound ahead of need by a thread of their own.
//!
//! Binding a leg's RTP and RTCP sockets costs about ten system calls. Made
//! at call setup they ran on the thread that handles every SIP message, and
//! took 8 % of it at 2,400 calls/s. A spare thread binds them in advance,
//! and the opener only takes two from a list. The spare thread wakes once
//! per half of the list used, not once per call.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::Thread;
use std::time::Duration;

use crate::MediaError;
use crate::ports::{Holder, PortAllocator};
use crate::session::{LegSockets, bind_leg};

/// Maximum legs kept bound. A few dozen cover the calls that one engine
/// batch sets up.
const MAX_SPARE_LEGS: usize = 32;

/// The spare list takes at most one leg per this many port pairs of the
/// range, so that a small range keeps its pairs for calls. A range under
/// this size keeps no spare legs.
const PAIRS_PER_SPARE_LEG: usize = 64;

/// Maximum sleep of the spare thread. It checks this often whether the
/// list is still in use, and retries this long after a failed bind unless
/// a taker wakes it sooner.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Maximum stale datagrams read off a leg's socket before it is handed out.
const MAX_STALE_READS: usize = 64;

/// Bound legs ready for the next sessions, filled by the spare thread.
pub(crate) struct SpareLegs {
    legs: Mutex<Vec<LegSockets>>,
    target: usize,
    filler: Thread,
}

impl SpareLegs {
    /// Starts the spare thread for the range `ports`, or returns
    /// None when the range is too small to spare any. The thread ends
    /// once the returned list is dropped.
    pub(crate) fn start(
        allocator: Arc<Mutex<PortAllocator>>,
        bind_address: IpAddr,
        ports: (u16, u16),
    ) -> Result<Option<Arc<SpareLegs>>, MediaError> {
        let pairs = crate::ports::lock(&allocator).pair_count();
        let target = (pairs / PAIRS_PER_SPARE_LEG).min(MAX_SPARE_LEGS);
        if target == 0 {
            return Ok(None);
        }
        let (handing, handed) = std::sync::mpsc::channel::<Weak<SpareLegs>>();
        let handle = std::thread::Builder::new()
            .name("relay-spare".into())
            .spawn(move || {
                // The list itself arrives once the thread's handle is in it.
                if let Ok(spare) = handed.recv() {
                    fill_until_dropped(&spare, &allocator, bind_address, ports);
                }
            })
            .map_err(|source| MediaError::Threads { source })?;
        let spare = Arc::new(SpareLegs {
            legs: Mutex::new(Vec::with_capacity(target)),
            target,
            filler: handle.thread().clone(),
        });
        // If the thread already ended, the send fails and the list stays
        // empty, so every open binds its own legs.
        let _ = handing.send(Arc::downgrade(&spare));
        Ok(Some(spare))
    }

    /// Takes a bound leg for a session, or None when the list is empty.
    /// Wakes the spare thread when the list falls to half its size.
    pub(crate) fn take(&self) -> Option<LegSockets> {
        let mut legs = self.legs.lock().unwrap_or_else(PoisonError::into_inner);
        let leg = legs.pop();
        let low = legs.len() <= self.target / 2;
        drop(legs);
        if low {
            self.filler.unpark();
        }
        let mut leg = leg?;
        if let Some(lease) = &mut leg.lease {
            lease.claim();
        }
        drain_stale(&leg);
        Some(leg)
    }

    /// Legs bound and waiting, whose port pairs count as used in the
    /// allocator.
    pub(crate) fn len(&self) -> usize {
        self.legs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Binds legs until the list is full, then sleeps until a taker wakes the
/// thread. Returns once every [`SpareLegs`] handle is gone.
fn fill_until_dropped(
    spare: &Weak<SpareLegs>,
    allocator: &Arc<Mutex<PortAllocator>>,
    bind_address: IpAddr,
    ports: (u16, u16),
) {
    loop {
        let Some(list) = spare.upgrade() else { return };
        while list.len() < list.target {
            match bind_leg(allocator, bind_address, ports, Holder::Spare) {
                Ok(leg) => list
                    .legs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(leg),
                Err(error) => {
                    // The opener binds for itself meanwhile and reports
                    // the error with its call.
                    tracing::debug!(%error, "binding a spare relay leg failed");
                    break;
                }
            }
        }
        drop(list);
        std::thread::park_timeout(IDLE_WAKE);
    }
}

/// Reads and drops what reached a leg's sockets while it waited in the
/// list, so that a session never relays a datagram sent before it began.
fn drain_stale(leg: &LegSockets) {
    let mut buffer = [0u8; 64];
    for socket in [&leg.rtp, &leg.rtcp] {
        for _ in 0..MAX_STALE_READS {
            match socket.recv_from(&mut buffer) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                // A datagram, or an ICMP error queued on the socket.
                Ok(_) | Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::Instant;

    use super::*;

    /// Waits up to two seconds for the spare thread to fill `spare`.
    fn wait_full(spare: &SpareLegs) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while spare.len() < spare.target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(spare.len(), spare.target, "spare list not filled");
    }

    fn start(first: u16, pairs: u16) -> (Arc<Mutex<PortAllocator>>, Option<Arc<SpareLegs>>) {
        let ports = (first, first + 2 * pairs - 1);
        let allocator = Arc::new(Mutex::new(
            PortAllocator::new(&(ports.0..=ports.1)).unwrap(),
        ));
        let spare = SpareLegs::start(
            Arc::clone(&allocator),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports,
        )
        .unwrap();
        (allocator, spare)
    }

    #[test]
    fn small_range_keeps_no_spares() {
        let (_, spare) = start(41_000, 63);
        assert!(spare.is_none());
    }

    #[test]
    fn taken_legs_are_replaced() {
        let (allocator, spare) = start(41_200, 192);
        let spare = spare.unwrap();
        assert_eq!(spare.target, 3);
        wait_full(&spare);
        assert_eq!(crate::ports::lock(&allocator).used(), 3);
        assert_eq!(crate::ports::lock(&allocator).held_by_sessions(), 0);

        let first = spare.take().unwrap();
        let second = spare.take().unwrap();
        assert_ne!(
            first.rtp.local_addr().unwrap(),
            second.rtp.local_addr().unwrap()
        );
        // Falling to half woke the thread, which binds two more.
        wait_full(&spare);
        assert_eq!(crate::ports::lock(&allocator).used(), 5);
        assert_eq!(crate::ports::lock(&allocator).held_by_sessions(), 2);

        // A taken leg's pair goes back to the range when the leg drops.
        drop(first);
        assert_eq!(crate::ports::lock(&allocator).used(), 4);
        assert_eq!(crate::ports::lock(&allocator).held_by_sessions(), 1);
    }

    #[test]
    fn stale_datagrams_are_dropped_on_take() {
        let (_, spare) = start(41_800, 64);
        let spare = spare.unwrap();
        wait_full(&spare);
        let target = spare.legs.lock().unwrap()[0].rtp.local_addr().unwrap();
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        for _ in 0..3 {
            sender.send_to(b"old call", target).unwrap();
        }
        // Loopback delivers at once, but give the datagrams a moment.
        std::thread::sleep(Duration::from_millis(20));
        let leg = spare.take().unwrap();
        let mut buffer = [0u8; 16];
        let read = leg.rtp.recv_from(&mut buffer);
        assert!(
            matches!(&read, Err(error) if error.kind() == io::ErrorKind::WouldBlock),
            "{read:?}"
        );
    }

    #[test]
    fn thread_ends_after_the_list_drops() {
        let (allocator, spare) = start(42_400, 128);
        let spare = spare.unwrap();
        wait_full(&spare);
        let thread = spare.filler.clone();
        // The thread lets go of the list between its rounds of binding.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&spare) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(spare);
        // The legs' pairs went back with the list.
        assert_eq!(crate::ports::lock(&allocator).used(), 0);
        thread.unpark();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Arc::strong_count(&allocator) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The thread's clone of the allocator went with it.
        assert_eq!(Arc::strong_count(&allocator), 1);
    }
}
