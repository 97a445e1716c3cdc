//! Prometheus metrics: counters the engine keeps and gauges read from the
//! core and the relay when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write;

use sip_server::b2bua::{AgentView, QueueView, TrunkRegistrationView};

/// Counters of SIP traffic, kept by the engine task.
#[derive(Clone, Debug, Default)]
pub(crate) struct SipCounters {
    /// Requests received, by method.
    pub(crate) requests_received: BTreeMap<String, u64>,
    /// Responses sent, by status class ("1xx" ... "6xx").
    pub(crate) responses_sent: BTreeMap<&'static str, u64>,
}

impl SipCounters {
    pub(crate) fn count_received(&mut self, message: &sip_message::Message) {
        if let sip_message::Message::Request(request) = message {
            // Extension methods are folded together so a peer cannot grow
            // the label set without bound.
            let method = match &request.method {
                sip_message::Method::Extension(_) => "other",
                known => known.as_str(),
            };
            // The name is allocated once per method, not once per request.
            match self.requests_received.get_mut(method) {
                Some(count) => *count += 1,
                None => {
                    self.requests_received.insert(method.to_owned(), 1);
                }
            }
        }
    }

    /// Counts a datagram or stream message the engine sends, by looking at
    /// its start line only.
    pub(crate) fn count_sent(&mut self, payload: &[u8]) {
        let class = match payload.get(..9) {
            Some(b"SIP/2.0 1") => "1xx",
            Some(b"SIP/2.0 2") => "2xx",
            Some(b"SIP/2.0 3") => "3xx",
            Some(b"SIP/2.0 4") => "4xx",
            Some(b"SIP/2.0 5") => "5xx",
            Some(b"SIP/2.0 6") => "6xx",
            _ => return,
        };
        *self.responses_sent.entry(class).or_default() += 1;
    }
}

/// RTP totals over the calls in progress.
#[derive(Clone, Debug, Default)]
pub(crate) struct MediaTotals {
    pub(crate) sessions: usize,
    pub(crate) recording: usize,
    pub(crate) packets_received: u64,
    pub(crate) packets_sent: u64,
    pub(crate) packets_lost: i64,
    pub(crate) packets_rejected: u64,
    /// Since the start, of all calls.
    pub(crate) relay_delays: media::RelayDelays,
    /// Relay worker processes lost since the start.
    pub(crate) worker_exits: u64,
    /// Audio of the caller and agent sides that came too late for the
    /// recordings of the calls that ended since the start, in milliseconds.
    pub(crate) recording_late_ms: [u64; 2],
}

/// Everything `/metrics` shows, taken at one instant by the engine.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) active_calls: usize,
    /// New INVITEs refused with 503 for overload since start.
    pub(crate) overload_rejections: u64,
    /// Engine-loop iterations longer than 5 ms since start.
    pub(crate) engine_stalls: u64,
    pub(crate) registered_contacts: usize,
    pub(crate) agents: Vec<AgentView>,
    pub(crate) queues: Vec<QueueView>,
    pub(crate) trunk_registrations: Vec<TrunkRegistrationView>,
    pub(crate) sip: SipCounters,
    pub(crate) media: MediaTotals,
}

/// Renders the Prometheus text exposition format (version 0.0.4).
pub(crate) fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let plain = |value: String| vec![(String::new(), value)];
    metric(
        "pbx_active_calls",
        "gauge",
        "Calls in progress, queued or answered.",
        plain(snapshot.active_calls.to_string()),
    );
    metric(
        "pbx_overload_rejections_total",
        "counter",
        "New calls refused with 503 because a [overload] limit was passed or no relay ports were free.",
        plain(snapshot.overload_rejections.to_string()),
    );
    metric(
        "pbx_engine_stalls_total",
        "counter",
        "Iterations of the engine task that took over 5 ms, during which SIP over UDP waited in the socket's receive buffer.",
        plain(snapshot.engine_stalls.to_string()),
    );
    metric(
        "pbx_registered_contacts",
        "gauge",
        "Agent contacts that are registered and answer qualify probes.",
        plain(snapshot.registered_contacts.to_string()),
    );
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for state in [
        "logged_out",
        "unreachable",
        "available",
        "ringing",
        "on_call",
        "wrap_up",
        "not_ready",
    ] {
        by_state.insert(state, 0);
    }
    for agent in &snapshot.agents {
        *by_state.entry(agent.state).or_default() += 1;
    }
    metric(
        "pbx_agents",
        "gauge",
        "Agents by state.",
        by_state
            .iter()
            .map(|(state, count)| (format!("{{state=\"{state}\"}}"), count.to_string()))
            .collect(),
    );
    let queue_samples = |value: &dyn Fn(&QueueView) -> String| {
        snapshot
            .queues
            .iter()
            .map(|queue| {
                (
                    format!("{{queue=\"{}\"}}", escape(&queue.name)),
                    value(queue),
                )
            })
            .collect::<Vec<_>>()
    };
    metric(
        "pbx_queue_calls",
        "gauge",
        "Calls waiting in or ringing from a queue.",
        queue_samples(&|q| q.calls.to_string()),
    );
    metric(
        "pbx_queue_longest_wait_seconds",
        "gauge",
        "Wait of the longest-waiting call of a queue.",
        queue_samples(&|q| q.longest_wait_seconds.to_string()),
    );
    metric(
        "pbx_queue_available_agents",
        "gauge",
        "Agents of a queue free to take a call.",
        queue_samples(&|q| q.available_agents.to_string()),
    );
    trunk_metrics(&mut metric, &snapshot.trunk_registrations);
    metric(
        "pbx_sip_requests_received_total",
        "counter",
        "SIP requests received, by method.",
        snapshot
            .sip
            .requests_received
            .iter()
            .map(|(method, count)| {
                (
                    format!("{{method=\"{}\"}}", escape(method)),
                    count.to_string(),
                )
            })
            .collect(),
    );
    metric(
        "pbx_sip_responses_sent_total",
        "counter",
        "SIP responses sent, by status class, retransmissions included.",
        snapshot
            .sip
            .responses_sent
            .iter()
            .map(|(class, count)| (format!("{{class=\"{class}\"}}"), count.to_string()))
            .collect(),
    );
    let media = &snapshot.media;
    metric(
        "pbx_media_sessions",
        "gauge",
        "Relay sessions open.",
        plain(media.sessions.to_string()),
    );
    metric(
        "pbx_recordings_in_progress",
        "gauge",
        "Calls being recorded.",
        plain(media.recording.to_string()),
    );
    metric(
        "pbx_rtp_packets",
        "gauge",
        "RTP and RTCP datagrams of the calls in progress, by direction as seen by the relay.",
        vec![
            (
                "{direction=\"received\"}".to_owned(),
                media.packets_received.to_string(),
            ),
            (
                "{direction=\"sent\"}".to_owned(),
                media.packets_sent.to_string(),
            ),
        ],
    );
    metric(
        "pbx_rtp_packets_lost",
        "gauge",
        "RTP packets lost on the way to the relay in the calls in progress (RFC 3550 cumulative loss).",
        plain(media.packets_lost.to_string()),
    );
    metric(
        "pbx_rtp_packets_rejected",
        "gauge",
        "Datagrams the relay dropped in the calls in progress: wrong source, payload type or size.",
        plain(media.packets_rejected.to_string()),
    );
    metric(
        "pbx_relay_worker_exits_total",
        "counter",
        "Relay worker processes (media.relay_processes) that exited or were stopped as hung since the start; the calls each carried lost their media.",
        plain(media.worker_exits.to_string()),
    );
    metric(
        "pbx_recording_late_seconds_total",
        "counter",
        "Audio the relay received after the recording's jitter window had closed on it, so the recording is silent there, by side, over the calls that ended since the start.",
        ["caller", "agent"]
            .iter()
            .zip(media.recording_late_ms)
            .map(|(side, ms)| {
                (
                    format!("{{side=\"{side}\"}}"),
                    (ms as f64 / 1000.0).to_string(),
                )
            })
            .collect(),
    );
    let delays = &media.relay_delays;
    let mut samples: Vec<(String, String)> = delays
        .buckets
        .iter()
        .map(|(bound_us, count)| {
            let bound = *bound_us as f64 / 1e6;
            (format!("_bucket{{le=\"{bound}\"}}"), count.to_string())
        })
        .collect();
    samples.push(("_bucket{le=\"+Inf\"}".to_owned(), delays.count.to_string()));
    samples.push(("_sum".to_owned(), delays.sum.as_secs_f64().to_string()));
    samples.push(("_count".to_owned(), delays.count.to_string()));
    metric(
        "pbx_relay_delay_seconds",
        "histogram",
        "Time RTP and RTCP datagrams spent in the relay, from their arrival at a call's socket to the send that forwarded them, over all calls since the start.",
        samples,
    );
    out
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders, per trunk with a registration, whether it is registered, the
/// seconds until its binding expires, and the status of the registrar's
/// last final response.
fn trunk_metrics(
    metric: &mut impl FnMut(&str, &str, &str, Vec<(String, String)>),
    registrations: &[TrunkRegistrationView],
) {
    let now = std::time::SystemTime::now();
    let samples = |value: &dyn Fn(&TrunkRegistrationView) -> Option<String>| {
        registrations
            .iter()
            .filter_map(|registration| {
                let labels = format!("{{trunk=\"{}\"}}", escape(&registration.trunk));
                Some((labels, value(registration)?))
            })
            .collect::<Vec<_>>()
    };
    metric(
        "pbx_trunk_registered",
        "gauge",
        "1 while a trunk's registration at its provider is in force, else 0.",
        samples(&|r| {
            let registered =
                r.state == sip_server::trunk_registration::RegistrationState::Registered;
            Some(u8::from(registered).to_string())
        }),
    );
    metric(
        "pbx_trunk_registration_expires_seconds",
        "gauge",
        "Seconds until a trunk's binding at its provider expires; absent without a binding.",
        samples(&|r| {
            let left = r.expires_at?.duration_since(now).unwrap_or_default();
            Some(left.as_secs().to_string())
        }),
    );
    metric(
        "pbx_trunk_registration_last_status",
        "gauge",
        "Status code of the registrar's last final response to a trunk's REGISTER, 408 for a timeout.",
        samples(&|r| r.last_status.map(|status| status.to_string())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_delays_render_as_histogram() {
        let mut snapshot = Snapshot::default();
        snapshot.media.relay_delays = media::RelayDelays {
            buckets: vec![(25, 3), (1_000, 9), (100_000, 10)],
            count: 11,
            sum: std::time::Duration::from_micros(250_500),
        };
        let text = render(&snapshot);
        let expected = "# TYPE pbx_relay_delay_seconds histogram\n\
            pbx_relay_delay_seconds_bucket{le=\"0.000025\"} 3\n\
            pbx_relay_delay_seconds_bucket{le=\"0.001\"} 9\n\
            pbx_relay_delay_seconds_bucket{le=\"0.1\"} 10\n\
            pbx_relay_delay_seconds_bucket{le=\"+Inf\"} 11\n\
            pbx_relay_delay_seconds_sum 0.2505\n\
            pbx_relay_delay_seconds_count 11\n";
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn exposition_lists_every_family_with_type() {
        let mut snapshot = Snapshot {
            active_calls: 2,
            ..Snapshot::default()
        };
        snapshot.sip.count_sent(b"SIP/2.0 200 OK\r\n");
        snapshot.sip.count_sent(b"SIP/2.0 404 Not Found\r\n");
        snapshot.sip.count_sent(b"INVITE sip:x SIP/2.0\r\n");
        snapshot.queues.push(QueueView {
            name: "gen\"eral".to_owned(),
            calls: 3,
            longest_wait_seconds: 12.5,
            staffed_agents: 1,
            available_agents: 0,
            expected_wait_seconds: None,
            average_handle_seconds: None,
            removed: false,
        });
        snapshot.overload_rejections = 4;
        snapshot.engine_stalls = 3;
        snapshot.media.worker_exits = 2;
        snapshot.media.recording_late_ms = [1_250, 0];
        let text = render(&snapshot);
        assert!(
            text.contains("pbx_recording_late_seconds_total{side=\"caller\"} 1.25\n"),
            "{text}"
        );
        assert!(
            text.contains("pbx_recording_late_seconds_total{side=\"agent\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE pbx_active_calls gauge\npbx_active_calls 2\n"),
            "{text}"
        );
        assert!(text.contains("pbx_overload_rejections_total 4\n"), "{text}");
        assert!(text.contains("pbx_engine_stalls_total 3\n"), "{text}");
        assert!(
            text.contains(
                "# TYPE pbx_relay_worker_exits_total counter\npbx_relay_worker_exits_total 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("pbx_sip_responses_sent_total{class=\"2xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pbx_sip_responses_sent_total{class=\"4xx\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("class=\"INV"), "{text}");
        assert!(
            text.contains("pbx_queue_calls{queue=\"gen\\\"eral\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("pbx_agents{state=\"available\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn trunk_registration_gauges() {
        use sip_server::trunk_registration::RegistrationState;
        let registration =
            |trunk: &str, state, expires_in: Option<u64>, status| TrunkRegistrationView {
                trunk: trunk.to_owned(),
                registrar: "192.0.2.10:5060".parse().unwrap(),
                aor: "sip:1@carrier.example".to_owned(),
                state,
                expires_at: expires_in.map(|secs| {
                    std::time::SystemTime::now() + std::time::Duration::from_secs(secs)
                }),
                next_attempt_at: None,
                last_status: status,
                last_reason: None,
            };
        let snapshot = Snapshot {
            trunk_registrations: vec![
                registration("up", RegistrationState::Registered, Some(600), Some(200)),
                registration("down", RegistrationState::Failed, None, Some(403)),
            ],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        assert!(
            text.contains("pbx_trunk_registered{trunk=\"up\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("pbx_trunk_registered{trunk=\"down\"} 0\n"),
            "{text}"
        );
        let expires: u64 = text
            .lines()
            .find_map(|line| {
                line.strip_prefix("pbx_trunk_registration_expires_seconds{trunk=\"up\"} ")
            })
            .and_then(|value| value.parse().ok())
            .expect("expiry of trunk up");
        // The clock moves between building the view and rendering it.
        assert!((598..=600).contains(&expires), "{text}");
        assert!(
            !text.contains("pbx_trunk_registration_expires_seconds{trunk=\"down\"}"),
            "{text}"
        );
        assert!(
            text.contains("pbx_trunk_registration_last_status{trunk=\"down\"} 403\n"),
            "{text}"
        );
    }
}
