//! A call from a source address outside every trunk's allow list, and with
//! no digest credentials, is rejected with 403. 127.0.0.2 is a loopback
//! address that the test trunk (127.0.0.1/32) does not include.

use pbx_e2e::pbx::{DID, Pbx, PbxConfig};
use pbx_e2e::{phones, tools};

#[test]
fn trunk_source_not_allowed_rejected_with_403() {
    tools::require(&tools::ALL);
    let pbx = Pbx::start(&PbxConfig::default());
    let work_dir = pbx.dir.path().to_path_buf();

    let (run, status) = phones::rejected_call(&pbx, &work_dir, "127.0.0.2", DID);

    assert_eq!(status, 403, "{}", run.report());
    let sent_from = run
        .messages()
        .into_iter()
        .find(|message| !message.received)
        .and_then(|invite| invite.header("Via").map(str::to_owned));
    assert!(
        sent_from
            .as_deref()
            .is_some_and(|via| via.contains("127.0.0.2:")),
        "INVITE not sent from 127.0.0.2: Via {sent_from:?}"
    );
}
