//! Detection of engine-loop iterations long enough to overflow the UDP
//! receive buffer, because while the engine task works, no task reads the
//! datagrams that keep arriving.

use std::time::Duration;

/// An iteration of the engine loop longer than this counts as a stall. At
/// 10,000 datagrams a second, 5 ms is 50 datagrams waiting.
pub(super) const STALL_THRESHOLD: Duration = Duration::from_millis(5);

/// Work that one iteration of the engine loop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Activity {
    /// A batch of inputs from the transports, the relay and spawned tasks.
    Inputs {
        requests: u32,
        responses: u32,
        other: u32,
    },
    /// Due timers of the transactions, the registrar and the ACD.
    #[default]
    Timers,
    ApiRequest,
    /// SIP responses held until their queue events were stored.
    HeldResponses,
    SilenceCheck,
}

impl Activity {
    /// Returns an empty batch of inputs.
    pub(super) fn default_inputs() -> Activity {
        Activity::Inputs {
            requests: 0,
            responses: 0,
            other: 0,
        }
    }

    pub(super) fn of(input: &super::Input) -> Activity {
        let mut activity = Activity::default_inputs();
        activity.add(input);
        activity
    }

    /// Counts one more input of a batch.
    pub(super) fn add(&mut self, input: &super::Input) {
        let Activity::Inputs {
            requests,
            responses,
            other,
        } = self
        else {
            return;
        };
        match input {
            super::Input::Sip(sip_message::Message::Request(_), _) => *requests += 1,
            super::Input::Sip(sip_message::Message::Response(_), _) => *responses += 1,
            _ => *other += 1,
        }
    }
}

/// Counts engine-loop iterations longer than [`STALL_THRESHOLD`] and logs
/// them. Each stall is logged at debug level. A warning goes out for the
/// first and then at every power of two, so a slow machine does not flood
/// the log.
#[derive(Debug, Default)]
pub(crate) struct StallWatch {
    stalls: u64,
    longest: Duration,
}

impl StallWatch {
    /// Records an iteration that took `busy` handling `activity`, and
    /// returns whether it was a stall.
    pub(super) fn check(&mut self, busy: Duration, activity: Activity) -> bool {
        if busy < STALL_THRESHOLD {
            return false;
        }
        self.stalls += 1;
        self.longest = self.longest.max(busy);
        let busy_ms = busy.as_secs_f64() * 1000.0;
        tracing::debug!(busy_ms, ?activity, "engine loop stalled");
        if self.stalls.is_power_of_two() {
            tracing::warn!(
                busy_ms,
                ?activity,
                stalls = self.stalls,
                longest_ms = self.longest.as_secs_f64() * 1000.0,
                "engine loop stalled; UDP datagrams wait meanwhile"
            );
        }
        true
    }

    /// Stalls since start.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_watch_counts_only_long_iterations() {
        let mut watch = StallWatch::default();
        assert!(!watch.check(Duration::from_millis(4), Activity::Timers));
        assert_eq!(watch.stalls(), 0);
        assert!(watch.check(STALL_THRESHOLD, Activity::Timers));
        assert!(watch.check(Duration::from_millis(120), Activity::ApiRequest));
        assert_eq!(watch.stalls(), 2);
        assert_eq!(watch.longest, Duration::from_millis(120));
    }
}
