//! Strict source learning: which address a leg's peer really sends from,
//! and which sources the relay rejects.

use std::net::{IpAddr, SocketAddr};

/// Decision of [`Latch::observe`] on a valid packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// From the learned source.
    Accepted,
    /// The first packet of an acceptable source, now learned.
    Learned,
    /// From another source, so the packet must be dropped.
    Rejected,
}

/// Source address of one socket's peer, learned from received packets.
///
/// Until a source is learned, a packet is acceptable when its IP address
/// is the one `expected` names (any port: NATs change ports), or from any
/// source when nothing is expected. The first acceptable packet is learned
/// and from then on only that exact address and port is accepted, so a
/// host that guesses the relay port cannot take the stream over. Only
/// [`Latch::reset`] starts learning again; the session resets it also when
/// the exact public SDP address sends.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    current: Option<SocketAddr>,
}

impl Latch {
    pub(crate) fn current(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Checks a valid packet from `source`. `expected` is the IP address
    /// the source must have while nothing is learned, `None` for any.
    pub(crate) fn observe(&mut self, source: SocketAddr, expected: Option<IpAddr>) -> Verdict {
        match self.current {
            Some(current) if same_address(current, source) => Verdict::Accepted,
            Some(_) => Verdict::Rejected,
            None => match expected {
                Some(ip) if canonical(ip) != canonical(source.ip()) => Verdict::Rejected,
                _ => {
                    self.current = Some(source);
                    Verdict::Learned
                }
            },
        }
    }

    pub(crate) fn reset(&mut self) {
        self.current = None;
    }
}

/// The IP address packets must come from, given the address in the peer's
/// SDP, or `None` when any source may be learned.
///
/// An address the relay cannot match against packet sources allows any:
/// - no SDP address yet, or the unspecified address (RFC 3264 hold);
/// - private (RFC 1918), shared (RFC 6598), link-local and unique local
///   addresses: a phone behind NAT puts its private address in SDP while
///   its packets arrive from the NAT's public address, and the relay cannot
///   tell whether it shares that private network with the phone.
///
/// Public and loopback addresses must match.
pub(crate) fn expected_source(sdp: Option<SocketAddr>) -> Option<IpAddr> {
    let ip = canonical(sdp?.ip());
    let unmatchable = match ip {
        IpAddr::V4(v4) => {
            let [first, second, ..] = v4.octets();
            v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || (first == 100 && (64..128).contains(&second))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified() || first & 0xFE00 == 0xFC00 || first & 0xFFC0 == 0xFE80
        }
    };
    (!unmatchable).then_some(ip)
}

/// IPv4-mapped IPv6 addresses compare as IPv4, as dual-stack sockets
/// report IPv4 sources that way.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

pub(crate) fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    const PHONE: [u8; 4] = [203, 0, 113, 7];
    const ATTACKER: [u8; 4] = [198, 51, 100, 9];

    #[test]
    fn expected_ip_learned_on_any_port() {
        let mut latch = Latch::default();
        let expected = Some(IpAddr::from(PHONE));
        assert_eq!(
            latch.observe(addr(ATTACKER, 4000), expected),
            Verdict::Rejected
        );
        assert_eq!(latch.current(), None);
        assert_eq!(latch.observe(addr(PHONE, 5062), expected), Verdict::Learned);
        assert_eq!(latch.current(), Some(addr(PHONE, 5062)));
    }

    #[test]
    fn learned_source_is_the_only_one_accepted() {
        let mut latch = Latch::default();
        latch.observe(addr(PHONE, 4000), None);
        for _ in 0..10 {
            assert_eq!(latch.observe(addr(ATTACKER, 4000), None), Verdict::Rejected);
            assert_eq!(latch.observe(addr(PHONE, 4002), None), Verdict::Rejected);
        }
        assert_eq!(latch.observe(addr(PHONE, 4000), None), Verdict::Accepted);
        assert_eq!(latch.current(), Some(addr(PHONE, 4000)));
    }

    #[test]
    fn reset_learns_again() {
        let mut latch = Latch::default();
        latch.observe(addr(PHONE, 4000), None);
        latch.reset();
        assert_eq!(latch.current(), None);
        assert_eq!(latch.observe(addr(PHONE, 6000), None), Verdict::Learned);
        assert_eq!(latch.current(), Some(addr(PHONE, 6000)));
    }

    #[test]
    fn mapped_ipv6_source_matches_ipv4() {
        let mut latch = Latch::default();
        let mapped = SocketAddr::from((std::net::Ipv4Addr::from(PHONE).to_ipv6_mapped(), 4000));
        assert_eq!(
            latch.observe(mapped, Some(IpAddr::from(PHONE))),
            Verdict::Learned
        );
        assert_eq!(latch.observe(addr(PHONE, 4000), None), Verdict::Accepted);
    }

    #[test]
    fn public_and_loopback_sdp_addresses_must_match() {
        for ip in [PHONE, [127, 0, 0, 1], [100, 128, 0, 1], [172, 32, 0, 1]] {
            assert_eq!(
                expected_source(Some(addr(ip, 4000))),
                Some(IpAddr::from(ip)),
                "{ip:?}"
            );
        }
    }

    #[test]
    fn private_and_unspecified_sdp_addresses_allow_any_source() {
        for ip in [
            [0, 0, 0, 0],
            [10, 1, 2, 3],
            [172, 16, 0, 1],
            [192, 168, 1, 10],
            [100, 64, 0, 1],
            [169, 254, 3, 4],
        ] {
            assert_eq!(expected_source(Some(addr(ip, 4000))), None, "{ip:?}");
        }
        for ip in ["fd00::1", "fe80::1", "::"] {
            let ip: Ipv6Addr = ip.parse().expect("IPv6 literal");
            assert_eq!(expected_source(Some(SocketAddr::from((ip, 4000)))), None);
        }
        assert_eq!(expected_source(None), None);
    }
}
