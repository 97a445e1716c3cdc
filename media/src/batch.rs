//! Batched reception: one `recvmmsg` call takes every datagram a socket
//! holds, up to [`BATCH`], instead of one `recvfrom` per datagram and a
//! last one that finds the socket empty.
//!
//! The buffers and message headers are allocated once per thread, so the
//! packet path allocates nothing, and a relay thread's sessions share them
//! (each use lasts one call). It is public for load generators such as the `relay_latency`
//! example, which receive the relay's output the same way.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use std::time::Duration;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

/// Datagrams taken by one call. A leg's socket contains one or two
/// datagrams when the relay thread reads it, and more only after a stall,
/// which a larger batch drains faster.
pub const BATCH: usize = 16;
/// One byte more than the largest datagram relayed, so that a longer one,
/// which the kernel cuts to the buffer, is still seen as too long.
const SLOT: usize = crate::state::MAX_DATAGRAM + 1;

struct Scratch {
    headers: MultiHeaders<SockaddrStorage>,
    bytes: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        headers: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec))),
        bytes: vec![0; BATCH * SLOT],
    });
}

/// Asks the kernel to stamp each datagram `socket` receives with the
/// wall-clock time it reached the socket, which [`receive`] hands on.
pub fn enable_receive_timestamps(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Receives up to [`BATCH`] datagrams from the non-blocking `socket` and
/// hands each to `handle` with its source and, when the socket has
/// [`enable_receive_timestamps`], the time since the Unix epoch at which it
/// arrived. Returns how many the socket
/// gave; fewer than [`BATCH`] means it was empty when the call returned.
/// An empty socket is `Err(WouldBlock)`, like any read that would block.
pub fn receive(
    socket: &impl AsRawFd,
    mut handle: impl FnMut(SocketAddr, &[u8], Option<Duration>),
) -> io::Result<usize> {
    SCRATCH.with(|scratch| {
        // A nested call would need a second set of buffers; the relay never
        // makes one, and failing cleanly beats a panic if it ever did.
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return Err(io::Error::other("nested batched receive"));
        };
        let Scratch { headers, bytes } = &mut *scratch;
        let mut received = [(0usize, None::<SocketAddr>, None::<Duration>); BATCH];
        let count = {
            let mut chunks = bytes.chunks_exact_mut(SLOT);
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            let mut count = 0;
            for (slot, message) in received.iter_mut().zip(results) {
                *slot = (
                    message.bytes,
                    message.address.and_then(socket_addr),
                    arrival(&message),
                );
                count += 1;
            }
            count
        };
        for (index, &(length, source, arrived)) in received[..count].iter().enumerate() {
            // A datagram without an IPv4 or IPv6 source cannot be latched
            // or relayed back. UDP sockets report one for every datagram.
            if let Some(source) = source {
                let start = index * SLOT;
                handle(source, &bytes[start..start + length.min(SLOT)], arrived);
            }
        }
        Ok(count)
    })
}

fn arrival<S>(message: &nix::sys::socket::RecvMsg<'_, '_, S>) -> Option<Duration> {
    message.cmsgs().ok()?.find_map(|control| match control {
        ControlMessageOwned::ScmTimestampns(stamp) => Some(Duration::from(stamp)),
        _ => None,
    })
}

fn socket_addr(storage: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    storage
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_returns_queued_datagrams() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver.set_nonblocking(true).expect("non-blocking");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let target = receiver.local_addr().expect("address");
        for length in [1usize, 172, 1500, 1600] {
            sender
                .send_to(&vec![length as u8; length], target)
                .expect("send");
        }
        let mut seen = Vec::new();
        let count = receive(&receiver, |source, datagram, arrived| {
            assert_eq!(arrived, None, "timestamps were not asked for");
            seen.push((source, datagram.len(), datagram[0]));
        })
        .expect("receive");
        let from = sender.local_addr().expect("address");
        assert_eq!(count, 4);
        // The 1,600-byte datagram is cut to the slot, one byte over the
        // limit, so the relay still drops it as oversized.
        assert_eq!(
            seen,
            vec![
                (from, 1, 1),
                (from, 172, 172),
                (from, 1500, (1500 % 256) as u8),
                (from, 1501, (1600 % 256) as u8),
            ]
        );
        let empty = receive(&receiver, |_, _, _| panic!("no datagram is left"));
        assert_eq!(
            empty.map_err(|error| error.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }

    #[test]
    fn receive_stops_at_batch_size() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver.set_nonblocking(true).expect("non-blocking");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let target = receiver.local_addr().expect("address");
        for index in 0..BATCH + 3 {
            sender.send_to(&[index as u8], target).expect("send");
        }
        let mut first = Vec::new();
        let count = receive(&receiver, |_, datagram, _| first.push(datagram[0])).expect("receive");
        assert_eq!(count, BATCH);
        assert_eq!(first, (0..BATCH as u8).collect::<Vec<_>>());
        let mut rest = Vec::new();
        let count = receive(&receiver, |_, datagram, _| rest.push(datagram[0])).expect("receive");
        assert_eq!(count, 3);
        assert_eq!(rest, vec![BATCH as u8, BATCH as u8 + 1, BATCH as u8 + 2]);
    }

    #[test]
    fn receives_from_ipv6_sources() {
        let Ok(receiver) = std::net::UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this host
        };
        receiver.set_nonblocking(true).expect("non-blocking");
        let sender = std::net::UdpSocket::bind("[::1]:0").expect("bind");
        sender
            .send_to(b"v6", receiver.local_addr().expect("address"))
            .expect("send");
        let mut seen = None;
        receive(&receiver, |source, datagram, _| {
            seen = Some((source, datagram.to_vec()))
        })
        .expect("receive");
        assert_eq!(
            seen,
            Some((sender.local_addr().expect("address"), b"v6".to_vec()))
        );
    }

    #[test]
    fn stamps_datagrams_with_their_arrival_when_asked() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver.set_nonblocking(true).expect("non-blocking");
        enable_receive_timestamps(&receiver).expect("SO_TIMESTAMPNS");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        sender
            .send_to(b"stamped", receiver.local_addr().expect("address"))
            .expect("send");
        let mut stamp = None;
        receive(&receiver, |_, _, arrived| stamp = arrived).expect("receive");
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        let stamp = stamp.expect("a receive timestamp");
        assert!(
            before <= stamp && stamp <= after,
            "{before:?} <= {stamp:?} <= {after:?}"
        );
    }
}
