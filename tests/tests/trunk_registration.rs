//! A trunk that registers at its provider. sipp plays the provider's
//! registrar on 127.0.0.2: it challenges, checks every digest with
//! `verifyauth` and grants 4 s, so the PBX refreshes within the test. The
//! provider then calls the registered Contact from 127.0.0.3, which no
//! allow list holds, and the call reaches the queue and a sipp agent. At
//! the stop the PBX removes its binding with `Expires: 0`.

use std::thread;
use std::time::{Duration, Instant};

use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig, TRUNK};
use pbx_e2e::phones::{AgentPhone, CALLER_NUMBER};
use pbx_e2e::sipp::{Sipp, TracedMessage};
use pbx_e2e::{ports, tools};
use serde_json::Value;

const REGISTRAR_IP: &str = "127.0.0.2";
const PROVIDER_EDGE_IP: &str = "127.0.0.3";
const ACCOUNT: &str = "4930555";
const AUTH_USER: &str = "acct-e2e";
const PASSWORD: &str = "provider-e2e-secret";
const CONTACT_USER: &str = "pbx-e2e-line";
const GRANTED: Duration = Duration::from_secs(4);
const TALK: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(15);

/// Polls the trunk's registration until `check` accepts it; panics after
/// `WAIT`.
fn wait_for_registration(pbx: &Pbx, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = pbx.admin_request("GET", "/api/trunks/registrations", None);
        assert_eq!(response.status, 200, "{}", pbx.logs());
        let body = response.json();
        let entry = body
            .as_array()
            .and_then(|entries| entries.iter().find(|entry| entry["trunk"] == TRUNK))
            .cloned();
        if let Some(entry) = entry.filter(|entry| check(entry)) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: registrations are {body:#}\n{}",
            pbx.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn nonce_count(register: &TracedMessage) -> Option<u32> {
    let authorization = register.header("Authorization")?;
    let nc = authorization.split("nc=").nth(1)?.get(..8)?;
    u32::from_str_radix(nc, 16).ok()
}

#[test]
fn trunk_registers_refreshes_and_takes_calls() {
    tools::require(&tools::ALL);
    let registrar_dir = tempfile::Builder::new()
        .prefix("pbx-e2e-registrar-")
        .tempdir()
        .expect("temporary directory");
    // Built first, because sipp's global timeout runs while the build does.
    pbx_e2e::pbx::binary();
    let registrar_port = ports::free_udp_port();
    // The registrar listens before the PBX starts, so the first REGISTER
    // finds it.
    let registrar = Sipp::new("registrar", "provider_registrar.xml", registrar_dir.path())
        .local(REGISTRAR_IP, registrar_port)
        .key("trunk_user", AUTH_USER)
        .key("password", PASSWORD)
        .key("expires", &GRANTED.as_secs().to_string())
        .spawn();

    let config = PbxConfig {
        trunk_extra: format!(
            "\n[trunks.register]\nregistrar = \"{REGISTRAR_IP}:{registrar_port}\"\n\
             domain = \"provider.test\"\nuser = \"{ACCOUNT}\"\nauth_user = \"{AUTH_USER}\"\n\
             password = \"{PASSWORD}\"\ncontact_user = \"{CONTACT_USER}\"\n\
             expires_secs = 60\nretry_secs = 1\n"
        ),
        ..PbxConfig::default()
    };
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    let _audio = AudioFixtures::generate(&work_dir);

    let first = wait_for_registration(&pbx, "trunk registered", |entry| {
        entry["state"] == "registered"
    });
    assert_eq!(first["last_status"], 200, "{first:#}");
    assert_eq!(first["aor"], format!("sip:{ACCOUNT}@provider.test"));
    // The PBX refreshes at half the granted 4 s, which moves the expiry.
    let refreshed = wait_for_registration(&pbx, "registration refreshed", |entry| {
        entry["state"] == "registered" && entry["expires_at"] != first["expires_at"]
    });
    println!("registration after a refresh: {refreshed:#}");

    let phone = AgentPhone::new(&config.agents[0]);
    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(&pbx, &work_dir);
    let call = Sipp::new("provider-call", "provider_call.xml", &work_dir)
        .local(PROVIDER_EDGE_IP, ports::free_udp_port())
        .media(PROVIDER_EDGE_IP, ports::free_sipp_media_port())
        .service(DID)
        .key("contact_user", CONTACT_USER)
        .key("caller", CALLER_NUMBER)
        .remote(pbx.sip)
        .pause(TALK)
        .run();
    call.assert_success();
    agent_run.wait().assert_success();
    let call_id = call
        .call_id()
        .expect("Call-ID in the provider's message log");
    let record = pbx.wait_for_call(&call_id, WAIT);
    assert_eq!(record["disposition"], "answered", "{record:#}");
    assert_eq!(record["trunk"], TRUNK, "{record:#}");
    assert_eq!(record["dialed"], DID, "{record:#}");
    assert_eq!(record["agent"], config.agents[0].id.as_str(), "{record:#}");

    pbx.stop();
    let registrar = registrar.wait();
    registrar.assert_success();
    let mut registers: Vec<TracedMessage> = registrar
        .messages()
        .into_iter()
        .filter(|message| message.received && message.start_line().starts_with("REGISTER "))
        .collect();
    // A retransmission repeats its CSeq and nonce count.
    registers.dedup_by(|later, earlier| later.header("CSeq") == earlier.header("CSeq"));
    // The challenged one, the one with credentials for the challenge, at
    // least one refresh, and the removal.
    assert!(registers.len() >= 4, "{}", registrar.report());
    assert_eq!(nonce_count(&registers[0]), None, "{}", registrar.report());
    let counts: Vec<u32> = registers[1..]
        .iter()
        .map(|register| nonce_count(register).expect("nc in every later REGISTER"))
        .collect();
    assert!(
        counts.windows(2).all(|pair| pair[1] > pair[0]),
        "nonce counts {counts:?} do not increase\n{}",
        registrar.report()
    );
    let last = registers.last().expect("a REGISTER");
    assert_eq!(last.header("Expires"), Some("0"), "{}", registrar.report());
    let contact = registers[1].header("Contact").unwrap_or_default();
    assert!(
        contact.contains(&format!("sip:{CONTACT_USER}@127.0.0.1:{}", pbx.sip.port())),
        "Contact {contact:?}"
    );
}
