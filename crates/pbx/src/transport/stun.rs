//! STUN binding responses on the SIP UDP port. A phone that registers a
//! SIP Outbound flow over UDP keeps it alive with STUN binding requests to
//! the port it registered through, and treats a missing response as a
//! dead flow (RFC 5626 sections 4.4.2 and 8), so the PBX answers them
//! there. Only the binding method is served (RFC 5389).

use std::net::{IpAddr, SocketAddr};

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER_LENGTH: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// Returns the success response to a STUN binding request, with the
/// request's source in XOR-MAPPED-ADDRESS, or None when `datagram` is no
/// well-formed binding request. Attributes of the request are not read:
/// the keep-alives of RFC 5626 carry none that change the response.
pub(super) fn binding_response(datagram: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    if datagram.len() < HEADER_LENGTH || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let message_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    // The two top bits of a STUN message are zero, and the length counts
    // the attributes after the header, in 4-byte words.
    if message_type != BINDING_REQUEST
        || length % 4 != 0
        || length != datagram.len() - HEADER_LENGTH
    {
        return None;
    }
    let transaction_id = &datagram[8..HEADER_LENGTH];
    let port = source.port() ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    let (family, address): (u8, Vec<u8>) = match source.ip() {
        IpAddr::V4(ip) => {
            let xored = ip
                .octets()
                .iter()
                .zip(MAGIC_COOKIE)
                .map(|(byte, key)| byte ^ key)
                .collect();
            (0x01, xored)
        }
        IpAddr::V6(ip) => {
            // An IPv6 address is XORed with the cookie followed by the
            // transaction id.
            let key = MAGIC_COOKIE.iter().chain(transaction_id);
            let xored = ip
                .octets()
                .iter()
                .zip(key)
                .map(|(byte, key)| byte ^ key)
                .collect();
            (0x02, xored)
        }
    };
    let value_length = 4 + address.len();
    let mut response = Vec::with_capacity(HEADER_LENGTH + 4 + value_length);
    response.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    let attributes = u16::try_from(4 + value_length).ok()?;
    response.extend_from_slice(&attributes.to_be_bytes());
    response.extend_from_slice(&MAGIC_COOKIE);
    response.extend_from_slice(transaction_id);
    response.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    response.extend_from_slice(&u16::try_from(value_length).ok()?.to_be_bytes());
    response.extend_from_slice(&[0, family]);
    response.extend_from_slice(&port.to_be_bytes());
    response.extend_from_slice(&address);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(transaction: u8) -> Vec<u8> {
        let mut request = vec![0x00, 0x01, 0x00, 0x00];
        request.extend_from_slice(&MAGIC_COOKIE);
        request.extend_from_slice(&[transaction; 12]);
        request
    }

    /// Decodes XOR-MAPPED-ADDRESS from a response built here.
    fn mapped(response: &[u8]) -> SocketAddr {
        assert_eq!(&response[0..2], &[0x01, 0x01], "binding success");
        assert_eq!(&response[20..22], &[0x00, 0x20], "XOR-MAPPED-ADDRESS first");
        let port = u16::from_be_bytes([response[26], response[27]]) ^ 0x2112;
        let value = &response[28..];
        let ip = match response[25] {
            0x01 => {
                let octets: Vec<u8> = value.iter().zip(MAGIC_COOKIE).map(|(b, k)| b ^ k).collect();
                IpAddr::from(<[u8; 4]>::try_from(octets).unwrap())
            }
            _ => {
                let key: Vec<u8> = MAGIC_COOKIE
                    .iter()
                    .chain(&response[8..20])
                    .copied()
                    .collect();
                let octets: Vec<u8> = value.iter().zip(key).map(|(b, k)| b ^ k).collect();
                IpAddr::from(<[u8; 16]>::try_from(octets).unwrap())
            }
        };
        SocketAddr::new(ip, port)
    }

    #[test]
    fn ipv4_source_mapped() {
        let source: SocketAddr = "192.0.2.33:40123".parse().unwrap();
        let response = binding_response(&request(7), source).expect("response");
        assert_eq!(response.len(), 32);
        assert_eq!(&response[2..4], &[0x00, 0x0C], "attribute length");
        assert_eq!(&response[8..20], &[7; 12], "transaction id kept");
        assert_eq!(mapped(&response), source);
    }

    #[test]
    fn ipv6_source_mapped() {
        let source: SocketAddr = "[2001:db8::7]:5062".parse().unwrap();
        let response = binding_response(&request(9), source).expect("response");
        assert_eq!(response.len(), 44);
        assert_eq!(mapped(&response), source);
    }

    #[test]
    fn non_binding_datagrams_ignored() {
        let source: SocketAddr = "192.0.2.33:40123".parse().unwrap();
        let mut indication = request(1);
        indication[1] = 0x11;
        assert_eq!(binding_response(&indication, source), None);
        let mut wrong_length = request(1);
        wrong_length[3] = 8;
        assert_eq!(binding_response(&wrong_length, source), None);
        assert_eq!(
            binding_response(b"OPTIONS sip:a SIP/2.0\r\n\r\n", source),
            None
        );
        assert_eq!(binding_response(&request(1)[..19], source), None);
    }
}
