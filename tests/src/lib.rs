//! Helpers for the end-to-end tests: they start the real `pbx` binary on
//! loopback ports and drive it with sipp scenarios from `tests/scenarios/`.
//!
//! What a test gets from here:
//! - [`tools::require`] fails the test, naming the Debian package, when sipp,
//!   espeak-ng or sox is missing, so a test never skips silently.
//! - [`fixtures::AudioFixtures`] generates two spoken sentences as raw G.711
//!   mu-law (what sipp 3.6.1 `rtp_stream` plays) and the 16-bit linear
//!   reference decoded from exactly those bytes.
//! - [`pbx::Pbx`] builds the binary once per test process, writes a config
//!   into a temporary directory, starts the PBX, waits for `GET /health` and
//!   kills the process by PID when dropped.
//! - [`sipp::Sipp`] runs one bounded scenario (`-m 1`, global and receive
//!   timeouts, and a wall-clock limit) in the foreground or background and
//!   keeps its logs to print on failure.
//! - [`phones`] runs the agent phone (registration, answering) and the caller.
//! - [`raw_caller`] and [`raw_agent`] are phones written on UDP sockets that
//!   send tones and RFC 4733 keys at chosen moments ([`rtp_stream`]).
//! - [`stream_phone`] is a phone over TLS or WebSocket, the transports the
//!   packaged sipp lacks; it also plays a trunk's TLS server.
//! - [`baresip`] and [`linphone`] run those softphones headless as agents'
//!   phones (and baresip as a caller), with [`softphone`] for what they
//!   share: the transport, a test certificate authority, the process under
//!   a deadline and the checks of the recording.
//! - [`tone`] writes sine tones and finds them in recordings (Goertzel).
//! - [`transfer_phone`] is an agent's phone on UDP that holds two dialogs
//!   at once for an attended transfer.
//! - [`dns_server`] answers the PBX's NAPTR, SRV and A queries on loopback,
//!   and [`test_ca`] issues the certificates of a TLS trunk and the PBX.
//! - [`http`] is a minimal HTTP/1.1 client for the API.
//! - [`browser`] drives headless Chromium through ChromeDriver for the
//!   console's pages.
//! - [`wav`] checks the stereo recording and finds each channel's source by
//!   normalized cross-correlation.
//!
//! Everything runs on 127.0.0.1 (and 127.0.0.2 for the untrusted trunk
//! source); every wait is bounded.

pub mod baresip;
pub mod browser;
pub mod dns_server;
pub mod fixtures;
pub mod http;
pub mod linphone;
pub mod pbx;
pub mod phones;
pub mod ports;
pub mod raw_agent;
pub mod raw_caller;
pub mod rtp_stream;
pub mod sipp;
pub mod softphone;
pub mod stream_phone;
pub mod test_ca;
pub mod tone;
pub mod tools;
pub mod transfer_phone;
pub mod wav;
