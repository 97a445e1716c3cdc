//! The SIP side of the PBX: transactions, dialogs, the registrar with
//! digest authentication, and the B2BUA that connects citizens' calls to
//! agents chosen by the ACD.
//!
//! Everything here is sans-IO: state machines take parsed messages and an
//! `Instant`, and hand back datagrams to send, commands for the media relay
//! and CDRs, and the next instant they need to be woken at. The `pbx` binary
//! owns the sockets and the clock.

pub mod auth;
pub mod b2bua;
pub mod dialog;
pub mod locate;
pub mod malformed;
pub mod network;
pub mod policy;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod trunk_registration;
