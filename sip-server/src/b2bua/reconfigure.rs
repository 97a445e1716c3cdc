//! Configuration reload: applies a new [`CoreConfig`] to the running core
//! without touching calls in progress.
//!
//! Queues, agents, memberships, skills, passwords, DID routes, trunks, the
//! caller order, the recording switch and pause code are applied. Each is compared with
//! the configuration loaded before, and only what the file changed is
//! applied, so a skill or membership set through the API survives a reload
//! that leaves that agent's entry alone. Domain, addresses, registrar
//! limits, digest algorithms and timers need a restart and stay as they
//! were; the driver reports them.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::{Core, CoreConfig, DidRoute, Trunk};

impl Core {
    /// Applies `new` and returns one line per change, for the log and the
    /// reload's reply. Calls already queued keep waiting (in a removed
    /// queue too, see [`acd::Acd::remove_queue`]) and connected calls go on.
    pub fn reconfigure(&mut self, new: CoreConfig, now: Instant) -> Vec<String> {
        let mut changes = Vec::new();
        if new.caller_order != self.config.caller_order {
            self.acd.set_caller_order(new.caller_order);
            changes.push(format!("caller order set to {:?}", new.caller_order));
        }
        self.reconfigure_queues(&new, now, &mut changes);
        self.reconfigure_agents(&new, now, &mut changes);
        self.reconfigure_members(&new, now, &mut changes);
        diff_map(
            "DID",
            &self.config.dids,
            &new.dids,
            same_route,
            &mut changes,
        );
        let old_trunks = trunk_map(&self.config.trunks);
        let new_trunks = trunk_map(&new.trunks);
        diff_map(
            "trunk",
            &old_trunks,
            &new_trunks,
            |a, b| a == b,
            &mut changes,
        );
        self.reconfigure_trunk_registrations(&new.trunks, now, &mut changes);
        if new.queue_media != self.config.queue_media {
            // Callers waiting now hear the new music from their next
            // announcement or move on.
            changes.push("queue music and announcements updated".to_owned());
        }
        if new.surveys != self.config.surveys {
            // A survey already running keeps the settings it started with.
            changes.push("post-call surveys updated".to_owned());
        }
        if new.voicemail_max != self.config.voicemail_max {
            changes.push(format!(
                "voicemail messages limited to {} s",
                new.voicemail_max.as_secs()
            ));
        }
        if new.overload != self.config.overload {
            changes.push(format!(
                "overload limits now {} transactions, {} % CPU, Retry-After {} s",
                new.overload.max_transactions,
                new.overload.cpu_percent,
                new.overload.retry_after.as_secs()
            ));
        }
        if new.recording != self.config.recording {
            let state = if new.recording { "on" } else { "off" };
            changes.push(format!("recording of new calls turned {state}"));
        }
        if new.recording_mixed_mono != self.config.recording_mixed_mono {
            let state = if new.recording_mixed_mono {
                "on"
            } else {
                "off"
            };
            changes.push(format!("mixed mono recordings of new calls turned {state}"));
        }
        if new.recording_pause_code != self.config.recording_pause_code {
            let code = new.recording_pause_code.as_deref().unwrap_or("none");
            changes.push(format!("recording pause code of new calls set to {code}"));
        }

        // Servers resolved for a trunk's old host must not outlive it; the
        // driver resolves the new one.
        self.trunk_destinations.retain(|name, _| {
            old_trunks.get(name).map(|(_, outbound)| outbound)
                == new_trunks.get(name).map(|(_, outbound)| outbound)
        });
        let config = &mut self.config;
        config.dids = new.dids;
        config.trunks = new.trunks;
        config.recording = new.recording;
        config.recording_pause_code = new.recording_pause_code;
        config.recording_mixed_mono = new.recording_mixed_mono;
        config.queue_media = new.queue_media;
        config.surveys = new.surveys;
        config.voicemail_max = new.voicemail_max;
        config.overload = new.overload;
        config.caller_order = new.caller_order;
        config.ring_in_use = new.ring_in_use;
        config.queues = new.queues;
        config.queue_agents = new.queue_agents;
        config.agent_skills = new.agent_skills;
        config.agent_wrap_up = new.agent_wrap_up;
        config.passwords = new.passwords;
        for change in &changes {
            tracing::info!(change, "configuration reloaded");
        }
        self.process(now);
        changes
    }

    fn reconfigure_queues(&mut self, new: &CoreConfig, now: Instant, changes: &mut Vec<String>) {
        for queue in &new.queues {
            match self.config.queues.iter().find(|q| q.name == queue.name) {
                Some(old) if old == queue => {}
                Some(_) => {
                    self.acd.update_queue(queue.clone(), now);
                    changes.push(format!("queue {} changed", queue.name));
                }
                None => {
                    self.acd.update_queue(queue.clone(), now);
                    changes.push(format!("queue {} added", queue.name));
                }
            }
        }
        for old in &self.config.queues {
            if new.queues.iter().any(|q| q.name == old.name) {
                continue;
            }
            let waiting = self.acd.queue_length(&old.name).unwrap_or_default();
            if self.acd.remove_queue(&old.name, now).is_ok() {
                changes.push(format!(
                    "queue {} removed; its {waiting} waiting calls stay until answered or max wait",
                    old.name
                ));
            }
        }
    }

    fn reconfigure_agents(&mut self, new: &CoreConfig, now: Instant, changes: &mut Vec<String>) {
        let mut removed: Vec<&String> = self
            .config
            .passwords
            .keys()
            .filter(|agent| !new.passwords.contains_key(*agent))
            .collect();
        removed.sort();
        for agent in removed {
            if self.acd.remove_agent(agent, now).is_ok() {
                changes.push(format!("agent {agent} removed; a call in progress goes on"));
            }
        }
        let mut agents: Vec<&String> = new.passwords.keys().collect();
        agents.sort();
        for agent in agents {
            let skills = new.agent_skills.get(agent).cloned().unwrap_or_default();
            let Some(old_password) = self.config.passwords.get(agent) else {
                // Memberships follow in `reconfigure_members`, with ADDMEMBER.
                self.acd.add_agent(agent, &[]);
                self.acd.set_logged_in(agent, true, now);
                // Bindings of an agent added back before they expired.
                let reachable = !self.registrar.lookup(agent, now).is_empty();
                let cause = crate::registrar::ReachabilityCause::Registration.as_str();
                self.acd
                    .set_reachable_because(agent, reachable, Some(cause), now);
                let _ = self.acd.set_skills(agent, skills, now);
                let _ = self
                    .acd
                    .set_wrap_up(agent, new.agent_wrap_up.get(agent).copied());
                changes.push(format!("agent {agent} added"));
                continue;
            };
            let wrap_up = new.agent_wrap_up.get(agent).copied();
            if self.config.agent_wrap_up.get(agent).copied() != wrap_up {
                let _ = self.acd.set_wrap_up(agent, wrap_up);
                changes.push(format!("agent {agent} wrap-up changed"));
            }
            if self
                .config
                .agent_skills
                .get(agent)
                .cloned()
                .unwrap_or_default()
                != skills
            {
                let _ = self.acd.set_skills(agent, skills, now);
                changes.push(format!("agent {agent} skills changed"));
            }
            if Some(old_password) != new.passwords.get(agent) {
                changes.push(format!("agent {agent} password changed"));
            }
        }
        self.registrar.set_passwords(new.passwords.clone());
    }

    /// Applies membership changes between the old and the new file. Queues
    /// that were removed let go of their members themselves once drained.
    fn reconfigure_members(&mut self, new: &CoreConfig, now: Instant, changes: &mut Vec<String>) {
        let old_pairs = member_pairs(&self.config.queue_agents);
        let new_pairs = member_pairs(&new.queue_agents);
        for (queue, agent) in new_pairs.difference(&old_pairs) {
            if self.acd.add_member(agent, queue, 1, now).is_ok() {
                changes.push(format!("agent {agent} joined queue {queue}"));
            }
        }
        for (queue, agent) in old_pairs.difference(&new_pairs) {
            let queue_kept = new.queues.iter().any(|q| &q.name == queue);
            if queue_kept
                && new.passwords.contains_key(agent)
                && self.acd.remove_member(agent, queue, now).is_ok()
            {
                changes.push(format!("agent {agent} left queue {queue}"));
            }
        }
    }
}

fn member_pairs(queue_agents: &HashMap<String, Vec<String>>) -> BTreeSet<(String, String)> {
    queue_agents
        .iter()
        .flat_map(|(queue, agents)| agents.iter().map(|agent| (queue.clone(), agent.clone())))
        .collect()
}

type TrunkSettings = (
    Vec<crate::network::IpNetwork>,
    Option<crate::locate::OutboundTarget>,
);

fn trunk_map(trunks: &[Trunk]) -> HashMap<String, TrunkSettings> {
    trunks
        .iter()
        .map(|trunk| {
            (
                trunk.name.clone(),
                (trunk.allow.clone(), trunk.outbound.clone()),
            )
        })
        .collect()
}

fn same_route(a: &DidRoute, b: &DidRoute) -> bool {
    a.queue == b.queue
        && a.priority == b.priority
        && a.skills == b.skills
        && a.request_type == b.request_type
}

/// Adds a line for each key of `new` missing from `old` (added), present
/// in both but not `same` (changed), and of `old` missing from `new`.
fn diff_map<V>(
    what: &str,
    old: &HashMap<String, V>,
    new: &HashMap<String, V>,
    same: impl Fn(&V, &V) -> bool,
    changes: &mut Vec<String>,
) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (None, Some(_)) => changes.push(format!("{what} {key} added")),
            (Some(_), None) => changes.push(format!("{what} {key} removed")),
            (Some(a), Some(b)) if !same(a, b) => changes.push(format!("{what} {key} changed")),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, SystemTime};

    use super::super::{Command, OverloadLimits, default_timers};
    use super::*;

    fn queue(name: &str) -> acd::QueueConfig {
        acd::QueueConfig {
            name: name.to_owned(),
            ..acd::QueueConfig::default()
        }
    }

    fn config(agents: &[&str], queues: &[(&str, &[&str])]) -> CoreConfig {
        CoreConfig {
            domain: "pbx.test".into(),
            sip_address: "127.0.0.1:5060".parse().unwrap(),
            listen_ports: Default::default(),
            media_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            trunks: Vec::new(),
            dids: queues
                .iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let route = DidRoute {
                        queue: (*name).to_owned(),
                        ..DidRoute::default()
                    };
                    (format!("500{i}"), route)
                })
                .collect(),
            queues: queues.iter().map(|(name, _)| queue(name)).collect(),
            queue_agents: queues
                .iter()
                .map(|(name, members)| {
                    let members = members.iter().map(|m| (*m).to_owned()).collect();
                    ((*name).to_owned(), members)
                })
                .collect(),
            agent_skills: HashMap::new(),
            agent_wrap_up: HashMap::new(),
            caller_order: acd::CallerOrder::default(),
            ring_in_use: false,
            registrar: crate::registrar::RegistrarConfig {
                min_expires: 60,
                max_expires: 3600,
                default_expires: 600,
                max_contacts: 5,
                qualify_interval: None,
                qualify_timeout: Duration::from_secs(5),
                flow_timer_secs: 120,
            },
            digest_algorithms: vec![crate::auth::Algorithm::Md5],
            passwords: agents
                .iter()
                .map(|a| ((*a).to_owned(), format!("pw-{a}")))
                .collect(),
            recording: true,
            recording_pause_code: None,
            recording_mixed_mono: false,
            timers: default_timers(),
            queue_media: HashMap::new(),
            prompts: crate::b2bua::PromptSet::new("/prompts"),
            voicemail_max: Duration::from_secs(120),
            overload: OverloadLimits::default(),
            session_timer: crate::b2bua::SessionTimerConfig::default(),
            surveys: HashMap::new(),
        }
    }

    fn queue_log(core: &mut Core) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(command) = core.poll_command() {
            if let Command::QueueLog { lines: batch, .. } = command {
                lines.extend(batch);
            }
        }
        lines
    }

    fn members(core: &Core, now: Instant) -> Vec<(String, Vec<String>)> {
        core.agents_view(now)
            .into_iter()
            .map(|agent| (agent.id, agent.queues))
            .collect()
    }

    #[test]
    fn reload_applies_agents_queues_and_members() {
        let now = Instant::now();
        let old = config(&["1001", "1002"], &[("general", &["1001", "1002"])]);
        let mut core = Core::new(old, now, SystemTime::now()).unwrap();
        queue_log(&mut core);

        let mut new = config(
            &["1001", "1003"],
            &[("general", &["1001"]), ("ru", &["1001", "1003"])],
        );
        new.agent_skills
            .insert("1003".into(), [("language=ru".to_owned(), 4)].into());
        let changes = core.reconfigure(new, now);
        for expected in [
            "queue ru added",
            "agent 1002 removed; a call in progress goes on",
            "agent 1003 added",
            "agent 1001 joined queue ru",
            "agent 1003 joined queue ru",
            "DID 5001 added",
        ] {
            assert!(
                changes.iter().any(|c| c == expected),
                "{expected}: {changes:?}"
            );
        }
        assert_eq!(
            members(&core, now),
            [
                (
                    "1001".to_owned(),
                    vec!["general".to_owned(), "ru".to_owned()]
                ),
                ("1003".to_owned(), vec!["ru".to_owned()]),
            ]
        );
        let agents = core.agents_view(now);
        assert_eq!(agents[1].skills.get("language=ru"), Some(&4));
        let names: Vec<String> = core.queues_view(now).into_iter().map(|q| q.name).collect();
        assert_eq!(names, ["general", "ru"]);
        let log = queue_log(&mut core);
        assert!(
            log.iter().any(|l| l.ends_with("|ru|1003|ADDMEMBER|")),
            "{log:?}"
        );
        assert!(
            log.iter()
                .any(|l| l.ends_with("|general|1002|REMOVEMEMBER|")),
            "{log:?}"
        );
        assert_eq!(core.registrar.password("1003"), Some("pw-1003"));
        assert_eq!(core.registrar.password("1002"), None);
    }

    #[test]
    fn reload_applies_agent_wrap_up() {
        let now = Instant::now();
        let mut core = Core::new(
            config(&["1001"], &[("general", &["1001"])]),
            now,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(core.acd.agent_wrap_up("1001"), None);

        let mut new = config(&["1001", "1002"], &[("general", &["1001", "1002"])]);
        new.agent_wrap_up
            .insert("1001".into(), Duration::from_secs(45));
        new.agent_wrap_up
            .insert("1002".into(), Duration::from_secs(5));
        let changes = core.reconfigure(new, now);
        assert!(
            changes.contains(&"agent 1001 wrap-up changed".to_owned()),
            "{changes:?}"
        );
        assert_eq!(
            core.acd.agent_wrap_up("1001"),
            Some(Duration::from_secs(45))
        );
        assert_eq!(core.acd.agent_wrap_up("1002"), Some(Duration::from_secs(5)));

        let changes = core.reconfigure(
            config(&["1001", "1002"], &[("general", &["1001", "1002"])]),
            now,
        );
        assert!(
            changes.contains(&"agent 1001 wrap-up changed".to_owned()),
            "{changes:?}"
        );
        assert_eq!(core.acd.agent_wrap_up("1001"), None);
    }

    #[test]
    fn reload_applies_queue_music_and_voicemail_limit() {
        let now = Instant::now();
        let old = config(&["1001"], &[("general", &["1001"])]);
        let mut core = Core::new(old.clone(), now, SystemTime::now()).unwrap();
        let mut new = old;
        let media = crate::b2bua::QueueMedia {
            music_on_hold: Some("/sounds/new.wav".into()),
            ..crate::b2bua::QueueMedia::default()
        };
        new.queue_media.insert("general".into(), media.clone());
        new.voicemail_max = Duration::from_secs(30);
        let changes = core.reconfigure(new, now);
        assert_eq!(
            changes,
            [
                "queue music and announcements updated",
                "voicemail messages limited to 30 s"
            ]
        );
        assert_eq!(core.queue_media("general"), Some(&media));
    }

    #[test]
    fn api_changes_survive_a_reload_that_leaves_them_alone() {
        let now = Instant::now();
        let old = config(&["1001"], &[("general", &["1001"]), ("ru", &[])]);
        let mut core = Core::new(old.clone(), now, SystemTime::now()).unwrap();
        core.set_agent_skills("1001", [("vip".to_owned(), 2)].into(), now)
            .unwrap();
        core.add_agent_to_queue("1001", "ru", now).unwrap();

        let mut new = old;
        new.queues[0].max_wait = Duration::from_secs(30);
        let changes = core.reconfigure(new, now);
        assert_eq!(changes, ["queue general changed"]);
        let agent = &core.agents_view(now)[0];
        assert_eq!(agent.skills.get("vip"), Some(&2));
        assert_eq!(agent.queues, ["general", "ru"]);
    }

    #[test]
    fn removed_queue_stays_listed_while_it_holds_calls() {
        let now = Instant::now();
        let old = config(&["1001"], &[("general", &["1001"]), ("old", &["1001"])]);
        let mut core = Core::new(old, now, SystemTime::now()).unwrap();
        core.acd.enqueue("c1", "old", now).unwrap();
        let new = config(&["1001"], &[("general", &["1001"])]);
        let changes = core.reconfigure(new, now);
        assert!(
            changes.contains(
                &"queue old removed; its 1 waiting calls stay until answered or max wait"
                    .to_owned()
            ),
            "{changes:?}"
        );
        let queues = core.queues_view(now);
        assert_eq!(queues.len(), 2);
        assert!(queues[1].removed, "{queues:?}");
        assert_eq!(queues[1].calls, 1, "{queues:?}");
        assert!(core.queue_stats("old", now).is_some_and(|s| s.removed));
        assert_eq!(
            core.add_agent_to_queue("1001", "old", now),
            Err(super::super::AgentCommandError::UnknownQueue {
                queue: "old".into()
            })
        );

        core.acd.abandon("c1", now);
        assert_eq!(core.queues_view(now).len(), 1, "drained queue is gone");
    }
}
