//! Byte stream connections (TCP and TLS): messages framed by
//! Content-Length, a pong for each CRLF keep-alive ping, and the limits on
//! message size, idle time and slow messages.

use bytes::{Bytes, BytesMut};
use sip_message::StreamFrame;
use sip_server::transaction::{Target, TransportKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::deadline::ReadDeadlines;
use super::{Outgoing, Sender, deliver};

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
    // A phone registers as soon as it connects. A connection that sends no
    // message would otherwise hold a slot of the connection table for the
    // whole idle timeout.
    let mut deadlines = ReadDeadlines::new(&limits, Instant::now(), true);
    loop {
        loop {
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
                    deadlines.message_complete();
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
                Ok(StreamFrame::Incomplete) => break,
                // The framing is lost, so nothing after it can be trusted.
                Err(_) => return Err("unframeable stream"),
            }
        }
        if buffer.len() > limits.max_message_bytes {
            return Err("message larger than the maximum message size");
        }
        // Bytes left after framing begin a message, whose deadline counts
        // from the read that brought its first byte.
        if buffer.is_empty() {
            deadlines.nothing_pending();
        } else {
            deadlines.message_pending();
        }
        let (deadline, expiry) = deadlines.next();
        match tokio::time::timeout_at(deadline, reader.read_buf(&mut buffer)).await {
            Err(_) => return Err(expiry.reason()),
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => deadlines.bytes_read(Instant::now()),
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
