//! Read deadlines of a stream connection: the idle timeout, the time to a
//! first message, and the time to complete a message counted from its
//! first byte. Each byte resets the idle timeout, so without the message
//! deadline a peer that trickles a message byte by byte would hold its
//! connection for as long as it liked.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::StreamLimits;

/// Time a new TCP or TLS connection has to send its first complete message.
pub(super) const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The limit that ends the wait for more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Nothing arrived for the idle timeout.
    Idle,
    /// No complete message within [`FIRST_MESSAGE_TIMEOUT`] of connecting.
    FirstMessage,
    /// A message started and was not complete within the message timeout.
    Message,
}

impl Expiry {
    /// Returns the reason logged when the connection is closed.
    pub(super) fn reason(self) -> &'static str {
        match self {
            Expiry::Idle => "idle timeout",
            Expiry::FirstMessage => "no message after connecting",
            Expiry::Message => "incomplete message timed out",
        }
    }
}

/// Times of one connection's reads, fed with `now` by the reader.
#[derive(Debug)]
pub(super) struct ReadDeadlines {
    idle_timeout: Duration,
    message_timeout: Duration,
    /// Set until the first complete message when the connection must send
    /// one within [`FIRST_MESSAGE_TIMEOUT`]. Keep-alives do not clear it.
    first_message_by: Option<Instant>,
    last_read: Instant,
    /// Arrival of the first byte of the message not yet complete.
    message_started: Option<Instant>,
}

impl ReadDeadlines {
    /// Deadlines of a connection opened at `now`. With `first_message`,
    /// the connection must send a complete message within
    /// [`FIRST_MESSAGE_TIMEOUT`] too.
    pub(super) fn new(limits: &StreamLimits, now: Instant, first_message: bool) -> ReadDeadlines {
        ReadDeadlines {
            idle_timeout: limits.idle_timeout,
            message_timeout: limits.message_timeout,
            first_message_by: first_message.then(|| now + FIRST_MESSAGE_TIMEOUT),
            last_read: now,
            message_started: None,
        }
    }

    /// Records bytes read at `now`, which reset the idle timeout.
    pub(super) fn bytes_read(&mut self, now: Instant) {
        self.last_read = now;
    }

    /// Records that a message has begun, at the last read, unless one had
    /// already. Returns true when this starts the message's deadline.
    pub(super) fn message_pending(&mut self) -> bool {
        let started = self.message_started.is_none();
        self.message_started.get_or_insert(self.last_read);
        started
    }

    /// Records that no message is pending, after keep-alive bytes only.
    pub(super) fn nothing_pending(&mut self) {
        self.message_started = None;
    }

    /// Records a complete message, which ends its deadline and the first
    /// message's.
    pub(super) fn message_complete(&mut self) {
        self.message_started = None;
        self.first_message_by = None;
    }

    /// Returns the earliest deadline in force and the limit it enforces.
    pub(super) fn next(&self) -> (Instant, Expiry) {
        let mut earliest = (self.last_read + self.idle_timeout, Expiry::Idle);
        let others = [
            self.first_message_by.map(|at| (at, Expiry::FirstMessage)),
            self.message_started
                .map(|at| (at + self.message_timeout, Expiry::Message)),
        ];
        for (at, expiry) in others.into_iter().flatten() {
            if at < earliest.0 {
                earliest = (at, expiry);
            }
        }
        earliest
    }
}

/// Deadlines shared by a WebSocket's reader task and [`Arrivals`], which
/// records the bytes that the WebSocket layer reads.
#[derive(Clone, Debug)]
pub(super) struct SharedDeadlines {
    deadlines: Arc<Mutex<ReadDeadlines>>,
    /// Woken when a message starts, because that can move the deadline
    /// earlier than the one the reader is waiting for.
    started: Arc<Notify>,
}

impl SharedDeadlines {
    pub(super) fn new(deadlines: ReadDeadlines) -> SharedDeadlines {
        SharedDeadlines {
            deadlines: Arc::new(Mutex::new(deadlines)),
            started: Arc::new(Notify::new()),
        }
    }

    /// Runs `change` on the deadlines. A poisoned lock still contains
    /// valid times, because no update can stop halfway.
    pub(super) fn update<T>(&self, change: impl FnOnce(&mut ReadDeadlines) -> T) -> T {
        let mut deadlines = self
            .deadlines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut deadlines)
    }

    /// Waits until a message starts.
    pub(super) async fn message_started(&self) {
        self.started.notified().await;
    }
}

/// A connection wrapper that records when bytes arrive. Any bytes count as
/// the start of a message until the reader reports the message complete.
pub(super) struct Arrivals<S> {
    inner: S,
    shared: SharedDeadlines,
}

impl<S> Arrivals<S> {
    pub(super) fn new(inner: S, shared: SharedDeadlines) -> Arrivals<S> {
        Arrivals { inner, shared }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Arrivals<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let started = this.shared.update(|deadlines| {
                deadlines.bytes_read(Instant::now());
                deadlines.message_pending()
            });
            if started {
                this.shared.started.notify_one();
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Arrivals<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle_secs: u64, message_secs: u64) -> StreamLimits {
        StreamLimits {
            idle_timeout: Duration::from_secs(idle_secs),
            message_timeout: Duration::from_secs(message_secs),
            ..StreamLimits::default()
        }
    }

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    #[test]
    fn trickled_message_ends_at_message_timeout() {
        let start = Instant::now();
        let mut deadlines = ReadDeadlines::new(&limits(5, 20), start, false);
        deadlines.message_complete();
        // A byte every 3 s keeps the idle timeout of 5 s from expiring.
        deadlines.bytes_read(start + secs(100));
        assert!(deadlines.message_pending());
        for byte in 1..10 {
            deadlines.bytes_read(start + secs(100 + 3 * byte));
            assert!(!deadlines.message_pending());
        }
        assert_eq!(
            deadlines.next(),
            (start + secs(120), Expiry::Message),
            "counted from the first byte, not from the last message"
        );
    }

    #[test]
    fn stalled_message_ends_at_idle_timeout() {
        let start = Instant::now();
        let mut deadlines = ReadDeadlines::new(&limits(5, 20), start, false);
        deadlines.bytes_read(start + secs(1));
        deadlines.message_pending();
        assert_eq!(deadlines.next(), (start + secs(6), Expiry::Idle));
    }

    #[test]
    fn keep_alives_leave_first_message_deadline() {
        let start = Instant::now();
        let mut deadlines = ReadDeadlines::new(&limits(600, 30), start, true);
        deadlines.bytes_read(start + secs(20));
        deadlines.nothing_pending();
        assert_eq!(
            deadlines.next(),
            (start + FIRST_MESSAGE_TIMEOUT, Expiry::FirstMessage)
        );
        deadlines.message_complete();
        assert_eq!(deadlines.next(), (start + secs(620), Expiry::Idle));
    }

    #[test]
    fn message_after_long_idle_gets_full_timeout() {
        let start = Instant::now();
        let mut deadlines = ReadDeadlines::new(&limits(600, 30), start, false);
        deadlines.bytes_read(start + secs(500));
        deadlines.message_pending();
        assert_eq!(deadlines.next(), (start + secs(530), Expiry::Message));
    }
}
