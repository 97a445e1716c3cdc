//! RTP packets (RFC 3550) and the G.711 codec (ITU-T G.711).
//!
//! This crate owns the wire format only: [`RtpPacket`] borrows a datagram and
//! exposes the fixed header fields and the payload, [`is_rtcp`] tells RTCP
//! apart from RTP on a multiplexed port, and [`g711`] converts between
//! 8-bit mu-law or A-law and 16-bit linear PCM. It does no I/O, keeps no
//! state and allocates only in [`RtpPacket::write`].
//!
//! Jitter buffering, recording and relaying live in the `recordings` and
//! `media` crates.

pub mod g711;
mod packet;

pub use packet::{RtpError, RtpPacket, is_rtcp};

/// Static payload type of G.711 mu-law (RFC 3551 section 6).
pub const PT_PCMU: u8 = 0;
/// Static payload type of G.711 A-law (RFC 3551 section 6).
pub const PT_PCMA: u8 = 8;
