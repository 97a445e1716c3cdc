//! SIP transports: one UDP socket and a TCP listener on the same address.
//! Readers parse what arrives and hand it to the engine; [`Sender`] writes
//! what the engine sends, over UDP or back over the TCP connection a
//! request came on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sip_message::{Message, StreamFrame};
use sip_server::transaction::{Target, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::engine::Input;

/// Largest SIP message accepted on a stream before the connection is
/// dropped; UDP is bounded by the datagram buffer.
const MAX_MESSAGE: usize = 64 * 1024;
/// Open stream connections at most, in all and from one address. A call
/// centre's phones need one each; a NAT may put a site behind one address.
const MAX_CONNECTIONS: usize = 4096;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// A connection that sends nothing, not even a CRLF keep-alive (RFC 5626
/// asks for one at least every 2 minutes or so), is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Time allowed to complete a message once its first bytes arrived, so a
/// peer cannot hold a connection with a header sent byte by byte.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct Sender {
    /// Open stream connections per remote address.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    udp: Arc<UdpSocket>,
    connections: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>>,
    next_connection: Arc<AtomicU64>,
    inputs: mpsc::Sender<Input>,
}

impl Sender {
    /// Sends `payload` to `target`. Errors are logged: SIP recovers from a
    /// lost message by retransmission or a transaction timeout.
    pub(crate) fn send(&self, target: Target, payload: Bytes) {
        match target.transport {
            TransportKind::Udp => {
                if let Err(error) = self.udp.try_send_to(&payload, target.addr) {
                    tracing::warn!(%error, peer = %target.addr, "UDP send failed");
                }
            }
            TransportKind::Tcp => {
                let open = target.connection.and_then(|id| {
                    let connections = self.connections.lock().ok()?;
                    connections.get(&id).cloned()
                });
                match open {
                    Some(writer) if writer.send(payload.clone()).is_ok() => {}
                    _ => self.connect_and_send(target.addr, payload),
                }
            }
        }
    }

    /// Opens a new TCP connection for a request whose connection is gone.
    fn connect_and_send(&self, peer: SocketAddr, payload: Bytes) {
        let sender = self.clone();
        tokio::spawn(async move {
            if !sender.admit(peer) {
                tracing::warn!(%peer, "TCP connection limit reached; request not sent");
                return;
            }
            match TcpStream::connect(peer).await {
                Ok(stream) => {
                    let writer = sender.adopt(stream, peer);
                    let _ = writer.send(payload);
                }
                Err(error) => {
                    sender.release(peer);
                    tracing::warn!(%error, %peer, "TCP connect failed");
                }
            }
        });
    }

    /// Registers a connection and starts its reader and writer tasks.
    /// Counts a new connection from `peer`, or refuses it past the limits.
    fn admit(&self, peer: SocketAddr) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let total: usize = open.values().sum();
        let from_peer = open.get(&peer.ip()).copied().unwrap_or(0);
        if total >= MAX_CONNECTIONS || from_peer >= MAX_CONNECTIONS_PER_ADDRESS {
            return false;
        }
        *open.entry(peer.ip()).or_insert(0) += 1;
        true
    }

    fn release(&self, peer: SocketAddr) {
        if let Ok(mut open) = self.open.lock()
            && let Some(count) = open.get_mut(&peer.ip())
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&peer.ip());
            }
        }
    }

    /// Registers a counted connection and starts its reader and writer tasks.
    fn adopt(&self, stream: TcpStream, peer: SocketAddr) -> mpsc::UnboundedSender<Bytes> {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let (reader, writer) = stream.into_split();
        let (queue, outgoing) = mpsc::unbounded_channel();
        if let Ok(mut connections) = self.connections.lock() {
            connections.insert(id, queue.clone());
        }
        tokio::spawn(write_stream(writer, outgoing));
        let sender = self.clone();
        let replies = queue.clone();
        tokio::spawn(async move {
            let target = Target {
                transport: TransportKind::Tcp,
                addr: peer,
                connection: Some(id),
            };
            if let Err(reason) = read_stream(reader, target, &sender.inputs, &replies).await {
                tracing::info!(%peer, reason, "TCP connection closed");
            }
            if let Ok(mut connections) = sender.connections.lock() {
                connections.remove(&id);
            }
            sender.release(peer);
            let _ = sender.inputs.send(Input::ConnectionClosed(id)).await;
        });
        queue
    }
}

/// Binds UDP and then TCP on the port UDP got, so an ephemeral `:0` ends
/// up on one port for both. With `:0`, the TCP port may already be taken
/// by another socket, so a few other ports are tried.
async fn bind_pair(listen: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener, SocketAddr)> {
    const ATTEMPTS: usize = 10;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = UdpSocket::bind(listen).await?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(error)
                if listen.port() == 0
                    && attempt < ATTEMPTS
                    && error.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(error) => return Err(error),
        }
    }
}

/// Binds UDP and TCP on `listen` and starts their readers.
pub(crate) async fn start(
    listen: SocketAddr,
    inputs: mpsc::Sender<Input>,
) -> std::io::Result<(Sender, SocketAddr)> {
    let (udp, tcp, bound) = bind_pair(listen).await?;
    let udp = Arc::new(udp);
    let sender = Sender {
        open: Arc::default(),
        udp: udp.clone(),
        connections: Arc::default(),
        next_connection: Arc::new(AtomicU64::new(1)),
        inputs: inputs.clone(),
    };
    tokio::spawn(read_udp(udp, inputs));
    let acceptor = sender.clone();
    tokio::spawn(async move {
        let mut refused: u64 = 0;
        loop {
            match tcp.accept().await {
                Ok((stream, peer)) if acceptor.admit(peer) => {
                    acceptor.adopt(stream, peer);
                }
                Ok((_, peer)) => {
                    // Dropping the stream closes it at once.
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(%peer, refused, "TCP connection limit reached; connection refused");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "TCP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok((sender, bound))
}

async fn read_udp(socket: Arc<UdpSocket>, inputs: mpsc::Sender<Input>) {
    let mut buffer = vec![0u8; 65_535];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP port unreachable from an earlier send shows up here
                // on some systems; the socket itself is fine.
                tracing::debug!(%error, "UDP receive error");
                continue;
            }
        };
        let datagram = &buffer[..length];
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            continue; // Keep-alive (RFC 5626 section 4.4.1).
        }
        let target = Target {
            transport: TransportKind::Udp,
            addr: peer,
            connection: None,
        };
        if let Some(response) = deliver(datagram, target, &inputs).await {
            let _ = socket.try_send_to(&response, peer);
        }
    }
}

/// Parses `bytes` and hands the message to the engine. Returns the
/// response to send when the bytes are a request too malformed to parse.
async fn deliver(bytes: &[u8], source: Target, inputs: &mpsc::Sender<Input>) -> Option<Bytes> {
    match Message::parse(bytes) {
        Ok(message) => {
            if inputs.send(Input::Sip(message, source)).await.is_err() {
                tracing::debug!("engine stopped; message dropped");
            }
            None
        }
        Err(error) => {
            tracing::debug!(peer = %source.addr, %error, "unparsable SIP message");
            sip_server::malformed::response_for_unparsable(bytes, &error)
        }
    }
}

async fn read_stream(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    source: Target,
    inputs: &mpsc::Sender<Input>,
    replies: &mpsc::UnboundedSender<Bytes>,
) -> Result<(), &'static str> {
    let mut buffer = BytesMut::with_capacity(8 * 1024);
    // Start of the current wait: the last complete message when the buffer
    // is empty, the first byte of the pending message otherwise.
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        loop {
            if buffer.is_empty() {
                partial_since = None;
            }
            match sip_message::frame_stream(&buffer) {
                Ok(StreamFrame::KeepAlive(length)) => {
                    let _ = buffer.split_to(length);
                }
                Ok(StreamFrame::Message(length)) => {
                    // A framed message whose header block is broken
                    // still gets its 400 over the connection.
                    let message = buffer.split_to(length);
                    if let Some(response) = deliver(&message, source, inputs).await {
                        replies.send(response).map_err(|_| "connection closed")?;
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
        if buffer.len() > MAX_MESSAGE {
            return Err("message larger than 64 KiB");
        }
        let (limit, reason) = if buffer.is_empty() {
            (IDLE_TIMEOUT, "idle timeout")
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

async fn write_stream(mut writer: OwnedWriteHalf, mut outgoing: mpsc::UnboundedReceiver<Bytes>) {
    while let Some(payload) = outgoing.recv().await {
        if let Err(error) = writer.write_all(&payload).await {
            tracing::debug!(%error, "TCP write failed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_past_the_per_address_limit_are_closed() {
        let (inputs, _receiver) = mpsc::channel(16);
        let (_sender, bound) = start("127.0.0.1:0".parse().unwrap(), inputs).await.unwrap();
        let mut open = Vec::new();
        for _ in 0..MAX_CONNECTIONS_PER_ADDRESS {
            open.push(TcpStream::connect(bound).await.unwrap());
        }
        let mut refused = TcpStream::connect(bound).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "connection past the limit stays open: {read:?}"
        );

        // A slot frees when a connection closes.
        drop(open.pop());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = TcpStream::connect(bound).await.unwrap();
        let read = tokio::time::timeout(Duration::from_millis(300), again.read(&mut byte)).await;
        assert!(read.is_err(), "a freed slot is usable again: {read:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn incomplete_message_times_out() {
        let (inputs, _receiver) = mpsc::channel(16);
        let (_sender, bound) = start("127.0.0.1:0".parse().unwrap(), inputs).await.unwrap();
        let mut stream = TcpStream::connect(bound).await.unwrap();
        stream
            .write_all(b"OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/TCP")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        // Paused time jumps ahead while every task waits, so this does not
        // take 30 real seconds.
        let read = tokio::time::timeout(
            MESSAGE_TIMEOUT + Duration::from_secs(1),
            stream.read(&mut byte),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "slow header still open: {read:?}"
        );
    }
}
