//! The per-session task: waits on the four sockets, the control channel
//! and its timers, and hands each wake to [`RelayState`].

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
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
    Datagram {
        origin: Origin,
        source: SocketAddr,
        length: usize,
    },
    ReceiveFailed {
        origin: Origin,
        error: io::Error,
    },
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
        let mut first_socket = 0;
        let end = loop {
            first_socket = (first_socket + 1) % 4;
            self.arm_local_timer(&mut timers);
            let wake = poll_fn(|context| {
                poll_wake(
                    context,
                    &self.sockets,
                    &mut buffer,
                    first_socket,
                    &mut self.control,
                    &mut timers,
                )
            })
            .await;
            let now = Instant::now();
            match wake {
                Wake::Datagram {
                    origin,
                    source,
                    length,
                } => {
                    let datagram = &buffer[..length];
                    self.state
                        .relay(&self.sockets, origin, source, datagram, now)
                        .await;
                }
                Wake::ReceiveFailed { origin, error } => {
                    // ICMP port unreachable from an earlier send shows up here
                    // on some systems; the socket itself stays usable.
                    tracing::debug!(?origin, %error, "receive failed");
                }
                Wake::Control(Some(Control::Close(at))) => break at,
                Wake::Control(None) => break now,
                Wake::Control(Some(control)) => self.state.apply(control, now),
                Wake::Flush => {
                    self.state.flush_recording(now);
                    self.state.poll_dtmf_timeouts(now);
                }
                Wake::Local => self.state.send_local(&self.sockets, now).await,
            }
        };
        let result = self.state.finish_recording(end, &self.call_id);
        let caller = self.state.counters[0].snapshot();
        let agent = self.state.counters[1].snapshot();
        tracing::info!(?caller, ?agent, "media session closed");
        result
    }

    fn arm_local_timer(&self, timers: &mut Timers) {
        match self.state.next_local_due() {
            Some(due) => {
                let deadline = tokio::time::Instant::from_std(due);
                if !timers.local_armed || timers.local.deadline() != deadline {
                    timers.local.as_mut().reset(deadline);
                }
                timers.local_armed = true;
            }
            None => timers.local_armed = false,
        }
    }
}

/// Polls the control channel, the four sockets (starting at `first_socket`
/// so no socket starves the others) and the timers.
fn poll_wake(
    context: &mut Context<'_>,
    sockets: &[LegSockets; 2],
    buffer: &mut [u8],
    first_socket: usize,
    control: &mut mpsc::UnboundedReceiver<Control>,
    timers: &mut Timers,
) -> Poll<Wake> {
    if let Poll::Ready(message) = control.poll_recv(context) {
        return Poll::Ready(Wake::Control(message));
    }
    // Local packets go before received ones so a busy peer cannot delay
    // the player's pacing.
    if timers.local_armed && timers.local.as_mut().poll(context).is_ready() {
        return Poll::Ready(Wake::Local);
    }
    for offset in 0..4 {
        let slot = (first_socket + offset) % 4;
        let leg = if slot < 2 { Leg::Caller } else { Leg::Agent };
        let origin = Origin {
            leg,
            rtcp: slot % 2 == 1,
        };
        let sockets = &sockets[leg.index()];
        let socket = if origin.rtcp {
            &sockets.rtcp
        } else {
            &sockets.rtp
        };
        let mut read = ReadBuf::new(buffer);
        match socket.poll_recv_from(context, &mut read) {
            Poll::Ready(Ok(source)) => {
                let length = read.filled().len();
                return Poll::Ready(Wake::Datagram {
                    origin,
                    source,
                    length,
                });
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Wake::ReceiveFailed { origin, error }),
            Poll::Pending => {}
        }
    }
    if timers.flush.poll_tick(context).is_ready() {
        return Poll::Ready(Wake::Flush);
    }
    Poll::Pending
}
