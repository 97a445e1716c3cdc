//! Timer values (RFC 3261 section 17 and table 4) and the deadlines one
//! transaction keeps.

use std::time::{Duration, Instant};

/// Base timer values. T1 is the round-trip estimate, T2 the maximum
/// retransmission interval for non-INVITE requests and INVITE responses, T4
/// the time a message may stay in the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J and L, and RFC 6026's Timer M.
    pub(super) fn transaction_timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// Timer D on unreliable transports: RFC 3261 requires at least 32 s, so
/// that every retransmission of the final response meets the transaction.
pub(super) const TIMER_D: Duration = Duration::from_secs(32);

/// How long an INVITE server transaction waits for the TU's first response
/// before it sends 100 Trying itself (RFC 3261 section 17.2.1).
pub(super) const TRYING_DELAY: Duration = Duration::from_millis(200);

/// Limit on the Proceeding state of an INVITE client transaction, restarted
/// by every provisional response. RFC 3261 section 16.6 requires such a
/// Timer C of more than 3 minutes from proxies. Without it, a peer that sends
/// 180 and then vanishes would keep the transaction forever.
pub(super) const TIMER_C: Duration = Duration::from_secs(181);

/// One pending retransmission: when it is due, and the interval that led to
/// it, which the next one doubles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Retransmit {
    pub(super) at: Instant,
    pub(super) interval: Duration,
}

impl Retransmit {
    pub(super) fn first(now: Instant, t1: Duration) -> Retransmit {
        Retransmit {
            at: now + t1,
            interval: t1,
        }
    }

    /// Returns the retransmission after this one, its interval doubled and
    /// capped at `cap` when there is one.
    pub(super) fn next(self, cap: Option<Duration>) -> Retransmit {
        let doubled = self.interval * 2;
        let interval = cap.map_or(doubled, |cap| doubled.min(cap));
        Retransmit {
            at: self.at + interval,
            interval,
        }
    }
}

/// Deadlines of one transaction. What each one does when it fires depends
/// on the state the transaction is in then.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timers {
    /// Timers A, E and G, and the 2xx retransmission of an INVITE server
    /// transaction.
    pub(super) retransmit: Option<Retransmit>,
    /// The deadline of the current state: B, C, F, D, K or M on the client
    /// side, H, I, J or L on the server side.
    pub(super) state: Option<Instant>,
    /// The automatic 100 Trying of an INVITE server transaction.
    pub(super) trying: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimerKind {
    Retransmit,
    State,
    Trying,
}

impl Timers {
    /// Returns the earliest deadline. On a tie the state timer goes first, because
    /// it may end the transaction and make the retransmission moot.
    pub(super) fn next(&self) -> Option<(Instant, TimerKind)> {
        let candidates = [
            self.state.map(|at| (at, TimerKind::State)),
            self.retransmit.map(|r| (r.at, TimerKind::Retransmit)),
            self.trying.map(|at| (at, TimerKind::Trying)),
        ];
        candidates
            .into_iter()
            .flatten()
            .reduce(|best, next| if next.0 < best.0 { next } else { best })
    }

    pub(super) fn clear(&mut self) {
        *self = Timers::default();
    }
}
