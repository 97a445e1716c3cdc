//! The RFC 4475 and RFC 5118 torture messages run through what a received
//! datagram meets before the B2BUA acts on it: the parser (with the 400 or
//! 505 of `malformed`), the transaction layer's stateless 400, and
//! `policy::check_request`. Each file must end with the status that
//! `tests/corpus/*/EXPECTED.md` in sip-message gives it, and every request
//! of a real endpoint must pass.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sip_message::Message;
use sip_server::b2bua::default_timers;
use sip_server::malformed::response_for_unparsable;
use sip_server::policy::check_request;
use sip_server::transaction::{Event, Target, TransactionLayer, TransportKind};

/// Where a received message ends before the B2BUA's own logic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Rejected with this status by the parser, transaction layer or policy.
    Status(u16),
    /// Handed to the B2BUA, which responds by its own rules (404, 501, ...).
    Passed,
    /// Nothing is sent: responses, and requests too broken to respond to.
    Dropped,
}

use Outcome::{Dropped, Passed, Status};

/// Every RFC 4475 file with the outcome its verdict requires. Where the RFC
/// allows several responses, the comment names the one chosen.
const RFC4475: &[(&str, Outcome)] = &[
    ("wsinv.dat", Passed),
    ("intmeth.dat", Passed),
    ("esc01.dat", Passed),
    ("escnull.dat", Passed),
    ("esc02.dat", Passed),
    ("lwsdisp.dat", Passed),
    ("longreq.dat", Passed),
    ("dblreq.dat", Passed),
    ("semiuri.dat", Passed),
    ("transports.dat", Passed),
    ("mpart01.dat", Passed),
    ("unreason.dat", Dropped),
    ("noreason.dat", Dropped),
    // NOTE: RFC 4475 expects 400, but the top Via (`;;,;,,`) does not
    // parse, so the transaction layer has no address to respond to.
    ("badinv01.dat", Dropped),
    ("clerr.dat", Status(400)),
    ("ncl.dat", Status(400)),
    ("scalar02.dat", Status(400)),
    ("scalarlg.dat", Dropped),
    ("quotbal.dat", Status(400)),
    ("ltgtruri.dat", Status(400)),
    ("lwsruri.dat", Status(400)),
    // Rejecting extra SPs in the request line is allowed.
    ("lwsstart.dat", Status(400)),
    ("trws.dat", Status(400)),
    ("escruri.dat", Status(400)),
    // The PBX does not use Date, so the EST time zone is ignored.
    ("baddate.dat", Passed),
    ("regbadct.dat", Status(400)),
    ("badaspec.dat", Status(400)),
    ("baddn.dat", Status(400)),
    ("badvers.dat", Status(505)),
    ("mismatch01.dat", Status(400)),
    // 501 is preferred, 400 acceptable: the CSeq mismatch is found first.
    ("mismatch02.dat", Status(400)),
    ("bigcode.dat", Dropped),
    // The RFC 2543 fallback matching takes the bare `z9hG4bK` branch.
    ("badbranch.dat", Passed),
    ("insuf.dat", Status(400)),
    ("unkscm.dat", Status(416)),
    ("novelsc.dat", Status(416)),
    ("unksm2.dat", Status(400)),
    ("bext01.dat", Status(420)),
    ("invut.dat", Status(415)),
    // The registrar answers 401 with a Digest challenge.
    ("regaut01.dat", Passed),
    ("multi01.dat", Status(400)),
    // NOTE: RFC 4475 expects this dropped over UDP as a framing error, but
    // `malformed::response_for_unparsable` responds 400 to every request
    // whose Content-Length is invalid.
    ("mcl01.dat", Status(400)),
    ("bcast.dat", Dropped),
    // A UAS answers OPTIONS with Max-Forwards 0 normally.
    ("zeromf.dat", Passed),
    ("cparam01.dat", Passed),
    ("cparam02.dat", Passed),
    ("regescrt.dat", Passed),
    ("sdp01.dat", Status(406)),
    ("inv2543.dat", Passed),
    // No verdict in the RFC. Its request line has no SIP version and it has
    // no Via, so `malformed` finds nothing to answer.
    ("test.dat", Dropped),
];

/// Every RFC 5118 archive file (bare LF line ends, as the RFC ships them).
const RFC5118: &[(&str, Outcome)] = &[
    ("ipv6-good.dat", Passed),
    ("ipv6-bad.dat", Status(400)),
    ("port-ambiguous.dat", Passed),
    ("port-unambiguous.dat", Passed),
    ("via-received-param-with-delim.dat", Passed),
    ("via-received-param-no-delim.dat", Passed),
    ("ipv6-in-sdp.dat", Passed),
    ("mult-ip-in-header.dat", Passed),
    ("mult-ip-in-sdp.dat", Passed),
    ("ipv4-mapped-ipv6.dat", Passed),
    ("ipv6-bug-abnf-3-colons.dat", Passed),
    ("ipv6-correct-abnf-2-colons.dat", Passed),
];

/// Real phones, softphones and trunks: every request must reach the B2BUA,
/// and every response is dropped (it matches no transaction here).
const ENDPOINTS: &[(&str, Outcome)] = &[
    ("cisco-spa-REGISTER.sip", Passed),
    ("freeswitch-200-REGISTER-compact.sip", Dropped),
    ("freeswitch-401-REGISTER-compact.sip", Dropped),
    ("freeswitch-INVITE.sip", Passed),
    ("grandstream-INVITE.sip", Passed),
    ("jssip-INVITE.sip", Passed),
    ("linphone-INVITE.sip", Passed),
    ("microsip-200-INVITE.sip", Dropped),
    ("microsip-INVITE.sip", Passed),
    ("microsip-REGISTER.sip", Passed),
    ("polycom-REGISTER.sip", Passed),
    ("sipjs-REGISTER.sip", Passed),
    ("trunk-180-with-sdp.sip", Dropped),
    ("trunk-183-early-media.sip", Dropped),
    ("trunk-407-INVITE.sip", Dropped),
    ("yealink-REGISTER-noauth.sip", Passed),
    ("yealink-REGISTER.sip", Passed),
    ("zoiper-INVITE.sip", Passed),
    ("zoiper-REGISTER.sip", Passed),
];

fn corpus_dir(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/sip-message/tests/corpus")
        .join(folder)
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.strip_prefix("SIP/2.0 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a SIP response: {text}"))
}

/// Runs `bytes` as a UDP datagram from a trunk through the parser, a fresh
/// transaction layer and the policy.
fn outcome(bytes: &[u8]) -> Outcome {
    let message = match Message::parse(bytes) {
        Ok(message) => message,
        Err(error) => {
            return response_for_unparsable(bytes, &error)
                .map_or(Dropped, |response| Status(status_of(&response)));
        }
    };
    if matches!(message, Message::Response(_)) {
        return Dropped;
    }
    let source = Target {
        transport: TransportKind::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5062)),
        connection: None,
    };
    let mut layer = TransactionLayer::new(default_timers());
    layer.handle_message(message, source, Instant::now());
    if let Some(transmit) = layer.poll_transmit() {
        return Status(status_of(&transmit.payload));
    }
    match layer.poll_event() {
        Some(Event::Request { request, .. }) => {
            check_request(&request).map_or(Passed, |rejection| Status(rejection.status))
        }
        _ => Dropped,
    }
}

fn assert_table(folder: &str, table: &[(&str, Outcome)]) {
    let dir = corpus_dir(folder);
    let mut on_disk: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("corpus entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".dat") || name.ends_with(".sip"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = table.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "{folder}: table and corpus files differ");

    let mismatches: Vec<String> = table
        .iter()
        .filter_map(|(name, expected)| {
            let bytes = fs::read(dir.join(name)).expect("corpus file");
            let actual = outcome(&bytes);
            (actual != *expected).then(|| format!("{name}: expected {expected:?}, got {actual:?}"))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{folder}:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn rfc4475_outcomes() {
    assert_table("rfc4475", RFC4475);
}

#[test]
fn rfc5118_outcomes() {
    assert_table("rfc5118", RFC5118);
}

#[test]
fn endpoint_outcomes() {
    assert_table("endpoints", ENDPOINTS);
}
