//! Peers that send slowly: a message trickled byte by byte, a message
//! after a long silence, and keep-alives in place of a first message. The
//! clock is paused, so waits take no real time.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::*;

/// Limits that make a trickle of a byte every [`INTERVAL`] outlast the
/// idle timeout but not the message timeout.
fn slow_limits() -> StreamLimits {
    StreamLimits {
        idle_timeout: Duration::from_secs(5),
        message_timeout: Duration::from_secs(20),
        ..StreamLimits::default()
    }
}

const INTERVAL: Duration = Duration::from_secs(3);

/// What the PBX did while [`send_slowly`] sent.
struct Trickle {
    /// Time from the first byte sent until the PBX closed the connection.
    /// None when it stayed open through the last byte and one interval.
    closed_after: Option<Duration>,
    /// Bytes the PBX sent meanwhile, such as pongs or a close frame.
    received: Vec<u8>,
}

/// Sends each of `chunks`, [`INTERVAL`] apart, reading what comes back.
async fn send_slowly<S, C>(stream: &mut S, chunks: C) -> Trickle
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: IntoIterator,
    C::Item: AsRef<[u8]>,
{
    let start = Instant::now();
    let mut received = Vec::new();
    for chunk in chunks {
        if stream.write_all(chunk.as_ref()).await.is_err() {
            return Trickle {
                closed_after: Some(start.elapsed()),
                received,
            };
        }
        let next = Instant::now() + INTERVAL;
        let mut buffer = [0u8; 256];
        loop {
            match tokio::time::timeout_at(next, stream.read(&mut buffer)).await {
                Err(_) => break,
                Ok(Ok(0) | Err(_)) => {
                    return Trickle {
                        closed_after: Some(start.elapsed()),
                        received,
                    };
                }
                Ok(Ok(count)) => received.extend_from_slice(&buffer[..count]),
            }
        }
    }
    Trickle {
        closed_after: None,
        received,
    }
}

/// Connects with Nagle's algorithm off, so that each small write leaves at
/// once instead of waiting, in real time, for the ACK of the one before.
async fn connect_unbuffered(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn bytes_of(message: &[u8]) -> impl Iterator<Item = [u8; 1]> + '_ {
    message.iter().map(|&byte| [byte])
}

/// Fails when a SIP message reached the engine. The input that reports
/// the closed connection is expected.
fn assert_no_sip_input(receiver: &mut mpsc::Receiver<Input>) {
    while let Ok(input) = receiver.try_recv() {
        assert!(
            !matches!(input, Input::Sip(..)),
            "a partial message reached the engine"
        );
    }
}

fn listeners(limits: StreamLimits) -> Listeners {
    Listeners {
        limits,
        ..plain_listeners()
    }
}

#[tokio::test(start_paused = true)]
async fn tcp_trickled_message_is_closed() {
    let limits = slow_limits();
    let (inputs, mut receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&listeners(limits), inputs).await.unwrap();
    let mut stream = connect_unbuffered(bound.udp_tcp).await;

    let trickle = send_slowly(&mut stream, bytes_of(tcp_options("slow").as_bytes())).await;

    let closed_after = trickle
        .closed_after
        .expect("the trickling connection was closed");
    assert!(
        closed_after > limits.idle_timeout,
        "each byte resets the idle timeout, but the connection closed after {closed_after:?}"
    );
    assert!(
        closed_after <= limits.message_timeout + INTERVAL,
        "closed {closed_after:?} after the first byte, past the message timeout"
    );
    assert_no_sip_input(&mut receiver);
}

#[tokio::test(start_paused = true)]
async fn tcp_stalled_message_hits_idle_timeout() {
    let limits = StreamLimits {
        message_timeout: Duration::from_secs(600),
        ..slow_limits()
    };
    let (inputs, _receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&listeners(limits), inputs).await.unwrap();
    let mut stream = connect_unbuffered(bound.udp_tcp).await;
    stream
        .write_all(b"OPTIONS sip:pbx SIP/2.0\r\n")
        .await
        .unwrap();

    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        limits.idle_timeout + Duration::from_secs(1),
        stream.read(&mut byte),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a stalled message kept the connection open: {read:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn tcp_message_after_silence_completes() {
    let limits = StreamLimits::default();
    let (inputs, mut receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&listeners(limits), inputs).await.unwrap();
    let mut stream = connect_unbuffered(bound.udp_tcp).await;
    stream
        .write_all(tcp_options("first").as_bytes())
        .await
        .unwrap();
    // Silent for longer than the message timeout, within the idle timeout.
    tokio::time::sleep(limits.message_timeout * 3).await;

    let second = tcp_options("second");
    let (head, tail) = second.as_bytes().split_at(40);
    let trickle = send_slowly(&mut stream, [head, tail]).await;

    assert_eq!(trickle.closed_after, None, "the second message was cut off");
    for branch in ["first", "second"] {
        let input = receiver.try_recv().expect("both messages reach the engine");
        let Input::Sip(sip_message::Message::Request(request), _) = input else {
            panic!("expected the {branch} OPTIONS request");
        };
        assert_eq!(request.headers.call_id(), Some(&*format!("{branch}@test")));
    }
}

#[tokio::test(start_paused = true)]
async fn tcp_pings_do_not_replace_first_message() {
    let (inputs, _receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let mut stream = connect_unbuffered(bound.udp_tcp).await;
    let first_message = super::super::deadline::FIRST_MESSAGE_TIMEOUT;
    let pings = (first_message + INTERVAL).as_secs() / INTERVAL.as_secs() + 1;

    let trickle = send_slowly(&mut stream, (0..pings).map(|_| b"\r\n\r\n")).await;

    let closed_after = trickle
        .closed_after
        .expect("a connection of pings was closed");
    assert!(
        closed_after <= first_message + INTERVAL,
        "closed {closed_after:?} after connecting"
    );
    assert!(
        trickle.received.starts_with(b"\r\n"),
        "pings before the close got no pong"
    );
}

#[tokio::test(start_paused = true)]
async fn websocket_trickled_message_is_closed() {
    let limits = slow_limits();
    let (inputs, mut receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&listeners(limits), inputs).await.unwrap();
    let mut stream = connect_unbuffered(bound.ws.unwrap()).await;
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = [0; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let mut rest_of_head = Vec::new();
    while !rest_of_head.ends_with(b"\r\n\r\n") {
        rest_of_head.push(stream.read_u8().await.unwrap());
    }

    let frame = client_frame(OPTIONS);
    let trickle = send_slowly(&mut stream, bytes_of(&frame)).await;

    let closed_after = trickle
        .closed_after
        .expect("the trickling connection was closed");
    assert!(
        closed_after > limits.idle_timeout,
        "each byte resets the idle timeout, but the connection closed after {closed_after:?}"
    );
    assert!(
        closed_after <= limits.message_timeout + INTERVAL,
        "closed {closed_after:?} after the first byte, past the message timeout"
    );
    // An unmasked close frame: opcode 8, length, then the close code.
    assert_eq!(trickle.received.first(), Some(&0x88), "no close frame");
    let code = trickle.received.get(2..4).map(|code| [code[0], code[1]]);
    assert_eq!(code.map(u16::from_be_bytes), Some(1008), "close code");
    assert_no_sip_input(&mut receiver);
}
