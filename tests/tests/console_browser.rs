//! The web console in headless Chromium against the real binary. The root
//! leads to the login page and a supervisor logs in. The wallboard shows
//! the queue's tile and follows an agent's state change from the event
//! stream without a reload.
//!
//! With `PBX_CONSOLE_SCREENSHOTS=DIR` the test also saves a PNG of each
//! page it visits into DIR.

use std::path::PathBuf;
use std::time::Duration;

use pbx_e2e::browser::Browser;
use pbx_e2e::pbx::{Pbx, PbxConfig, QUEUE};

const PAGE_TIMEOUT: Duration = Duration::from_secs(15);
const SUPERVISOR: &str = "sue";
const SUPERVISOR_PASSWORD: &str = "e2e-supervisor-password";

fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("PBX_CONSOLE_SCREENSHOTS") {
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        browser.screenshot(&path);
    }
}

#[test]
fn console_login_then_live_wallboard() {
    let pbx = Pbx::start(&PbxConfig::default());
    let user = serde_json::json!({
        "username": SUPERVISOR, "password": SUPERVISOR_PASSWORD, "role": "supervisor",
    });
    let created = pbx.admin_request("POST", "/api/users", Some(&user));
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let browser = Browser::start();
    let base = format!("http://{}", pbx.http);

    // Without a session the root ends on the login page.
    browser.goto(&format!("{base}/"));
    let username = browser.wait_for("#username", PAGE_TIMEOUT);
    let url = browser.current_url();
    assert!(
        url.starts_with(&format!("{base}/console/login")),
        "landed on {url}"
    );
    screenshot(&browser, "console-login");
    let wrong = browser.wait_for("#password", PAGE_TIMEOUT);
    browser.type_into(&username, SUPERVISOR);
    browser.type_into(&wrong, "not-the-password");
    browser.click(&browser.wait_for("#login-button", PAGE_TIMEOUT));
    browser.wait_for_text("#login-error", PAGE_TIMEOUT, |text| {
        text.contains("Wrong username or password")
    });
    let password = browser.wait_for("#password", PAGE_TIMEOUT);
    browser.execute("document.getElementById('password').value = ''; return null;");
    browser.type_into(&password, SUPERVISOR_PASSWORD);
    browser.click(&browser.wait_for("#login-button", PAGE_TIMEOUT));
    let logged_in_as = browser.wait_for_text("#user", PAGE_TIMEOUT, |text| !text.is_empty());
    assert_eq!(logged_in_as, format!("{SUPERVISOR} (supervisor)"));
    assert_eq!(browser.current_url(), format!("{base}/console/calls"));
    browser.wait_for_text("#status", PAGE_TIMEOUT, |text| {
        text.contains("No call matches")
    });
    screenshot(&browser, "console-calls");

    browser.goto(&format!("{base}/console/wallboard"));
    let tile = format!("section.tile[data-queue=\"{QUEUE}\"]");
    browser.wait_for(&tile, PAGE_TIMEOUT);
    let waiting = browser.wait_for_text(
        &format!("{tile} [data-figure=\"waiting\"]"),
        PAGE_TIMEOUT,
        |text| !text.is_empty(),
    );
    assert_eq!(waiting, "0");
    browser.wait_for_text("#live", PAGE_TIMEOUT, |text| text == "live");
    let agent_state = "tr[data-agent=\"1001\"] [data-state]";
    let before = browser.wait_for_text(agent_state, PAGE_TIMEOUT, |text| !text.is_empty());
    screenshot(&browser, "console-wallboard");

    // A mark on the page shows that what follows needs no reload.
    browser.execute("window.pbxNotReloaded = true; return null;");
    // An agent without a registered phone is unreachable at start.
    assert_ne!(before, "logged out");
    let change = serde_json::json!({ "state": "logged_out" });
    let reply = pbx.admin_request("PUT", "/api/agents/1001/state", Some(&change));
    assert_eq!(
        reply.status,
        204,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    browser.wait_for_text(agent_state, PAGE_TIMEOUT, |text| text == "logged out");
    assert_eq!(
        browser.execute("return window.pbxNotReloaded === true;"),
        serde_json::json!(true),
        "the wallboard reloaded instead of following the stream"
    );
}
