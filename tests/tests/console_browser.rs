//! The web console in headless Chromium against the real binary. The root
//! leads to the login page and a supervisor logs in. The wallboard shows
//! the queue's tile and follows an agent's state change from the event
//! stream without a reload. A QA reviewer scores a real answered call on
//! its page, and the reports page shows that call in its table and charts.
//! The wallboard's chart of today's calls per 15 minutes has a bar for the
//! call, and counts a second call from the event stream without a reload.
//! An administrator creates an agent on the administration page. The
//! server's error shows next to the field first, and then the API lists it.
//!
//! With `PBX_CONSOLE_SCREENSHOTS=DIR` the test also saves a PNG of each
//! page it visits into DIR.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use pbx_e2e::browser::Browser;
use pbx_e2e::pbx::{Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::AgentPhone;
use pbx_e2e::raw_agent::RawAgent;
use pbx_e2e::raw_caller::RawCaller;
use pbx_e2e::tools;

const PAGE_TIMEOUT: Duration = Duration::from_secs(15);
const SUPERVISOR: &str = "sue";
const SUPERVISOR_PASSWORD: &str = "e2e-supervisor-password";
const ADMINISTRATOR: &str = "ada";
const ADMINISTRATOR_PASSWORD: &str = "e2e-administrator-password";
const REVIEWER: &str = "rita";
const REVIEWER_PASSWORD: &str = "e2e-reviewer-password";
const SIP_TIMEOUT: Duration = Duration::from_secs(10);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);
/// Two criteria: greeting weight 1, resolution weight 3, scores 0 to 5.
const CRITERIA: &str = "[qa]\nmax_score = 5\n\
     [[qa.criteria]]\nid = \"greeting\"\nlabel = \"Greeting\"\nweight = 1\n\
     [[qa.criteria]]\nid = \"resolution\"\nlabel = \"Resolution\"\nweight = 3\n";

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

/// Makes one call that agent 1001 answers and the caller ends after a
/// second of audio; returns its call record.
fn answered_call(pbx: &Pbx, config: &PbxConfig) -> serde_json::Value {
    let work_dir = pbx.dir.path().to_path_buf();
    let phone = AgentPhone::new(&config.agents[0]);
    let mut agent = RawAgent::bind(&phone.agent.id, phone.sip_port).expect("agent sockets");
    phone.register(pbx, &work_dir);
    let agent_thread = thread::spawn(move || {
        agent.answer(SIP_TIMEOUT).expect("agent answers");
        agent
            .exchange_tone(Duration::from_secs(1), 1_000.0)
            .expect("agent RTP");
        agent.await_bye(SIP_TIMEOUT).expect("BYE from the PBX");
    });
    let mut caller = RawCaller::new(pbx).expect("caller sockets");
    assert_eq!(caller.invite(SIP_TIMEOUT).expect("final response"), 200);
    caller
        .exchange_audio(Duration::from_secs(1))
        .expect("caller RTP");
    assert_eq!(caller.bye(SIP_TIMEOUT).expect("answer to BYE"), 200);
    agent_thread.join().expect("agent thread");
    let record = pbx.wait_for_call(caller.call_id(), CDR_TIMEOUT);
    assert_eq!(record["disposition"], "answered");
    record
}

#[test]
fn console_scorecard_then_reports() {
    tools::require(&tools::ALL);
    let config = PbxConfig {
        extra: CRITERIA.to_owned(),
        ..PbxConfig::default()
    };
    let pbx = Pbx::start(&config);
    let user = serde_json::json!({
        "username": REVIEWER, "password": REVIEWER_PASSWORD, "role": "qa",
    });
    let created = pbx.admin_request("POST", "/api/users", Some(&user));
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let record = answered_call(&pbx, &config);
    let call_id = record["id"].as_str().expect("call id").to_owned();
    // The report covers the UTC day of the call, even when the test runs
    // across midnight.
    let arrived = record["arrived_at"].as_str().expect("arrival time");
    let arrived =
        time::OffsetDateTime::parse(arrived, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 arrival");
    let day = arrived.date();
    let next_day = day.next_day().expect("a next day");

    let browser = Browser::start();
    let base = format!("http://{}", pbx.http);
    browser.goto(&format!("{base}/console/calls/{call_id}"));
    let username = browser.wait_for("#username", PAGE_TIMEOUT);
    browser.type_into(&username, REVIEWER);
    browser.type_into(
        &browser.wait_for("#password", PAGE_TIMEOUT),
        REVIEWER_PASSWORD,
    );
    browser.click(&browser.wait_for("#login-button", PAGE_TIMEOUT));

    // The login leads back to the call, whose page offers the form.
    browser.wait_for("#save-scorecard", PAGE_TIMEOUT);
    assert_eq!(
        browser.current_url(),
        format!("{base}/console/calls/{call_id}")
    );
    browser.wait_for_text("#scorecards", PAGE_TIMEOUT, |text| {
        text.contains("No scorecard yet")
    });
    browser.execute("document.getElementById('score-resolution').value = '3'; return null;");
    let comment = browser.wait_for("#comment-resolution", PAGE_TIMEOUT);
    browser.type_into(&comment, "no follow-up offered");
    let comments = browser.wait_for("#scorecard-comments", PAGE_TIMEOUT);
    browser.type_into(&comments, "clear and polite");
    browser.click(&browser.wait_for("#save-scorecard", PAGE_TIMEOUT));
    // Greeting 5 of 5 (weight 1), resolution 3 of 5 (weight 3): 70 %.
    browser.wait_for_text("#scorecard-status", PAGE_TIMEOUT, |text| {
        text == "Saved: 70.00 %"
    });
    let saved = browser.wait_for_text("#scorecards", PAGE_TIMEOUT, |text| {
        text.contains("70.00 % by rita")
    });
    assert!(saved.contains("no follow-up offered"), "{saved}");
    assert!(saved.contains("clear and polite"), "{saved}");
    screenshot(&browser, "console-scorecard");

    // The API has the scorecard with the reviewer, and the audit log its save.
    let stored = pbx
        .admin_request("GET", &format!("/api/calls/{call_id}/scorecards"), None)
        .json();
    assert_eq!(stored[0]["reviewer"], REVIEWER, "{stored}");
    assert_eq!(stored[0]["total_percent"], 70.0, "{stored}");
    let audit = pbx.admin_request("GET", "/api/audit", None).json();
    let saves = audit
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|entry| entry["action"] == "scorecard.save" && entry["target"] == call_id.as_str())
        .count();
    assert_eq!(saves, 1, "{audit}");

    // The top bar links the reports page; it opens on the day of the call.
    browser.wait_for("a[href=\"/console/reports\"]", PAGE_TIMEOUT);
    browser.goto(&format!(
        "{base}/console/reports?from={day}T00:00:00Z&to={next_day}T00:00:00Z&interval=15"
    ));
    let answered = "#report tbody td[data-column=\"answered\"]";
    let count = browser.wait_for_text(answered, PAGE_TIMEOUT, |text| !text.is_empty());
    assert_eq!(count, "1");
    let queue = browser.wait_for_text(
        "#report tbody td[data-column=\"queue\"]",
        PAGE_TIMEOUT,
        |text| !text.is_empty(),
    );
    assert_eq!(queue, QUEUE);
    browser.wait_for("#charts svg rect.bar", PAGE_TIMEOUT);
    let csv = browser.execute("return document.getElementById('csv').getAttribute('href');");
    let csv = csv.as_str().expect("CSV link");
    assert!(csv.contains("format=csv"), "{csv}");
    let export = pbx.get(csv);
    assert_eq!(export.status, 200);
    let text = String::from_utf8_lossy(&export.body).into_owned();
    assert!(
        text.starts_with("start,end,queue,offered,answered,"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    screenshot(&browser, "console-reports");

    // The chart covers the browser's today, so a call made just before
    // midnight would fall outside it.
    browser.goto(&format!("{base}/console/wallboard"));
    let chart = "#interval-chart-figure";
    browser.wait_for(&format!("{chart} svg rect.bar"), PAGE_TIMEOUT);
    let answered_total = format!("{chart} [data-total=\"answered\"]");
    let total = browser.wait_for_text(&answered_total, PAGE_TIMEOUT, |text| !text.is_empty());
    assert_eq!(total, "1 answered");
    browser.wait_for_text("#live", PAGE_TIMEOUT, |text| text == "live");
    screenshot(&browser, "console-wallboard-chart");

    browser.execute("window.pbxNotReloaded = true; return null;");
    answered_call(&pbx, &config);
    browser.wait_for_text(&answered_total, PAGE_TIMEOUT, |text| text == "2 answered");
    assert_eq!(
        browser.execute("return window.pbxNotReloaded === true;"),
        serde_json::json!(true),
        "the wallboard reloaded instead of following the stream"
    );
}

/// Logs `username` in through the login page.
fn log_in(browser: &Browser, base: &str, username: &str, password: &str) {
    browser.goto(&format!("{base}/console/login"));
    let name_field = browser.wait_for("#username", PAGE_TIMEOUT);
    browser.type_into(&name_field, username);
    browser.type_into(&browser.wait_for("#password", PAGE_TIMEOUT), password);
    browser.click(&browser.wait_for("#login-button", PAGE_TIMEOUT));
    browser.wait_for_text("#user", PAGE_TIMEOUT, |text| !text.is_empty());
}

#[test]
fn console_admin_creates_agent() {
    let pbx = Pbx::start(&PbxConfig::default());
    let user = serde_json::json!({
        "username": ADMINISTRATOR, "password": ADMINISTRATOR_PASSWORD, "role": "administrator",
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
    log_in(&browser, &base, ADMINISTRATOR, ADMINISTRATOR_PASSWORD);

    browser.wait_for("a[href=\"/console/admin\"]", PAGE_TIMEOUT);
    browser.goto(&format!("{base}/console/admin"));
    browser.wait_for("#agents tr[data-agent=\"1001\"]", PAGE_TIMEOUT);
    browser.wait_for(&format!("#queues tr[data-queue=\"{QUEUE}\"]"), PAGE_TIMEOUT);
    browser.click(&browser.wait_for("#new-agent", PAGE_TIMEOUT));
    let form = "#agent-form";
    browser.type_into(
        &browser.wait_for(&format!("{form} [name=\"id\"]"), PAGE_TIMEOUT),
        "1003",
    );
    browser.type_into(
        &browser.wait_for(&format!("{form} [name=\"name\"]"), PAGE_TIMEOUT),
        "Ana",
    );
    browser.type_into(
        &browser.wait_for(&format!("{form} [name=\"password\"]"), PAGE_TIMEOUT),
        "e2e-secret-1003",
    );
    browser.type_into(
        &browser.wait_for(&format!("{form} [name=\"wrap_up_secs\"]"), PAGE_TIMEOUT),
        "20",
    );
    browser.click(&browser.wait_for("#add-skill-row", PAGE_TIMEOUT));
    // A space inside the skill passes the browser's hints; the server
    // rejects it and the page shows why next to the skills.
    let skill = browser.wait_for("#agent-skills [data-skill-name]", PAGE_TIMEOUT);
    browser.type_into(&skill, "language = ru");
    browser.click(&browser.wait_for(
        &format!("#agent-queues input[value=\"{QUEUE}\"]"),
        PAGE_TIMEOUT,
    ));
    browser.click(&browser.wait_for("#save-agent", PAGE_TIMEOUT));
    let error = browser.wait_for_text(
        &format!("{form} [data-error=\"skills\"]"),
        PAGE_TIMEOUT,
        |text| !text.is_empty(),
    );
    assert!(error.contains("whitespace"), "{error}");
    screenshot(&browser, "console-admin-error");
    let rejected = pbx.admin_request("GET", "/api/admin/agents/1003", None);
    assert_eq!(rejected.status, 404, "nothing was stored");

    browser.execute(
        "document.querySelector('#agent-skills [data-skill-name]').value = 'language=ru'; \
         document.querySelector('#agent-skills [data-skill-level]').value = '4'; return null;",
    );
    browser.click(&browser.wait_for("#save-agent", PAGE_TIMEOUT));
    browser.wait_for("#agents tr[data-agent=\"1003\"]", PAGE_TIMEOUT);
    browser.wait_for_text("#status", PAGE_TIMEOUT, |text| {
        text == "Agent 1003 saved and in force."
    });
    let form_hidden = browser.execute("return document.getElementById('agent-form').hidden;");
    assert_eq!(
        form_hidden,
        serde_json::json!(true),
        "the form closes after a save"
    );

    let agent = pbx
        .admin_request("GET", "/api/admin/agents/1003", None)
        .json();
    assert_eq!(agent["name"], "Ana", "{agent}");
    assert_eq!(
        agent["skills"],
        serde_json::json!(["language=ru:4"]),
        "{agent}"
    );
    assert_eq!(agent["queues"], serde_json::json!([QUEUE]), "{agent}");
    assert_eq!(agent["wrap_up_secs"], 20, "{agent}");
    let live = pbx.get("/api/agents").json();
    let listed = live
        .as_array()
        .expect("agents array")
        .iter()
        .find(|entry| entry["id"] == "1003")
        .cloned()
        .expect("the engine has agent 1003");
    assert_eq!(listed["queues"], serde_json::json!([QUEUE]), "{listed}");
    let audit = pbx.admin_request("GET", "/api/audit", None).json();
    assert!(
        audit
            .as_array()
            .expect("audit entries")
            .iter()
            .any(|entry| entry["action"] == "config.agent.create"
                && entry["username"] == ADMINISTRATOR),
        "{audit}"
    );

    // A skill and a queue with steps, for the page as the docs show it.
    let skill = serde_json::json!({ "name": "language=ru", "description": "Speaks Russian" });
    let reply = pbx.admin_request("POST", "/api/admin/skills", Some(&skill));
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let queue = serde_json::json!({
        "name": "passport", "agents": ["1001", "1003"], "strategy": "best-proficiency",
        "max_wait_secs": 300, "wrap_up_secs": 10,
        "steps": [
            { "after_secs": 30, "keep": ["language"] },
            { "after_secs": 90, "any_agent": true },
            { "after_secs": 240, "overflow": format!("queue:{QUEUE}") },
        ],
    });
    let reply = pbx.admin_request("POST", "/api/admin/queues", Some(&queue));
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    browser.goto(&format!("{base}/console/admin"));
    browser.wait_for("#queues tr[data-queue=\"passport\"]", PAGE_TIMEOUT);
    screenshot(&browser, "console-admin");
    browser.click(&browser.wait_for(
        "#queues tr[data-queue=\"passport\"] [data-edit]",
        PAGE_TIMEOUT,
    ));
    let steps = browser.execute("return document.querySelectorAll('#queue-steps tr').length;");
    assert_eq!(
        steps,
        serde_json::json!(3),
        "the form shows the queue's steps"
    );
    screenshot(&browser, "console-admin-queue");
}
