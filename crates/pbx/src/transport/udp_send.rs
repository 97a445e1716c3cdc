//! Sends on the SIP UDP socket from a thread of their own.
//!
//! For a UDP send to a local peer (sipp in the benchmarks, a phone on the
//! same host), the kernel delivers the datagram into the peer's socket and
//! wakes the peer inside the sender's `sendto`. In a profile at 2,000
//! calls/s those calls took about 7 % of the runtime thread's samples, on
//! the one thread that every call's SIP messages pass through. The engine now queues the datagrams of one pass of its
//! loop and hands them over together at its end. The send thread then
//! wakes once per pass, not once per message: in an earlier trial, a
//! wake-up per hand-off cost more than the work it moved
//! (docs/benchmarks.md).

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;

/// How often a send that found the socket's buffer full is tried again,
/// and the wait before each try.
const FULL_BUFFER_TRIES: u32 = 3;
const FULL_BUFFER_WAIT: Duration = Duration::from_millis(1);

/// Datagrams for the send thread, in the order they are to leave.
pub(crate) type Datagrams = Vec<(Bytes, SocketAddr)>;

enum Job {
    Send(Datagrams),
    /// A signal sent back once every datagram handed over before it has
    /// been sent.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The handle of the send thread. The thread stops when the last handle
/// is dropped, after sending the datagrams already queued.
#[derive(Clone)]
pub(crate) struct UdpSendThread {
    jobs: mpsc::Sender<Job>,
}

impl UdpSendThread {
    /// Starts the thread on a second descriptor of `socket`.
    pub(crate) fn start(socket: &tokio::net::UdpSocket) -> std::io::Result<UdpSendThread> {
        let socket = std::net::UdpSocket::from(socket.as_fd().try_clone_to_owned()?);
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sip-udp-send".to_owned())
            .spawn(move || run(&socket, &queue))?;
        Ok(UdpSendThread { jobs })
    }

    /// Hands `datagrams` to the thread. Returns them if the thread has
    /// stopped, so that the caller sends them itself.
    pub(crate) fn send(&self, datagrams: Datagrams) -> Result<(), Datagrams> {
        self.jobs
            .send(Job::Send(datagrams))
            .map_err(|error| match error.0 {
                Job::Send(datagrams) => datagrams,
                Job::Flush(_) => Vec::new(),
            })
    }

    /// Resolves once everything handed over so far has been sent, or at
    /// once if the thread has stopped.
    pub(crate) async fn flush(&self) {
        let (done, sent) = tokio::sync::oneshot::channel();
        if self.jobs.send(Job::Flush(done)).is_ok() {
            let _ = sent.await;
        }
    }
}

fn run(socket: &std::net::UdpSocket, queue: &mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        match job {
            Job::Send(datagrams) => {
                for (payload, peer) in datagrams {
                    send_one(socket, &payload, peer);
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Sends one datagram. Errors are logged: SIP recovers from a lost message
/// by retransmission or a transaction timeout.
fn send_one(socket: &std::net::UdpSocket, payload: &[u8], peer: SocketAddr) {
    // The descriptor shares the runtime's non-blocking mode, so a full
    // send buffer returns at once. A few short waits for it to drain keep
    // a message that the engine's own send used to drop.
    for _ in 0..FULL_BUFFER_TRIES {
        match socket.send_to(payload, peer) {
            Ok(_) => return,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(FULL_BUFFER_WAIT);
            }
            Err(error) => {
                tracing::warn!(%error, %peer, "UDP send failed");
                return;
            }
        }
    }
    tracing::warn!(%peer, "UDP send failed: the socket's send buffer stayed full");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_in_order_before_flush() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let destination = peer.local_addr().unwrap();
        let thread = UdpSendThread::start(&socket).unwrap();
        let batch = |range: std::ops::Range<u32>| -> Datagrams {
            range
                .map(|n| (Bytes::from(n.to_string()), destination))
                .collect()
        };
        thread.send(batch(0..50)).unwrap();
        thread.send(batch(50..100)).unwrap();
        thread.flush().await;

        // Everything was sent before the flush returned: it is all in the
        // peer's buffer now, so reads without waiting find it.
        peer.set_nonblocking(true).unwrap();
        let mut buffer = [0u8; 16];
        for expected in 0..100u32 {
            let (length, from) = peer.recv_from(&mut buffer).unwrap();
            assert_eq!(from, socket.local_addr().unwrap());
            assert_eq!(&buffer[..length], expected.to_string().as_bytes());
        }
        assert!(peer.recv_from(&mut buffer).is_err());
    }
}
