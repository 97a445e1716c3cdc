//! Symmetric RTP latching: which address a leg's peer really sends from.

use std::net::SocketAddr;

/// Source address of one socket's peer, learnt from received packets.
///
/// The first valid packet latches its source at once. A different source
/// replaces it only after `confirm` valid packets in a row from that same
/// source, so one stray or spoofed packet cannot divert the media, while a
/// peer whose NAT mapping changed is followed within a few packets.
#[derive(Debug)]
pub(crate) struct Latch {
    current: Option<SocketAddr>,
    candidate: Option<(SocketAddr, u32)>,
    confirm: u32,
}

impl Latch {
    pub(crate) fn new(confirm: u32) -> Latch {
        Latch {
            current: None,
            candidate: None,
            confirm: confirm.max(1),
        }
    }

    pub(crate) fn current(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Records a valid packet from `source`; returns true when the latched
    /// address changed.
    pub(crate) fn observe(&mut self, source: SocketAddr) -> bool {
        match self.current {
            Some(current) if current == source => {
                self.candidate = None;
                false
            }
            Some(_) => {
                let seen = match self.candidate {
                    Some((candidate, seen)) if candidate == source => seen + 1,
                    _ => 1,
                };
                if seen >= self.confirm {
                    self.current = Some(source);
                    self.candidate = None;
                    true
                } else {
                    self.candidate = Some((source, seen));
                    false
                }
            }
            None => {
                self.current = Some(source);
                true
            }
        }
    }

    pub(crate) fn reset(&mut self) {
        self.current = None;
        self.candidate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn first_packet_latches() {
        let mut latch = Latch::new(3);
        assert!(latch.observe(addr(4000)));
        assert_eq!(latch.current(), Some(addr(4000)));
    }

    #[test]
    fn new_source_needs_confirmation() {
        let mut latch = Latch::new(3);
        latch.observe(addr(4000));
        assert!(!latch.observe(addr(5000)));
        assert!(!latch.observe(addr(5000)));
        assert_eq!(latch.current(), Some(addr(4000)));
        assert!(latch.observe(addr(5000)));
        assert_eq!(latch.current(), Some(addr(5000)));
    }

    #[test]
    fn current_source_interrupts_candidate() {
        let mut latch = Latch::new(2);
        latch.observe(addr(4000));
        latch.observe(addr(5000));
        latch.observe(addr(4000));
        assert!(!latch.observe(addr(5000)));
        assert_eq!(latch.current(), Some(addr(4000)));
    }

    #[test]
    fn reset_relatches_on_next_packet() {
        let mut latch = Latch::new(3);
        latch.observe(addr(4000));
        latch.reset();
        assert_eq!(latch.current(), None);
        assert!(latch.observe(addr(6000)));
        assert_eq!(latch.current(), Some(addr(6000)));
    }
}
