//! Overload control on the wire: with `[overload] max_transactions = 1`,
//! an OPTIONS transaction still in its wait state makes the next INVITE
//! get 503 with Retry-After, and the PBX keeps answering other requests.

use std::net::UdpSocket;
use std::time::Duration;

use pbx_e2e::pbx::{Pbx, PbxConfig};
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::tools;

#[test]
fn invite_past_the_transaction_limit_gets_503() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        extra: "\n[overload]\nmax_transactions = 1\nretry_after_secs = 7\n".to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);

    // A non-INVITE server transaction lingers (Timer J) after its answer.
    let probe = UdpSocket::bind("127.0.0.1:0").expect("socket");
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = probe.local_addr().expect("address");
    let options = format!(
        "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-overload\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:{}>\r\n\
         Call-ID: overload-probe@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        pbx.sip, pbx.sip
    );
    probe.send_to(options.as_bytes(), pbx.sip).expect("send");
    let mut buffer = [0u8; 4096];
    let (len, _) = probe.recv_from(&mut buffer).expect("OPTIONS answered");
    assert!(String::from_utf8_lossy(&buffer[..len]).starts_with("SIP/2.0 200"));

    let mut caller = RawCaller::new(&pbx).expect("caller sockets");
    let status = caller
        .invite(Duration::from_secs(5))
        .expect("final response");
    assert_eq!(status, 503, "statuses {:?}", caller.statuses);
    assert!(
        pbx.wait_for_log("new call rejected: overloaded", Duration::from_secs(10)),
        "{}",
        pbx.logs()
    );
    let metrics = String::from_utf8_lossy(&pbx.get("/metrics").body).into_owned();
    assert!(
        metrics.contains("pbx_overload_rejections_total 1\n"),
        "{metrics}"
    );
    assert!(
        pbx.calls().is_empty(),
        "a refused call leaves no CDR, like any request refused before admission"
    );
}
