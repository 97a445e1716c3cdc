//! A trunk call to a number with no DID entry is rejected with 404.

use pbx_e2e::pbx::{Pbx, PbxConfig};
use pbx_e2e::{phones, tools};

#[test]
fn unknown_did_rejected_with_404() {
    tools::require(&tools::ALL);
    let pbx = Pbx::start(&PbxConfig::default());
    let work_dir = pbx.dir.path().to_path_buf();

    let (run, status) = phones::rejected_call(&pbx, &work_dir, "127.0.0.1", "9999");

    assert_eq!(status, 404, "{}", run.report());
}
