//! SDP rewriting for media anchoring: each leg sees the PBX's relay
//! address, and the offer is narrowed to the codecs the relay records.

use std::net::{IpAddr, SocketAddr};

use sip_message::sdp::{MediaDescription, SessionDescription};

/// Why an SDP body cannot be anchored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP body does not parse")]
    Malformed,
    #[error("INVITE without an SDP offer is not supported")]
    NoOffer,
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("SDP offers none of PCMU, PCMA and G722")]
    NoCommonCodec,
    #[error("SDP audio stream is disabled (port 0)")]
    AudioDisabled,
    #[error("SDP audio transport {proto} is not plain RTP")]
    UnsupportedTransport { proto: String },
}

/// Recordable codecs plus RFC 4733 telephone-events, which pass through.
fn keep_format(media: &MediaDescription, format: &str) -> bool {
    let Ok(payload_type) = format.parse::<u8>() else {
        return false;
    };
    match media.rtpmap(payload_type) {
        Some((encoding, 8000)) => {
            voice_codec(&encoding).is_some() || encoding.eq_ignore_ascii_case("telephone-event")
        }
        _ => false,
    }
}

/// Static payload type of a codec the relay speaks, by its rtpmap name.
/// G.722 counts at 8,000 Hz in SDP (RFC 3551 section 4.5.2) though it
/// samples at 16 kHz.
fn voice_codec(encoding: &str) -> Option<u8> {
    [("PCMU", 0), ("PCMA", 8), ("G722", 9)]
        .into_iter()
        .find(|(name, _)| encoding.eq_ignore_ascii_case(name))
        .map(|(_, payload_type)| payload_type)
}

fn is_voice(media: &MediaDescription, format: &str) -> bool {
    format
        .parse::<u8>()
        .ok()
        .and_then(|pt| media.rtpmap(pt))
        .is_some_and(|(encoding, rate)| rate == 8000 && voice_codec(&encoding).is_some())
}

/// Parses an offer and keeps in its first audio stream only PCMU, PCMA,
/// G722 and telephone-event, with their rtpmap and fmtp lines. Other streams are
/// disabled (port 0), as RFC 3264 section 6 lets an answerer do.
pub fn narrow_offer(body: &[u8]) -> Result<SessionDescription, SdpError> {
    if body.is_empty() {
        return Err(SdpError::NoOffer);
    }
    let mut sdp = SessionDescription::parse(body).map_err(|_| SdpError::Malformed)?;
    let audio = sdp.first_audio().ok_or(SdpError::NoAudio)?;
    let stream = &sdp.media[audio];
    if stream.port == 0 {
        return Err(SdpError::AudioDisabled);
    }
    // TODO: SRTP (RTP/SAVP, UDP/TLS/RTP/SAVPF) arrives with WebRTC; until
    // then such offers are refused rather than answered with plain RTP.
    if !matches!(stream.proto.as_str(), "RTP/AVP" | "RTP/AVPF") {
        return Err(SdpError::UnsupportedTransport {
            proto: stream.proto.clone(),
        });
    }
    for (index, media) in sdp.media.iter_mut().enumerate() {
        if index != audio {
            media.port = 0;
            continue;
        }
        let kept: Vec<String> = media
            .formats
            .iter()
            .filter(|f| keep_format(media, f))
            .cloned()
            .collect();
        if !kept.iter().any(|f| is_voice(media, f)) {
            return Err(SdpError::NoCommonCodec);
        }
        media.lines.retain(|line| {
            let Some(rest) = line
                .value
                .strip_prefix("rtpmap:")
                .or(line.value.strip_prefix("fmtp:"))
            else {
                return true;
            };
            line.kind != 'a'
                || rest
                    .split(' ')
                    .next()
                    .is_some_and(|pt| kept.iter().any(|k| k == pt))
        });
        media.formats = kept;
    }
    Ok(sdp)
}

/// Checks a mid-call offer (re-INVITE or UPDATE) as [`narrow_offer`]
/// checks the first one, so a call cannot move to a codec the relay drops.
/// An offer without audio, or with audio disabled (port 0), passes
/// unchanged.
pub fn narrow_reoffer(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let sdp = parse(body).and_then(check_transport)?;
    if sdp.first_audio().is_none() || audio_disabled(&sdp) {
        return Ok(sdp);
    }
    narrow_offer(body)
}

/// Parses an answer without narrowing it.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let sdp = SessionDescription::parse(body).map_err(|_| SdpError::Malformed)?;
    sdp.first_audio().ok_or(SdpError::NoAudio)?;
    Ok(sdp)
}

/// Returns the peer's RTP address in `sdp`, or None when the stream is on hold with
/// a zero address or port (RFC 3264 section 8.4), where latching decides.
pub fn remote_rtp(sdp: &SessionDescription) -> Option<SocketAddr> {
    let audio = sdp.first_audio()?;
    let address = sdp.connection_address(audio)?;
    let port = sdp.media[audio].port;
    if port == 0 || address.is_unspecified() {
        return None;
    }
    Some(SocketAddr::new(address, port))
}

/// A copy of `sdp` that points the peer at the relay's `local` address.
/// An on-hold zero address is kept, so the hold still reads as a hold.
pub fn anchored(sdp: &SessionDescription, advertised: IpAddr, local_port: u16) -> bytes::Bytes {
    anchored_description(sdp, advertised, local_port).to_bytes()
}

/// Returns the copy [`anchored`] serializes.
fn anchored_description(
    sdp: &SessionDescription,
    advertised: IpAddr,
    local_port: u16,
) -> SessionDescription {
    let mut copy = sdp.clone();
    // The other leg learns nothing about the peer's software or its SSRCs:
    // the relay may change the stream's SSRC anyway.
    copy.session
        .retain(|line| !(line.kind == 'a' && line.value.starts_with("tool:")));
    for media in &mut copy.media {
        media.lines.retain(|line| {
            !(line.kind == 'a'
                && (line.value.starts_with("ssrc:") || line.value.starts_with("ssrc-group:")))
        });
    }
    let audio = copy.first_audio();
    let hold_address = audio
        .and_then(|index| copy.connection_address(index))
        .is_some_and(|address| address.is_unspecified());
    if !hold_address {
        copy.set_connection_address(advertised);
    }
    if let Some(index) = audio {
        let media = &mut copy.media[index];
        if media.port != 0 {
            media.port = local_port;
            media.set_rtcp_port(local_port + 1);
        }
    }
    copy
}

/// True when `sdp` puts its sender on hold (RFC 3264 section 8.4): the
/// audio stream is sendonly or inactive, or its address is 0.0.0.0.
pub fn is_hold(sdp: &SessionDescription) -> bool {
    let Some(audio) = sdp.first_audio() else {
        return false;
    };
    let direction = sdp.media[audio].direction();
    let zero_address = sdp
        .connection_address(audio)
        .is_some_and(|a| a.is_unspecified());
    zero_address
        || matches!(
            direction,
            sip_message::sdp::Direction::SendOnly | sip_message::sdp::Direction::Inactive
        )
}

/// Payload types of the first audio stream of `sdp`.
pub fn payload_types(sdp: &SessionDescription) -> Vec<u8> {
    sdp.first_audio()
        .map(|audio| {
            sdp.media[audio]
                .formats
                .iter()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Returns `sdp` unless its audio stream is enabled on a transport other
/// than plain RTP, which the relay cannot carry (SRTP arrives with WebRTC).
pub fn check_transport(sdp: SessionDescription) -> Result<SessionDescription, SdpError> {
    let Some(audio) = sdp.first_audio() else {
        return Ok(sdp);
    };
    let stream = &sdp.media[audio];
    if stream.port != 0 && !matches!(stream.proto.as_str(), "RTP/AVP" | "RTP/AVPF") {
        return Err(SdpError::UnsupportedTransport {
            proto: stream.proto.clone(),
        });
    }
    Ok(sdp)
}

/// True when the audio stream of `sdp` is disabled (port 0).
pub fn audio_disabled(sdp: &SessionDescription) -> bool {
    sdp.first_audio()
        .is_some_and(|audio| sdp.media[audio].port == 0)
}

/// The PBX's own answer to `offer`, for a caller the PBX answers itself
/// (music on hold and announcements in a queue): the offer's first voice
/// codec, and telephone-event when offered, on the relay's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAnswer {
    pub sdp: SessionDescription,
    /// Static payload type of the chosen codec (0 PCMU, 8 PCMA).
    pub payload_type: u8,
    /// Payload type of RFC 4733 telephone-event, when the offer has it.
    pub event_payload_type: Option<u8>,
}

/// Builds [`LocalAnswer`] from a narrowed offer (see [`narrow_offer`]).
/// The answer's direction mirrors the offer's (RFC 3264 section 6.1).
pub fn local_answer(
    offer: &SessionDescription,
    advertised: IpAddr,
    local_port: u16,
) -> Result<LocalAnswer, SdpError> {
    let audio = offer.first_audio().ok_or(SdpError::NoAudio)?;
    let stream = &offer.media[audio];
    let payload_type = stream
        .formats
        .iter()
        .find(|f| is_voice(stream, f))
        .and_then(|f| f.parse::<u8>().ok())
        .ok_or(SdpError::NoCommonCodec)?;
    let (encoding, _) = stream.rtpmap(payload_type).ok_or(SdpError::NoCommonCodec)?;
    // The relay speaks the static numbers, so a dynamic number for a codec
    // in the offer is answered with the static one it stands for.
    let payload_type = voice_codec(&encoding).ok_or(SdpError::NoCommonCodec)?;
    let event_payload_type = event_payload_type(offer);
    let direction = mirrored(stream.direction());
    let address_type = if advertised.is_ipv4() { "IP4" } else { "IP6" };
    let mut text = format!(
        "v=0\r\no=pbx 0 0 IN {address_type} {advertised}\r\ns=pbx\r\nc=IN {address_type} {advertised}\r\nt=0 0\r\n"
    );
    // RFC 3264 section 6: one m= line per offered stream, in order, the
    // declined ones with port 0.
    for (index, offered) in offer.media.iter().enumerate() {
        if index != audio {
            text.push_str(&format!(
                "m={} 0 {} {}\r\n",
                offered.media,
                offered.proto,
                offered.formats.join(" ")
            ));
            continue;
        }
        let mut formats = payload_type.to_string();
        if let Some(event) = event_payload_type {
            formats.push_str(&format!(" {event}"));
        }
        text.push_str(&format!(
            "m=audio {local_port} {} {formats}\r\n",
            stream.proto
        ));
        let name = match payload_type {
            8 => "PCMA",
            9 => "G722",
            _ => "PCMU",
        };
        text.push_str(&format!("a=rtpmap:{payload_type} {name}/8000\r\n"));
        if let Some(event) = event_payload_type {
            text.push_str(&format!(
                "a=rtpmap:{event} telephone-event/8000\r\na=fmtp:{event} 0-16\r\n"
            ));
        }
        text.push_str(&format!("a=ptime:20\r\na={direction}\r\n"));
    }
    let sdp = SessionDescription::parse(text.as_bytes()).map_err(|_| SdpError::Malformed)?;
    Ok(LocalAnswer {
        sdp,
        payload_type,
        event_payload_type,
    })
}

/// Builds the offer the PBX makes itself on calls it places (callbacks):
/// PCMU, PCMA, G722 and telephone-event, the formats the relay speaks. The port
/// is a placeholder that [`anchored`] and [`LegOrigin::stamp`] replace.
pub fn local_offer(advertised: IpAddr) -> SessionDescription {
    let address_type = if advertised.is_ipv4() { "IP4" } else { "IP6" };
    let text = format!(
        "v=0\r\no=pbx 0 0 IN {address_type} {advertised}\r\ns=pbx\r\n\
         c=IN {address_type} {advertised}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:9 G722/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    SessionDescription::parse(text.as_bytes()).expect("the PBX's own offer parses")
}

/// Builds the offer the PBX makes to a caller whose INVITE had none:
/// [`local_offer`] without G.722, because the caller's codec is known only
/// from the ACK, after the recording started, and the recorder picks its
/// 16 kHz rate only for a leg set to G.722 when the recording starts.
pub fn local_g711_offer(advertised: IpAddr) -> SessionDescription {
    let mut offer = local_offer(advertised);
    if let Some(audio) = offer.first_audio() {
        let stream = &mut offer.media[audio];
        stream.formats.retain(|format| format != "9");
        stream
            .lines
            .retain(|line| !(line.kind == 'a' && line.value.starts_with("rtpmap:9 ")));
    }
    offer
}

/// The `o=` line the PBX puts in every SDP it sends on one leg, so the leg
/// sees one session whose version grows when the description changes
/// (RFC 3264 section 8), whichever agent's SDP is behind it.
#[derive(Clone, Debug)]
pub struct LegOrigin {
    session_id: u64,
    version: u64,
    /// The last description sent, without its `o=` line.
    last: Option<SessionDescription>,
}

impl LegOrigin {
    pub fn new(session_id: u64) -> LegOrigin {
        LegOrigin {
            session_id,
            version: 0,
            last: None,
        }
    }

    /// Replaces the `o=` line of `sdp`, anchored at the relay's address, and
    /// serializes it. The version goes up when anything else changed.
    pub fn stamp(
        &mut self,
        sdp: &SessionDescription,
        advertised: IpAddr,
        local_port: u16,
    ) -> bytes::Bytes {
        let mut copy = anchored_description(sdp, advertised, local_port);
        copy.session.retain(|line| line.kind != 'o');
        if self.last.as_ref().is_some_and(|last| *last != copy) {
            self.version += 1;
        }
        self.last = Some(copy.clone());
        self.with_origin(copy, advertised)
    }

    /// Serializes the last description sent again with the same version,
    /// for a request that leaves the session unchanged, such as a session
    /// refresh by re-INVITE (RFC 3264 section 8). None before the first.
    pub fn repeat(&self, advertised: IpAddr) -> Option<bytes::Bytes> {
        let last = self.last.clone()?;
        Some(self.with_origin(last, advertised))
    }

    /// Inserts this leg's `o=` line into `copy` and serializes it.
    fn with_origin(&self, mut copy: SessionDescription, advertised: IpAddr) -> bytes::Bytes {
        let address_type = if advertised.is_ipv4() { "IP4" } else { "IP6" };
        let origin = sip_message::sdp::SdpLine {
            kind: 'o',
            value: format!(
                "pbx {} {} IN {address_type} {advertised}",
                self.session_id, self.version
            ),
        };
        // RFC 4566 section 5: o= follows v=.
        let at = usize::from(copy.session.first().is_some_and(|l| l.kind == 'v'));
        copy.session.insert(at, origin);
        copy.to_bytes()
    }
}

/// A copy of `offer` whose audio stream also lists PCMU and PCMA when it
/// names neither, so a phone that only speaks G.711 can answer a G.722
/// caller; the relay transcodes between the two.
pub fn with_g711(offer: &SessionDescription) -> SessionDescription {
    let mut copy = offer.clone();
    let Some(audio) = copy.first_audio() else {
        return copy;
    };
    let media = &mut copy.media[audio];
    let has_g711 = media.formats.iter().any(|format| {
        format
            .parse::<u8>()
            .ok()
            .and_then(|pt| media.rtpmap(pt))
            .is_some_and(|(name, _)| matches!(voice_codec(&name), Some(0 | 8)))
    });
    if has_g711 || media.port == 0 {
        return copy;
    }
    // After the offered voice formats and before telephone-event, so the
    // caller's own codec stays the preferred one.
    let at = media
        .formats
        .iter()
        .position(|format| {
            format
                .parse::<u8>()
                .ok()
                .and_then(|pt| media.rtpmap(pt))
                .is_some_and(|(name, _)| voice_codec(&name).is_none())
        })
        .unwrap_or(media.formats.len());
    media.formats.insert(at, "8".to_owned());
    media.formats.insert(at, "0".to_owned());
    for (payload_type, name) in [(0, "PCMU"), (8, "PCMA")] {
        media.lines.push(sip_message::sdp::SdpLine {
            kind: 'a',
            value: format!("rtpmap:{payload_type} {name}/8000"),
        });
    }
    copy
}

/// True when the audio stream of `offer` lists the codec of static payload
/// type `payload_type` under any number.
pub fn offers_codec(offer: &SessionDescription, payload_type: u8) -> bool {
    let Some(audio) = offer.first_audio() else {
        return false;
    };
    let stream = &offer.media[audio];
    stream
        .formats
        .iter()
        .filter_map(|format| format.parse::<u8>().ok())
        .filter_map(|pt| stream.rtpmap(pt))
        .any(|(name, rate)| rate == 8000 && voice_codec(&name) == Some(payload_type))
}

/// Static payload type of the first PCMU, PCMA or G722 format in the
/// audio stream of `sdp` (an answer names the codec in use first).
pub fn voice_payload_type(sdp: &SessionDescription) -> Option<u8> {
    let stream = &sdp.media[sdp.first_audio()?];
    stream
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find_map(|pt| match stream.rtpmap(pt) {
            Some((name, 8000)) => voice_codec(&name),
            _ => None,
        })
}

/// Payload type of telephone-event in the audio stream of `sdp`.
pub fn event_payload_type(sdp: &SessionDescription) -> Option<u8> {
    let stream = &sdp.media[sdp.first_audio()?];
    stream
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|&pt| {
            stream.rtpmap(pt).is_some_and(|(name, rate)| {
                name.eq_ignore_ascii_case("telephone-event") && rate == 8000
            })
        })
}

/// Returns the direction that answers an offer's direction (RFC 3264
/// section 6.1).
fn mirrored(offered: sip_message::sdp::Direction) -> &'static str {
    match offered {
        sip_message::sdp::Direction::SendOnly => "recvonly",
        sip_message::sdp::Direction::RecvOnly => "sendonly",
        sip_message::sdp::Direction::Inactive => "inactive",
        sip_message::sdp::Direction::SendRecv => "sendrecv",
    }
}

/// Sets the direction of the audio stream of `answer` to the one that
/// answers the audio stream of `offer`: recvonly to a hold (sendonly),
/// sendrecv again when the hold ends.
pub fn mirror_direction(answer: &mut SessionDescription, offer: &SessionDescription) {
    let Some(offered) = offer.first_audio().map(|i| offer.media[i].direction()) else {
        return;
    };
    let Some(audio) = answer.first_audio() else {
        return;
    };
    let media = &mut answer.media[audio];
    media.lines.retain(|line| {
        !(line.kind == 'a'
            && matches!(
                line.value.as_str(),
                "sendrecv" | "sendonly" | "recvonly" | "inactive"
            ))
    });
    media.lines.push(sip_message::sdp::SdpLine {
        kind: 'a',
        value: mirrored(offered).to_owned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(formats: &str, rtpmaps: &str) -> Vec<u8> {
        format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP {formats}\r\n{rtpmaps}"
        )
        .into_bytes()
    }

    #[test]
    fn g722_is_kept_and_answered_first_when_preferred() {
        let narrowed = narrow_offer(&offer(
            "9 18 0 101",
            "a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        ))
        .unwrap();
        let audio = &narrowed.media[0];
        assert_eq!(audio.formats, ["9", "0", "101"]);
        let answer = local_answer(&narrowed, "127.0.0.1".parse().unwrap(), 20000).unwrap();
        assert_eq!(answer.payload_type, 9);
        assert_eq!(answer.event_payload_type, Some(101));
        assert_eq!(voice_payload_type(&answer.sdp), Some(9));
        assert_eq!(
            answer.sdp.media[0].rtpmap(9),
            Some(("G722".to_owned(), 8000))
        );
    }

    #[test]
    fn dynamic_numbers_are_answered_with_static_ones() {
        let narrowed = narrow_offer(&offer(
            "96 97",
            "a=rtpmap:96 G722/8000\r\na=rtpmap:97 PCMA/8000\r\n",
        ))
        .unwrap();
        let answer = local_answer(&narrowed, "127.0.0.1".parse().unwrap(), 20000).unwrap();
        assert_eq!(answer.payload_type, 9);
    }

    #[test]
    fn wideband_clock_rates_are_not_g722() {
        // Only the 8,000 Hz RTP clock of RFC 3551 names G.722.
        let refused = narrow_offer(&offer("96", "a=rtpmap:96 G722/16000\r\n"));
        assert_eq!(refused.unwrap_err(), SdpError::NoCommonCodec);
    }

    #[test]
    fn own_offer_lists_every_codec_the_relay_speaks() {
        let own = local_offer("127.0.0.1".parse().unwrap());
        assert_eq!(own.media[0].formats, ["0", "8", "9", "101"]);
        assert_eq!(event_payload_type(&own), Some(101));
    }
}
