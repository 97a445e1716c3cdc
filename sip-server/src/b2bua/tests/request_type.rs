//! The request type of the dialed DID in the call's record.

use super::*;

fn passport_config() -> CoreConfig {
    let mut config = config();
    config
        .dids
        .get_mut("5000")
        .expect("DID 5000 configured")
        .request_type = Some("passport".into());
    config
}

fn hang_up(h: &mut Harness, call: &str) -> cdr::CallRecord {
    let tag = caller_tag(h, call);
    h.receive(&caller_bye(&tag), CALLER);
    h.finished_record()
}

#[test]
fn answered_call_records_request_type() {
    let mut h = Harness::with_config(passport_config());
    let (call, _) = answered_call(&mut h);
    let record = hang_up(&mut h, &call);
    assert_eq!(record.disposition, cdr::Disposition::Answered);
    assert_eq!(record.request_type.as_deref(), Some("passport"));
}

#[test]
fn did_without_request_type_records_none() {
    let mut h = Harness::new();
    let (call, _) = answered_call(&mut h);
    let record = hang_up(&mut h, &call);
    assert_eq!(record.request_type, None);
}

#[test]
fn unknown_did_records_no_request_type() {
    let mut h = Harness::with_config(passport_config());
    h.caller_invite("9999", CALLER);
    let record = h.finished_record();
    assert_eq!(record.sip_status, Some(404));
    assert_eq!(record.request_type, None);
}
