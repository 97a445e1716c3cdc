//! RTP fixed header parsing and writing (RFC 3550 section 5.1).

/// Length of the fixed RTP header without CSRCs.
const FIXED_HEADER_LEN: usize = 12;
const VERSION: u8 = 2;

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("RTP packet too short: {length} bytes, the header needs {needed}")]
    TooShort { length: usize, needed: usize },
    #[error("unsupported RTP version {version}, expected 2")]
    BadVersion { version: u8 },
    #[error("RTP padding count {padding} exceeds the {available} bytes after the header")]
    BadPadding { padding: usize, available: usize },
}

/// RTP fixed header (RFC 3550 section 5.1) over a borrowed datagram.
///
/// CSRCs, the header extension and padding are skipped by [`RtpPacket::parse`],
/// so `payload` holds only the media bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses one datagram.
    ///
    /// Rejects a version other than 2, a datagram shorter than its header
    /// (fixed part, CSRC list and header extension), and a padding count
    /// that is zero or larger than what follows the header.
    pub fn parse(datagram: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        let length = datagram.len();
        let fixed = datagram.get(..FIXED_HEADER_LEN).ok_or(RtpError::TooShort {
            length,
            needed: FIXED_HEADER_LEN,
        })?;
        let version = fixed[0] >> 6;
        if version != VERSION {
            return Err(RtpError::BadVersion { version });
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0F);

        let mut header_len = FIXED_HEADER_LEN + 4 * csrc_count;
        if has_extension {
            // The extension header is 16 bits of profile data then its length
            // in 32-bit words, not counting this 4-byte header (section 5.3.1).
            let words = datagram
                .get(header_len + 2..header_len + 4)
                .ok_or(RtpError::TooShort {
                    length,
                    needed: header_len + 4,
                })?;
            header_len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let body = datagram.get(header_len..).ok_or(RtpError::TooShort {
            length,
            needed: header_len,
        })?;

        let payload = if has_padding {
            strip_padding(body)?
        } else {
            body
        };
        Ok(RtpPacket {
            payload_type: fixed[1] & 0x7F,
            marker: fixed[1] & 0x80 != 0,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            payload,
        })
    }

    /// Appends the packet to `out` as version 2 with no padding, no CSRCs and
    /// no header extension. The payload type is cut to its 7 bits.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(FIXED_HEADER_LEN + self.payload.len());
        out.push(VERSION << 6);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// Removes RTP padding: the last byte counts the padding bytes, itself
/// included (RFC 3550 section 5.1), so zero is invalid.
fn strip_padding(body: &[u8]) -> Result<&[u8], RtpError> {
    let available = body.len();
    let padding = usize::from(body.last().copied().unwrap_or(0));
    if padding == 0 || padding > available {
        return Err(RtpError::BadPadding { padding, available });
    }
    Ok(&body[..available - padding])
}

/// Tells RTCP from RTP on a shared port (RFC 5761 section 4).
///
/// True for a version 2 datagram of at least 8 bytes (the smallest RTCP
/// packet, an empty receiver report) whose second byte is an RTCP packet
/// type from 200 (SR) to 204 (APP).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    match datagram {
        [first, packet_type, ..] if datagram.len() >= 8 => {
            first >> 6 == VERSION && (200..=204).contains(packet_type)
        }
        _ => false,
    }
}

/// The magic cookie of STUN messages (RFC 5389 section 6).
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// Tells a STUN message from RTP and RTCP on a media port.
///
/// True for a datagram of at least the 20-byte STUN header whose first byte
/// is 0 to 3 (the STUN range in RFC 7983's demultiplexing) and whose bytes
/// 4 to 7 are the magic cookie. Phones send STUN binding requests to their
/// media peer to open NAT bindings or to check connectivity for ICE.
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[0] <= 3 && datagram[4..8] == STUN_MAGIC_COOKIE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request as linphone 5.1 sends it: header only.
    const STUN_BINDING_REQUEST: [u8; 20] = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0x6B, 0x2F, 0x33, 0x01, 0x8A, 0x55, 0x0C,
        0x19, 0x70, 0x01, 0xEE, 0x42,
    ];

    #[test]
    fn stun_binding_request_recognized() {
        assert!(is_stun(&STUN_BINDING_REQUEST));
        assert!(!is_rtcp(&STUN_BINDING_REQUEST));
    }

    #[test]
    fn stun_needs_cookie_and_header() {
        let mut no_cookie = STUN_BINDING_REQUEST;
        no_cookie[4] = 0;
        assert!(!is_stun(&no_cookie));
        assert!(!is_stun(&STUN_BINDING_REQUEST[..19]));
        assert!(!is_stun(&PCMU_PACKET));
    }

    const PCMU_PACKET: [u8; 14] = [
        0x80, 0x80, 0x12, 0x34, 0x00, 0x01, 0x02, 0x03, 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0x7F,
    ];

    #[test]
    fn parse_fixed_header() {
        let packet = RtpPacket::parse(&PCMU_PACKET).expect("valid packet");
        assert_eq!(packet.payload_type, 0);
        assert!(packet.marker);
        assert_eq!(packet.sequence, 0x1234);
        assert_eq!(packet.timestamp, 0x0001_0203);
        assert_eq!(packet.ssrc, 0xDEAD_BEEF);
        assert_eq!(packet.payload, &[0xFF, 0x7F]);
    }

    #[test]
    fn write_then_parse_round_trip() {
        let packet = RtpPacket::parse(&PCMU_PACKET).expect("valid packet");
        let mut out = Vec::new();
        packet.write(&mut out);
        assert_eq!(out, PCMU_PACKET);
    }

    #[test]
    fn write_appends_without_clearing() {
        let packet = RtpPacket::parse(&PCMU_PACKET).expect("valid packet");
        let mut out = vec![0xAA];
        packet.write(&mut out);
        assert_eq!(out[0], 0xAA);
        assert_eq!(&out[1..], &PCMU_PACKET);
    }

    #[test]
    fn parse_skips_csrcs_extension_and_padding() {
        let mut datagram = vec![0xB2, 0x08, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        datagram.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        datagram.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one-word extension
        datagram.extend_from_slice(&[0xD5, 0x55]); // payload
        datagram.extend_from_slice(&[0, 0, 3]); // three padding bytes
        let packet = RtpPacket::parse(&datagram).expect("valid packet");
        assert_eq!(packet.payload_type, 8);
        assert!(!packet.marker);
        assert_eq!(packet.timestamp, 160);
        assert_eq!(packet.ssrc, 7);
        assert_eq!(packet.payload, &[0xD5, 0x55]);
    }

    #[test]
    fn parse_rejects_short_datagram() {
        let error = RtpPacket::parse(&PCMU_PACKET[..11]).unwrap_err();
        assert_eq!(
            error,
            RtpError::TooShort {
                length: 11,
                needed: 12
            }
        );
    }

    #[test]
    fn parse_rejects_version_one() {
        let mut datagram = PCMU_PACKET;
        datagram[0] = 0x40;
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::BadVersion { version: 1 })
        );
    }

    #[test]
    fn parse_rejects_csrc_overrun() {
        let mut datagram = PCMU_PACKET;
        datagram[0] = 0x81; // one CSRC needs 16 bytes, 14 present
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::TooShort {
                length: 14,
                needed: 16
            })
        );
    }

    #[test]
    fn parse_rejects_extension_overrun() {
        let mut datagram = vec![0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        datagram.extend_from_slice(&[0xBE, 0xDE, 0, 2, 1, 2, 3, 4]); // declares 2 words, has 1
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::TooShort {
                length: 20,
                needed: 24
            })
        );
    }

    #[test]
    fn parse_rejects_missing_extension_header() {
        let datagram = [0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE];
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::TooShort {
                length: 13,
                needed: 16
            })
        );
    }

    #[test]
    fn parse_rejects_padding_overrun() {
        let mut datagram = PCMU_PACKET;
        datagram[0] = 0xA0;
        datagram[13] = 3; // claims 3 padding bytes, 2 follow the header
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::BadPadding {
                padding: 3,
                available: 2
            })
        );
    }

    #[test]
    fn parse_rejects_zero_padding_count() {
        let mut datagram = PCMU_PACKET;
        datagram[0] = 0xA0;
        datagram[13] = 0;
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::BadPadding {
                padding: 0,
                available: 2
            })
        );
    }

    #[test]
    fn parse_rejects_padding_without_body() {
        let mut datagram = PCMU_PACKET[..12].to_vec();
        datagram[0] = 0xA0;
        assert_eq!(
            RtpPacket::parse(&datagram),
            Err(RtpError::BadPadding {
                padding: 0,
                available: 0
            })
        );
    }

    #[test]
    fn is_rtcp_accepts_sender_and_receiver_reports() {
        let receiver_report = [0x80, 201, 0, 1, 0, 0, 0, 1];
        let sender_report = [0x80, 200, 0, 6, 0, 0, 0, 1];
        assert!(is_rtcp(&receiver_report));
        assert!(is_rtcp(&sender_report));
    }

    #[test]
    fn is_rtcp_rejects_rtp_and_short_datagrams() {
        assert!(!is_rtcp(&PCMU_PACKET));
        assert!(!is_rtcp(&[0x80, 200, 0, 1]));
        assert!(!is_rtcp(&[0x40, 200, 0, 1, 0, 0, 0, 1])); // version 1
        assert!(!is_rtcp(&[0x80, 205, 0, 1, 0, 0, 0, 1])); // RTPFB, outside 200..=204
    }
}
