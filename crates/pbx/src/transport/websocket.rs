//! SIP over WebSocket (RFC 7118), plain (WS) or over TLS (WSS). The upgrade
//! request must offer the `sip` subprotocol. Each WebSocket message, text or
//! binary, carries one SIP message, so no Content-Length framing applies.

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sip_server::transaction::{Target, TransportKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};

use super::deadline::{Arrivals, Expiry, ReadDeadlines, SharedDeadlines};
use super::{HandshakeError, Outgoing, Sender, Slot, deliver};

/// The WebSocket subprotocol registered for SIP.
const SUBPROTOCOL: &str = "sip";

/// Runs the HTTP upgrade on `connection` and starts the connection's tasks.
pub(super) async fn accept<S>(
    connection: S,
    slot: Slot,
    transport: TransportKind,
    sender: &Sender,
) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = sender.limits.max_message_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    // NOTE: WebSocket has no first-message limit, so a connection may stay
    // silent after its upgrade for the whole idle timeout.
    let deadlines = ReadDeadlines::new(&sender.limits, tokio::time::Instant::now(), false);
    let deadlines = SharedDeadlines::new(deadlines);
    // A first frame in the same segment as the upgrade request stays for
    // the WebSocket layer instead of failing the handshake.
    let socket = tokio_tungstenite::accept_hdr_async_with_config(
        super::upgrade::UpgradeHead::new(Arrivals::new(connection, deadlines.clone())),
        select_subprotocol,
        Some(config),
    )
    .await?;
    // The upgrade request is complete, and the handshake timeout covered it.
    deadlines.update(ReadDeadlines::message_complete);
    adopt(sender, socket, slot, transport, deadlines);
    Ok(())
}

/// Accepts the upgrade when the client offers `sip`, and names it in the
/// response as RFC 6455 requires. Otherwise rejects the upgrade with 400.
#[allow(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback fixes this signature"
)]
fn select_subprotocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    if offers_sip(request.headers()) {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        return Ok(response);
    }
    let mut rejection = ErrorResponse::new(Some(
        "the WebSocket upgrade must offer the \"sip\" subprotocol (Sec-WebSocket-Protocol: sip)\n"
            .to_owned(),
    ));
    *rejection.status_mut() = StatusCode::BAD_REQUEST;
    Err(rejection)
}

/// True when a Sec-WebSocket-Protocol header lists `sip`. The comparison
/// is exact, so `SIP` does not match.
pub(super) fn offers_sip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim() == SUBPROTOCOL)
}

fn adopt<S>(
    sender: &Sender,
    socket: WebSocketStream<S>,
    slot: Slot,
    transport: TransportKind,
    deadlines: SharedDeadlines,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (id, queue, outgoing) = sender.register();
    let (sink, stream) = socket.split();
    tokio::spawn(write(sink, outgoing));
    let sender = sender.clone();
    tokio::spawn(async move {
        let peer = slot.peer;
        let source = Target {
            transport,
            addr: peer,
            connection: Some(id),
        };
        if let Err((code, reason)) = read(stream, source, &sender, &queue, &deadlines).await {
            tracing::info!(%peer, transport = transport.via_token(), reason, "connection closed");
            // The writer sends the close frame and ends.
            let _ = queue.send(Outgoing::Close(code.into(), reason));
        }
        drop(slot);
        sender.unregister(id).await;
    });
}

/// Reads SIP messages until the peer closes or a limit is hit. Returns the
/// close code and reason for a close the PBX caused.
async fn read<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    source: Target,
    sender: &Sender,
    replies: &mpsc::UnboundedSender<Outgoing>,
    deadlines: &SharedDeadlines,
) -> Result<(), (CloseCode, &'static str)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = next_before_deadline(&mut stream, deadlines).await?;
        // Every frame tungstenite returns is complete, control frames too.
        // NOTE: bytes of the next message that came in the same read as
        // this one lose their arrival time, so that message's deadline
        // counts from its next read instead.
        deadlines.update(ReadDeadlines::message_complete);
        let message = match next {
            None | Some(Ok(Message::Close(_))) => return Ok(()),
            Some(Ok(message)) => message,
            Some(Err(Error::Capacity(_))) => {
                return Err((
                    CloseCode::Size,
                    "message larger than the maximum message size",
                ));
            }
            Some(Err(_)) => return Err((CloseCode::Protocol, "WebSocket protocol error")),
        };
        let payload: Bytes = match message {
            Message::Text(text) => text.into(),
            Message::Binary(bytes) => bytes,
            // tungstenite replies to pings itself, and pongs need nothing.
            _ => continue,
        };
        if payload.iter().all(|&byte| byte == b'\r' || byte == b'\n') {
            continue; // A client's CRLF keep-alive, which WebSocket does not need.
        }
        if !sender.allow_request(&payload, source.addr) {
            continue;
        }
        if let Some(response) = deliver(payload, source, &sender.inputs).await {
            replies
                .send(Outgoing::Sip(response))
                .map_err(|_| (CloseCode::Normal, "connection closed"))?;
        }
    }
}

/// Waits for the next WebSocket message until the earliest deadline of
/// `deadlines`, which moves as bytes arrive.
async fn next_before_deadline<S>(
    stream: &mut SplitStream<WebSocketStream<S>>,
    deadlines: &SharedDeadlines,
) -> Result<Option<Result<Message, Error>>, (CloseCode, &'static str)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut next = stream.next();
    loop {
        let (deadline, _) = deadlines.update(|deadlines| deadlines.next());
        tokio::select! {
            biased;
            item = &mut next => return Ok(item),
            // A new message can bring the deadline forward.
            () = deadlines.message_started() => {}
            () = tokio::time::sleep_until(deadline) => {
                // Bytes read meanwhile may have moved the deadline later.
                let (current, expiry) = deadlines.update(|deadlines| deadlines.next());
                if current <= tokio::time::Instant::now() {
                    let code = match expiry {
                        Expiry::Message => CloseCode::Policy,
                        Expiry::Idle | Expiry::FirstMessage => CloseCode::Away,
                    };
                    return Err((code, expiry.reason()));
                }
            }
        }
    }
}

/// Writes each SIP message as one WebSocket message: text when it is UTF-8,
/// binary otherwise.
async fn write<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(item) = outgoing.recv().await {
        let message = match item {
            Outgoing::Sip(payload) => as_message(payload),
            Outgoing::Pong | Outgoing::Ping => continue,
            Outgoing::Close(code, reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        };
        if let Err(error) = sink.send(message).await {
            tracing::debug!(%error, "WebSocket write failed");
            return;
        }
    }
    let _ = sink.close().await;
}

fn as_message(payload: Bytes) -> Message {
    Utf8Bytes::try_from(payload.clone()).map_or(Message::Binary(payload), Message::Text)
}
