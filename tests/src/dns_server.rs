//! A DNS server on a loopback UDP port that answers from a fixed list of
//! records, for the tests of RFC 3263 resolution. A name with no record at
//! all gets NXDOMAIN; a name with records of other types gets an empty
//! answer. It logs every question, so a test can check the order of the
//! PBX's NAPTR, SRV and A queries.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, NAPTR, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// TTL of every answer, long enough that a test never sees a refresh.
const TTL_SECS: u32 = 300;
/// How often the serving thread checks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

fn name(text: &str) -> Name {
    let absolute = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(absolute).expect("valid DNS name")
}

/// Builds a NAPTR record of `owner` with flag `S`, pointing at `replacement`.
pub fn naptr(
    owner: &str,
    order: u16,
    preference: u16,
    services: &str,
    replacement: &str,
) -> Record {
    let data = NAPTR::new(
        order,
        preference,
        b"S".to_vec().into_boxed_slice(),
        services.as_bytes().to_vec().into_boxed_slice(),
        Vec::new().into_boxed_slice(),
        name(replacement),
    );
    Record::from_rdata(name(owner), TTL_SECS, RData::NAPTR(data))
}

/// Builds an SRV record of `owner`.
pub fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    let data = SRV::new(priority, weight, port, name(target));
    Record::from_rdata(name(owner), TTL_SECS, RData::SRV(data))
}

/// Builds an A record of `owner`.
pub fn a(owner: &str, address: Ipv4Addr) -> Record {
    Record::from_rdata(name(owner), TTL_SECS, RData::A(A(address)))
}

/// The running server; it stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    questions: Arc<Mutex<Vec<(String, RecordType)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds a free UDP port on 127.0.0.1 and serves `records`.
    pub fn start(records: Vec<Record>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS server");
        socket
            .set_read_timeout(Some(STOP_CHECK))
            .expect("read timeout");
        let addr = socket.local_addr().expect("DNS server address");
        let questions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let questions = questions.clone();
            let stop = stop.clone();
            std::thread::spawn(move || serve(&socket, &records, &questions, &stop))
        };
        DnsServer {
            addr,
            questions,
            stop,
            thread: Some(thread),
        }
    }

    /// Questions asked so far, as (name without the final dot, type).
    pub fn questions(&self) -> Vec<(String, RecordType)> {
        self.questions.lock().expect("question log").clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    socket: &UdpSocket,
    records: &[Record],
    questions: &Mutex<Vec<(String, RecordType)>>,
    stop: &AtomicBool,
) {
    let mut buffer = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((length, peer)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let Ok(request) = Message::from_vec(&buffer[..length]) else {
            continue;
        };
        if let Some(query) = request.queries.first() {
            let asked = query.name().to_ascii();
            let asked = asked.trim_end_matches('.').to_ascii_lowercase();
            questions
                .lock()
                .expect("question log")
                .push((asked, query.query_type()));
        }
        let response = answer(&request, records);
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

fn answer(request: &Message, records: &[Record]) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let owned: Vec<&Record> = records
        .iter()
        .filter(|record| record.name == *query.name())
        .collect();
    if owned.is_empty() {
        response.metadata.response_code = ResponseCode::NXDomain;
        return response;
    }
    let answers = owned
        .into_iter()
        .filter(|record| record.record_type() == query.query_type())
        .cloned();
    response.add_answers(answers);
    response
}
