//! IP networks in CIDR notation for trunk allow lists.
//!
//! Written here rather than taken from the `ipnet` crate because the PBX
//! needs only parsing and `contains`, about forty lines.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address prefix such as `192.0.2.0/24`; host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

#[allow(
    dead_code,
    reason = "part of the configuration interface; the binary converts networks for sip-server \
              and may not call every accessor"
)]
impl IpNetwork {
    /// Network address, with the host bits zero.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// Prefix length in bits: 0 to 32 for IPv4, 0 to 128 for IPv6.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Returns whether `address` lies in the network. An IPv4-mapped IPv6
    /// address (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4
    /// peers) matches the IPv4 networks that contain the IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) if self.address.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                mask_v4(u32::from(address), self.prefix) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                mask_v6(u128::from(address), self.prefix) == u128::from(network)
            }
            _ => false,
        }
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    // checked_shl: a shift by the full width (prefix 0) would overflow.
    bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Parses `ADDRESS/PREFIX`; a bare address is a single-host network.
impl FromStr for IpNetwork {
    type Err = NetworkProblem;

    fn from_str(text: &str) -> Result<IpNetwork, NetworkProblem> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| NetworkProblem::Syntax)?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| NetworkProblem::Syntax)?,
            None => max,
        };
        if prefix > max {
            return Err(NetworkProblem::PrefixTooLong { prefix, max });
        }
        let network = match address {
            IpAddr::V4(v4) => IpAddr::from(mask_v4(u32::from(v4), prefix).to_be_bytes()),
            IpAddr::V6(v6) => IpAddr::from(mask_v6(u128::from(v6), prefix).to_be_bytes()),
        };
        if network != address {
            return Err(NetworkProblem::HostBitsSet {
                network: format!("{network}/{prefix}"),
            });
        }
        Ok(IpNetwork { address, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Why a network in CIDR notation is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetworkProblem {
    #[error("expected ADDRESS/PREFIX such as 192.0.2.0/24 or 2001:db8::/32")]
    Syntax,
    #[error("prefix length {prefix} is larger than {max}")]
    PrefixTooLong { prefix: u8, max: u8 },
    #[error("host bits are set; the network address is {network}")]
    HostBitsSet { network: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> IpNetwork {
        text.parse().expect("valid network")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid address")
    }

    #[test]
    fn contains_v4() {
        let loopback = network("127.0.0.0/8");
        assert!(loopback.contains(ip("127.0.0.1")));
        assert!(loopback.contains(ip("127.255.255.254")));
        assert!(!loopback.contains(ip("128.0.0.1")));
        assert!(!loopback.contains(ip("::1")));
    }

    #[test]
    fn contains_mapped_v4() {
        assert!(network("192.0.2.0/24").contains(ip("::ffff:192.0.2.7")));
        assert!(!network("192.0.2.0/24").contains(ip("::ffff:198.51.100.7")));
    }

    #[test]
    fn contains_v6() {
        let documentation = network("2001:db8::/32");
        assert!(documentation.contains(ip("2001:db8:1::5")));
        assert!(!documentation.contains(ip("2001:db9::5")));
        assert!(network("::1/128").contains(ip("::1")));
        assert!(!network("::1/128").contains(ip("::2")));
        assert!(!documentation.contains(ip("192.0.2.1")));
    }

    #[test]
    fn zero_prefix_matches_family() {
        assert!(network("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(network("::/0").contains(ip("2001:db8::1")));
        assert!(!network("::/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn bare_address_is_host() {
        assert_eq!(network("192.0.2.1"), network("192.0.2.1/32"));
        assert_eq!(network("::1").to_string(), "::1/128");
        let documentation = network("2001:db8::/32");
        assert_eq!(documentation.address(), ip("2001:db8::"));
        assert_eq!(documentation.prefix(), 32);
    }

    #[test]
    fn parse_rejects_bad_input() {
        let cases = [
            ("10.0.0.0/", NetworkProblem::Syntax),
            ("10.0.0/8", NetworkProblem::Syntax),
            ("example.org/8", NetworkProblem::Syntax),
            ("10.0.0.0/-1", NetworkProblem::Syntax),
            (
                "10.0.0.0/33",
                NetworkProblem::PrefixTooLong {
                    prefix: 33,
                    max: 32,
                },
            ),
            (
                "::/129",
                NetworkProblem::PrefixTooLong {
                    prefix: 129,
                    max: 128,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<IpNetwork>(), Err(expected), "{text}");
        }
        let host_bits = "127.0.0.1/8".parse::<IpNetwork>();
        assert_eq!(
            host_bits,
            Err(NetworkProblem::HostBitsSet {
                network: "127.0.0.0/8".to_owned()
            })
        );
    }
}
