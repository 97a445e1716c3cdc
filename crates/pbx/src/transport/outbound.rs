//! Connections the PBX opens: TCP, and TLS to trunks. The first request to
//! a transport and address opens the connection. Later requests, also
//! those sent while it is still opening, queue on it and reuse it.
//! Responses and the server's own requests come back over it like over any
//! other stream connection. A connection that cannot be opened, or that
//! closes, fails the transactions sent to its address, so their TU sees
//! 503.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use sip_server::transaction::TransportKind;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use super::{HANDSHAKE_TIMEOUT, Outgoing, Sender};
use crate::engine::Input;

/// Failure to open a connection to a server.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    #[error("connection limit reached")]
    Limit,
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    #[error("no TLS client configuration")]
    NoTlsClient,
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The handshake failed, which includes a certificate that does not
    /// chain to a trust anchor or does not name the server.
    #[error("TLS handshake with {server_name} failed: {source}")]
    Tls {
        server_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connect and TLS handshake timed out after {0:?}")]
    TimedOut(Duration),
}

impl Sender {
    /// Records the name the TLS server at each destination must prove.
    pub(crate) fn expect_server_names(&self, destinations: &[sip_server::locate::Destination]) {
        let Ok(mut names) = self.server_names.lock() else {
            return;
        };
        for destination in destinations {
            if destination.transport == TransportKind::Tls {
                names.insert(destination.addr, destination.server_name.clone());
            }
        }
    }

    /// Sends `payload` over the connection the PBX opened to `addr`, or
    /// opens one.
    pub(super) fn send_outbound(&self, transport: TransportKind, addr: SocketAddr, payload: Bytes) {
        let Ok(mut outbound) = self.outbound.lock() else {
            return;
        };
        let key = (transport, addr);
        if let Some(queue) = outbound.get(&key)
            && queue.send(Outgoing::Sip(payload.clone())).is_ok()
        {
            return;
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        let _ = queue.send(Outgoing::Sip(payload));
        outbound.insert(key, queue.clone());
        drop(outbound);
        tokio::spawn(self.clone().open(transport, addr, queue, receiver));
    }

    /// Opens the connection whose writer reads `receiver`, or reports the
    /// failure to the engine.
    async fn open(
        self,
        transport: TransportKind,
        addr: SocketAddr,
        queue: mpsc::UnboundedSender<Outgoing>,
        receiver: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        let result = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.connect(transport, addr, &queue, receiver),
        )
        .await
        .unwrap_or(Err(ConnectError::TimedOut(HANDSHAKE_TIMEOUT)));
        let Err(error) = result else {
            tracing::debug!(peer = %addr, transport = transport.via_token(), "connection opened");
            return;
        };
        tracing::warn!(
            peer = %addr,
            transport = transport.via_token(),
            %error,
            "failed to open a connection; its requests fail"
        );
        self.forget_outbound(transport, addr, &queue).await;
    }

    async fn connect(
        &self,
        transport: TransportKind,
        addr: SocketAddr,
        queue: &mpsc::UnboundedSender<Outgoing>,
        receiver: mpsc::UnboundedReceiver<Outgoing>,
    ) -> Result<(), ConnectError> {
        let slot = self.admit(addr).ok_or(ConnectError::Limit)?;

        let connection = TcpStream::connect(addr)
            .await
            .map_err(ConnectError::Connect)?;
        // Each message goes out in its own write, so Nagle's delay would
        // only hold back the INVITE; a failure here costs nothing else.
        let _ = connection.set_nodelay(true);
        if transport != TransportKind::Tls {
            let id = self.register_queue(queue);
            self.start_stream(
                connection,
                slot,
                transport,
                (id, queue.clone(), receiver),
                true,
            );
            return Ok(());
        }

        let client = self.tls_client.clone().ok_or(ConnectError::NoTlsClient)?;
        let server_name = self
            .server_names
            .lock()
            .ok()
            .and_then(|names| names.get(&addr).cloned())
            .unwrap_or_else(|| addr.ip().to_string());
        let name = ServerName::try_from(server_name.clone())
            .map_err(|_| ConnectError::ServerName(server_name.clone()))?;
        let secured = TlsConnector::from(client)
            .connect(name, connection)
            .await
            .map_err(|source| ConnectError::Tls {
                server_name,
                source,
            })?;

        let id = self.register_queue(queue);
        self.start_stream(
            secured,
            slot,
            transport,
            (id, queue.clone(), receiver),
            true,
        );
        Ok(())
    }

    /// Drops the connection reading `queue` from the reusable ones, unless
    /// a newer one replaced it, and fails the transactions still waiting
    /// for a response from `addr`.
    pub(super) async fn forget_outbound(
        &self,
        transport: TransportKind,
        addr: SocketAddr,
        queue: &mpsc::UnboundedSender<Outgoing>,
    ) {
        if let Ok(mut outbound) = self.outbound.lock() {
            let key = (transport, addr);
            if outbound
                .get(&key)
                .is_some_and(|current| current.same_channel(queue))
            {
                outbound.remove(&key);
            }
        }
        let _ = self
            .inputs
            .send(Input::TransportFailed { transport, addr })
            .await;
    }
}

/// Sends a keep-alive ping every `interval` until the connection's writer
/// stops reading, which happens when the connection closes.
pub(super) async fn keep_alive(queue: mpsc::UnboundedSender<Outgoing>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if queue.send(Outgoing::Ping).is_err() {
            return;
        }
    }
}
