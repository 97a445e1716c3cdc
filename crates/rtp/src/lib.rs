//! RTP packets (RFC 3550), RFC 4733 telephone-events, and the G.711 and
//! G.722 codecs.
//!
//! This crate owns the wire format only: [`RtpPacket`] borrows a datagram and
//! exposes the fixed header fields and the payload, [`is_rtcp`] tells RTCP
//! apart from RTP on a multiplexed port, [`is_stun`] recognizes STUN on a
//! media port, and [`g711`] converts between
//! 8-bit mu-law or A-law and 16-bit linear PCM, [`g722`] codes 16 kHz audio
//! as G.722 at 64 kbit/s. [`telephone_event`] parses
//! and writes RFC 4733 DTMF payloads, detects digits in a stream of them
//! ([`DtmfDetector`], sans-IO: arrival instants are passed in) and generates
//! the packets of a digit. It does no I/O.
//!
//! Jitter buffering, recording and relaying live in the `recordings` and
//! `media` crates.

pub mod g711;
pub mod g722;
mod packet;
pub mod telephone_event;

pub use packet::{RtpError, RtpPacket, is_rtcp, is_stun};
pub use telephone_event::{DetectedDigit, DtmfDetector, TelephoneEvent};

/// Static payload type of G.711 mu-law (RFC 3551 section 6).
pub const PT_PCMU: u8 = 0;
/// Static payload type of G.711 A-law (RFC 3551 section 6).
pub const PT_PCMA: u8 = 8;
