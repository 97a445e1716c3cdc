//! The sipp roles of a call centre call: the agent's phone (registration and
//! answering) and the caller arriving over the trunk.

use std::path::Path;
use std::time::Duration;

use crate::pbx::{Agent, DOMAIN, Pbx};
use crate::ports;
use crate::sipp::{Sipp, SippOutcome, SippRun};

/// Caller number put in the From user part.
pub const CALLER_NUMBER: &str = "0612345678";

/// The agent's phone: a UAS sipp on its own signalling and media ports.
#[derive(Clone, Debug)]
pub struct AgentPhone {
    pub agent: Agent,
    pub sip_port: u16,
    pub media_port: u16,
}

impl AgentPhone {
    pub fn new(agent: &Agent) -> AgentPhone {
        AgentPhone {
            agent: agent.clone(),
            sip_port: ports::free_udp_port(),
            media_port: ports::free_sipp_media_port(),
        }
    }

    /// REGISTERs this phone's Contact with `password` and `expires` seconds.
    pub fn register_with(
        &self,
        pbx: &Pbx,
        work_dir: &Path,
        scenario: &str,
        password: &str,
        expires: u32,
    ) -> SippOutcome {
        Sipp::new(
            &format!("register-{}-{expires}", self.agent.id),
            scenario,
            work_dir,
        )
        .local("127.0.0.1", ports::free_udp_port())
        .credentials(&self.agent.id, password)
        .key("agent", &self.agent.id)
        .key("domain", DOMAIN)
        .key("contact_port", &self.sip_port.to_string())
        .key("expires", &expires.to_string())
        .remote(pbx.sip)
        .run()
    }

    /// Registers with the configured password and panics unless it succeeds.
    pub fn register(&self, pbx: &Pbx, work_dir: &Path) {
        self.register_with(
            pbx,
            work_dir,
            "agent_register.xml",
            &self.agent.password,
            600,
        )
        .assert_success();
    }

    /// Removes the binding (Expires: 0).
    pub fn unregister(&self, pbx: &Pbx, work_dir: &Path) -> SippOutcome {
        self.register_with(pbx, work_dir, "agent_register.xml", &self.agent.password, 0)
    }

    /// Starts answering one call with `scenario` (`agent_answer.xml` or
    /// `agent_answer_hangup.xml`, which hangs up after `talk`).
    pub fn answer(&self, work_dir: &Path, scenario: &str, talk: Duration) -> SippRun {
        Sipp::new(&format!("agent-{}", self.agent.id), scenario, work_dir)
            .local("127.0.0.1", self.sip_port)
            .media("127.0.0.1", self.media_port)
            .pause(talk)
            // Answers OPTIONS (qualify), INFO, NOTIFY and UPDATE with 200
            // instead of failing on them as unexpected.
            .arg("-aa")
            .spawn()
    }
}

/// Builds a caller that dials `number` at the PBX from `source_ip`.
/// 127.0.0.1 is inside the test trunk's allow list and 127.0.0.2 outside.
pub fn caller(pbx: &Pbx, work_dir: &Path, scenario: &str, source_ip: &str, number: &str) -> Sipp {
    Sipp::new("caller", scenario, work_dir)
        .local(source_ip, ports::free_udp_port())
        .media(source_ip, ports::free_sipp_media_port())
        .service(number)
        .key("caller", CALLER_NUMBER)
        .remote(pbx.sip)
}

/// Places a call expected to fail with `caller_rejected.xml` and returns the
/// run and the final status the caller received.
pub fn rejected_call(
    pbx: &Pbx,
    work_dir: &Path,
    source_ip: &str,
    number: &str,
) -> (SippOutcome, u16) {
    let run = caller(pbx, work_dir, "caller_rejected.xml", source_ip, number).run();
    run.assert_success();
    let status = run.final_status().unwrap_or_else(|| {
        panic!(
            "no final response in the caller's message log\n{}",
            run.report()
        )
    });
    (run, status)
}
