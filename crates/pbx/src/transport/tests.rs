use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderValue, StatusCode};

use super::stream::KeepAlive;
use super::*;

mod slow_messages;

const OPTIONS: &[u8] =
    b"OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/WS client.invalid;branch=z9hG4bKws1\r\n\
    From: <sip:a@pbx.local>;tag=1\r\nTo: <sip:pbx@pbx.local>\r\nCall-ID: ws-1\r\n\
    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn plain_listeners() -> Listeners {
    Listeners {
        udp_tcp: loopback(),
        tls: None,
        ws: Some(loopback()),
        wss: None,
        limits: StreamLimits::default(),
        flood_limit: (0, Vec::new()),
        tls_client: None,
        udp_receive_buffer: 0,
    }
}

/// Starts the transports with a task that forwards UDP to `inputs`, as
/// the engine's own reads would.
async fn start_forwarding(
    listeners: &Listeners,
    inputs: mpsc::Sender<Input>,
) -> Result<(Sender, Bound), BindError> {
    let (sender, bound, udp) = start(listeners, inputs.clone()).await?;
    tokio::spawn(udp.forward(inputs));
    Ok((sender, bound))
}

/// Reads until the peer closes, skipping what it sends first (such as a
/// TLS alert); fails when it stays open past `limit`.
async fn assert_closed(stream: &mut TcpStream, limit: Duration) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "connection still open: {read:?}"
    );
}

#[test]
fn keep_alive_pong_per_double_crlf() {
    let mut keep_alive = KeepAlive::default();
    assert_eq!(keep_alive.take(4), 1);
    assert_eq!(keep_alive.take(2), 0);
    assert_eq!(keep_alive.take(2), 1, "ping split over two reads");
    assert_eq!(keep_alive.take(8), 2);
}

#[test]
fn keep_alive_message_drops_half_ping() {
    let mut keep_alive = KeepAlive::default();
    assert_eq!(keep_alive.take(2), 0);
    keep_alive.reset();
    assert_eq!(keep_alive.take(2), 0);
}

#[test]
fn subprotocol_offer_is_parsed() {
    let cases: [(&str, bool); 5] = [
        ("sip", true),
        ("chat, sip", true),
        ("chat,sip ,xmpp", true),
        ("SIP", false),
        ("sips", false),
    ];
    for (offer, expected) in cases {
        let mut headers = HeaderMap::new();
        headers.insert(header_name(), HeaderValue::from_str(offer).unwrap());
        assert_eq!(websocket::offers_sip(&headers), expected, "offer {offer:?}");
    }
    assert!(!websocket::offers_sip(&HeaderMap::new()));
}

fn header_name() -> tokio_tungstenite::tungstenite::http::HeaderName {
    tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL
}

#[tokio::test]
async fn tcp_ping_gets_pong() {
    let (inputs, _receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let mut stream = TcpStream::connect(bound.udp_tcp).await.unwrap();
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
}

#[tokio::test]
async fn connections_past_the_per_address_limit_are_closed() {
    let (inputs, _receiver) = mpsc::channel(16);
    let limits = StreamLimits {
        max_connections_per_address: 8,
        ..StreamLimits::default()
    };
    let listeners = Listeners {
        limits,
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..limits.max_connections_per_address {
        open.push(TcpStream::connect(bound.udp_tcp).await.unwrap());
    }
    // The WebSocket listener shares the count.
    let mut refused = TcpStream::connect(bound.ws.unwrap()).await.unwrap();
    assert_closed(&mut refused, Duration::from_secs(5)).await;

    // A slot frees when a connection closes.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(bound.udp_tcp).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), again.read(&mut byte)).await;
    assert!(read.is_err(), "a freed slot is usable again: {read:?}");
}

#[tokio::test(start_paused = true)]
async fn incomplete_message_times_out() {
    let (inputs, _receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let mut stream = TcpStream::connect(bound.udp_tcp).await.unwrap();
    stream
        .write_all(b"OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/TCP")
        .await
        .unwrap();
    // Paused time jumps ahead while every task waits, so this does not
    // take 30 real seconds.
    let timeout = StreamLimits::default().message_timeout;
    assert_closed(&mut stream, timeout + Duration::from_secs(1)).await;
}

async fn connect_websocket(
    addr: SocketAddr,
    subprotocol: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(offer) = subprotocol {
        request
            .headers_mut()
            .insert(header_name(), HeaderValue::from_str(offer).unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(socket, _)| socket)
}

#[tokio::test]
async fn websocket_message_reaches_engine_with_flow() {
    let (inputs, mut receiver) = mpsc::channel(16);
    let (sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let mut socket = connect_websocket(bound.ws.unwrap(), Some("sip"))
        .await
        .unwrap();
    socket
        .send(WsMessage::binary(Bytes::from_static(OPTIONS)))
        .await
        .unwrap();
    let input = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .unwrap()
        .unwrap();
    let Input::Sip(_, source) = input else {
        panic!("expected a SIP input");
    };
    assert_eq!(source.transport, TransportKind::Ws);
    assert!(source.connection.is_some());

    // What the engine sends to that flow arrives as one text message.
    sender.send(source, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, WsMessage::text("SIP/2.0 200 OK\r\n\r\n"));
}

/// Encodes `payload` as one masked binary WebSocket frame, as a client
/// sends it (RFC 6455 section 5.2).
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x82];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ mask[i % 4]),
    );
    frame
}

#[tokio::test]
async fn websocket_frame_with_the_upgrade_is_kept() {
    let (inputs, mut receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let mut stream = TcpStream::connect(bound.ws.unwrap()).await.unwrap();
    // The upgrade request and the first SIP message in one write, so they
    // arrive in one segment.
    let mut bytes = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        .to_vec();
    bytes.extend(client_frame(OPTIONS));
    stream.write_all(&bytes).await.unwrap();

    let mut head = [0; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let input = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("the frame after the upgrade reaches the engine")
        .unwrap();
    let Input::Sip(message, source) = input else {
        panic!("expected a SIP input");
    };
    let sip_message::Message::Request(request) = message else {
        panic!("expected the OPTIONS request");
    };
    assert_eq!(request.headers.call_id(), Some("ws-1"));
    assert_eq!(source.transport, TransportKind::Ws);
}

#[tokio::test]
async fn websocket_without_sip_subprotocol_gets_400() {
    let (inputs, _receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let error = connect_websocket(bound.ws.unwrap(), Some("chat"))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP rejection, got {error:?}");
    };
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = connect_websocket(bound.ws.unwrap(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, tokio_tungstenite::tungstenite::Error::Http(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn udp_flood_from_one_source_is_cut_to_its_rate() {
    let (inputs, mut receiver) = mpsc::channel(1024);
    let listeners = Listeners {
        flood_limit: (5, Vec::new()),
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let options = |branch: &str| {
        format!(
            "OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{branch}\r\n\
             From: <sip:a@test>;tag=1\r\nTo: <sip:pbx@test>\r\nCall-ID: {branch}@test\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let flooder = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    for i in 0..100 {
        flooder
            .send_to(options(&format!("f{i}")).as_bytes(), bound.udp_tcp)
            .await
            .unwrap();
    }
    let other = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
    other
        .send_to(options("other").as_bytes(), bound.udp_tcp)
        .await
        .unwrap();
    let mut from_flooder = 0;
    let mut from_other = 0;
    while let Ok(Some(input)) =
        tokio::time::timeout(Duration::from_millis(500), receiver.recv()).await
    {
        if let crate::engine::Input::Sip(_, source) = input {
            if source.addr.ip() == flooder.local_addr().unwrap().ip() {
                from_flooder += 1;
            } else {
                from_other += 1;
            }
        }
    }
    // The burst (10), plus what the time the sends took refills at 5/s.
    assert!((10..=30).contains(&from_flooder), "{from_flooder} accepted");
    assert_eq!(from_other, 1);
}

#[tokio::test]
async fn tcp_oversized_message_in_one_read_closes() {
    let (inputs, mut receiver) = mpsc::channel(16);
    let listeners = Listeners {
        limits: StreamLimits {
            max_message_bytes: 1024,
            ..StreamLimits::default()
        },
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut stream = TcpStream::connect(bound.udp_tcp).await.unwrap();
    let body = "x".repeat(2000);
    let message = format!(
        "OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-big\r\n\
         From: <sip:a@test>;tag=1\r\nTo: <sip:pbx@test>\r\nCall-ID: big@test\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(message.as_bytes()).await.unwrap();
    assert_closed(&mut stream, Duration::from_secs(5)).await;
    while let Ok(input) = receiver.try_recv() {
        assert!(
            !matches!(input, crate::engine::Input::Sip(..)),
            "the message reached the engine"
        );
    }
}

#[tokio::test]
async fn websocket_oversized_message_closes_with_1009() {
    let (inputs, _receiver) = mpsc::channel(16);
    let listeners = Listeners {
        limits: StreamLimits {
            max_message_bytes: 1024,
            ..StreamLimits::default()
        },
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut socket = connect_websocket(bound.ws.unwrap(), Some("sip"))
        .await
        .unwrap();
    socket
        .send(WsMessage::binary(vec![b'x'; 4096]))
        .await
        .unwrap();
    let close = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap();
    let Some(Ok(WsMessage::Close(Some(frame)))) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(u16::from(frame.code), 1009);
}

/// A self-signed certificate for `localhost`, as a server configuration
/// and the root a client trusts.
fn test_certificate() -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let chain = dir.path().join("chain.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&chain, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let server = crate::tls::server_config(&chain, &key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    (server, roots)
}

fn tls_client(roots: rustls::RootCertStore) -> tokio_rustls::TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_message_reaches_engine_and_pong_returns() {
    let (server, roots) = test_certificate();
    let (inputs, mut receiver) = mpsc::channel(16);
    let listeners = Listeners {
        tls: Some((loopback(), server)),
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let tcp = TcpStream::connect(bound.tls.unwrap()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tls_client(roots).connect(name, tcp).await.unwrap();
    tls.write_all(b"\r\n\r\n").await.unwrap();
    tls.write_all(OPTIONS).await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    let input = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .unwrap()
        .unwrap();
    let Input::Sip(_, source) = input else {
        panic!("expected a SIP input");
    };
    assert_eq!(source.transport, TransportKind::Tls);
}

#[tokio::test]
async fn tls_garbage_handshake_is_closed() {
    let (server, _) = test_certificate();
    let (inputs, _receiver) = mpsc::channel(16);
    let listeners = Listeners {
        tls: Some((loopback(), server)),
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut stream = TcpStream::connect(bound.tls.unwrap()).await.unwrap();
    stream.write_all(OPTIONS).await.unwrap();
    assert_closed(&mut stream, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn wss_upgrade_over_tls_reaches_engine() {
    let (server, roots) = test_certificate();
    let (inputs, mut receiver) = mpsc::channel(16);
    let listeners = Listeners {
        wss: Some((loopback(), server)),
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let addr = bound.wss.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_client(roots).connect(name, tcp).await.unwrap();
    let mut request = format!("wss://localhost:{}/", addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert(header_name(), HeaderValue::from_static("sip"));
    let (mut socket, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    assert_eq!(
        response.headers().get(header_name()).unwrap(),
        "sip",
        "the 101 names the chosen subprotocol"
    );
    socket
        .send(WsMessage::text(
            String::from_utf8(OPTIONS.to_vec()).unwrap(),
        ))
        .await
        .unwrap();
    let input = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .unwrap()
        .unwrap();
    let Input::Sip(_, source) = input else {
        panic!("expected a SIP input");
    };
    assert_eq!(source.transport, TransportKind::Wss);
}

/// Opens a TCP connection to `server` from the loopback address `local`.
async fn connect_from(local: &str, server: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

fn tcp_options(branch: &str) -> String {
    format!(
        "OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{branch}\r\n\
         From: <sip:a@test>;tag=1\r\nTo: <sip:pbx@test>\r\nCall-ID: {branch}@test\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn tcp_flood_from_one_source_is_cut_to_its_rate() {
    let (inputs, mut receiver) = mpsc::channel(1024);
    let listeners = Listeners {
        flood_limit: (5, Vec::new()),
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut flooder = connect_from("127.0.0.2", bound.udp_tcp).await;
    let flood: String = (0..100).map(|i| tcp_options(&format!("t{i}"))).collect();
    flooder.write_all(flood.as_bytes()).await.unwrap();
    let mut other = connect_from("127.0.0.3", bound.udp_tcp).await;
    other
        .write_all(tcp_options("other").as_bytes())
        .await
        .unwrap();

    let mut from_flooder = 0;
    let mut from_other = 0;
    while let Ok(Some(input)) =
        tokio::time::timeout(Duration::from_millis(500), receiver.recv()).await
    {
        if let crate::engine::Input::Sip(_, source) = input {
            if source.addr.ip() == "127.0.0.2".parse::<IpAddr>().unwrap() {
                from_flooder += 1;
            } else {
                from_other += 1;
            }
        }
    }
    // The burst (10), plus what the time the reads took refills at 5/s.
    assert!((10..=30).contains(&from_flooder), "{from_flooder} accepted");
    assert_eq!(from_other, 1);
    // The flooder's connection stays open: its excess is dropped, not the
    // connection, so its calls in progress are untouched.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), flooder.read(&mut byte)).await;
    assert!(read.is_err(), "the connection was closed: {read:?}");
}

#[tokio::test]
async fn connection_attempts_past_the_rate_are_closed() {
    let (inputs, _receiver) = mpsc::channel(16);
    let listeners = Listeners {
        limits: StreamLimits {
            max_connection_attempts_per_sec: 1,
            ..StreamLimits::default()
        },
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..30 {
        streams.push(connect_from("127.0.0.2", bound.udp_tcp).await);
    }
    let mut closed = 0;
    for stream in &mut streams {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    // The burst is 10 connections, and the 30 connects take well under a
    // second, which refills at most one or two.
    assert!((18..=20).contains(&closed), "{closed} of 30 closed");

    let mut other = connect_from("127.0.0.3", bound.udp_tcp).await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), other.read(&mut byte)).await;
    assert!(read.is_err(), "another source is not limited: {read:?}");
}

#[tokio::test]
async fn trunk_is_exempt_from_per_address_limits() {
    let (inputs, _receiver) = mpsc::channel(16);
    let trunk: sip_server::network::IpNetwork = "127.0.0.2/32".parse().unwrap();
    let listeners = Listeners {
        limits: StreamLimits {
            max_connections_per_address: 2,
            max_connection_attempts_per_sec: 1,
            ..StreamLimits::default()
        },
        flood_limit: (5, vec![trunk]),
        ..plain_listeners()
    };
    let (_sender, bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..12 {
        streams.push(connect_from("127.0.0.2", bound.udp_tcp).await);
    }
    for (index, stream) in streams.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await;
        assert!(
            read.is_err(),
            "trunk connection {index} was closed: {read:?}"
        );
    }
    // Another address still gets the per-address cap.
    let _first = connect_from("127.0.0.3", bound.udp_tcp).await;
    let _second = connect_from("127.0.0.3", bound.udp_tcp).await;
    let mut third = connect_from("127.0.0.3", bound.udp_tcp).await;
    assert_closed(&mut third, Duration::from_secs(5)).await;
}

fn tcp_target(addr: SocketAddr) -> Target {
    Target {
        transport: TransportKind::Tcp,
        addr,
        connection: None,
    }
}

#[tokio::test]
async fn opened_connection_is_reused_and_pinged() {
    let (inputs, _receiver) = mpsc::channel(16);
    let listeners = Listeners {
        limits: StreamLimits {
            keepalive_interval: Duration::from_millis(200),
            ..StreamLimits::default()
        },
        ..plain_listeners()
    };
    let (sender, _bound) = start_forwarding(&listeners, inputs).await.unwrap();
    let server = TcpListener::bind(loopback()).await.unwrap();
    let addr = server.local_addr().unwrap();
    sender.send(tcp_target(addr), Bytes::from_static(b"first"));
    sender.send(tcp_target(addr), Bytes::from_static(b"second"));
    let (mut connection, _) = tokio::time::timeout(Duration::from_secs(5), server.accept())
        .await
        .expect("the PBX connects")
        .unwrap();
    let expected = b"firstsecond\r\n\r\n";
    let mut received = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(5), connection.read_exact(&mut received))
        .await
        .expect("both messages and a ping arrive")
        .unwrap();
    assert_eq!(received, expected);
    let second = tokio::time::timeout(Duration::from_millis(300), server.accept()).await;
    assert!(second.is_err(), "a second connection was opened");
}

#[tokio::test]
async fn refused_connection_reports_transport_failure() {
    let (inputs, mut receiver) = mpsc::channel(16);
    let (sender, _bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    // Bound and dropped: nothing listens there any more.
    let addr = TcpListener::bind(loopback())
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    sender.send(tcp_target(addr), Bytes::from_static(b"INVITE"));
    let input = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("the failure is reported")
        .unwrap();
    match input {
        crate::engine::Input::TransportFailed {
            transport,
            addr: failed,
        } => {
            assert_eq!(transport, TransportKind::Tcp);
            assert_eq!(failed, addr);
        }
        _ => panic!("expected TransportFailed"),
    }
}

#[tokio::test]
async fn stun_binding_request_answered_on_sip_port() {
    let (inputs, mut receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    request.extend_from_slice(&[0x5A; 12]);
    phone.send_to(&request, bound.udp_tcp).await.unwrap();
    let mut response = [0u8; 64];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), phone.recv_from(&mut response))
        .await
        .expect("a binding response arrives")
        .unwrap();
    assert_eq!(length, 32);
    assert_eq!(&response[0..2], &[0x01, 0x01], "binding success");
    assert_eq!(&response[8..20], &[0x5A; 12], "same transaction id");
    let port = u16::from_be_bytes([response[26], response[27]]) ^ 0x2112;
    assert_eq!(port, phone.local_addr().unwrap().port());
    let engine_input = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await;
    assert!(engine_input.is_err(), "STUN reached the engine");
}

#[tokio::test(start_paused = true)]
async fn silent_connection_closed_before_idle_timeout() {
    let (inputs, _receiver) = mpsc::channel(16);
    let (_sender, bound) = start_forwarding(&plain_listeners(), inputs).await.unwrap();
    let mut silent = TcpStream::connect(bound.udp_tcp).await.unwrap();
    let mut talking = TcpStream::connect(bound.udp_tcp).await.unwrap();
    talking
        .write_all(tcp_options("s1").as_bytes())
        .await
        .unwrap();
    assert_closed(
        &mut silent,
        super::deadline::FIRST_MESSAGE_TIMEOUT + Duration::from_secs(1),
    )
    .await;
    // A connection that sent a message keeps the longer idle timeout.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(60), talking.read(&mut byte)).await;
    assert!(read.is_err(), "the talking connection was closed: {read:?}");
}
