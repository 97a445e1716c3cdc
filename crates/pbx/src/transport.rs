//! SIP transports: one UDP socket and a TCP listener on the same address.
//! Readers parse what arrives and hand it to the engine; [`Sender`] writes
//! what the engine sends, over UDP or back over the TCP connection a
//! request came on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

#[derive(Clone)]
pub(crate) struct Sender {
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
            match TcpStream::connect(peer).await {
                Ok(stream) => {
                    let writer = sender.adopt(stream, peer);
                    let _ = writer.send(payload);
                }
                Err(error) => tracing::warn!(%error, %peer, "TCP connect failed"),
            }
        });
    }

    /// Registers a connection and starts its reader and writer tasks.
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
                tracing::debug!(%peer, reason, "TCP connection closed");
            }
            if let Ok(mut connections) = sender.connections.lock() {
                connections.remove(&id);
            }
        });
        queue
    }
}

/// Binds UDP and TCP on `listen` and starts their readers.
pub(crate) async fn start(
    listen: SocketAddr,
    inputs: mpsc::Sender<Input>,
) -> std::io::Result<(Sender, SocketAddr)> {
    let udp = Arc::new(UdpSocket::bind(listen).await?);
    let bound = udp.local_addr()?;
    // TCP takes the port UDP got, so an ephemeral `:0` ends up on one port.
    let tcp = TcpListener::bind(bound).await?;
    let sender = Sender {
        udp: udp.clone(),
        connections: Arc::default(),
        next_connection: Arc::new(AtomicU64::new(1)),
        inputs: inputs.clone(),
    };
    tokio::spawn(read_udp(udp, inputs));
    let acceptor = sender.clone();
    tokio::spawn(async move {
        loop {
            match tcp.accept().await {
                Ok((stream, peer)) => {
                    acceptor.adopt(stream, peer);
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
        deliver(datagram, target, &inputs).await;
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
    loop {
        loop {
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
                Ok(StreamFrame::Incomplete) => break,
                // The framing is lost, so nothing after it can be trusted.
                Err(_) => return Err("unframeable stream"),
            }
        }
        if buffer.len() > MAX_MESSAGE {
            return Err("message too large");
        }
        match reader.read_buf(&mut buffer).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err("read error"),
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
