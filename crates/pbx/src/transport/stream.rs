//! Byte stream connections (TCP and TLS): messages framed by
//! Content-Length, a pong for each CRLF keep-alive ping, and the limits on
//! message size, idle time and slow messages.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sip_message::StreamFrame;
use sip_server::transaction::{Target, TransportKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::{MESSAGE_TIMEOUT, Outgoing, Sender, deliver};

/// Time a new connection has to send its first complete message.
pub(super) const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Tracks keep-alive bytes between messages. A ping is a double CRLF and
/// its pong a single CRLF (RFC 5626). A ping may arrive split over several
/// reads.
#[derive(Debug, Default)]
pub(super) struct KeepAlive {
    /// Keep-alive bytes seen since the last message or pong.
    pending: usize,
}

impl KeepAlive {
    /// Bytes of one ping, CRLF CRLF.
    const PING_BYTES: usize = 4;

    /// Counts `length` more keep-alive bytes and returns how many pings
    /// they complete, which is how many pongs are due.
    pub(super) fn take(&mut self, length: usize) -> usize {
        self.pending += length;
        let pings = self.pending / Self::PING_BYTES;
        self.pending %= Self::PING_BYTES;
        pings
    }

    /// Forgets a partial ping, because a message came after it.
    pub(super) fn reset(&mut self) {
        self.pending = 0;
    }
}

/// Reads messages from `reader` until the peer closes, a limit is hit or
/// the framing is lost. Returns the reason for a close the PBX caused.
pub(super) async fn read<S: AsyncRead>(
    mut reader: ReadHalf<S>,
    source: Target,
    sender: &Sender,
    replies: &mpsc::UnboundedSender<Outgoing>,
) -> Result<(), &'static str> {
    let limits = sender.limits;
    let mut buffer = BytesMut::with_capacity(8 * 1024);
    let mut keep_alive = KeepAlive::default();
    // Start of the current wait: the last complete message when the buffer
    // is empty, the first byte of the pending message otherwise.
    let mut partial_since: Option<tokio::time::Instant> = None;
    let mut seen_message = false;
    loop {
        loop {
            if buffer.is_empty() {
                partial_since = None;
            }
            match sip_message::frame_stream(&buffer) {
                Ok(StreamFrame::KeepAlive(length)) => {
                    let _ = buffer.split_to(length);
                    for _ in 0..keep_alive.take(length) {
                        replies
                            .send(Outgoing::Pong)
                            .map_err(|_| "connection closed")?;
                    }
                }
                // A whole message can arrive in one read, before the
                // check on the buffer below sees it.
                Ok(StreamFrame::Message(length)) if length > limits.max_message_bytes => {
                    return Err("message larger than the maximum message size");
                }
                Ok(StreamFrame::Message(length)) => {
                    keep_alive.reset();
                    seen_message = true;
                    // A framed message whose header block is broken
                    // still gets its 400 over the connection.
                    let message = buffer.split_to(length).freeze();
                    if !sender.allow_request(&message, source.addr) {
                        continue;
                    }
                    if let Some(response) = deliver(message, source, &sender.inputs).await {
                        replies
                            .send(Outgoing::Sip(response))
                            .map_err(|_| "connection closed")?;
                    }
                }
                Ok(StreamFrame::Incomplete) => {
                    if buffer.is_empty() {
                        // Idle time counts from the last message.
                        partial_since = Some(tokio::time::Instant::now());
                    }
                    break;
                }
                // The framing is lost, so nothing after it can be trusted.
                Err(_) => return Err("unframeable stream"),
            }
        }
        if buffer.len() > limits.max_message_bytes {
            return Err("message larger than the maximum message size");
        }
        let (limit, reason) = if buffer.is_empty() && !seen_message {
            // A phone registers as soon as it connects. A connection that
            // sends no message would otherwise hold a slot of the
            // connection table for the whole idle timeout.
            (
                limits.idle_timeout.min(FIRST_MESSAGE_TIMEOUT),
                "no message after connecting",
            )
        } else if buffer.is_empty() {
            (limits.idle_timeout, "idle timeout")
        } else {
            (MESSAGE_TIMEOUT, "incomplete message timed out")
        };
        let deadline = *partial_since.get_or_insert_with(tokio::time::Instant::now) + limit;
        match tokio::time::timeout_at(deadline, reader.read_buf(&mut buffer)).await {
            Err(_) => return Err(reason),
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err("read error"),
        }
    }
}

/// Writes what the engine sends until every queue sender is gone, then
/// shuts the connection down (a TLS close_notify on TLS).
pub(super) async fn write<S: AsyncWrite>(
    mut writer: WriteHalf<S>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    transport: TransportKind,
) {
    const PONG: Bytes = Bytes::from_static(b"\r\n");
    const PING: Bytes = Bytes::from_static(b"\r\n\r\n");
    while let Some(item) = outgoing.recv().await {
        let payload = match item {
            Outgoing::Sip(payload) => payload,
            Outgoing::Pong => PONG,
            Outgoing::Ping => PING,
            Outgoing::Close(..) => break,
        };
        // tokio-rustls buffers written records until a flush.
        let written = match writer.write_all(&payload).await {
            Ok(()) => writer.flush().await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tracing::debug!(%error, transport = transport.via_token(), "write failed");
            return;
        }
    }
    let _ = writer.shutdown().await;
}
