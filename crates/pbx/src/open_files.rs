//! The open files limit (`RLIMIT_NOFILE`) against the descriptors calls need.
//!
//! Every call keeps four relay sockets open, an RTP and an RTCP port per leg,
//! and a recorded call one or two WAV files more. With the soft limit of
//! 1,024 that shells and many service managers start processes with, new
//! calls fail at about 250 concurrent ones. So at start the PBX raises its
//! soft limit to what `media.rtp_ports` can use, as far as the hard limit
//! allows (no privilege is needed for that), and warns when even the hard
//! limit allows fewer calls than the port range.

use std::ops::RangeInclusive;
use std::sync::OnceLock;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::Config;

/// Descriptors kept for everything but calls: the SIP and HTTP listeners,
/// the database, the CDR journal, logs and the runtime. An estimate with
/// room to spare. Stream connections are counted apart.
const RESERVED: u64 = 1024;

/// Descriptors a relay worker keeps for other things than its calls: the
/// link to the PBX, pollers, wake-up descriptors, standard streams.
const WORKER_RESERVED: u64 = 64;

/// The limit the PBX wants and how many calls a limit allows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Descriptors for as many calls as the port range allows, plus the
    /// stream connections and [`RESERVED`]; with relay workers, the most
    /// that either the PBX or one worker needs.
    pub(crate) needed: u64,
    /// Concurrent calls the port range allows (4 ports each).
    pub(crate) range_calls: u64,
    /// The new soft limit, `None` when the current one already suffices or
    /// the hard limit is no higher.
    pub(crate) raise_to: Option<u64>,
    /// Concurrent calls the limit allows after any raise, counting every
    /// allowed stream connection as open, so more fit while few are.
    pub(crate) calls: u64,
}

/// Computes the limit for `rtp_ports`, with `files_per_call` recording
/// files per call, at most `max_connections` stream connections and
/// `relay_processes` relay workers (0 when the PBX relays itself). A
/// worker inherits the limits and raises its soft limit to the hard one.
pub(crate) fn plan(
    soft: u64,
    hard: u64,
    rtp_ports: &RangeInclusive<u16>,
    files_per_call: u64,
    max_connections: u64,
    relay_processes: u64,
) -> Plan {
    let ports = u64::from(*rtp_ports.end()).saturating_sub(u64::from(*rtp_ports.start())) + 1;
    let range_calls = ports / 4;
    let per_call = 4 + files_per_call;
    let others = RESERVED.saturating_add(max_connections);
    if relay_processes > 0 {
        let per_worker = range_calls.div_ceil(relay_processes);
        let worker_needs = per_worker
            .saturating_mul(per_call)
            .saturating_add(WORKER_RESERVED);
        let needed = others.max(worker_needs);
        let target = needed.min(hard);
        let raise_to = (target > soft).then_some(target);
        let worker_calls = hard.saturating_sub(WORKER_RESERVED) / per_call;
        return Plan {
            needed,
            range_calls,
            raise_to,
            calls: worker_calls
                .saturating_mul(relay_processes)
                .min(range_calls),
        };
    }
    let needed = range_calls.saturating_mul(per_call).saturating_add(others);
    let target = needed.min(hard);
    let raise_to = (target > soft).then_some(target);
    let limit = raise_to.unwrap_or(soft);
    Plan {
        needed,
        range_calls,
        raise_to,
        calls: (limit.saturating_sub(others) / per_call).min(range_calls),
    }
}

/// Raises the soft open files limit to the hard one, for a relay worker,
/// whose descriptors are nearly all its calls' sockets and recordings.
pub(crate) fn raise_to_hard_limit() {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(%error, from = soft, to = hard, "raising the open files limit failed");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "reading the open files limit failed"),
    }
}

/// Maximum concurrent calls that the open files limit allows, set once by
/// [`raise_for_calls`] at start.
static CALL_CAPACITY: OnceLock<u64> = OnceLock::new();

/// Returns the maximum concurrent calls that the open files limit allows, for the
/// overload limits, or `usize::MAX` before [`raise_for_calls`] ran or
/// where the limit could not be read.
pub(crate) fn call_capacity() -> usize {
    CALL_CAPACITY.get().map_or(usize::MAX, |&calls| {
        usize::try_from(calls).unwrap_or(usize::MAX)
    })
}

/// Raises the soft open files limit for the calls `media.rtp_ports`
/// allows and logs a warning when the hard limit keeps it lower. Errors
/// are logged, not returned: the PBX still runs, with fewer calls, and
/// [`call_capacity`] returns how many.
pub(crate) fn raise_for_calls(config: &Config) {
    let recording = &config.recording;
    // A recorded call keeps its WAV file open, and the mixed mono one too.
    let files_per_call = match (recording.enabled, recording.mixed_mono) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    };
    let max_connections =
        u64::try_from(config.sip.streams.limits.max_connections).unwrap_or(u64::MAX);
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "reading the open files limit failed");
            return;
        }
    };
    let plan = plan(
        soft,
        hard,
        &config.media.rtp_ports,
        files_per_call,
        max_connections,
        u64::try_from(config.media.relay_processes).unwrap_or(u64::MAX),
    );
    if let Some(limit) = plan.raise_to {
        match setrlimit(Resource::RLIMIT_NOFILE, limit, hard) {
            Ok(()) => tracing::info!(from = soft, to = limit, "raised the open files limit"),
            Err(error) => {
                tracing::warn!(%error, from = soft, to = limit, "raising the open files limit failed");
                // The soft limit stays, and so does its maximum of calls.
                let unraised = self::plan(
                    soft,
                    soft,
                    &config.media.rtp_ports,
                    files_per_call,
                    max_connections,
                    u64::try_from(config.media.relay_processes).unwrap_or(u64::MAX),
                );
                let _ = CALL_CAPACITY.set(unraised.calls);
                return;
            }
        }
    }
    let _ = CALL_CAPACITY.set(plan.calls);
    if plan.calls < plan.range_calls {
        tracing::warn!(
            limit = plan.raise_to.unwrap_or(soft),
            hard_limit = hard,
            calls = plan.calls,
            range_calls = plan.range_calls,
            needed = plan.needed,
            "the open files limit can hold fewer concurrent calls than media.rtp_ports allows, \
             and new calls past `calls` get 503; raise the hard limit (ulimit -Hn, or LimitNOFILE= for systemd) to `needed`, \
             or set media.relay_processes so that each worker process holds a share of them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_raised_to_needed() {
        // 1,000 ports: 250 calls of 4 sockets, plus 4,096 connections and
        // the reserve.
        let plan = plan(1024, 524_288, &(20000..=20999), 0, 4096, 0);
        assert_eq!(plan.range_calls, 250);
        assert_eq!(plan.needed, 250 * 4 + 4096 + 1024);
        assert_eq!(plan.raise_to, Some(6120));
        assert_eq!(plan.calls, 250);
    }

    #[test]
    fn hard_limit_caps_raise() {
        // 42,000 ports want 10,500 calls; a hard limit of 20,000 allows 3,720.
        let plan = plan(1024, 20_000, &(2000..=43999), 0, 4096, 0);
        assert_eq!(plan.range_calls, 10_500);
        assert_eq!(plan.raise_to, Some(20_000));
        assert_eq!(plan.calls, (20_000 - 4096 - 1024) / 4);
    }

    #[test]
    fn enough_soft_limit_kept() {
        let plan = plan(1_000_000, 1_000_000, &(20000..=20999), 0, 4096, 0);
        assert_eq!(plan.raise_to, None);
        assert_eq!(plan.calls, 250);
    }

    #[test]
    fn recording_files_counted() {
        let plan = plan(1024, 1024 + 4096 + 600, &(20000..=20399), 2, 4096, 0);
        assert_eq!(plan.range_calls, 100);
        assert_eq!(plan.needed, 100 * 6 + 4096 + 1024);
        assert_eq!(plan.calls, 100);
    }

    #[test]
    fn unlimited_hard_limit() {
        let plan = plan(1024, u64::MAX, &(2000..=65535), 1, 4096, 0);
        assert_eq!(plan.raise_to, Some(plan.needed));
        assert_eq!(plan.calls, plan.range_calls);
    }

    #[test]
    fn relay_workers_share_the_calls() {
        // 10,500 calls over 3 workers under a hard limit of 20,000: 3,500
        // calls of 4 sockets each per worker fit, where one process held
        // 3,720 calls in all.
        let plan = plan(1024, 20_000, &(2000..=43999), 0, 4096, 3);
        assert_eq!(plan.range_calls, 10_500);
        assert_eq!(plan.needed, 3_500 * 4 + WORKER_RESERVED);
        assert_eq!(plan.raise_to, Some(14_064));
        assert_eq!(plan.calls, 10_500);
        // Two workers are not enough for the range.
        let two = super::plan(1024, 20_000, &(2000..=43999), 0, 4096, 2);
        assert_eq!(two.calls, 2 * ((20_000 - WORKER_RESERVED) / 4));
        assert!(two.calls < two.range_calls);
        assert_eq!(two.needed, 5_250 * 4 + WORKER_RESERVED);
    }
}
