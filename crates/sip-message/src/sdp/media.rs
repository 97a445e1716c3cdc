//! Media descriptions: the m= line and the lines after it.

use super::SdpLine;
use crate::{ErrorKind, ParseError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// "audio", "video", ...
    pub media: String,
    pub port: u16,
    pub port_count: Option<u16>,
    /// "RTP/AVP", "UDP/TLS/RTP/SAVPF", ...
    pub proto: String,
    /// Payload types as text.
    pub formats: Vec<String>,
    /// i=, c=, b=, a= lines after the m= line.
    pub lines: Vec<SdpLine>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// Static payload types of RFC 3551 table 4 and 5.
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32)] = &[
    (0, "PCMU", 8000),
    (3, "GSM", 8000),
    (4, "G723", 8000),
    (5, "DVI4", 8000),
    (6, "DVI4", 16000),
    (7, "LPC", 8000),
    (8, "PCMA", 8000),
    (9, "G722", 8000),
    (10, "L16", 44100),
    (11, "L16", 44100),
    (12, "QCELP", 8000),
    (13, "CN", 8000),
    (14, "MPA", 90000),
    (15, "G728", 8000),
    (16, "DVI4", 11025),
    (17, "DVI4", 22050),
    (18, "G729", 8000),
    (25, "CelB", 90000),
    (26, "JPEG", 90000),
    (28, "nv", 90000),
    (31, "H261", 90000),
    (32, "MPV", 90000),
    (33, "MP2T", 90000),
    (34, "H263", 90000),
];

impl MediaDescription {
    /// Parses the value of `m=<media> <port>[/<count>] <proto> <fmt> ...`.
    pub(crate) fn parse_m_line(value: &str) -> Result<MediaDescription, ParseError> {
        let invalid = || ParseError::new(ErrorKind::Sdp, format!("invalid m= line {value:?}"));
        let mut fields = value.split(' ');
        let (Some(media), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(invalid());
        };
        let (port, port_count) = match port.split_once('/') {
            Some((port, count)) => (port, Some(count.parse().map_err(|_| invalid())?)),
            None => (port, None),
        };
        let port = port.parse().map_err(|_| invalid())?;
        let formats: Vec<String> = fields.map(str::to_owned).collect();
        if media.is_empty() || proto.is_empty() || formats.iter().any(String::is_empty) {
            return Err(invalid());
        }
        Ok(MediaDescription {
            media: media.to_owned(),
            port,
            port_count,
            proto: proto.to_owned(),
            formats,
            lines: Vec::new(),
        })
    }

    /// The value of the m= line.
    pub(crate) fn m_line(&self) -> String {
        let mut line = format!("{} {}", self.media, self.port);
        if let Some(count) = self.port_count {
            line.push_str(&format!("/{count}"));
        }
        line.push(' ');
        line.push_str(&self.proto);
        for format in &self.formats {
            line.push(' ');
            line.push_str(format);
        }
        line
    }

    /// The first `a=name[:value]` of this media; `Some(None)` for a flag.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.lines
            .iter()
            .filter(|l| l.kind == 'a')
            .find_map(|l| match l.value.split_once(':') {
                Some((n, value)) if n == name => Some(Some(value)),
                None if l.value == name => Some(None),
                _ => None,
            })
    }

    /// Direction from the media-level attribute; SendRecv when absent.
    /// NOTE: a session-level direction attribute is not consulted here.
    pub fn direction(&self) -> Direction {
        let attributes = self.lines.iter().filter(|l| l.kind == 'a');
        for line in attributes {
            match line.value.as_str() {
                "sendrecv" => return Direction::SendRecv,
                "sendonly" => return Direction::SendOnly,
                "recvonly" => return Direction::RecvOnly,
                "inactive" => return Direction::Inactive,
                _ => {}
            }
        }
        Direction::SendRecv
    }

    /// (encoding name, clock rate) from a=rtpmap, or the static table for 0-34.
    pub fn rtpmap(&self, payload_type: u8) -> Option<(String, u32)> {
        let prefix = format!("rtpmap:{payload_type} ");
        let mapped = self
            .lines
            .iter()
            .filter(|l| l.kind == 'a')
            .find_map(|l| l.value.strip_prefix(&prefix));
        if let Some(encoding) = mapped {
            let mut parts = encoding.trim().split('/');
            let name = parts.next()?;
            let rate = parts.next()?.parse().ok()?;
            return Some((name.to_owned(), rate));
        }
        STATIC_PAYLOAD_TYPES
            .iter()
            .find(|(pt, _, _)| *pt == payload_type)
            .map(|(_, name, rate)| ((*name).to_owned(), *rate))
    }

    /// Sets a=rtcp to `port` when the description has an a=rtcp line,
    /// keeping any address that follows the port.
    pub fn set_rtcp_port(&mut self, port: u16) {
        let rtcp = self
            .lines
            .iter_mut()
            .find(|l| l.kind == 'a' && l.value.starts_with("rtcp:"));
        if let Some(line) = rtcp {
            let rest = line.value["rtcp:".len()..]
                .split_once(' ')
                .map(|(_, address)| address);
            line.value = match rest {
                Some(address) => format!("rtcp:{port} {address}"),
                None => format!("rtcp:{port}"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(lines: &[&str]) -> MediaDescription {
        let mut media = MediaDescription::parse_m_line("audio 49170/2 RTP/AVP 0 8 101").unwrap();
        media.lines = lines
            .iter()
            .map(|l| SdpLine {
                kind: 'a',
                value: (*l).to_owned(),
            })
            .collect();
        media
    }

    #[test]
    fn m_line_round_trip() {
        let media = audio(&[]);
        assert_eq!(media.port, 49170);
        assert_eq!(media.port_count, Some(2));
        assert_eq!(media.formats, vec!["0", "8", "101"]);
        assert_eq!(media.m_line(), "audio 49170/2 RTP/AVP 0 8 101");
    }

    #[test]
    fn attributes_and_direction() {
        let media = audio(&["rtcp-mux", "ptime:20", "sendonly"]);
        assert_eq!(media.attribute("ptime"), Some(Some("20")));
        assert_eq!(media.attribute("rtcp-mux"), Some(None));
        assert_eq!(media.attribute("rtcp"), None);
        assert_eq!(media.direction(), Direction::SendOnly);
        assert_eq!(audio(&[]).direction(), Direction::SendRecv);
    }

    #[test]
    fn rtpmap_dynamic_and_static() {
        let media = audio(&["rtpmap:101 telephone-event/8000", "rtpmap:8 alaw/16000"]);
        assert_eq!(media.rtpmap(101), Some(("telephone-event".into(), 8000)));
        assert_eq!(media.rtpmap(8), Some(("alaw".into(), 16000)));
        assert_eq!(media.rtpmap(0), Some(("PCMU".into(), 8000)));
        assert_eq!(media.rtpmap(96), None);
    }

    #[test]
    fn rtcp_port_rewrite() {
        let mut media = audio(&["rtcp:4001 IN IP4 192.0.2.1"]);
        media.set_rtcp_port(30001);
        assert_eq!(
            media.attribute("rtcp"),
            Some(Some("30001 IN IP4 192.0.2.1"))
        );
        let mut without = audio(&[]);
        without.set_rtcp_port(30001);
        assert_eq!(without.attribute("rtcp"), None);
    }
}
