//! The per-session task: waits on the four sockets, the control channel
//! and its timers, and hands each datagram and wake to [`RelayState`].

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use recordings::RecordingSummary;
use tokio::io::ReadBuf;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::session::{Control, LegSockets};
use crate::state::RelayState;
use crate::{Leg, MediaError};

/// How often the task writes recorded audio out of the jitter window and
/// checks for DTMF digits whose final packets were lost.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Receive buffer size: one byte more than the largest datagram relayed,
/// so a longer one, which the OS cuts to the buffer, is still seen as too
/// long and dropped.
const RECEIVE_BUFFER: usize = crate::state::MAX_DATAGRAM + 1;

/// Which of the four sockets a datagram came in on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) leg: Leg,
    pub(crate) rtcp: bool,
}

enum Wake {
    Control(Option<Control>),
    Flush,
    /// A player or DTMF packet is due.
    Local,
}

pub(crate) struct SessionTask {
    pub(crate) call_id: String,
    pub(crate) sockets: [LegSockets; 2],
    pub(crate) state: RelayState,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
}

/// Timers the task waits on besides the sockets.
struct Timers {
    flush: tokio::time::Interval,
    local: Pin<Box<Sleep>>,
    /// Whether `local` is armed, that is a player or digit is pending.
    local_armed: bool,
}

/// Socket reads of the session, logged when it closes. `datagrams` over
/// `drains` is the mean number of datagrams waiting in a socket when the
/// task gets to it, which is what `recvmmsg` could batch.
#[derive(Debug, Default)]
struct ReceiveCounts {
    /// Socket drains that found at least one datagram.
    drains: u64,
    datagrams: u64,
}

/// Everything [`Poller::poll_wake`] touches, borrowed from the task for one poll.
struct Poller<'a> {
    sockets: &'a [LegSockets; 2],
    state: &'a mut RelayState,
    control: &'a mut mpsc::UnboundedReceiver<Control>,
    timers: &'a mut Timers,
    buffer: &'a mut [u8],
    first_socket: usize,
    counts: &'a mut ReceiveCounts,
}

impl SessionTask {
    pub(crate) async fn run(mut self) -> Result<Option<RecordingSummary>, MediaError> {
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut timers = Timers {
            flush,
            local: Box::pin(tokio::time::sleep(Duration::ZERO)),
            local_armed: false,
        };
        let mut counts = ReceiveCounts::default();
        let mut first_socket = 0;
        let end = loop {
            first_socket = (first_socket + 1) % 4;
            let mut poller = Poller {
                sockets: &self.sockets,
                state: &mut self.state,
                control: &mut self.control,
                timers: &mut timers,
                buffer: &mut buffer,
                first_socket,
                counts: &mut counts,
            };
            let wake = poll_fn(|context| poller.poll_wake(context)).await;
            let now = Instant::now();
            match wake {
                Wake::Control(Some(Control::Close(at))) => break at,
                Wake::Control(None) => break now,
                Wake::Control(Some(control)) => self.state.apply(control, now),
                Wake::Flush => {
                    self.state.flush_recording(now);
                    self.state.poll_dtmf_timeouts(now);
                }
                Wake::Local => self.state.send_local(&self.sockets, now),
            }
        };
        let result = self.state.finish_recording(end, &self.call_id);
        let caller = self.state.counters[0].snapshot();
        let agent = self.state.counters[1].snapshot();
        tracing::info!(?caller, ?agent, "media session closed");
        tracing::debug!(
            drains = counts.drains,
            datagrams = counts.datagrams,
            "socket reads"
        );
        result
    }
}

impl Poller<'_> {
    /// Returns the first wake the task must act on: a control message, a
    /// due player or DTMF packet, or the flush tick. Failing those, relays
    /// every datagram the four sockets hold. Datagrams are handled inside
    /// the poll, so a wake that only brings datagrams costs one poll of the
    /// task.
    fn poll_wake(&mut self, context: &mut Context<'_>) -> Poll<Wake> {
        if let Poll::Ready(message) = self.control.poll_recv(context) {
            return Poll::Ready(Wake::Control(message));
        }
        // Local packets and the flush go before received ones, so a busy
        // peer can neither delay the player's pacing nor hold back the
        // recording.
        if self.poll_local(context) {
            return Poll::Ready(Wake::Local);
        }
        if self.timers.flush.poll_tick(context).is_ready() {
            return Poll::Ready(Wake::Flush);
        }
        let relayed = self.drain_sockets(context);
        // A datagram can start a player or a digit (a barge-in, an in-band
        // tone), whose timer must be armed before the task sleeps.
        if relayed > 0 && self.poll_local(context) {
            return Poll::Ready(Wake::Local);
        }
        Poll::Pending
    }

    /// Arms the local timer for the next player or DTMF packet and returns
    /// whether it is due.
    fn poll_local(&mut self, context: &mut Context<'_>) -> bool {
        let timers = &mut *self.timers;
        match self.state.next_local_due() {
            Some(due) => {
                let deadline = tokio::time::Instant::from_std(due);
                if !timers.local_armed || timers.local.deadline() != deadline {
                    timers.local.as_mut().reset(deadline);
                }
                timers.local_armed = true;
                timers.local.as_mut().poll(context).is_ready()
            }
            None => {
                timers.local_armed = false;
                false
            }
        }
    }

    /// Reads each socket until it has nothing left, starting at
    /// `first_socket` so that no socket starves the others, and relays
    /// what it reads. Once tokio's cooperative budget (128 operations per
    /// poll of a task) is spent, reads return `Pending` and the task is
    /// woken again, so a flood cannot hold the thread. Returns the number
    /// of datagrams handled.
    fn drain_sockets(&mut self, context: &mut Context<'_>) -> usize {
        let mut handled = 0;
        for offset in 0..4 {
            let slot = (self.first_socket + offset) % 4;
            let leg = if slot < 2 { Leg::Caller } else { Leg::Agent };
            let origin = Origin {
                leg,
                rtcp: slot % 2 == 1,
            };
            let before = handled;
            handled += self.drain_socket(context, origin);
            if handled > before {
                self.counts.drains += 1;
            }
        }
        self.counts.datagrams += handled as u64;
        handled
    }

    fn drain_socket(&mut self, context: &mut Context<'_>, origin: Origin) -> usize {
        let sockets = &self.sockets[origin.leg.index()];
        let socket = if origin.rtcp {
            &sockets.rtcp
        } else {
            &sockets.rtp
        };
        let mut handled = 0;
        loop {
            let mut read = ReadBuf::new(self.buffer);
            match socket.poll_recv_from(context, &mut read) {
                Poll::Ready(Ok(source)) => {
                    let length = read.filled().len();
                    let now = Instant::now();
                    let datagram = &self.buffer[..length];
                    self.state
                        .relay(self.sockets, origin, source, datagram, now);
                    handled += 1;
                }
                Poll::Ready(Err(error)) => {
                    // ICMP port unreachable from an earlier send shows up
                    // here on some systems; the socket itself stays usable.
                    tracing::debug!(?origin, %error, "receive failed");
                }
                Poll::Pending => return handled,
            }
        }
    }
}
