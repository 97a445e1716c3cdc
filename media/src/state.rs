//! Everything the relay thread changes for a session: peer addresses, per-leg media
//! state, counters and the recorder, and what it does with each packet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::net::UdpSocket;
use recordings::{Channel, Recorder, RecordingSummary};
use rtp::telephone_event::{DEFAULT_TELEPHONE_EVENT_PT, TelephoneEvent, event_to_digit};
use rtp::{DtmfDetector, RtpPacket, is_rtcp, is_stun};
use socket2::{SockAddr, SockRef};
use tokio::sync::mpsc;

use crate::codec::{Codec, Encoder, LegCodecs, Transcoder};
use crate::latch::{Latch, Verdict, expected_source, same_address};
use crate::outgoing::{OutgoingStream, Rewritten, StreamSource};
use crate::player::Player;
use crate::session::{Control, LegCounters, LegSockets, add};
use crate::shard::Origin;
use crate::{Leg, MediaError, MediaEvent, PlaybackEnd};

mod code;
mod local;

use code::CodeFilter;

/// RTP clock of every codec the relay handles (G.711, and G.722 by the
/// RFC 3551 convention).
const CLOCK_RATE: u32 = 8000;
/// Payload types a leg may send until [`Control::SetPayloadTypes`]: the
/// static types of the codecs the relay handles and the dynamic range,
/// where telephone-event lives.
const DEFAULT_PAYLOAD_TYPES: [u8; 3] = [0, 8, 9];
const DYNAMIC_PAYLOAD_TYPES: std::ops::RangeInclusive<u8> = 96..=127;

/// Addresses of one leg's peer: the one from SDP and the learned sources.
struct PeerAddresses {
    remote: Option<SocketAddr>,
    rtp: Latch,
    rtcp: Latch,
}

impl PeerAddresses {
    fn new() -> PeerAddresses {
        PeerAddresses {
            remote: None,
            rtp: Latch::default(),
            rtcp: Latch::default(),
        }
    }

    fn rtp_destination(&self) -> Option<SocketAddr> {
        self.rtp.current().or(self.remote)
    }

    /// Learned RTCP source, else the port above the RTP address
    /// (RFC 3550 section 11).
    fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.rtcp.current().or_else(|| {
            let rtp = self.rtp_destination()?;
            let port = rtp.port().checked_add(1)?;
            Some(SocketAddr::new(rtp.ip(), port))
        })
    }

    /// Checks a valid packet's source against the latch of the port it came
    /// in on. RTCP must come from the IP address RTP was learned from, as a
    /// phone sends both from one host.
    fn observe(&mut self, rtcp_port: bool, source: SocketAddr) -> Verdict {
        let sdp = expected_source(self.remote);
        if rtcp_port {
            let expected = self.rtp.current().map(|rtp| rtp.ip()).or(sdp);
            self.rtcp.observe(source, expected)
        } else {
            // The exact address of a public SDP takes the latch over from
            // another port of the same IP. After a transfer the old phone's
            // last packets can arrive first and be learned, and without this
            // the new phone, which the SDP names, would never be heard.
            let named_by_sdp = sdp.is_some()
                && self
                    .remote
                    .is_some_and(|remote| same_address(remote, source));
            if named_by_sdp && self.rtp.current().is_some_and(|learned| learned != source) {
                self.forget_sources();
            }
            self.rtp.observe(source, sdp)
        }
    }

    fn forget_sources(&mut self) {
        self.rtp.reset();
        self.rtcp.reset();
    }
}

/// A telephone-event packet waiting for its send time.
struct ScheduledEvent {
    due: Instant,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    payload: [u8; 4],
    payload_type: u8,
    /// Each digit is its own local source, so the rewriter sees a switch.
    source: StreamSource,
}

/// Media state of one leg: what its peer negotiated and sends, and what
/// the relay itself sends to it.
struct LegMedia {
    codecs: Option<LegCodecs>,
    /// Payload types the peer negotiated; `None` until the session owner
    /// sets them.
    payload_types: Option<Vec<u8>>,
    /// Codec of the newest audio packet from the peer, used by the player
    /// until [`LegCodecs`] are set.
    last_codec: Option<Codec>,
    /// Converts audio from this leg to the other leg's codec, for the SSRC
    /// it was created for.
    transcoder: Option<(u32, Transcoder)>,
    /// Encodes what the player sends to this leg.
    encoder: Option<Encoder>,
    detector: DtmfDetector,
    outgoing: OutgoingStream,
    player: Option<Player>,
    /// Source of the current player's packets, for `outgoing`.
    player_source: StreamSource,
    /// Last identifier handed to a player or a generated digit.
    local_source: u32,
    events: VecDeque<ScheduledEvent>,
    /// Feature code whose keys this leg's peer sends are kept from the
    /// other leg and reported as [`MediaEvent::FeatureCode`].
    code: Option<CodeFilter>,
}

impl LegMedia {
    fn new(local_ssrc: u32) -> LegMedia {
        LegMedia {
            codecs: None,
            payload_types: None,
            last_codec: None,
            transcoder: None,
            encoder: None,
            detector: DtmfDetector::new(CLOCK_RATE),
            outgoing: OutgoingStream::new(local_ssrc, CLOCK_RATE),
            player: None,
            player_source: StreamSource::Local(0),
            local_source: 0,
            events: VecDeque::new(),
            code: None,
        }
    }

    fn accepts(&self, payload_type: u8) -> bool {
        match &self.payload_types {
            Some(types) => types.contains(&payload_type),
            None => {
                DEFAULT_PAYLOAD_TYPES.contains(&payload_type)
                    || DYNAMIC_PAYLOAD_TYPES.contains(&payload_type)
            }
        }
    }

    fn event_payload_type(&self) -> Option<u8> {
        match self.codecs {
            Some(codecs) => codecs.event_payload_type,
            None => Some(DEFAULT_TELEPHONE_EVENT_PT),
        }
    }

    fn codec(&self) -> Codec {
        self.codecs
            .map(|codecs| codecs.codec)
            .or(self.last_codec)
            .unwrap_or(Codec::Pcmu)
    }

    /// True while the relay's own audio or events go to this leg, which
    /// mutes what the other leg sends.
    fn is_local_active(&self) -> bool {
        self.player.is_some() || !self.events.is_empty()
    }

    fn next_local_source(&mut self) -> StreamSource {
        self.local_source = self.local_source.wrapping_add(1);
        StreamSource::Local(self.local_source)
    }

    fn next_due(&self) -> Option<Instant> {
        let player = self.player.as_ref().and_then(Player::next_due);
        let event = self.events.front().map(|event| event.due);
        match (player, event) {
            (Some(player), Some(event)) => Some(player.min(event)),
            (player, event) => player.or(event),
        }
    }
}

/// Largest datagram relayed: an Ethernet MTU. Audio at 20 ms is a few
/// hundred bytes at most, and RTCP compound packets stay below the MTU.
pub(crate) const MAX_DATAGRAM: usize = 1500;

/// Why a datagram was dropped, for the counters and the log.
#[derive(Clone, Copy, Debug)]
enum Discard {
    /// Neither RTP nor RTCP.
    Invalid,
    /// A STUN message, such as a phone's NAT binding request.
    Stun,
    /// Larger than [`MAX_DATAGRAM`]; the length as received.
    Oversized(usize),
    /// RTP with a payload type the leg did not negotiate.
    PayloadType(u8),
    /// Not from the leg's learned or expected source.
    Source,
}

/// Payload change for a relayed packet.
enum Payload {
    Unchanged,
    NewType(u8),
    /// Converted to this payload type; the new payload is in
    /// `RelayState::transcoded`.
    Transcoded(u8),
    Dropped,
}

/// Everything the task changes: addresses, counters and the recorder.
pub(crate) struct RelayState {
    peers: [PeerAddresses; 2],
    media: [LegMedia; 2],
    pub(crate) counters: Arc<[LegCounters; 2]>,
    recorder: Option<Box<Recorder>>,
    recording_error: Option<recordings::RecordingError>,
    /// A recording finalized before the session closed
    /// ([`Control::StopRecording`]), kept for [`RelayState::finish_recording`].
    stopped_recording: Option<RecordingSummary>,
    subscribers: Vec<mpsc::Sender<MediaEvent>>,
    /// The datagram being sent, reused so that relaying a packet
    /// allocates nothing.
    outgoing_datagram: Vec<u8>,
    /// The transcoded payload of the packet being relayed, reused likewise.
    transcoded: Vec<u8>,
}

impl RelayState {
    pub(crate) fn new(counters: Arc<[LegCounters; 2]>, local_ssrcs: [u32; 2]) -> RelayState {
        RelayState {
            peers: [PeerAddresses::new(), PeerAddresses::new()],
            media: local_ssrcs.map(LegMedia::new),
            counters,
            recorder: None,
            recording_error: None,
            stopped_recording: None,
            subscribers: Vec::new(),
            outgoing_datagram: Vec::with_capacity(MAX_DATAGRAM),
            transcoded: Vec::with_capacity(MAX_DATAGRAM),
        }
    }

    pub(crate) fn apply(&mut self, control: Control, now: Instant) {
        match control {
            Control::SetRemote(leg, addr) => {
                let peer = &mut self.peers[leg.index()];
                // A new address is a new peer (re-INVITE, another agent's
                // phone); the same one again is a session refresh.
                if peer.remote != Some(addr) {
                    peer.forget_sources();
                }
                tracing::debug!(?leg, %addr, expected_source = ?expected_source(Some(addr)), "remote address set");
                peer.remote = Some(addr);
            }
            Control::ResetLeg(leg) => {
                tracing::debug!(?leg, "learned sources forgotten");
                self.peers[leg.index()].forget_sources();
            }
            Control::SetPayloadTypes(leg, types) => {
                tracing::debug!(?leg, ?types, "payload types set");
                self.media[leg.index()].payload_types = Some(types);
            }
            Control::StartRecording(recorder) => {
                tracing::info!(path = %recorder.path().display(), "recording started");
                self.recorder = Some(recorder);
            }
            Control::FailRecording(error) => {
                tracing::error!(%error, "recording could not start");
                self.recording_error = Some(error);
            }
            Control::PauseRecording(at) => self.set_recording_paused(true, at),
            Control::ResumeRecording(at) => self.set_recording_paused(false, at),
            Control::StopRecording(at) => self.stop_recording(at),
            Control::SetFeatureCode(leg, code) => {
                tracing::debug!(?leg, ?code, "feature code set");
                let media = &mut self.media[leg.index()];
                let released = media
                    .code
                    .as_mut()
                    .map(CodeFilter::take_held)
                    .unwrap_or_default();
                media.code = code.map(CodeFilter::new);
                // Keys held for the code being replaced still reach the other leg.
                self.send_digits(leg.other(), &released, now);
            }
            Control::Subscribe(sender) => self.subscribers.push(sender),
            Control::SetCodecs(leg, codecs) => {
                tracing::debug!(?leg, ?codecs, "codecs set");
                self.media[leg.index()].codecs = Some(codecs);
            }
            Control::Play(leg, request) => self.start_player(leg, *request, now),
            Control::StopPlayback(leg) => self.end_player(leg, PlaybackEnd::Stopped),
            Control::SendDigit(leg, digit) => self.send_digit(leg, digit, now),
            // The task loop handles Close before it gets here.
            Control::Close(_) => {}
        }
    }

    fn stop_recording(&mut self, at: Instant) {
        let Some(recorder) = self.recorder.take() else {
            tracing::debug!("no recording to stop");
            return;
        };
        match recorder.finish(at) {
            Ok(summary) => {
                tracing::info!(frames = summary.frames, path = %summary.path.display(), "recording stopped before the call's end");
                self.stopped_recording = Some(summary);
            }
            Err(error) => {
                // `finish_recording` reports it when the session closes.
                tracing::error!(%error, "recording failed");
                self.recording_error = Some(error);
            }
        }
    }

    fn set_recording_paused(&mut self, paused: bool, at: Instant) {
        let Some(recorder) = self.recorder.as_mut() else {
            tracing::debug!(paused, "no recording to pause or resume");
            return;
        };
        let changed = if paused {
            recorder.pause(at)
        } else {
            recorder.resume(at)
        };
        if changed {
            tracing::info!(paused, "recording pause changed");
        } else {
            tracing::debug!(paused, "recording already in that state");
        }
    }

    fn emit(&mut self, event: MediaEvent) {
        self.subscribers
            .retain(|subscriber| match subscriber.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(?event, "media event subscriber is full, event dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// Handles one datagram: checks size, payload type and source, records, detects DTMF and
    /// forwards it.
    pub(crate) fn relay(
        &mut self,
        sockets: &[LegSockets; 2],
        origin: Origin,
        source: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) {
        let counters = &self.counters[origin.leg.index()];
        add(&counters.packets_received, 1);
        add(&counters.bytes_received, datagram.len());
        if datagram.len() > MAX_DATAGRAM {
            self.count_dropped(origin, source, Discard::Oversized(datagram.len()));
            return;
        }

        // Phones that open NAT bindings send STUN binding requests to both
        // media ports. linphone 5.1 sends them at the call's start, and in a
        // call with sipp (which sends no RTCP) every 500 ms to the RTCP port
        // after that. The relay does no ICE, so it drops them, but it does
        // not count them as invalid or learn the peer's source from them.
        if is_stun(datagram) {
            self.count_dropped(origin, source, Discard::Stun);
            return;
        }

        // On the RTP port, RTCP may come multiplexed (RFC 5761); it is relayed
        // and learns its source like RTP but is not recorded.
        let rtcp = is_rtcp(datagram);
        let packet = if rtcp {
            None
        } else if origin.rtcp {
            self.count_dropped(origin, source, Discard::Invalid);
            return;
        } else {
            let Ok(packet) = RtpPacket::parse(datagram) else {
                self.count_dropped(origin, source, Discard::Invalid);
                return;
            };
            if !self.media[origin.leg.index()].accepts(packet.payload_type) {
                self.count_dropped(origin, source, Discard::PayloadType(packet.payload_type));
                return;
            }
            Some(packet)
        };

        match self.peers[origin.leg.index()].observe(origin.rtcp, source) {
            Verdict::Accepted => {}
            Verdict::Learned => {
                tracing::debug!(leg = ?origin.leg, rtcp_port = origin.rtcp, %source, "peer source learned");
            }
            Verdict::Rejected => {
                self.count_dropped(origin, source, Discard::Source);
                return;
            }
        }
        match packet {
            Some(packet) => {
                self.counters[origin.leg.index()].rtp_arrived(now);
                // The code filter runs first, so the detector below knows
                // which keys were kept from the other leg.
                let forward = self.intercept_code(origin.leg, &packet, now);
                self.inspect(origin.leg, &packet, now);
                if forward {
                    self.forward_rtp(sockets, origin.leg, &packet, datagram, now);
                }
            }
            None => self.forward_rtcp(sockets, origin, datagram),
        }
    }

    /// Counts a dropped datagram and logs it when the count reaches a power
    /// of two, so a flood leaves a few lines, not one per packet.
    fn count_dropped(&self, origin: Origin, source: SocketAddr, reason: Discard) {
        let counters = &self.counters[origin.leg.index()];
        let counter = match reason {
            Discard::Invalid => &counters.invalid_packets,
            Discard::Stun => &counters.stun_packets,
            Discard::Oversized(_) => &counters.oversized_packets,
            Discard::PayloadType(_) => &counters.rejected_payload_type,
            Discard::Source => &counters.rejected_source,
        };
        let count = add(counter, 1);
        if !count.is_power_of_two() {
            return;
        }
        let (leg, rtcp_port) = (origin.leg, origin.rtcp);
        match reason {
            Discard::Invalid => {
                tracing::warn!(?leg, rtcp_port, %source, count, "invalid datagram dropped");
            }
            Discard::Stun => {
                tracing::debug!(?leg, rtcp_port, %source, count, "STUN message dropped");
            }
            Discard::Oversized(length) => {
                tracing::warn!(?leg, rtcp_port, %source, count, length, "oversized datagram dropped");
            }
            Discard::PayloadType(payload_type) => {
                tracing::warn!(?leg, %source, count, payload_type, "RTP of a payload type not negotiated dropped");
            }
            Discard::Source => {
                tracing::warn!(?leg, rtcp_port, %source, count, "datagram from a source other than the peer dropped");
            }
        }
    }

    /// Records the packet, counts it in the reception statistics and feeds
    /// telephone-events to the leg's DTMF detector.
    fn inspect(&mut self, leg: Leg, packet: &RtpPacket<'_>, now: Instant) {
        if let Some(recorder) = self.recorder.as_mut() {
            let channel = match leg {
                Leg::Caller => Channel::Caller,
                Leg::Agent => Channel::Agent,
            };
            recorder.push(channel, packet, now);
        }
        let media = &mut self.media[leg.index()];
        if Some(packet.payload_type) == media.event_payload_type() {
            if let Some(digit) = media.detector.push(packet, now) {
                self.digit_detected(leg, digit, now);
            }
            return;
        }
        if let Some(codec) = Codec::from_payload_type(packet.payload_type) {
            media.last_codec = Some(codec);
        }
        self.counters[leg.index()].record_reception(packet, CLOCK_RATE, now);
    }

    /// Runs `leg`'s feature-code filter on a telephone-event packet: sends
    /// on the keys it releases, reports a completed code, and returns
    /// whether the packet itself is relayed.
    fn intercept_code(&mut self, leg: Leg, packet: &RtpPacket<'_>, now: Instant) -> bool {
        let media = &mut self.media[leg.index()];
        if Some(packet.payload_type) != media.event_payload_type() {
            return true;
        }
        let Some(filter) = media.code.as_mut() else {
            return true;
        };
        let key = TelephoneEvent::parse(packet.payload)
            .ok()
            .and_then(|event| event_to_digit(event.event));
        let decision = filter.on_event(packet.ssrc, packet.timestamp, key, now);
        let code = filter.code();
        self.send_digits(leg.other(), &decision.release, now);
        if decision.completed {
            tracing::info!(?leg, code, "feature code entered");
            self.emit(MediaEvent::FeatureCode { leg, code });
        }
        decision.forward
    }

    fn digit_detected(&mut self, leg: Leg, digit: rtp::DetectedDigit, now: Instant) {
        tracing::debug!(?leg, digit = %digit.digit, duration = ?digit.duration, "DTMF digit detected");
        self.emit(MediaEvent::Dtmf { leg, digit });
        let barge_in = self.media[leg.index()]
            .player
            .as_ref()
            .is_some_and(|player| player.barge_in);
        if barge_in {
            self.end_player(leg, PlaybackEnd::BargeIn(digit.digit));
        }
        let swallowed = self.media[leg.index()]
            .code
            .as_ref()
            .is_some_and(|filter| filter.was_swallowed(digit.timestamp));
        // The other leg did not negotiate telephone-events: it gets the key
        // as an in-band tone instead, unless the key belongs to a feature
        // code, whose filter sends on what it releases itself.
        let other = &self.media[leg.other().index()];
        if !swallowed && other.codecs.is_some() && other.event_payload_type().is_none() {
            self.send_digit(leg.other(), digit.digit, now);
        }
    }

    /// Maps the payload of a packet from `from` to what the other leg
    /// negotiated: telephone-event payload type, transcoded audio.
    fn map_payload(&mut self, from: Leg, packet: &RtpPacket<'_>) -> Payload {
        let source = &self.media[from.index()];
        let target = &self.media[from.other().index()];
        if Some(packet.payload_type) == source.event_payload_type() {
            return match (target.codecs, target.event_payload_type()) {
                (None, _) => Payload::Unchanged,
                (Some(_), Some(payload_type)) if payload_type == packet.payload_type => {
                    Payload::Unchanged
                }
                (Some(_), Some(payload_type)) => Payload::NewType(payload_type),
                // Sent to the other leg as an in-band tone on detection.
                (Some(_), None) => Payload::Dropped,
            };
        }
        let (Some(source_codecs), Some(target_codecs)) = (source.codecs, target.codecs) else {
            return Payload::Unchanged;
        };
        let to = target_codecs.codec;
        match Codec::from_payload_type(packet.payload_type) {
            Some(codec) if codec != to && codec == source_codecs.codec => {
                let transcoder = &mut self.media[from.index()].transcoder;
                // A new SSRC or new codecs start a fresh decoder and encoder,
                // because G.722 state belongs to one stream.
                let reusable = transcoder.as_ref().is_some_and(|(ssrc, transcoder)| {
                    *ssrc == packet.ssrc && transcoder.converts(codec, to)
                });
                if !reusable {
                    *transcoder = Some((packet.ssrc, Transcoder::new(codec, to)));
                }
                match transcoder.as_mut() {
                    Some((_, transcoder)) => {
                        self.transcoded.clear();
                        transcoder.transcode_into(packet.payload, &mut self.transcoded);
                        Payload::Transcoded(to.payload_type())
                    }
                    None => Payload::Dropped,
                }
            }
            _ => Payload::Unchanged,
        }
    }

    fn forward_rtp(
        &mut self,
        sockets: &[LegSockets; 2],
        from: Leg,
        packet: &RtpPacket<'_>,
        datagram: &[u8],
        now: Instant,
    ) {
        let to = from.other();
        if self.media[to.index()].is_local_active() {
            return;
        }
        let Some(destination) = self.peers[to.index()].rtp_destination() else {
            add(&self.counters[from.index()].unroutable_packets, 1);
            return;
        };
        let payload = self.map_payload(from, packet);
        let source = StreamSource::Relayed(packet.ssrc);
        let rewritten =
            self.media[to.index()]
                .outgoing
                .rewrite(source, packet.sequence, packet.timestamp, now);
        let mut out = std::mem::take(&mut self.outgoing_datagram);
        out.clear();
        match payload {
            Payload::Dropped => {}
            Payload::Unchanged => {
                patch_header(
                    datagram,
                    packet.payload_type,
                    packet.marker,
                    rewritten,
                    &mut out,
                );
            }
            Payload::NewType(payload_type) => {
                patch_header(datagram, payload_type, packet.marker, rewritten, &mut out);
            }
            Payload::Transcoded(payload_type) => {
                let payload = &self.transcoded;
                build_packet_into(payload_type, packet.marker, rewritten, payload, &mut out);
            }
        }
        // `Payload::Dropped` leaves `out` empty.
        if !out.is_empty() {
            self.send(sockets, to, destination, &out);
        }
        self.outgoing_datagram = out;
    }

    fn forward_rtcp(&self, sockets: &[LegSockets; 2], origin: Origin, datagram: &[u8]) {
        let to = origin.leg.other();
        let peer = &self.peers[to.index()];
        let (socket, destination) = if origin.rtcp {
            (&sockets[to.index()].rtcp, peer.rtcp_destination())
        } else {
            (&sockets[to.index()].rtp, peer.rtp_destination())
        };
        let Some(destination) = destination else {
            add(&self.counters[origin.leg.index()].unroutable_packets, 1);
            return;
        };
        self.send_on(socket, to, destination, datagram);
    }

    fn send(&self, sockets: &[LegSockets; 2], to: Leg, destination: SocketAddr, datagram: &[u8]) {
        self.send_on(&sockets[to.index()].rtp, to, destination, datagram);
    }

    /// Sends at once with one `sendto` call. The socket is non-blocking: a
    /// datagram that finds the send buffer full is dropped rather than
    /// queued, because audio sent late is as useless as audio lost.
    fn send_on(&self, socket: &UdpSocket, to: Leg, destination: SocketAddr, datagram: &[u8]) {
        // tokio's own send waits for its writable readiness, which needs a
        // poll of the task. The direct call needs none, and fails at worst
        // with WouldBlock.
        // Counted before the call, so that a reader of the counters who saw
        // the peer receive the datagram finds it counted. The count is taken
        // back if the send fails (UDP sends all of a datagram or nothing).
        let counters = &self.counters[to.index()];
        add(&counters.packets_sent, 1);
        add(&counters.bytes_sent, datagram.len());
        if let Err(error) = SockRef::from(socket).send_to(datagram, &SockAddr::from(destination)) {
            counters.packets_sent.fetch_sub(1, Ordering::Relaxed);
            counters
                .bytes_sent
                .fetch_sub(datagram.len() as u64, Ordering::Relaxed);
            tracing::trace!(%destination, %error, "send failed");
        }
    }

    /// Reports DTMF digits whose final packets were lost, and sends on the
    /// keys of a feature code that was left unfinished.
    pub(crate) fn poll_dtmf_timeouts(&mut self, now: Instant) {
        for leg in [Leg::Caller, Leg::Agent] {
            if let Some(digit) = self.media[leg.index()].detector.poll_timeout(now) {
                self.digit_detected(leg, digit, now);
            }
            let released = self.media[leg.index()]
                .code
                .as_mut()
                .map(|filter| filter.poll_timeout(now))
                .unwrap_or_default();
            if !released.is_empty() {
                tracing::debug!(?leg, ?released, "unfinished feature code sent on");
                self.send_digits(leg.other(), &released, now);
            }
        }
    }

    pub(crate) fn flush_recording(&mut self, now: Instant) {
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        if let Err(error) = recorder.flush(now) {
            // Stop recording but keep relaying; close reports the error.
            tracing::error!(%error, "recording stopped");
            self.recorder = None;
            self.recording_error = Some(error);
        }
    }

    pub(crate) fn finish_recording(
        &mut self,
        end: Instant,
        call_id: &str,
    ) -> Result<Option<RecordingSummary>, MediaError> {
        if let Some(source) = self.recording_error.take() {
            return Err(MediaError::Recording {
                call_id: call_id.to_owned(),
                source,
            });
        }
        let Some(recorder) = self.recorder.take() else {
            return Ok(self.stopped_recording.take());
        };
        match recorder.finish(end) {
            Ok(summary) => {
                tracing::info!(frames = summary.frames, path = %summary.path.display(), "recording finished");
                Ok(Some(summary))
            }
            Err(source) => {
                tracing::error!(error = %source, "recording failed");
                Err(MediaError::Recording {
                    call_id: call_id.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Appends a copy of a relayed datagram with new header fields to `out`.
/// CSRCs, the header extension, the payload and padding stay as received.
fn patch_header(
    datagram: &[u8],
    payload_type: u8,
    marker: bool,
    rewritten: Rewritten,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(datagram);
    // The caller parsed the datagram, so the 12-byte fixed header is there.
    if let Some(header) = out.get_mut(start..start + 12) {
        header[1] = u8::from(marker || rewritten.marker) << 7 | (payload_type & 0x7F);
        header[2..4].copy_from_slice(&rewritten.sequence.to_be_bytes());
        header[4..8].copy_from_slice(&rewritten.timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&rewritten.ssrc.to_be_bytes());
    }
}

/// Appends an RTP packet with a fixed header only to `out`.
fn build_packet_into(
    payload_type: u8,
    marker: bool,
    rewritten: Rewritten,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let packet = RtpPacket {
        payload_type,
        marker: marker || rewritten.marker,
        sequence: rewritten.sequence,
        timestamp: rewritten.timestamp,
        ssrc: rewritten.ssrc,
        payload,
    };
    packet.write(out);
}

fn build_packet(payload_type: u8, marker: bool, rewritten: Rewritten, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    build_packet_into(payload_type, marker, rewritten, payload, &mut out);
    out
}
