//! SIP transports: one UDP socket and a TCP listener on the same address,
//! and optional TLS, WebSocket (WS) and secure WebSocket (WSS) listeners.
//! Readers parse what arrives and hand it to the engine; [`Sender`] writes
//! what the engine sends, over UDP or back over the stream connection a
//! request came on. Every stream connection has an id that the engine keeps
//! in its [`Target`], so requests to a contact registered over TCP, TLS or
//! WebSocket reuse the registering connection (the flow of RFC 5626).

mod deadline;
mod flood;
mod outbound;
mod stream;
mod stun;
#[cfg(test)]
mod tests;
mod udp_send;
mod upgrade;
mod websocket;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sip_message::Message;
use sip_server::transaction::{Target, TransportKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::engine::Input;

/// Time allowed for the TLS handshake and the WebSocket upgrade together.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits shared by every stream transport (TCP, TLS, WS, WSS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamLimits {
    /// Largest SIP message, or WebSocket message, accepted before the
    /// connection is closed. UDP is bounded by the datagram size.
    pub(crate) max_message_bytes: usize,
    /// Open stream connections at most, over all stream transports.
    pub(crate) max_connections: usize,
    /// Open stream connections at most from one IP address.
    pub(crate) max_connections_per_address: usize,
    /// A connection that sends nothing, not even a keep-alive, for this long
    /// is closed.
    pub(crate) idle_timeout: Duration,
    /// Time to complete a message, counted from its first byte. A message
    /// that takes longer closes the connection, so a peer cannot hold a
    /// connection by sending a message byte by byte.
    pub(crate) message_timeout: Duration,
    /// New connections accepted per second from one IP address, with a
    /// burst of twice that; 0 turns the limit off. Trunks are exempt.
    pub(crate) max_connection_attempts_per_sec: u32,
    /// Time between the CRLF keep-alive pings the PBX sends on connections
    /// it opened (RFC 5626 section 4.4.1), so that a dead trunk connection
    /// is noticed and NAT bindings on the way stay open.
    pub(crate) keepalive_interval: Duration,
}

// A call centre's phones need one connection each, and a NAT may put a
// whole site behind one address. Phones following RFC 5626 send a
// keep-alive every few minutes at most, well inside the idle timeout.
impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_message_bytes: 64 * 1024,
            max_connections: 4096,
            max_connections_per_address: 256,
            idle_timeout: Duration::from_secs(600),
            // NOTE: 30 s is a chosen default, not a measured one.
            message_timeout: Duration::from_secs(30),
            // A whole site behind one NAT reconnecting after an outage
            // (256 phones) is back within about 12 seconds.
            max_connection_attempts_per_sec: 20,
            // NOTE: 90 s is a chosen default, not a measured one. RFC 5626
            // section 4.4.1 describes the pings, and a site tunes the
            // interval with sip.keepalive_interval_secs.
            keepalive_interval: Duration::from_secs(90),
        }
    }
}

/// Addresses to listen on. TLS and WSS carry the rustls configuration
/// built from the certificate files.
#[derive(Clone)]
pub(crate) struct Listeners {
    /// UDP and TCP share this address.
    pub(crate) udp_tcp: SocketAddr,
    pub(crate) tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    pub(crate) ws: Option<SocketAddr>,
    pub(crate) wss: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    pub(crate) limits: StreamLimits,
    /// Requests per second one source may send over any transport (0: no
    /// limit), and the trunk networks exempt from it and from the
    /// per-address connection limits.
    pub(crate) flood_limit: (u32, Vec<sip_server::network::IpNetwork>),
    /// The TLS client side of connections the PBX opens, to trunks over
    /// TLS; None sends nothing over TLS without an open connection.
    pub(crate) tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Receive buffer of the UDP socket in bytes; 0 keeps the system's
    /// default.
    pub(crate) udp_receive_buffer: usize,
}

/// Addresses the listeners were bound to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound {
    pub(crate) udp_tcp: SocketAddr,
    pub(crate) tls: Option<SocketAddr>,
    pub(crate) ws: Option<SocketAddr>,
    pub(crate) wss: Option<SocketAddr>,
}

impl Bound {
    /// Bound addresses with UDP and TCP alone on `addr`.
    pub(crate) fn udp_tcp_only(addr: SocketAddr) -> Bound {
        Bound {
            udp_tcp: addr,
            tls: None,
            ws: None,
            wss: None,
        }
    }

    /// Ports to put in the PBX's own Via and Contact headers.
    pub(crate) fn listen_ports(&self) -> sip_server::dialog::ListenPorts {
        sip_server::dialog::ListenPorts {
            udp_tcp: self.udp_tcp.port(),
            tls: self.tls.map(|addr| addr.port()),
            ws: self.ws.map(|addr| addr.port()),
            wss: self.wss.map(|addr| addr.port()),
        }
    }
}

/// A listener that failed to bind.
#[derive(Debug, thiserror::Error)]
#[error("failed to bind SIP over {transport} on {addr}: {source}")]
pub(crate) struct BindError {
    pub(crate) transport: &'static str,
    pub(crate) addr: SocketAddr,
    #[source]
    pub(crate) source: std::io::Error,
}

/// What the writer task of a stream connection is asked to do.
#[derive(Debug)]
enum Outgoing {
    Sip(Bytes),
    /// The RFC 5626 pong: one CRLF on TCP and TLS.
    Pong,
    /// The RFC 5626 keep-alive ping, a double CRLF, on connections the PBX
    /// opened.
    Ping,
    /// Close the connection; WebSocket sends a close frame with this code
    /// (RFC 6455) and reason first.
    Close(u16, &'static str),
}

/// Writer queues of the connections the PBX opened, by transport and
/// server address.
type OutboundConnections = HashMap<(TransportKind, SocketAddr), mpsc::UnboundedSender<Outgoing>>;

#[derive(Clone)]
pub(crate) struct Sender {
    /// Open stream connections per remote address.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    udp: Arc<UdpSocket>,
    /// The thread that sends the engine's batches of UDP datagrams
    /// ([`Sender::send_udp`]), if it could be started.
    udp_thread: Option<udp_send::UdpSendThread>,
    connections: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Outgoing>>>>,
    next_connection: Arc<AtomicU64>,
    inputs: mpsc::Sender<Input>,
    limits: StreamLimits,
    /// Requests per source, shared by UDP and the stream transports.
    requests: Arc<Mutex<flood::FloodGuard>>,
    /// Accepted connections per source.
    connection_attempts: Arc<Mutex<flood::FloodGuard>>,
    /// Trunk networks, exempt from the connection and request limits.
    exempt: Arc<Vec<sip_server::network::IpNetwork>>,
    /// Connections the PBX opened or is opening, by transport and address,
    /// so later requests to the same server reuse them.
    outbound: Arc<Mutex<OutboundConnections>>,
    /// Name a TLS server at an address must prove in its certificate; the
    /// IP address itself when none is known.
    server_names: Arc<Mutex<HashMap<SocketAddr, String>>>,
    tls_client: Option<Arc<rustls::ClientConfig>>,
}

impl Sender {
    /// Sends `payload` to `target`. Errors are logged: SIP recovers from a
    /// lost message by retransmission or a transaction timeout.
    pub(crate) fn send(&self, target: Target, payload: Bytes) {
        if target.transport == TransportKind::Udp {
            if let Err(error) = self.udp.try_send_to(&payload, target.addr) {
                tracing::warn!(%error, peer = %target.addr, "UDP send failed");
            }
            return;
        }
        let open = target.connection.and_then(|id| {
            let connections = self.connections.lock().ok()?;
            connections.get(&id).cloned()
        });
        if let Some(writer) = open
            && writer.send(Outgoing::Sip(payload.clone())).is_ok()
        {
            return;
        }
        match target.transport {
            TransportKind::Tcp => self.send_outbound(target.transport, target.addr, payload),
            TransportKind::Tls if target.connection.is_none() => {
                self.send_outbound(target.transport, target.addr, payload)
            }
            // A phone's TLS connection closed: its address is an ephemeral
            // port that takes no connections, and its certificate would
            // not be trusted anyway.
            TransportKind::Tls => {
                tracing::warn!(peer = %target.addr, "TLS connection closed; message not sent");
            }
            // A browser accepts no connections, so its flow is the only way.
            TransportKind::Ws | TransportKind::Wss => {
                tracing::warn!(peer = %target.addr, "WebSocket connection closed; message not sent");
            }
            TransportKind::Udp => {}
        }
    }

    /// Sends UDP `datagrams`, in order, from the send thread
    /// (udp_send.rs), without waiting for them to leave. Without that
    /// thread they are sent here, one by one.
    pub(crate) fn send_udp(&self, datagrams: udp_send::Datagrams) {
        if datagrams.is_empty() {
            return;
        }
        let unsent = match &self.udp_thread {
            Some(thread) => match thread.send(datagrams) {
                Ok(()) => return,
                // The thread stops only when it panics.
                Err(unsent) => unsent,
            },
            None => datagrams,
        };
        for (payload, peer) in unsent {
            let target = Target {
                transport: TransportKind::Udp,
                addr: peer,
                connection: None,
            };
            self.send(target, payload);
        }
    }

    /// Resolves once the datagrams given to [`Sender::send_udp`] so far
    /// have been sent.
    pub(crate) async fn flush_udp(&self) {
        if let Some(thread) = &self.udp_thread {
            thread.flush().await;
        }
    }

    /// Counts a new connection from `peer`, or returns None past the limits.
    /// The count drops when the returned slot does.
    fn admit(&self, peer: SocketAddr) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let total: usize = open.values().sum();
        let from_peer = open.get(&peer.ip()).copied().unwrap_or(0);
        let trunk = self.exempt.iter().any(|net| net.contains(peer.ip()));
        // Trunks are a few configured addresses, so they keep their calls
        // even when idle or hostile connections fill the table.
        if !trunk
            && (total >= self.limits.max_connections
                || from_peer >= self.limits.max_connections_per_address)
        {
            return None;
        }
        *open.entry(peer.ip()).or_insert(0) += 1;
        Some(Slot {
            open: self.open.clone(),
            peer,
        })
    }

    /// Takes a token of `peer`'s request rate for `message`, and returns
    /// false when the message is to be dropped. Responses belong to
    /// transactions the PBX started, so only requests count.
    fn allow_request(&self, message: &[u8], peer: SocketAddr) -> bool {
        if message.starts_with(b"SIP/") {
            return true;
        }
        let Ok(mut guard) = self.requests.lock() else {
            return true;
        };
        match guard.check(peer.ip(), std::time::Instant::now()) {
            flood::Verdict::Accept => true,
            flood::Verdict::Drop { first } => {
                if first {
                    tracing::warn!(
                        source = %peer.ip(),
                        dropped_so_far = guard.dropped(),
                        "too many SIP requests from one source; dropping the excess"
                    );
                }
                false
            }
        }
    }

    /// Takes a token of `peer`'s connection rate, and returns false when the
    /// new connection is to be closed.
    fn allow_connection_attempt(&self, peer: SocketAddr) -> bool {
        let Ok(mut guard) = self.connection_attempts.lock() else {
            return true;
        };
        match guard.check(peer.ip(), std::time::Instant::now()) {
            flood::Verdict::Accept => true,
            flood::Verdict::Drop { first } => {
                if first {
                    tracing::warn!(
                        source = %peer.ip(),
                        closed_so_far = guard.dropped(),
                        "too many new connections from one source; closing the excess"
                    );
                }
                false
            }
        }
    }

    /// Gives a connection an id the engine can target and returns the id
    /// with the queue its writer task reads.
    fn register(
        &self,
    ) -> (
        u64,
        mpsc::UnboundedSender<Outgoing>,
        mpsc::UnboundedReceiver<Outgoing>,
    ) {
        let (queue, outgoing) = mpsc::unbounded_channel();
        let id = self.register_queue(&queue);
        (id, queue, outgoing)
    }

    /// Gives the connection whose writer reads `queue` an id.
    fn register_queue(&self, queue: &mpsc::UnboundedSender<Outgoing>) -> u64 {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut connections) = self.connections.lock() {
            connections.insert(id, queue.clone());
        }
        id
    }

    /// Forgets connection `id` and tells the engine, which drops the
    /// flows that used it.
    async fn unregister(&self, id: u64) {
        if let Ok(mut connections) = self.connections.lock() {
            connections.remove(&id);
        }
        let _ = self.inputs.send(Input::ConnectionClosed(id)).await;
    }

    /// Starts the reader and writer tasks of a byte stream connection (TCP
    /// or TLS) and returns its writer queue.
    fn adopt_stream<S>(
        &self,
        connection: S,
        slot: Slot,
        transport: TransportKind,
    ) -> mpsc::UnboundedSender<Outgoing>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (id, queue, outgoing) = self.register();
        self.start_stream(connection, slot, transport, (id, queue, outgoing), false)
    }

    /// Starts the tasks of a connection registered as `id`. A connection
    /// the PBX opened (`opened`) also gets keep-alive pings, and its end
    /// fails the transactions still waiting on it.
    fn start_stream<S>(
        &self,
        connection: S,
        slot: Slot,
        transport: TransportKind,
        (id, queue, outgoing): (
            u64,
            mpsc::UnboundedSender<Outgoing>,
            mpsc::UnboundedReceiver<Outgoing>,
        ),
        opened: bool,
    ) -> mpsc::UnboundedSender<Outgoing>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        if opened {
            tokio::spawn(outbound::keep_alive(
                queue.clone(),
                self.limits.keepalive_interval,
            ));
        }
        let (reader, writer) = tokio::io::split(connection);
        tokio::spawn(stream::write(writer, outgoing, transport));
        let sender = self.clone();
        let replies = queue.clone();
        tokio::spawn(async move {
            let peer = slot.peer;
            let source = Target {
                transport,
                addr: peer,
                connection: Some(id),
            };
            let result = stream::read(reader, source, &sender, &replies).await;
            if let Err(reason) = result {
                tracing::info!(%peer, transport = transport.via_token(), reason, "connection closed");
            }
            // The writer and the keep-alive task hold the queue too; this
            // ends both.
            let _ = replies.send(Outgoing::Close(1000, "connection closed"));
            drop(slot);
            sender.unregister(id).await;
            if opened {
                sender.forget_outbound(transport, peer, &replies).await;
            }
        });
        queue
    }
}

/// One counted connection; dropping it frees the count.
struct Slot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: SocketAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(count) = open.get_mut(&self.peer.ip())
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer.ip());
            }
        }
    }
}

/// Asks the kernel for a receive buffer of `bytes` on the SIP UDP socket,
/// unless `bytes` is 0, and warns when it grants less: Linux caps the size
/// at `net.core.rmem_max` without an error. The buffer keeps the datagrams
/// that arrive while the engine task is busy, and those past it are lost.
fn set_receive_buffer(socket: &UdpSocket, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let socket = socket2::SockRef::from(socket);
    if let Err(error) = socket.set_recv_buffer_size(bytes) {
        tracing::warn!(%error, requested = bytes, "setting the SIP UDP receive buffer failed");
        return;
    }
    match socket.recv_buffer_size() {
        // Linux reports twice the size it was given, because it counts its
        // bookkeeping too (socket(7)), so a granted request reads back larger.
        Ok(granted) if granted < bytes => tracing::warn!(
            requested = bytes,
            granted,
            "the kernel capped the SIP UDP receive buffer (sip.udp_receive_buffer_bytes); \
             raise the sysctl net.core.rmem_max to at least the requested size, \
             or datagrams are lost under load"
        ),
        Ok(granted) => tracing::debug!(requested = bytes, granted, "SIP UDP receive buffer set"),
        Err(error) => tracing::debug!(%error, "reading the SIP UDP receive buffer size failed"),
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

async fn bind_stream(
    transport: TransportKind,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let error = |source| BindError {
        transport: transport.via_token(),
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Binds every configured listener and starts the readers of the stream
/// transports. Nothing is served until all of them are bound. The caller
/// reads UDP with the returned [`UdpReader`].
pub(crate) async fn start(
    listeners: &Listeners,
    inputs: mpsc::Sender<Input>,
) -> Result<(Sender, Bound, UdpReader), BindError> {
    let (udp, tcp, udp_tcp) = bind_pair(listeners.udp_tcp)
        .await
        .map_err(|source| BindError {
            transport: "UDP and TCP",
            addr: listeners.udp_tcp,
            source,
        })?;
    set_receive_buffer(&udp, listeners.udp_receive_buffer);
    let mut bound = Bound::udp_tcp_only(udp_tcp);
    let mut accepting = vec![(tcp, Handshake::Tcp)];
    if let Some((addr, config)) = &listeners.tls {
        let (listener, address) = bind_stream(TransportKind::Tls, *addr).await?;
        bound.tls = Some(address);
        accepting.push((listener, Handshake::Tls(TlsAcceptor::from(config.clone()))));
    }
    if let Some(addr) = listeners.ws {
        let (listener, address) = bind_stream(TransportKind::Ws, addr).await?;
        bound.ws = Some(address);
        accepting.push((listener, Handshake::Ws));
    }
    if let Some((addr, config)) = &listeners.wss {
        let (listener, address) = bind_stream(TransportKind::Wss, *addr).await?;
        bound.wss = Some(address);
        accepting.push((listener, Handshake::Wss(TlsAcceptor::from(config.clone()))));
    }

    let udp_thread = match udp_send::UdpSendThread::start(&udp) {
        Ok(thread) => Some(thread),
        Err(error) => {
            // The PBX still works, with its sends on the engine's thread.
            tracing::warn!(%error, "starting the UDP send thread failed; the engine sends UDP itself");
            None
        }
    };
    let udp = Arc::new(udp);
    let (rate, exempt) = listeners.flood_limit.clone();
    let attempts = listeners.limits.max_connection_attempts_per_sec;
    let sender = Sender {
        open: Arc::default(),
        udp: udp.clone(),
        udp_thread,
        connections: Arc::default(),
        next_connection: Arc::new(AtomicU64::new(1)),
        inputs: inputs.clone(),
        limits: listeners.limits,
        requests: Arc::new(Mutex::new(flood::FloodGuard::new(rate, exempt.clone()))),
        connection_attempts: Arc::new(Mutex::new(flood::FloodGuard::new(attempts, exempt.clone()))),
        exempt: Arc::new(exempt),
        outbound: Arc::default(),
        server_names: Arc::default(),
        tls_client: listeners.tls_client.clone(),
    };
    for (listener, handshake) in accepting {
        tokio::spawn(accept(listener, handshake, sender.clone()));
    }
    let reader = UdpReader {
        socket: udp,
        sender: sender.clone(),
        buffer: vec![0u8; 65_535],
    };
    Ok((sender, bound, reader))
}

/// What a stream listener does with a new connection before SIP flows.
#[derive(Clone)]
enum Handshake {
    Tcp,
    Tls(TlsAcceptor),
    Ws,
    Wss(TlsAcceptor),
}

impl Handshake {
    fn transport(&self) -> TransportKind {
        match self {
            Handshake::Tcp => TransportKind::Tcp,
            Handshake::Tls(_) => TransportKind::Tls,
            Handshake::Ws => TransportKind::Ws,
            Handshake::Wss(_) => TransportKind::Wss,
        }
    }

    /// Runs the handshake on `connection` and starts its tasks. A failed
    /// handshake closes the connection and frees its slot.
    async fn run(self, connection: TcpStream, slot: Slot, sender: Sender) {
        let transport = self.transport();
        let peer = slot.peer;
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            match self {
                Handshake::Tcp => {
                    sender.adopt_stream(connection, slot, transport);
                    Ok(())
                }
                Handshake::Tls(acceptor) => {
                    let secured = acceptor
                        .accept(connection)
                        .await
                        .map_err(HandshakeError::Tls)?;
                    sender.adopt_stream(secured, slot, transport);
                    Ok(())
                }
                Handshake::Ws => websocket::accept(connection, slot, transport, &sender).await,
                Handshake::Wss(acceptor) => {
                    let secured = acceptor
                        .accept(connection)
                        .await
                        .map_err(HandshakeError::Tls)?;
                    websocket::accept(secured, slot, transport, &sender).await
                }
            }
        })
        .await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => HandshakeError::TimedOut,
        };
        tracing::warn!(%peer, transport = transport.via_token(), %error, "handshake failed; connection closed");
    }
}

/// Why a TLS handshake or WebSocket upgrade failed.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("WebSocket upgrade failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("handshake timed out")]
    TimedOut,
}

/// Accepts connections on `listener` for as long as the process runs.
async fn accept(listener: TcpListener, handshake: Handshake, sender: Sender) {
    let transport = handshake.transport().via_token();
    let mut rejected: u64 = 0;
    loop {
        match listener.accept().await {
            Ok((connection, peer)) if !sender.allow_connection_attempt(peer) => {
                // Dropping the connection closes it at once.
                drop(connection);
            }
            Ok((connection, peer)) => match sender.admit(peer) {
                Some(slot) => {
                    tokio::spawn(handshake.clone().run(connection, slot, sender.clone()));
                }
                None => {
                    // Dropping the connection closes it at once.
                    rejected += 1;
                    if rejected.is_power_of_two() {
                        tracing::warn!(%peer, transport, rejected, "connection limit reached; connection rejected");
                    }
                }
            },
            Err(error) => {
                tracing::warn!(%error, transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reader of the SIP UDP socket, owned by the engine task, which reads
/// datagrams itself between other work. A datagram then costs no hand-off
/// between tasks, and while the engine is busy the datagrams wait in the
/// socket's receive buffer (`sip.udp_receive_buffer_bytes`).
pub(crate) struct UdpReader {
    socket: Arc<UdpSocket>,
    sender: Sender,
    buffer: Vec<u8>,
}

/// Outcome of one read from the UDP socket.
#[allow(
    clippy::large_enum_variant,
    reason = "the engine matches each read at once, and boxing the message would cost an allocation per datagram"
)]
pub(crate) enum UdpRead {
    /// A SIP message for the engine.
    Message(Input),
    /// A datagram handled here, or dropped: a keep-alive, a STUN request,
    /// one over a source's rate, or one too malformed to parse.
    Handled,
    /// Nothing was waiting; await [`UdpReader::readable`] again.
    Empty,
}

impl UdpReader {
    /// Waits until a datagram may be waiting.
    pub(crate) async fn readable(&self) {
        // On error the next `try_read` reports it and returns Empty.
        let _ = self.socket.readable().await;
    }

    /// Reads one datagram without waiting.
    pub(crate) fn try_read(&mut self) -> UdpRead {
        let (length, peer) = match self.socket.try_recv_from(&mut self.buffer) {
            Ok(received) => received,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return UdpRead::Empty,
            Err(error) => {
                // ICMP port unreachable from an earlier send shows up here
                // on some systems; the socket itself is fine.
                tracing::debug!(%error, "UDP receive error");
                return UdpRead::Handled;
            }
        };
        let datagram = &self.buffer[..length];
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            return UdpRead::Handled; // Keep-alive (RFC 5626 section 4.4.1).
        }
        if !self.sender.allow_request(datagram, peer) {
            return UdpRead::Handled;
        }
        if let Some(response) = stun::binding_response(datagram, peer) {
            let _ = self.socket.try_send_to(&response, peer);
            return UdpRead::Handled;
        }
        let source = Target {
            transport: TransportKind::Udp,
            addr: peer,
            connection: None,
        };
        // One copy out of the receive buffer; the parser then slices it.
        match parse(Bytes::copy_from_slice(datagram), source) {
            Ok(message) => UdpRead::Message(Input::Sip(message, source)),
            Err(Some(response)) => {
                let _ = self.socket.try_send_to(&response, peer);
                UdpRead::Handled
            }
            Err(None) => UdpRead::Handled,
        }
    }

    /// Reads datagrams and hands their messages to `inputs` until the
    /// engine stops, for a driver without its own read loop.
    #[cfg(test)]
    pub(crate) async fn forward(mut self, inputs: mpsc::Sender<Input>) {
        loop {
            match self.try_read() {
                UdpRead::Message(input) => {
                    if inputs.send(input).await.is_err() {
                        return;
                    }
                }
                UdpRead::Handled => {}
                UdpRead::Empty => self.readable().await,
            }
        }
    }
}

/// Parses `bytes`. A request too malformed to parse gets the response to
/// send back, when it has enough of a Via for one.
fn parse(bytes: Bytes, source: Target) -> Result<Message, Option<Bytes>> {
    Message::parse_bytes(bytes.clone()).map_err(|error| {
        tracing::debug!(peer = %source.addr, %error, "unparsable SIP message");
        sip_server::malformed::response_for_unparsable(&bytes, &error)
    })
}

/// Parses `bytes` and hands the message to the engine. Returns the
/// response to send when the bytes are a request too malformed to parse.
async fn deliver(bytes: Bytes, source: Target, inputs: &mpsc::Sender<Input>) -> Option<Bytes> {
    match parse(bytes, source) {
        Ok(message) => {
            if inputs.send(Input::Sip(message, source)).await.is_err() {
                tracing::debug!("engine stopped; message dropped");
            }
            None
        }
        Err(response) => response,
    }
}
