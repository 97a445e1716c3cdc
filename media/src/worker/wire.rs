//! The messages between the PBX and its relay worker processes, one per
//! `SOCK_SEQPACKET` datagram, in a plain binary layout: a tag byte, then
//! fixed-width little-endian fields, strings and lists behind a `u32`
//! length. Both ends are the same binary, so the layout needs no version;
//! a message that does not decode is still an error, never a panic.
//!
//! Instants do not cross process boundaries as such: each travels as its
//! signed distance from the sender's `now`, and the receiver adds it to its
//! own `now`. Both read the same monotonic clock, so the error is the time
//! the datagram spent in the socket.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use recordings::RecordingSummary;
use rtp::DetectedDigit;

use crate::codec::{Codec, LegCodecs};
use crate::{Leg, LegStats, MediaEvent, PlaybackEnd};

/// Samples of a prompt per [`ToWorker::PromptChunk`], so that a datagram
/// stays well under the socket's default send buffer.
pub(crate) const PROMPT_CHUNK: usize = 16_384;
/// Sessions per [`FromWorker::Stats`] datagram, for the same reason.
pub(crate) const STATS_PER_MESSAGE: usize = 128;
/// Longest Call-ID or error text sent, in bytes; longer ones are cut at a
/// character boundary. A SIP Call-ID may be near 64 KiB, and these texts
/// serve only logs and error messages.
const MAX_TEXT: usize = 2048;
/// Layout of these messages, checked by [`ToWorker::Hello`], in case the
/// worker's program is not the PBX's own.
pub(crate) const VERSION: u32 = 1;

/// From the PBX to a worker.
#[derive(Debug, PartialEq)]
pub(crate) enum ToWorker {
    /// The first message: how to run the worker's relay threads.
    Hello {
        version: u32,
        threads: u32,
        spin: Duration,
        realtime_priority: u8,
        coalesce: Duration,
    },
    /// Bind `rtp_ports[leg]` and the port above it for each leg and start
    /// relaying; the worker replies with [`FromWorker::Opened`].
    Open {
        id: u64,
        call_id: String,
        address: IpAddr,
        rtp_ports: [u16; 2],
        ssrcs: [u32; 2],
    },
    SetRemote(u64, Leg, SocketAddr),
    ResetLeg(u64, Leg),
    StartRecording {
        id: u64,
        path: PathBuf,
        mixed_mono: Option<PathBuf>,
        start: Instant,
        sample_rate: u32,
        jitter_window: Duration,
    },
    PauseRecording(u64, Instant),
    ResumeRecording(u64, Instant),
    StopRecording(u64, Instant),
    SetFeatureCode(u64, Leg, Option<Vec<char>>),
    SetCodecs(u64, Leg, LegCodecs),
    SetPayloadTypes(u64, Leg, Vec<u8>),
    /// Part of prompt `prompt`'s samples; the prompt is complete after the
    /// chunk with `last` set.
    PromptChunk {
        prompt: u64,
        last: bool,
        samples: Vec<i16>,
    },
    /// The PBX dropped prompt `prompt`; sessions playing it keep their copy.
    ForgetPrompt(u64),
    Play {
        id: u64,
        leg: Leg,
        prompts: Vec<u64>,
        looped: bool,
        barge_in: bool,
    },
    StopPlayback(u64, Leg),
    SendDigit(u64, Leg, char),
    Close(u64, Instant),
}

/// From a worker to the PBX.
#[derive(Debug, PartialEq)]
pub(crate) enum FromWorker {
    /// The reply to [`ToWorker::Open`]: relaying, or the leg whose port
    /// did not bind and the OS error.
    Opened {
        id: u64,
        failure: Option<BindFailure>,
    },
    Event(u64, MediaEvent),
    /// The reception figures of sessions whose figures changed.
    Stats(Vec<(u64, [LegStats; 2])>),
    /// The worker's delay histogram since it started: counts per bucket of
    /// [`crate::RELAY_DELAY_BOUNDS_US`] plus the overflow, and their sum.
    Delays {
        counts: Vec<u64>,
        sum: Duration,
    },
    /// A session ended: its last figures and its recording, or the error.
    Done {
        id: u64,
        stats: Box<[LegStats; 2]>,
        outcome: Result<Option<RecordingSummary>, String>,
    },
}

/// A port the worker could not bind: the leg, the OS error number and
/// the error's text with the address.
pub(crate) type BindFailure = (Leg, i32, String);

/// A datagram that does not decode as a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "malformed relay worker message: {}", self.0)
    }
}

struct Writer {
    bytes: Vec<u8>,
    now: Instant,
}

impl Writer {
    fn new(tag: u8) -> Writer {
        Writer {
            bytes: vec![tag],
            now: Instant::now(),
        }
    }

    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn len(&mut self, len: usize) {
        self.u32(u32::try_from(len).unwrap_or(u32::MAX));
    }

    fn str(&mut self, value: &str) {
        let mut end = value.len().min(MAX_TEXT);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        self.len(end);
        self.bytes.extend_from_slice(&value.as_bytes()[..end]);
    }

    fn path(&mut self, value: &std::path::Path) {
        use std::os::unix::ffi::OsStrExt;
        let bytes = value.as_os_str().as_bytes();
        self.len(bytes.len());
        self.bytes.extend_from_slice(bytes);
    }

    fn char(&mut self, value: char) {
        self.u32(u32::from(value));
    }

    fn duration(&mut self, value: Duration) {
        self.u64(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    fn instant(&mut self, value: Instant) {
        let offset = match value.checked_duration_since(self.now) {
            Some(ahead) => i64::try_from(ahead.as_nanos()).unwrap_or(i64::MAX),
            None => -i64::try_from(self.now.duration_since(value).as_nanos()).unwrap_or(i64::MAX),
        };
        self.i64(offset);
    }

    fn leg(&mut self, leg: Leg) {
        self.u8(leg.index() as u8);
    }

    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                self.u8(4);
                self.bytes.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.u8(6);
                self.bytes.extend_from_slice(&v6.octets());
            }
        }
    }

    fn addr(&mut self, addr: SocketAddr) {
        self.ip(addr.ip());
        self.u16(addr.port());
    }

    fn stats(&mut self, stats: &LegStats) {
        for value in [
            stats.packets_received,
            stats.bytes_received,
            stats.packets_sent,
            stats.bytes_sent,
            stats.invalid_packets,
            stats.stun_packets,
            stats.rejected_source,
            stats.rejected_payload_type,
            stats.oversized_packets,
            stats.unroutable_packets,
            stats.rtp_packets_received,
            stats.rtp_packets_expected,
            stats.jitter_micros,
        ] {
            self.u64(value);
        }
        self.i64(stats.rtp_packets_lost);
        match stats.last_packet_at {
            Some(at) => {
                self.bool(true);
                self.instant(at);
            }
            None => self.bool(false),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    now: Instant,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], Malformed> {
        if self.bytes.len() < count {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    fn bool(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed("flag is neither 0 nor 1")),
        }
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Reads a length, checked against what is left so that a corrupt one
    /// cannot reserve gigabytes.
    fn len(&mut self, item_size: usize) -> Result<usize, Malformed> {
        let len = self.u32()? as usize;
        if len.saturating_mul(item_size) > self.bytes.len() {
            return Err(Malformed("length beyond the message"));
        }
        Ok(len)
    }

    fn str(&mut self) -> Result<String, Malformed> {
        let len = self.len(1)?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| Malformed("text is not UTF-8"))
    }

    fn path(&mut self) -> Result<PathBuf, Malformed> {
        use std::os::unix::ffi::OsStrExt;
        let len = self.len(1)?;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(self.take(len)?)))
    }

    fn char(&mut self) -> Result<char, Malformed> {
        char::from_u32(self.u32()?).ok_or(Malformed("not a character"))
    }

    fn duration(&mut self) -> Result<Duration, Malformed> {
        Ok(Duration::from_nanos(self.u64()?))
    }

    fn instant(&mut self) -> Result<Instant, Malformed> {
        let offset = self.i64()?;
        let distance = Duration::from_nanos(offset.unsigned_abs());
        let at = if offset >= 0 {
            self.now.checked_add(distance)
        } else {
            self.now.checked_sub(distance)
        };
        // Beyond what the clock can express: now is the nearest instant
        // that exists.
        Ok(at.unwrap_or(self.now))
    }

    fn leg(&mut self) -> Result<Leg, Malformed> {
        match self.u8()? {
            0 => Ok(Leg::Caller),
            1 => Ok(Leg::Agent),
            _ => Err(Malformed("unknown leg")),
        }
    }

    fn ip(&mut self) -> Result<IpAddr, Malformed> {
        match self.u8()? {
            4 => Ok(IpAddr::from(self.array::<4>()?)),
            6 => Ok(IpAddr::from(self.array::<16>()?)),
            _ => Err(Malformed("unknown address family")),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, Malformed> {
        let ip = self.ip()?;
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    fn stats(&mut self) -> Result<LegStats, Malformed> {
        Ok(LegStats {
            packets_received: self.u64()?,
            bytes_received: self.u64()?,
            packets_sent: self.u64()?,
            bytes_sent: self.u64()?,
            invalid_packets: self.u64()?,
            stun_packets: self.u64()?,
            rejected_source: self.u64()?,
            rejected_payload_type: self.u64()?,
            oversized_packets: self.u64()?,
            unroutable_packets: self.u64()?,
            rtp_packets_received: self.u64()?,
            rtp_packets_expected: self.u64()?,
            jitter_micros: self.u64()?,
            rtp_packets_lost: self.i64()?,
            last_packet_at: if self.bool()? {
                Some(self.instant()?)
            } else {
                None
            },
        })
    }

    fn finish<T>(&self, value: T) -> Result<T, Malformed> {
        if self.bytes.is_empty() {
            Ok(value)
        } else {
            Err(Malformed("bytes after the message"))
        }
    }
}

fn codec_tag(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0,
        Codec::Pcma => 1,
        Codec::G722 => 2,
    }
}

fn codec_of(tag: u8) -> Result<Codec, Malformed> {
    match tag {
        0 => Ok(Codec::Pcmu),
        1 => Ok(Codec::Pcma),
        2 => Ok(Codec::G722),
        _ => Err(Malformed("unknown codec")),
    }
}

impl ToWorker {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out;
        match self {
            ToWorker::Hello {
                version,
                threads,
                spin,
                realtime_priority,
                coalesce,
            } => {
                out = Writer::new(0);
                out.u32(*version);
                out.u32(*threads);
                out.duration(*spin);
                out.u8(*realtime_priority);
                out.duration(*coalesce);
            }
            ToWorker::Open {
                id,
                call_id,
                address,
                rtp_ports,
                ssrcs,
            } => {
                out = Writer::new(1);
                out.u64(*id);
                out.str(call_id);
                out.ip(*address);
                rtp_ports.iter().for_each(|port| out.u16(*port));
                ssrcs.iter().for_each(|ssrc| out.u32(*ssrc));
            }
            ToWorker::SetRemote(id, leg, addr) => {
                out = Writer::new(2);
                out.u64(*id);
                out.leg(*leg);
                out.addr(*addr);
            }
            ToWorker::ResetLeg(id, leg) => {
                out = Writer::new(3);
                out.u64(*id);
                out.leg(*leg);
            }
            ToWorker::StartRecording {
                id,
                path,
                mixed_mono,
                start,
                sample_rate,
                jitter_window,
            } => {
                out = Writer::new(4);
                out.u64(*id);
                out.path(path);
                out.bool(mixed_mono.is_some());
                if let Some(mixed) = mixed_mono {
                    out.path(mixed);
                }
                out.instant(*start);
                out.u32(*sample_rate);
                out.duration(*jitter_window);
            }
            ToWorker::PauseRecording(id, at)
            | ToWorker::ResumeRecording(id, at)
            | ToWorker::StopRecording(id, at)
            | ToWorker::Close(id, at) => {
                out = Writer::new(match self {
                    ToWorker::PauseRecording(..) => 5,
                    ToWorker::ResumeRecording(..) => 6,
                    ToWorker::StopRecording(..) => 7,
                    _ => 8,
                });
                out.u64(*id);
                out.instant(*at);
            }
            ToWorker::SetFeatureCode(id, leg, code) => {
                out = Writer::new(9);
                out.u64(*id);
                out.leg(*leg);
                out.bool(code.is_some());
                if let Some(keys) = code {
                    out.len(keys.len());
                    keys.iter().for_each(|key| out.char(*key));
                }
            }
            ToWorker::SetCodecs(id, leg, codecs) => {
                out = Writer::new(10);
                out.u64(*id);
                out.leg(*leg);
                out.u8(codec_tag(codecs.codec));
                out.bool(codecs.event_payload_type.is_some());
                out.u8(codecs.event_payload_type.unwrap_or(0));
            }
            ToWorker::SetPayloadTypes(id, leg, types) => {
                out = Writer::new(11);
                out.u64(*id);
                out.leg(*leg);
                out.len(types.len());
                out.bytes.extend_from_slice(types);
            }
            ToWorker::PromptChunk {
                prompt,
                last,
                samples,
            } => {
                out = Writer::new(12);
                out.u64(*prompt);
                out.bool(*last);
                out.len(samples.len());
                out.bytes.reserve(samples.len() * 2);
                for sample in samples {
                    out.bytes.extend_from_slice(&sample.to_le_bytes());
                }
            }
            ToWorker::ForgetPrompt(prompt) => {
                out = Writer::new(13);
                out.u64(*prompt);
            }
            ToWorker::Play {
                id,
                leg,
                prompts,
                looped,
                barge_in,
            } => {
                out = Writer::new(14);
                out.u64(*id);
                out.leg(*leg);
                out.len(prompts.len());
                prompts.iter().for_each(|prompt| out.u64(*prompt));
                out.bool(*looped);
                out.bool(*barge_in);
            }
            ToWorker::StopPlayback(id, leg) => {
                out = Writer::new(15);
                out.u64(*id);
                out.leg(*leg);
            }
            ToWorker::SendDigit(id, leg, digit) => {
                out = Writer::new(16);
                out.u64(*id);
                out.leg(*leg);
                out.char(*digit);
            }
        }
        out.bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<ToWorker, Malformed> {
        let (&tag, rest) = bytes.split_first().ok_or(Malformed("empty"))?;
        let mut input = Reader {
            bytes: rest,
            now: Instant::now(),
        };
        let message = match tag {
            0 => ToWorker::Hello {
                version: input.u32()?,
                threads: input.u32()?,
                spin: input.duration()?,
                realtime_priority: input.u8()?,
                coalesce: input.duration()?,
            },
            1 => ToWorker::Open {
                id: input.u64()?,
                call_id: input.str()?,
                address: input.ip()?,
                rtp_ports: [input.u16()?, input.u16()?],
                ssrcs: [input.u32()?, input.u32()?],
            },
            2 => ToWorker::SetRemote(input.u64()?, input.leg()?, input.addr()?),
            3 => ToWorker::ResetLeg(input.u64()?, input.leg()?),
            4 => ToWorker::StartRecording {
                id: input.u64()?,
                path: input.path()?,
                mixed_mono: if input.bool()? {
                    Some(input.path()?)
                } else {
                    None
                },
                start: input.instant()?,
                sample_rate: input.u32()?,
                jitter_window: input.duration()?,
            },
            5 => ToWorker::PauseRecording(input.u64()?, input.instant()?),
            6 => ToWorker::ResumeRecording(input.u64()?, input.instant()?),
            7 => ToWorker::StopRecording(input.u64()?, input.instant()?),
            8 => ToWorker::Close(input.u64()?, input.instant()?),
            9 => {
                let id = input.u64()?;
                let leg = input.leg()?;
                let code = if input.bool()? {
                    let len = input.len(4)?;
                    Some((0..len).map(|_| input.char()).collect::<Result<_, _>>()?)
                } else {
                    None
                };
                ToWorker::SetFeatureCode(id, leg, code)
            }
            10 => {
                let id = input.u64()?;
                let leg = input.leg()?;
                let codec = codec_of(input.u8()?)?;
                let has_events = input.bool()?;
                let event_payload_type = input.u8()?;
                let codecs = LegCodecs {
                    codec,
                    event_payload_type: has_events.then_some(event_payload_type),
                };
                ToWorker::SetCodecs(id, leg, codecs)
            }
            11 => {
                let id = input.u64()?;
                let leg = input.leg()?;
                let len = input.len(1)?;
                ToWorker::SetPayloadTypes(id, leg, input.take(len)?.to_vec())
            }
            12 => {
                let prompt = input.u64()?;
                let last = input.bool()?;
                let len = input.len(2)?;
                let samples = input
                    .take(len * 2)?
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                    .collect();
                ToWorker::PromptChunk {
                    prompt,
                    last,
                    samples,
                }
            }
            13 => ToWorker::ForgetPrompt(input.u64()?),
            14 => {
                let id = input.u64()?;
                let leg = input.leg()?;
                let len = input.len(8)?;
                let prompts = (0..len).map(|_| input.u64()).collect::<Result<_, _>>()?;
                ToWorker::Play {
                    id,
                    leg,
                    prompts,
                    looped: input.bool()?,
                    barge_in: input.bool()?,
                }
            }
            15 => ToWorker::StopPlayback(input.u64()?, input.leg()?),
            16 => ToWorker::SendDigit(input.u64()?, input.leg()?, input.char()?),
            _ => return Err(Malformed("unknown message to a worker")),
        };
        input.finish(message)
    }
}

impl FromWorker {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out;
        match self {
            FromWorker::Opened { id, failure } => {
                out = Writer::new(0);
                out.u64(*id);
                out.bool(failure.is_some());
                if let Some((leg, errno, message)) = failure {
                    out.leg(*leg);
                    out.i64(i64::from(*errno));
                    out.str(message);
                }
            }
            FromWorker::Event(id, event) => {
                out = Writer::new(1);
                out.u64(*id);
                match event {
                    MediaEvent::Dtmf { leg, digit } => {
                        out.u8(0);
                        out.leg(*leg);
                        out.char(digit.digit);
                        out.duration(digit.duration);
                        out.u32(digit.timestamp);
                        out.bool(digit.ended);
                    }
                    MediaEvent::PlaybackEnded { leg, reason } => {
                        out.u8(1);
                        out.leg(*leg);
                        match reason {
                            PlaybackEnd::Finished => out.u8(0),
                            PlaybackEnd::Stopped => out.u8(1),
                            PlaybackEnd::Replaced => out.u8(2),
                            PlaybackEnd::BargeIn(key) => {
                                out.u8(3);
                                out.char(*key);
                            }
                        }
                    }
                    MediaEvent::FeatureCode { leg, code } => {
                        out.u8(2);
                        out.leg(*leg);
                        out.str(code);
                    }
                    MediaEvent::RelayLost { reason } => {
                        out.u8(3);
                        out.str(reason);
                    }
                }
            }
            FromWorker::Stats(sessions) => {
                out = Writer::new(2);
                out.len(sessions.len());
                for (id, [caller, agent]) in sessions {
                    out.u64(*id);
                    out.stats(caller);
                    out.stats(agent);
                }
            }
            FromWorker::Delays { counts, sum } => {
                out = Writer::new(3);
                out.len(counts.len());
                counts.iter().for_each(|count| out.u64(*count));
                out.duration(*sum);
            }
            FromWorker::Done { id, stats, outcome } => {
                out = Writer::new(4);
                out.u64(*id);
                out.stats(&stats[0]);
                out.stats(&stats[1]);
                match outcome {
                    Ok(None) => out.u8(0),
                    Ok(Some(summary)) => {
                        out.u8(1);
                        out.path(&summary.path);
                        out.bool(summary.mixed_mono_path.is_some());
                        if let Some(mixed) = &summary.mixed_mono_path {
                            out.path(mixed);
                        }
                        out.u64(summary.duration_seconds.to_bits());
                        out.u64(summary.frames);
                        out.u64(summary.ignored_packets);
                        out.u64(summary.late_ms[0]);
                        out.u64(summary.late_ms[1]);
                    }
                    Err(message) => {
                        out.u8(2);
                        out.str(message);
                    }
                }
            }
        }
        out.bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<FromWorker, Malformed> {
        let (&tag, rest) = bytes.split_first().ok_or(Malformed("empty"))?;
        let mut input = Reader {
            bytes: rest,
            now: Instant::now(),
        };
        let message = match tag {
            0 => {
                let id = input.u64()?;
                let failure = if input.bool()? {
                    let leg = input.leg()?;
                    let errno = i32::try_from(input.i64()?).map_err(|_| Malformed("errno"))?;
                    Some((leg, errno, input.str()?))
                } else {
                    None
                };
                FromWorker::Opened { id, failure }
            }
            1 => {
                let id = input.u64()?;
                let event = match input.u8()? {
                    0 => MediaEvent::Dtmf {
                        leg: input.leg()?,
                        digit: DetectedDigit {
                            digit: input.char()?,
                            duration: input.duration()?,
                            timestamp: input.u32()?,
                            ended: input.bool()?,
                        },
                    },
                    1 => MediaEvent::PlaybackEnded {
                        leg: input.leg()?,
                        reason: match input.u8()? {
                            0 => PlaybackEnd::Finished,
                            1 => PlaybackEnd::Stopped,
                            2 => PlaybackEnd::Replaced,
                            3 => PlaybackEnd::BargeIn(input.char()?),
                            _ => return Err(Malformed("unknown playback end")),
                        },
                    },
                    2 => MediaEvent::FeatureCode {
                        leg: input.leg()?,
                        code: input.str()?,
                    },
                    3 => MediaEvent::RelayLost {
                        reason: input.str()?,
                    },
                    _ => return Err(Malformed("unknown media event")),
                };
                FromWorker::Event(id, event)
            }
            2 => {
                // An entry takes at least 8 bytes of id and 2 * 113 of figures.
                let len = input.len(8 + 2 * 113)?;
                let mut sessions = Vec::with_capacity(len);
                for _ in 0..len {
                    sessions.push((input.u64()?, [input.stats()?, input.stats()?]));
                }
                FromWorker::Stats(sessions)
            }
            3 => {
                let len = input.len(8)?;
                let counts = (0..len).map(|_| input.u64()).collect::<Result<_, _>>()?;
                FromWorker::Delays {
                    counts,
                    sum: input.duration()?,
                }
            }
            4 => {
                let id = input.u64()?;
                let stats = Box::new([input.stats()?, input.stats()?]);
                let outcome = match input.u8()? {
                    0 => Ok(None),
                    1 => Ok(Some(RecordingSummary {
                        path: input.path()?,
                        mixed_mono_path: if input.bool()? {
                            Some(input.path()?)
                        } else {
                            None
                        },
                        duration_seconds: f64::from_bits(input.u64()?),
                        frames: input.u64()?,
                        ignored_packets: input.u64()?,
                        late_ms: [input.u64()?, input.u64()?],
                    })),
                    2 => Err(input.str()?),
                    _ => return Err(Malformed("unknown outcome")),
                };
                FromWorker::Done { id, stats, outcome }
            }
            _ => return Err(Malformed("unknown message from a worker")),
        };
        input.finish(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(seed: u64, last: Option<Instant>) -> LegStats {
        LegStats {
            packets_received: seed,
            bytes_received: seed + 1,
            packets_sent: seed + 2,
            bytes_sent: seed + 3,
            invalid_packets: seed + 4,
            stun_packets: seed + 5,
            rejected_source: seed + 6,
            rejected_payload_type: seed + 7,
            oversized_packets: seed + 8,
            unroutable_packets: seed + 9,
            rtp_packets_received: seed + 10,
            rtp_packets_expected: seed + 11,
            rtp_packets_lost: -3,
            jitter_micros: seed + 12,
            last_packet_at: last,
        }
    }

    /// Instants come back within a few milliseconds of where they were,
    /// the time between encoding and decoding; everything else exactly.
    #[test]
    fn messages_survive_the_round_trip() {
        let now = Instant::now();
        let earlier = now - Duration::from_secs(3);
        let to_worker = [
            ToWorker::Hello {
                version: VERSION,
                threads: 2,
                spin: Duration::from_micros(5),
                realtime_priority: 10,
                coalesce: Duration::from_micros(300),
            },
            ToWorker::Open {
                id: 7,
                call_id: "a84b4c76e66710@pc33".to_owned(),
                address: "::1".parse().unwrap(),
                rtp_ports: [10_000, 10_002],
                ssrcs: [1, u32::MAX],
            },
            ToWorker::SetRemote(7, Leg::Agent, "192.0.2.4:4000".parse().unwrap()),
            ToWorker::ResetLeg(7, Leg::Caller),
            ToWorker::SetFeatureCode(7, Leg::Agent, Some(vec!['*', '1'])),
            ToWorker::SetFeatureCode(7, Leg::Agent, None),
            ToWorker::SetCodecs(
                7,
                Leg::Caller,
                LegCodecs {
                    codec: Codec::G722,
                    event_payload_type: Some(101),
                },
            ),
            ToWorker::SetPayloadTypes(7, Leg::Caller, vec![0, 8, 101]),
            ToWorker::PromptChunk {
                prompt: 3,
                last: true,
                samples: vec![i16::MIN, -1, 0, 1, i16::MAX],
            },
            ToWorker::ForgetPrompt(3),
            ToWorker::Play {
                id: 7,
                leg: Leg::Caller,
                prompts: vec![3, 4],
                looped: true,
                barge_in: false,
            },
            ToWorker::StopPlayback(7, Leg::Agent),
            ToWorker::SendDigit(7, Leg::Agent, '#'),
        ];
        for message in to_worker {
            assert_eq!(ToWorker::decode(&message.encode()), Ok(message));
        }
        let from_worker = [
            FromWorker::Opened {
                id: 9,
                failure: Some((Leg::Agent, 98, "Address in use".to_owned())),
            },
            FromWorker::Opened {
                id: 9,
                failure: None,
            },
            FromWorker::Event(
                9,
                MediaEvent::PlaybackEnded {
                    leg: Leg::Caller,
                    reason: PlaybackEnd::BargeIn('5'),
                },
            ),
            FromWorker::Event(
                9,
                MediaEvent::FeatureCode {
                    leg: Leg::Agent,
                    code: "*1".to_owned(),
                },
            ),
            FromWorker::Delays {
                counts: vec![1, 2, 3],
                sum: Duration::from_millis(7),
            },
            FromWorker::Done {
                id: 9,
                stats: Box::new([stats(10, None), stats(20, None)]),
                outcome: Err("recording failed".to_owned()),
            },
        ];
        for message in from_worker {
            assert_eq!(FromWorker::decode(&message.encode()), Ok(message));
        }

        let timed = ToWorker::Close(4, earlier).encode();
        let ToWorker::Close(4, at) = ToWorker::decode(&timed).unwrap() else {
            panic!("not a close");
        };
        let error = at.max(earlier) - at.min(earlier);
        assert!(error < Duration::from_millis(500), "{error:?}");

        let summary = RecordingSummary {
            path: "/var/rec/a.wav".into(),
            mixed_mono_path: Some("/var/rec/a-mono.wav".into()),
            duration_seconds: 12.5,
            frames: 100_000,
            ignored_packets: 2,
            late_ms: [340, 0],
        };
        let done = FromWorker::Done {
            id: 1,
            stats: Box::new([stats(1, Some(earlier)), stats(2, None)]),
            outcome: Ok(Some(summary.clone())),
        };
        let FromWorker::Done { stats, outcome, .. } = FromWorker::decode(&done.encode()).unwrap()
        else {
            panic!("not a done");
        };
        assert_eq!(outcome, Ok(Some(summary)));
        let last = stats[0].last_packet_at.expect("last packet kept");
        assert!(last.max(earlier) - last.min(earlier) < Duration::from_millis(500));
        assert_eq!(stats[0].rtp_packets_lost, -3);
        assert_eq!(stats[1].last_packet_at, None);
    }

    /// A Call-ID near the SIP limit is cut, at a character boundary, so the
    /// message stays far under the link's largest datagram.
    #[test]
    fn long_texts_are_cut() {
        let call_id = format!("{}é", "x".repeat(MAX_TEXT - 1));
        let open = ToWorker::Open {
            id: 1,
            call_id: call_id.repeat(30),
            address: "127.0.0.1".parse().unwrap(),
            rtp_ports: [2, 4],
            ssrcs: [5, 6],
        };
        let encoded = open.encode();
        assert!(encoded.len() < MAX_TEXT + 64, "{} bytes", encoded.len());
        let ToWorker::Open { call_id: cut, .. } = ToWorker::decode(&encoded).unwrap() else {
            panic!("not an open");
        };
        assert_eq!(cut, "x".repeat(MAX_TEXT - 1));
    }

    /// Every prefix of a valid message, and junk, is an error, not a panic.
    #[test]
    fn truncated_and_unknown_messages_are_errors() {
        let open = ToWorker::Open {
            id: 1,
            call_id: "x".to_owned(),
            address: "127.0.0.1".parse().unwrap(),
            rtp_ports: [2, 4],
            ssrcs: [5, 6],
        }
        .encode();
        for len in 0..open.len() {
            assert!(
                ToWorker::decode(&open[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut longer = open.clone();
        longer.push(0);
        assert!(ToWorker::decode(&longer).is_err());
        assert!(ToWorker::decode(&[200]).is_err());
        assert!(FromWorker::decode(&[200]).is_err());
        // A length field claiming four billion entries.
        assert!(FromWorker::decode(&[2, 255, 255, 255, 255]).is_err());
    }
}
