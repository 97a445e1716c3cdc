//! Torture messages against the running PBX: every RFC 4475 and RFC 5118
//! message and every real endpoint message of the sip-message corpus goes to
//! the PBX over UDP, and the stream-framed RFC 4475 requests over TCP too.
//! Each must get the response its verdict in `EXPECTED.md` requires (or
//! none where the RFC says drop), the PBX must stay healthy after each, and
//! an agent must still register afterwards.
//!
//! The messages name foreign hosts in Via, Contact and Route, so the test
//! runs itself again inside a private network namespace (`unshare -n`)
//! where only the loopback interface exists. Anything the PBX sends to a
//! foreign address fails with "network unreachable" and leaves the machine.
//! That needs root, `unshare` (util-linux) and `ip` (iproute2).

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pbx_e2e::pbx::{self, Pbx, PbxConfig};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::tools;

/// Set in the copy of this test that runs inside the namespace.
const IN_NAMESPACE: &str = "PBX_TORTURE_IN_NAMESPACE";
/// Bound on the whole run inside the namespace, registration included.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long a response may take. The PBX responds to each message at once,
/// except the call that waits in the queue for `MAX_WAIT_SECS`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Max wait of the test queue, so a call that reaches it ends in time.
const MAX_WAIT_SECS: u64 = 1;
/// How long silence must last for a message the PBX must drop.
const SILENCE: Duration = Duration::from_millis(300);
const DEFAULT_SIP_PORT: u16 = 5060;

/// What the PBX must do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A final response with this status.
    Status(u16),
    /// The status from `policy::check_request`.
    Policy(u16),
    /// A 400 or 505 for a request the parser rejects.
    Unparsable(u16),
    /// No response at all.
    Silent,
    /// Over TCP: no response, and the PBX closes the connection.
    Closed,
}

use Expect::{Closed, Policy, Silent, Status, Unparsable};

/// RFC 4475 over UDP. The B2BUA treats 127.0.0.1 as a trunk, so a valid
/// INVITE for an unknown number gets 404, and an unknown method 501. The
/// registrar challenges every REGISTER without valid credentials with 401,
/// whether or not its address-of-record is an agent, so a scan cannot tell.
const RFC4475_UDP: &[(&str, Expect)] = &[
    // The To tag makes it an in-dialog request for an unknown dialog.
    ("wsinv.dat", Status(481)),
    ("intmeth.dat", Status(501)),
    ("esc01.dat", Status(404)),
    ("escnull.dat", Status(401)),
    ("esc02.dat", Status(501)),
    ("lwsdisp.dat", Status(200)),
    ("longreq.dat", Status(404)),
    // Only the REGISTER is answered; the trailing INVITE bytes are noise.
    ("dblreq.dat", Status(401)),
    ("semiuri.dat", Status(200)),
    ("transports.dat", Status(200)),
    ("mpart01.dat", Status(405)),
    ("unreason.dat", Silent),
    ("noreason.dat", Silent),
    // NOTE: RFC 4475 expects 400, but the top Via (`;;,;,,`) does not
    // parse, so the transaction layer has no address to respond to.
    ("badinv01.dat", Silent),
    ("clerr.dat", Unparsable(400)),
    ("ncl.dat", Unparsable(400)),
    ("scalar02.dat", Status(400)),
    ("scalarlg.dat", Silent),
    ("quotbal.dat", Status(400)),
    ("ltgtruri.dat", Unparsable(400)),
    ("lwsruri.dat", Unparsable(400)),
    ("lwsstart.dat", Unparsable(400)),
    ("trws.dat", Unparsable(400)),
    ("escruri.dat", Unparsable(400)),
    ("baddate.dat", Status(404)),
    ("regbadct.dat", Policy(400)),
    ("badaspec.dat", Status(400)),
    ("baddn.dat", Status(400)),
    ("badvers.dat", Unparsable(505)),
    ("mismatch01.dat", Status(400)),
    // 400 rather than the preferred 501: the CSeq mismatch is found first.
    ("mismatch02.dat", Status(400)),
    ("bigcode.dat", Silent),
    ("badbranch.dat", Status(200)),
    ("insuf.dat", Status(400)),
    ("unkscm.dat", Policy(416)),
    ("novelsc.dat", Policy(416)),
    ("unksm2.dat", Policy(400)),
    ("bext01.dat", Policy(420)),
    ("invut.dat", Policy(415)),
    ("regaut01.dat", Status(401)),
    ("multi01.dat", Status(400)),
    // NOTE: RFC 4475 expects this dropped over UDP as a framing error, but
    // `malformed` builds a 400 for every invalid Content-Length.
    ("mcl01.dat", Unparsable(400)),
    ("bcast.dat", Silent),
    ("zeromf.dat", Status(200)),
    ("cparam01.dat", Status(401)),
    ("cparam02.dat", Status(401)),
    ("regescrt.dat", Status(401)),
    ("sdp01.dat", Policy(406)),
    ("inv2543.dat", Status(404)),
    // Not a SIP request line and no Via: nothing to answer.
    ("test.dat", Silent),
];

/// RFC 5118 archive copies (bare LF line ends) over UDP.
const RFC5118_UDP: &[(&str, Expect)] = &[
    ("ipv6-good.dat", Status(401)),
    ("ipv6-bad.dat", Unparsable(400)),
    ("port-ambiguous.dat", Status(401)),
    ("port-unambiguous.dat", Status(401)),
    // OPTIONS with a To tag, outside any dialog.
    ("via-received-param-with-delim.dat", Status(481)),
    ("via-received-param-no-delim.dat", Status(200)),
    ("ipv6-in-sdp.dat", Status(404)),
    // BYE outside any dialog.
    ("mult-ip-in-header.dat", Status(481)),
    ("mult-ip-in-sdp.dat", Status(404)),
    ("ipv4-mapped-ipv6.dat", Status(404)),
    ("ipv6-bug-abnf-3-colons.dat", Status(200)),
    ("ipv6-correct-abnf-2-colons.dat", Status(200)),
];

/// Real endpoint messages over UDP: requests get the PBX's usual answers,
/// responses match no transaction and are dropped.
const ENDPOINTS_UDP: &[(&str, Expect)] = &[
    ("cisco-spa-REGISTER.sip", Status(401)),
    ("freeswitch-200-REGISTER-compact.sip", Silent),
    ("freeswitch-401-REGISTER-compact.sip", Silent),
    ("freeswitch-INVITE.sip", Status(404)),
    // It dials the test DID with an SRTP (RTP/SAVPF) offer, which gets 488.
    ("grandstream-INVITE.sip", Status(488)),
    ("jssip-INVITE.sip", Status(404)),
    ("linphone-INVITE.sip", Status(404)),
    ("microsip-200-INVITE.sip", Silent),
    ("microsip-INVITE.sip", Status(404)),
    ("microsip-REGISTER.sip", Status(401)),
    ("polycom-REGISTER.sip", Status(401)),
    ("sipjs-REGISTER.sip", Status(401)),
    ("trunk-180-with-sdp.sip", Silent),
    ("trunk-183-early-media.sip", Silent),
    ("trunk-407-INVITE.sip", Silent),
    ("yealink-REGISTER-noauth.sip", Status(401)),
    ("yealink-REGISTER.sip", Status(401)),
    ("zoiper-INVITE.sip", Status(404)),
    ("zoiper-REGISTER.sip", Status(401)),
];

/// RFC 4475 requests over TCP, each on its own connection. A parse failure
/// is answered over the connection; a framing failure closes it.
const RFC4475_TCP: &[(&str, Expect)] = &[
    ("wsinv.dat", Status(481)),
    ("esc02.dat", Status(501)),
    ("badinv01.dat", Silent),
    // Content-Length 9999: the PBX waits for the rest of the body.
    ("clerr.dat", Silent),
    ("ncl.dat", Closed),
    ("scalar02.dat", Status(400)),
    ("ltgtruri.dat", Status(400)),
    ("lwsruri.dat", Status(400)),
    ("lwsstart.dat", Status(400)),
    ("trws.dat", Status(400)),
    ("escruri.dat", Status(400)),
    ("badvers.dat", Status(505)),
    ("mismatch01.dat", Status(400)),
    ("insuf.dat", Status(400)),
    ("unkscm.dat", Policy(416)),
    ("bext01.dat", Policy(420)),
    ("invut.dat", Policy(415)),
    ("multi01.dat", Status(400)),
    ("mcl01.dat", Closed),
    // No empty line after the headers: the message never completes.
    ("baddn.dat", Silent),
    ("zeromf.dat", Status(200)),
    ("sdp01.dat", Policy(406)),
];

#[test]
fn torture_messages() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        run_torture();
    } else {
        run_in_private_namespace();
    }
}

/// Builds the PBX here, where cargo can reach its caches, then runs this
/// test again inside `unshare -n` with the loopback interface up.
fn run_in_private_namespace() {
    assert!(
        is_root(),
        "the torture test needs root to create a network namespace with `unshare -n`; \
         run it as root (the PBX must not send to the foreign addresses in the messages)"
    );
    for (program, package) in [("unshare", "util-linux"), ("ip", "iproute2")] {
        let found = Command::new(program)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{program}` is missing; install the {package} package"
        );
    }
    tools::require(&[tools::SIPP]);
    let binary = pbx::binary();
    let test_binary = std::env::current_exe().expect("path of the test binary");

    let mut child = Command::new("unshare")
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sh",
        ])
        .arg(&test_binary)
        .args(["torture_messages", "--exact", "--nocapture"])
        .env(IN_NAMESPACE, "1")
        .env("PBX_E2E_BINARY", binary)
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start unshare: {error}"));
    // The inner run bounds itself; this is the guard if it hangs anyway.
    let deadline = Instant::now() + RUN_LIMIT + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the namespaced run") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the namespaced torture run did not end within {RUN_LIMIT:?} plus 30 s");
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the namespaced torture run failed: {status}"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn run_torture() {
    let started = Instant::now();
    assert_foreign_addresses_unreachable();
    let config = PbxConfig {
        max_wait_secs: MAX_WAIT_SECS,
        ..PbxConfig::default()
    };
    let mut udp = Vec::new();
    for (folder, table) in [
        ("rfc4475", RFC4475_UDP),
        ("rfc5118", RFC5118_UDP),
        ("endpoints", ENDPOINTS_UDP),
    ] {
        assert_table_covers_folder(folder, table);
        udp.extend(table.iter().map(|(name, expect)| (folder, *name, *expect)));
    }
    let tcp: Vec<_> = RFC4475_TCP
        .iter()
        .map(|(name, expect)| ("rfc4475", *name, *expect))
        .collect();

    let mut failures = Vec::new();
    let mut first_pbx = None;
    for (transport, cases) in [(Transport::Udp, udp), (Transport::Tcp, tcp)] {
        for (index, round) in rounds(&cases).into_iter().enumerate() {
            println!(
                "{transport:?} round {}: {} messages to a fresh PBX",
                index + 1,
                round.len()
            );
            let pbx = Pbx::start(&config);
            for (folder, name, expect) in round {
                let bytes = corpus_file(folder, name);
                let answer = match transport {
                    Transport::Udp => send_udp(&pbx, &bytes),
                    Transport::Tcp => send_tcp(&pbx, &bytes),
                };
                let what = format!("{transport:?} {folder}/{name}");
                check(&mut failures, &what, expect, answer);
                assert_healthy(&pbx, &what);
            }
            first_pbx.get_or_insert(pbx);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The PBX that took the most messages must still register an agent.
    let pbx = first_pbx.expect("at least one round");
    let phone = AgentPhone::new(&config.agents[0]);
    phone.register(&pbx, pbx.dir.path());
    assert_healthy(&pbx, "the registration");
    assert!(
        started.elapsed() < RUN_LIMIT,
        "the torture run took {:?}, more than {RUN_LIMIT:?}",
        started.elapsed()
    );
}

/// Corpus folder, file name and what the PBX must do with it.
type Case<'a> = (&'a str, &'a str, Expect);

#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

/// Splits `cases` into rounds, each for a fresh PBX, so that no two
/// messages of a round share a server transaction. Several corpus messages
/// reuse one branch, sent-by and method (`unkscm` and `novelsc`, `cparam01`
/// and `cparam02`, ...), and the PBX rightly takes the second for a
/// retransmission of the first (RFC 3261 section 17.2.3).
fn rounds<'a>(cases: &[Case<'a>]) -> Vec<Vec<Case<'a>>> {
    let mut rounds: Vec<(Vec<String>, Vec<Case<'a>>)> = Vec::new();
    for &(folder, name, expect) in cases {
        let key = transaction_key(&head_lines(&corpus_file(folder, name)));
        let free = rounds
            .iter()
            .position(|(keys, _)| key.as_ref().is_none_or(|key| !keys.contains(key)));
        let index = free.unwrap_or_else(|| {
            rounds.push((Vec::new(), Vec::new()));
            rounds.len() - 1
        });
        let (keys, round) = &mut rounds[index];
        keys.extend(key);
        round.push((folder, name, expect));
    }
    rounds.into_iter().map(|(_, round)| round).collect()
}

/// Top Via branch and sent-by with the CSeq method, as the PBX matches a
/// request to a server transaction; None without a Via.
fn transaction_key(head: &[String]) -> Option<String> {
    let via = header_value(head, &["via", "v"])?;
    let first = via.split(',').next()?;
    let (sent_by, params) = first.split_once(';').unwrap_or((first, ""));
    let sent_by: String = sent_by
        .split_whitespace()
        .collect::<String>()
        .to_ascii_lowercase();
    let branch = params
        .split(';')
        .find_map(|param| param.trim().strip_prefix("branch="))
        .unwrap_or_default();
    let method = header_value(head, &["cseq"])
        .and_then(|cseq| cseq.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    Some(format!("{branch} {sent_by} {method}"))
}

/// What came back for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    /// Status of the final response (or of the last provisional one when no
    /// final arrived in time).
    Status(u16),
    Nothing,
    ConnectionClosed,
}

fn check(failures: &mut Vec<String>, what: &str, expect: Expect, answer: Answer) {
    println!("{what}: {answer:?}");
    let ok = match expect {
        Status(status) => answer == Answer::Status(status),
        Policy(status) | Unparsable(status) => answer == Answer::Status(status),
        Silent => answer == Answer::Nothing,
        Closed => answer == Answer::ConnectionClosed,
    };
    if !ok {
        failures.push(format!("{what}: expected {expect:?}, got {answer:?}"));
    }
}

/// The namespace must have no route off the machine, or the PBX could reach
/// real hosts named in the messages.
fn assert_foreign_addresses_unreachable() {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP socket");
    let sent = socket.send_to(b"probe", (Ipv4Addr::new(192, 0, 2, 1), DEFAULT_SIP_PORT));
    assert!(
        sent.is_err(),
        "a datagram to 192.0.2.1 could be sent: the test is not in a private network namespace"
    );
}

fn assert_healthy(pbx: &Pbx, after: &str) {
    let response = pbx.get("/health");
    assert_eq!(
        response.status,
        200,
        "GET /health after {after}: {}\n{}",
        String::from_utf8_lossy(&response.body),
        pbx.logs()
    );
}

fn corpus_dir(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/sip-message/tests/corpus")
        .join(folder)
}

fn corpus_file(folder: &str, name: &str) -> Vec<u8> {
    let path = corpus_dir(folder).join(name);
    fs::read(&path).unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()))
}

fn assert_table_covers_folder(folder: &str, table: &[(&str, Expect)]) {
    let mut on_disk: Vec<String> = fs::read_dir(corpus_dir(folder))
        .expect("corpus folder")
        .map(|entry| entry.expect("corpus entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".dat") || name.ends_with(".sip"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = table.iter().map(|(name, _)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "{folder}: table and corpus files differ");
}

/// Sends `bytes` as one datagram and returns the answer. The PBX answers
/// a UDP request at the `received` address and the top Via port (RFC 3261
/// section 18.2.2), so the socket is bound on 127.0.0.1 at that port.
fn send_udp(pbx: &Pbx, bytes: &[u8]) -> Answer {
    let head = head_lines(bytes);
    let port = top_via_port(&head).unwrap_or(DEFAULT_SIP_PORT);
    let call_id = header_value(&head, &["call-id", "i"]);
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|error| panic!("bind 127.0.0.1:{port}: {error}"));
    socket.send_to(bytes, pbx.sip).expect("send datagram");

    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut provisional = None;
    let mut buffer = vec![0u8; 65_535];
    loop {
        let now = Instant::now();
        let wait = match provisional {
            Some(_) => deadline.saturating_duration_since(now),
            None => SILENCE.min(deadline.saturating_duration_since(now)),
        };
        if wait.is_zero() {
            return provisional.map_or(Answer::Nothing, Answer::Status);
        }
        socket.set_read_timeout(Some(wait)).expect("read timeout");
        let length = match socket.recv_from(&mut buffer) {
            Ok((length, _)) => length,
            Err(error) if is_timeout(&error) => {
                return provisional.map_or(Answer::Nothing, Answer::Status);
            }
            Err(error) => panic!("UDP receive failed: {error}"),
        };
        let response = head_lines(&buffer[..length]);
        // Retransmissions for earlier messages can reach a reused port.
        if header_value(&response, &["call-id", "i"]) != call_id {
            continue;
        }
        match response.first().and_then(|line| status_of(line)) {
            Some(status) if status >= 200 => {
                if status >= 300 && is_invite(&head) {
                    socket
                        .send_to(ack_for(&head, &response).as_bytes(), pbx.sip)
                        .expect("send ACK");
                }
                return Answer::Status(status);
            }
            Some(status) => provisional = Some(status),
            None => panic!("not a SIP response: {}", response.join("\n")),
        }
    }
}

fn is_invite(request: &[String]) -> bool {
    request
        .first()
        .is_some_and(|line| line.starts_with("INVITE "))
}

/// Builds the ACK for a non-2xx final response to INVITE (RFC 3261 section
/// 17.1.1.3). It stops the PBX's retransmissions, which later messages with
/// the same Call-ID would otherwise receive.
fn ack_for(request: &[String], response: &[String]) -> String {
    let request_uri = request
        .first()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_default();
    let header = |names: &[&str]| header_value(response, names).unwrap_or_default();
    let via = header(&["via", "v"]);
    let top_via = via.split(',').next().unwrap_or_default();
    let cseq = header(&["cseq"]);
    let number = cseq.split_whitespace().next().unwrap_or_default();
    format!(
        "ACK {request_uri} SIP/2.0\r\nVia: {top_via}\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {number} ACK\r\n\
         Content-Length: 0\r\n\r\n",
        header(&["from", "f"]),
        header(&["to", "t"]),
        header(&["call-id", "i"]),
    )
}

/// Sends `bytes` on a new TCP connection and returns the first final
/// response, or whether the PBX closed the connection or stayed silent.
fn send_tcp(pbx: &Pbx, bytes: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(pbx.sip).expect("connect over TCP");
    stream.write_all(bytes).expect("write over TCP");
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(status) = final_status(&received) {
            return Answer::Status(status);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Answer::Nothing;
        }
        stream.set_read_timeout(Some(wait)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) if received.is_empty() => return Answer::ConnectionClosed,
            Ok(0) => return Answer::Nothing,
            Ok(length) => received.extend_from_slice(&buffer[..length]),
            Err(error) if is_timeout(&error) => return Answer::Nothing,
            Err(error) if error.kind() == ErrorKind::ConnectionReset => {
                return Answer::ConnectionClosed;
            }
            Err(error) => panic!("TCP read failed: {error}"),
        }
    }
}

/// Status of the first final response among the complete header blocks of
/// `stream`, skipping provisional ones.
fn final_status(stream: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(stream);
    let mut blocks: Vec<&str> = text.split("\r\n\r\n").collect();
    blocks.pop(); // The part after the last empty line is incomplete.
    blocks
        .iter()
        .filter_map(|block| block.lines().find(|line| line.starts_with("SIP/2.0 ")))
        .filter_map(status_of)
        .find(|status| *status >= 200)
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn status_of(line: &str) -> Option<u16> {
    line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Header lines up to the first empty line, folded lines joined, line ends
/// CRLF or bare LF.
fn head_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

/// First value of a header, by any of its `names` (lowercase).
fn header_value(lines: &[String], names: &[&str]) -> Option<String> {
    lines.iter().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        names
            .contains(&name.as_str())
            .then(|| value.trim().to_owned())
    })
}

/// Port of the top Via's sent-by: `SIP/2.0/UDP host[:port];params`, with
/// LWS allowed around the slashes.
fn top_via_port(lines: &[String]) -> Option<u16> {
    let value = header_value(lines, &["via", "v"])?;
    let first = value.split([',', ';']).next()?;
    let after_protocol = &first[first.rfind('/')? + 1..];
    let sent_by: String = after_protocol.split_whitespace().skip(1).collect();
    let port = match sent_by.strip_prefix('[') {
        Some(v6) => v6.split_once("]:")?.1,
        None => sent_by.rsplit_once(':')?.1,
    };
    port.parse().ok()
}

#[test]
fn via_port_parsing() {
    let lines = |via: &str| vec!["INVITE sip:a@b SIP/2.0".to_owned(), via.to_owned()];
    assert_eq!(
        top_via_port(&lines("Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z")),
        Some(5070)
    );
    assert_eq!(
        top_via_port(&lines("v: SIP / 2.0 / TCP host.example.com ;x")),
        None
    );
    assert_eq!(
        top_via_port(&lines("Via: SIP/2.0/UDP [2001:db8::9:1]:5080")),
        Some(5080)
    );
    assert_eq!(
        top_via_port(&lines("Via: SIP/2.0/UDP [2001:db8::9:1]")),
        None
    );
    assert_eq!(
        top_via_port(&lines("Via: SIP/2.0/UDP a:5061, SIP/2.0/UDP b:9")),
        Some(5061)
    );
}
