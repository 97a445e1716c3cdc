//! SDP session descriptions (RFC 4566), kept close to the text: every line
//! is stored in order, so lines this crate does not interpret survive a
//! parse and serialize unchanged. Only the fields media anchoring rewrites
//! (c=, o=, m= ports, a=rtcp) have typed helpers.

mod media;

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{ErrorKind, ParseError};

pub use media::{Direction, MediaDescription};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// v=, o=, s=, c=, t=, a=... before the first m=.
    pub session: Vec<SdpLine>,
    pub media: Vec<MediaDescription>,
}

/// One `<type>=<value>` line, e.g. kind `a`, value `rtpmap:0 PCMU/8000`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdpLine {
    pub kind: char,
    pub value: String,
}

impl SessionDescription {
    /// Parses a description with LF or CRLF line ends. Empty lines are
    /// skipped; a line that is not `<letter>=<value>` is an error.
    pub fn parse(text: &[u8]) -> Result<SessionDescription, ParseError> {
        let text = std::str::from_utf8(text)
            .map_err(|_| ParseError::new(ErrorKind::Sdp, "session description is not UTF-8"))?;
        let mut description = SessionDescription {
            session: Vec::new(),
            media: Vec::new(),
        };
        for (number, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let line = parse_line(line).map_err(|e| e.at(number + 1))?;
            match (line.kind, description.media.last_mut()) {
                ('m', _) => description
                    .media
                    .push(MediaDescription::parse_m_line(&line.value)?),
                (_, Some(media)) => media.lines.push(line),
                (_, None) => description.session.push(line),
            }
        }
        if description.session.first().map(|l| l.kind) != Some('v') {
            return Err(ParseError::new(
                ErrorKind::Sdp,
                "session description does not start with v=",
            ));
        }
        Ok(description)
    }

    /// Serializes with CRLF line ends.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        let mut write = |kind: char, value: &str| {
            let mut buffer = [0; 4];
            out.put_slice(kind.encode_utf8(&mut buffer).as_bytes());
            out.put_u8(b'=');
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        };
        for line in &self.session {
            write(line.kind, &line.value);
        }
        for media in &self.media {
            write('m', &media.m_line());
            for line in &media.lines {
                write(line.kind, &line.value);
            }
        }
        out.freeze()
    }

    /// Connection address for media `index`: media-level c= first, then session c=.
    pub fn connection_address(&self, index: usize) -> Option<IpAddr> {
        let media = self.media.get(index)?;
        let media_level = media.lines.iter().find(|l| l.kind == 'c');
        let line = media_level.or_else(|| self.session.iter().find(|l| l.kind == 'c'))?;
        parse_connection(&line.value)
    }

    /// Sets the session-level c= and o= addresses to `addr` and removes media-level c= lines.
    pub fn set_connection_address(&mut self, addr: IpAddr) {
        let address_type = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let connection = format!("IN {address_type} {addr}");
        match self.session.iter_mut().find(|l| l.kind == 'c') {
            Some(line) => line.value = connection,
            None => {
                // RFC 4566 section 5 orders c= after v, o, s, i, u, e and p.
                let before = self
                    .session
                    .iter()
                    .position(|l| !"vosiuep".contains(l.kind));
                let at = before.unwrap_or(self.session.len());
                self.session.insert(
                    at,
                    SdpLine {
                        kind: 'c',
                        value: connection,
                    },
                );
            }
        }
        if let Some(origin) = self.session.iter_mut().find(|l| l.kind == 'o') {
            let mut fields: Vec<&str> = origin.value.split(' ').collect();
            if fields.len() == 6 {
                let address = addr.to_string();
                fields[4] = address_type;
                fields[5] = &address;
                origin.value = fields.join(" ");
            }
        }
        for media in &mut self.media {
            media.lines.retain(|l| l.kind != 'c');
        }
    }

    pub fn first_audio(&self) -> Option<usize> {
        self.media.iter().position(|m| m.media == "audio")
    }
}

fn parse_line(line: &str) -> Result<SdpLine, ParseError> {
    let mut chars = line.chars();
    match (chars.next(), chars.next()) {
        (Some(kind), Some('=')) if kind.is_ascii_alphabetic() => Ok(SdpLine {
            kind,
            value: chars.as_str().to_owned(),
        }),
        _ => Err(ParseError::new(
            ErrorKind::Sdp,
            format!("invalid SDP line {line:?}"),
        )),
    }
}

/// Reads the address of `IN IP4 192.0.2.1` or `IN IP6 ::1`, ignoring a
/// multicast `/ttl` suffix. A domain name yields `None`.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_whitespace();
    let (_network, _address_type, address) = (fields.next()?, fields.next()?, fields.next()?);
    let address = address.split('/').next()?;
    address.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
        m=audio 4000 RTP/AVP 0 101\nc=IN IP4 192.0.2.9\na=rtpmap:101 telephone-event/8000\n\
        a=x-unknown:1\nm=video 0 RTP/AVP 31\n";

    #[test]
    fn lf_input_serializes_with_crlf() {
        let description = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(description.session.len(), 5);
        assert_eq!(description.media.len(), 2);
        let bytes = description.to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            OFFER.replace('\n', "\r\n")
        );
        assert_eq!(SessionDescription::parse(&bytes).unwrap(), description);
    }

    #[test]
    fn connection_address_prefers_media_level() {
        let mut description = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(
            description.connection_address(0),
            Some("192.0.2.9".parse().unwrap())
        );
        assert_eq!(
            description.connection_address(1),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(description.connection_address(2), None);
        description.set_connection_address("2001:db8::5".parse().unwrap());
        assert_eq!(
            description.connection_address(0),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(description.session[1].value, "- 1 1 IN IP6 2001:db8::5");
        assert_eq!(description.session[3].value, "IN IP6 2001:db8::5");
    }

    #[test]
    fn missing_session_c_line_is_inserted_before_t() {
        let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n";
        let mut description = SessionDescription::parse(text.as_bytes()).unwrap();
        description.set_connection_address("198.51.100.7".parse().unwrap());
        let kinds: String = description.session.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, "vosct");
        assert!(description.media[0].lines.is_empty());
    }

    #[test]
    fn malformed_descriptions() {
        for text in [
            "",
            "o=x\r\n",
            "v=0\r\nbad line\r\n",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\n=x\r\n",
        ] {
            assert!(
                SessionDescription::parse(text.as_bytes()).is_err(),
                "{text:?} should be rejected"
            );
        }
    }
}
