//! SIP transaction layer (RFC 3261 section 17, RFC 6026, RFC 3581), sans-IO.
//!
//! The layer never reads a clock or touches a socket. The driver feeds it
//! parsed messages with [`TransactionLayer::handle_message`], lets the TU
//! start client transactions and respond on server ones, and after every call
//! drains [`TransactionLayer::poll_transmit`] (datagrams and stream messages
//! to send) and [`TransactionLayer::poll_event`] (what the TU must act on).
//! It then sleeps until [`TransactionLayer::poll_timeout`] and calls
//! [`TransactionLayer::handle_timeout`]. Any call that takes `now` may change
//! the next timeout, so the driver asks for it again after each one.
//!
//! Matching follows sections 17.1.3 and 17.2.3. A request whose top Via
//! branch lacks the `z9hG4bK` cookie (RFC 2543) is matched on a branch built
//! from Call-ID, CSeq number, From tag, Request-URI and the top Via, which is
//! section 17.2.3's older rule minus the To tag comparison.
//!
//! Every transaction ends by a timer or, on reliable transports where
//! Timers D, I, J and K are zero, at once; [`TransactionLayer::len`] counts
//! those still alive.

mod client;
mod completed;
mod key;
mod server;
mod table;
mod timers;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand::Rng;
use sip_message::{Message, Method, Request, Response};
use tracing::{debug, error, trace, warn};

use client::ClientTransaction;
use completed::{Completed, CompletedStore};
use key::{MAGIC_COOKIE, MessageError};
pub use key::{Side, TransactionKey};
use server::ServerTransaction;
use table::TransactionTable;
pub use timers::TimerConfig;
use timers::Timers;

/// Transport protocol of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118), one message per frame.
    Ws,
    /// SIP over WebSocket over TLS.
    Wss,
}

impl TransportKind {
    /// Returns true for transports that deliver in order without loss, over
    /// which the transaction layer does not retransmit.
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// Transport token of the Via header ("UDP", "TCP", "TLS", "WS", "WSS").
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }

    /// Parses a Via transport token or a `transport=` URI parameter value,
    /// ignoring case.
    pub fn from_token(token: &str) -> Option<TransportKind> {
        [
            TransportKind::Udp,
            TransportKind::Tcp,
            TransportKind::Tls,
            TransportKind::Ws,
            TransportKind::Wss,
        ]
        .into_iter()
        .find(|kind| kind.via_token().eq_ignore_ascii_case(token))
    }
}

/// Where a message goes or came from. `connection` names an open stream
/// connection when there is one, so a response goes back over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    pub connection: Option<u64>,
}

/// Notification for the TU.
#[derive(Clone, Debug)]
pub enum Event {
    /// A new request for the TU. ACK for a 2xx and stray ACKs come here with
    /// `key: None` (no server transaction).
    Request {
        key: Option<TransactionKey>,
        request: Request,
        source: Target,
    },
    /// A response matched to a client transaction: provisional, final, and
    /// 2xx retransmissions of INVITE (so the TU can send its ACK again).
    Response {
        key: TransactionKey,
        response: Response,
    },
    /// Timer B or F fired, or the transport failed: the client transaction
    /// ended without a final response. The TU treats it as 408.
    Timeout { key: TransactionKey },
    /// The transport could not deliver the request: the connection was
    /// refused, its TLS handshake failed, or it closed before a final
    /// response. The TU treats it as 503 (RFC 3261 section 8.1.3.1).
    TransportError { key: TransactionKey },
    /// A 2xx to INVITE sent by the TU was retransmitted for 64*T1 without an ACK.
    AckTimeout { key: TransactionKey },
    /// A response arrived that matched no transaction (forwarded by a
    /// stateless proxy, or late); B2BUAs log and drop it.
    StrayResponse { response: Response, source: Target },
}

/// One message to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    pub target: Target,
    pub payload: Bytes,
}

/// Messages and events the transactions produced, not yet polled.
#[derive(Default)]
struct Outbox {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Outbox {
    fn transmit(&mut self, target: Target, payload: Bytes) {
        self.transmits.push_back(Transmit { target, payload });
    }
}

/// Boxed, so that moving an entry in and out of the table copies a pointer
/// instead of about 500 bytes.
enum Transaction {
    Client(Box<ClientTransaction>),
    Server(Box<ServerTransaction>),
}

impl Transaction {
    fn timers(&self) -> &Timers {
        match self {
            Transaction::Client(client) => &client.timers,
            Transaction::Server(server) => &server.timers,
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Transaction::Client(client) => client.is_terminated(),
            Transaction::Server(server) => server.is_terminated(),
        }
    }
}

struct Entry {
    /// Creation order, so that timers due at the same instant fire in the
    /// same order on every run.
    sequence: u64,
    /// Whether `by_sequence` contains this transaction, which it does from
    /// its first deadline on. A non-INVITE server transaction has none until
    /// its final response, which most often ends it or moves it to the
    /// completed store, so a REGISTER or OPTIONS never touches that index.
    indexed: bool,
    transaction: Transaction,
}

/// Hash map of the transaction layer. foldhash, randomly seeded, is much
/// cheaper than the standard library's SipHash on the short keys here, and
/// its seed still keeps a peer from choosing colliding branches in advance.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// All client and server transactions of one SIP element.
pub struct TransactionLayer {
    config: TimerConfig,
    transactions: TransactionTable,
    /// Transaction keys by creation sequence, for the deadline heap.
    by_sequence: HashMap<u64, TransactionKey>,
    /// Next deadline of each transaction as of its last change, earliest
    /// first, so finding due timers does not scan every transaction (a
    /// finished transaction lingers for Timer J or K, so there are many).
    /// Entries go stale when a transaction's timers move or it ends; every
    /// change ends with [`Self::tidy`], so the top entry is always current.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_sequence: u64,
    /// Non-INVITE server transactions over UDP that sent their final
    /// response, kept apart from `transactions` until Timer J fires.
    completed: CompletedStore,
    outbox: Outbox,
}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> TransactionLayer {
        TransactionLayer::with_capacity(timers, 0)
    }

    /// Creates a layer whose tables take `capacity` transactions before
    /// they grow. Growing a hash map moves every entry at once, which
    /// stopped the PBX's engine for up to 106 ms at 57,344 transactions
    /// (docs/benchmarks.md), so a server reserves its expected peak at
    /// start. Memory pages of the reserved space stay untouched until a
    /// transaction uses them.
    pub fn with_capacity(timers: TimerConfig, capacity: usize) -> TransactionLayer {
        TransactionLayer {
            config: timers.clone(),
            transactions: TransactionTable::with_capacity(capacity),
            by_sequence: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            deadlines: BinaryHeap::with_capacity(capacity),
            next_sequence: 0,
            completed: CompletedStore::new(timers.transaction_timeout()),
            outbox: Outbox::default(),
        }
    }

    /// New RFC 3261 branch: "z9hG4bK" + random.
    pub fn new_branch() -> String {
        let mut rng = rand::rng();
        format!(
            "{MAGIC_COOKIE}{:016x}{:08x}",
            rng.random::<u64>(),
            rng.random::<u32>()
        )
    }

    /// A parsed message from the transport. Retransmitted requests are
    /// absorbed (the last response is sent again); everything else becomes
    /// an Event.
    pub fn handle_message(&mut self, message: Message, source: Target, now: Instant) {
        match message {
            Message::Request(request) => self.handle_request(request, source, now),
            Message::Response(response) => self.handle_response(response, source, now),
        }
    }

    fn handle_request(&mut self, mut request: Request, source: Target, now: Instant) {
        let via = match key::validate_request(&request) {
            Ok(via) => via,
            Err(error) => return self.reject_invalid_request(request, source, &error),
        };
        let key = TransactionKey::for_request(&request, &via);
        let via = server::stamp_top_via(&mut request, &via, source.addr);

        if let Some(entry) = self.transactions.get_mut(&key) {
            let Transaction::Server(server) = &mut entry.transaction else {
                return;
            };
            if request.method == Method::Ack {
                if server.on_ack(&self.config, now) {
                    // An ACK for a 2xx that reuses the INVITE's branch.
                    self.outbox.events.push_back(Event::Request {
                        key: None,
                        request,
                        source,
                    });
                }
            } else {
                server.on_retransmission(&mut self.outbox);
            }
            self.remove_if_terminated(&key);
            return;
        }
        if let Some(Completed { target, response }) = self.completed.get(&key) {
            trace!(%key, "last response sent again for a request retransmission");
            self.outbox.transmit(*target, response.clone());
            return;
        }

        if request.method == Method::Ack {
            // ACK for a 2xx, or for a transaction already gone.
            self.outbox.events.push_back(Event::Request {
                key: None,
                request,
                source,
            });
            return;
        }

        let target = server::response_target(&via, source);
        debug!(%key, "server transaction created");
        let server = ServerTransaction::new(key.clone(), &request, target, now);
        self.insert(key.clone(), Transaction::Server(Box::new(server)));
        self.outbox.events.push_back(Event::Request {
            key: Some(key),
            request,
            source,
        });
    }

    /// Rejects a request that cannot have a transaction with a stateless 400,
    /// unless it is an ACK or has no top Via to send the 400 to.
    fn reject_invalid_request(
        &mut self,
        mut request: Request,
        source: Target,
        error: &MessageError,
    ) {
        debug!(method = %request.method, %error, "invalid request");
        if request.method == Method::Ack {
            return;
        }
        let Ok(via) = request.headers.top_via() else {
            return;
        };
        let via = server::stamp_top_via(&mut request, &via, source.addr);
        let target = server::response_target(&via, source);
        let reason = error.reason_phrase();
        let response = Response::for_request(&request, 400, Some(&reason));
        self.outbox.transmit(target, response.to_bytes());
    }

    fn handle_response(&mut self, response: Response, source: Target, now: Instant) {
        let key = match TransactionKey::for_response(&response) {
            Ok(key) => key,
            Err(error) => {
                debug!(status = response.status, %error, "unmatchable response dropped");
                return;
            }
        };
        match self.transactions.get_mut(&key) {
            Some(Entry {
                transaction: Transaction::Client(client),
                ..
            }) => {
                client.on_response(response, &self.config, now, &mut self.outbox);
                self.remove_if_terminated(&key);
            }
            _ => {
                trace!(%key, status = response.status, "stray response");
                self.outbox
                    .events
                    .push_back(Event::StrayResponse { response, source });
            }
        }
    }

    /// Starts a client transaction. The request must carry a top Via with a
    /// fresh branch (the TU builds it). ACK must not go through here.
    ///
    /// A request without a top Via branch, or whose branch is already in use,
    /// is not sent, and the returned key at once reports [`Event::Timeout`].
    /// An ACK is sent statelessly.
    pub fn send_request(
        &mut self,
        request: Request,
        target: Target,
        now: Instant,
    ) -> TransactionKey {
        let branch = request
            .headers
            .top_via()
            .ok()
            .and_then(|via| via.branch().map(str::to_owned));
        let Some(branch) = branch else {
            error!(method = %request.method, "request without a top Via branch not sent");
            let key = TransactionKey::client(Self::new_branch(), request.method.clone());
            self.outbox
                .events
                .push_back(Event::Timeout { key: key.clone() });
            return key;
        };
        let key = TransactionKey::client(branch, request.method.clone());
        if request.method == Method::Ack {
            error!(%key, "ACK sent statelessly: it has no client transaction");
            self.outbox.transmit(target, request.to_bytes());
            return key;
        }
        if self.transactions.contains_key(&key) {
            // Reporting a timeout for a fresh key keeps the live transaction
            // that owns the branch unaffected.
            error!(%key, "branch already in use, request not sent");
            let fresh = TransactionKey::client(Self::new_branch(), request.method);
            self.outbox
                .events
                .push_back(Event::Timeout { key: fresh.clone() });
            return fresh;
        }
        debug!(%key, "client transaction created");
        let client = ClientTransaction::start(
            key.clone(),
            request,
            target,
            &self.config,
            now,
            &mut self.outbox,
        );
        self.insert(key.clone(), Transaction::Client(Box::new(client)));
        self.remove_if_terminated(&key);
        key
    }

    /// Sends a response on a server transaction. A 2xx to INVITE moves it to
    /// Accepted and is retransmitted (T1 doubling, capped at T2) until the
    /// TU reports the ACK with `ack_received` or 64*T1 passes.
    ///
    /// A response for a transaction that no longer exists is dropped.
    pub fn send_response(&mut self, key: &TransactionKey, response: Response, now: Instant) {
        match self.transactions.get_mut(key) {
            Some(Entry {
                transaction: Transaction::Server(server),
                ..
            }) => {
                server.send_response(response, &self.config, now, &mut self.outbox);
                if let Some(completed) = server.completed_response() {
                    self.move_to_completed(key, completed, now);
                }
                self.remove_if_terminated(key);
            }
            _ => {
                warn!(%key, status = response.status, "response for no server transaction dropped")
            }
        }
    }

    /// Sends `response`, a final response to the non-INVITE request of
    /// server transaction `key`, and ends the transaction at once instead of
    /// keeping it for Timer J. A retransmission of the request then reaches
    /// the TU again, as at a stateless UAS (RFC 3261 section 8.2.7). Meant
    /// for responses whose repetition is harmless, such as a digest
    /// challenge: a challenged request carries no credentials, so holding
    /// its transaction for 32 s would let anyone who can send datagrams fill
    /// this layer. Other responses take the usual path.
    pub fn send_response_statelessly(
        &mut self,
        key: &TransactionKey,
        response: Response,
        now: Instant,
    ) {
        if key.method() == &Method::Invite || response.status < 200 {
            self.send_response(key, response, now);
            return;
        }
        match self.transactions.remove(key) {
            Some(Entry {
                sequence,
                indexed,
                transaction: Transaction::Server(mut server),
            }) => {
                if indexed {
                    self.by_sequence.remove(&sequence);
                }
                server.send_response(response, &self.config, now, &mut self.outbox);
                debug!(%key, "transaction ended with its stateless response");
                self.tidy();
            }
            other => {
                // Not a server transaction: the usual path logs and drops
                // the response.
                if let Some(entry) = other {
                    self.transactions.insert(key.clone(), entry);
                }
                self.send_response(key, response, now);
            }
        }
    }

    /// The TU matched an ACK to the dialog of the 2xx sent on `key`.
    pub fn ack_received(&mut self, key: &TransactionKey) {
        if let Some(Entry {
            transaction: Transaction::Server(server),
            ..
        }) = self.transactions.get_mut(key)
        {
            server.on_ack_reported();
        }
        self.remove_if_terminated(key);
    }

    /// Sends without a transaction: ACK for 2xx, stateless replies.
    pub fn send_stateless(&mut self, message: Message, target: Target) {
        self.outbox.transmit(target, message.to_bytes());
    }

    /// CANCEL arriving for the INVITE server transaction `invite`: its key.
    /// Accepts the CANCEL as received or as passed up in [`Event::Request`].
    pub fn invite_for_cancel(&self, cancel: &Request) -> Option<TransactionKey> {
        let via = cancel.headers.top_via().ok()?;
        let key = TransactionKey::for_request(cancel, &via).with_method(Method::Invite);
        match self.transactions.get(&key)?.transaction {
            Transaction::Server(_) => Some(key),
            Transaction::Client(_) => None,
        }
    }

    /// The stream connection `connection` closed or failed: client
    /// transactions sent over it end with [`Event::Timeout`] unless they had
    /// a final response, and server transactions responding over it end.
    pub fn connection_closed(&mut self, connection: u64) {
        let closed = Some(connection);
        for entry in self.transactions.values_mut() {
            match &mut entry.transaction {
                Transaction::Client(client) if client.target().connection == closed => {
                    client.on_transport_failure(&mut self.outbox);
                }
                Transaction::Server(server) if server.response_target().connection == closed => {
                    server.on_transport_failure();
                }
                _ => {}
            }
        }
        let by_sequence = &mut self.by_sequence;
        let deadlines = &mut self.deadlines;
        self.transactions.retain(|key, entry| {
            let live = !entry.transaction.is_terminated();
            if !live {
                if entry.indexed {
                    by_sequence.remove(&entry.sequence);
                }
            } else if let Some((at, _)) = entry.transaction.timers().next() {
                deadlines.push(Reverse((at, entry.sequence)));
                if !entry.indexed {
                    by_sequence.insert(entry.sequence, key.clone());
                    entry.indexed = true;
                }
            }
            live
        });
        self.tidy();
    }

    /// Ends the client transactions sent to `addr` over `transport` without
    /// a final response, because the transport could not reach it (connect
    /// refused, TLS handshake failed, or the connection the PBX opened
    /// closed). Each reports [`Event::TransportError`].
    pub fn transport_failed(&mut self, transport: TransportKind, addr: SocketAddr) {
        let mut failed = Vec::new();
        for (key, entry) in self.transactions.iter_mut() {
            if let Transaction::Client(client) = &mut entry.transaction {
                let target = client.target();
                if target.transport == transport && target.addr == addr {
                    client.on_transport_error(&mut self.outbox);
                    failed.push(key.clone());
                }
            }
        }
        for key in failed {
            self.remove_if_terminated(&key);
        }
        self.tidy();
    }

    /// Fires every timer due at or before `now`, each at its own deadline,
    /// so late calls do not shift the later schedule.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.completed.expire(now);
        let mut due: Vec<(Instant, u64, TransactionKey)> = Vec::new();
        while let Some(Reverse((at, sequence))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(key) = self.by_sequence.get(&sequence) else {
                continue;
            };
            let Some(entry) = self.transactions.get(key) else {
                continue;
            };
            // Only the entry matching the transaction's current deadline
            // counts; a stale one for the same transaction is dropped.
            if let Some((next, _)) = entry.transaction.timers().next()
                && next <= now
                && !due.iter().any(|(_, seen, _)| *seen == sequence)
            {
                due.push((next, sequence, key.clone()));
            }
        }
        due.sort_by_key(|(at, sequence, _)| (*at, *sequence));

        for (_, _, key) in due {
            let Some(entry) = self.transactions.get_mut(&key) else {
                continue;
            };
            while let Some((at, kind)) = entry.transaction.timers().next() {
                if at > now || entry.transaction.is_terminated() {
                    break;
                }
                match &mut entry.transaction {
                    Transaction::Client(client) => {
                        client.on_timer(kind, &self.config, &mut self.outbox)
                    }
                    Transaction::Server(server) => {
                        server.on_timer(kind, &self.config, &mut self.outbox)
                    }
                }
            }
            self.remove_if_terminated(&key);
        }
        self.tidy();
    }

    /// Returns the earliest timer of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transactions = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (transactions, self.completed.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next message to send; drain it after every call into the layer.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.transmits.pop_front()
    }

    /// Next event for the TU; drain it after every call into the layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outbox.events.pop_front()
    }

    /// Returns whether the transaction `key` still takes a response, for a
    /// TU that responds to a request later than it received it. A transaction
    /// that already sent its final response and waits out Timer J does not.
    pub fn contains(&self, key: &TransactionKey) -> bool {
        self.transactions.contains_key(key)
    }

    /// Live transactions, including those waiting out Timer J, for leak
    /// checks and overload control.
    pub fn len(&self) -> usize {
        self.transactions.len() + self.completed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the server transaction `key`, which has sent its final
    /// response, out of the table into the store of completed ones. There
    /// it costs no timer entry and a smaller map slot.
    fn move_to_completed(&mut self, key: &TransactionKey, completed: Completed, now: Instant) {
        if let Some(entry) = self.transactions.remove(key)
            && entry.indexed
        {
            self.by_sequence.remove(&entry.sequence);
        }
        self.completed.insert(key.clone(), completed, now);
        self.tidy();
    }

    fn insert(&mut self, key: TransactionKey, transaction: Transaction) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let indexed = match transaction.timers().next() {
            Some((at, _)) => {
                self.deadlines.push(Reverse((at, sequence)));
                self.by_sequence.insert(sequence, key.clone());
                true
            }
            None => false,
        };
        self.transactions.insert(
            key,
            Entry {
                sequence,
                indexed,
                transaction,
            },
        );
        self.tidy();
    }

    /// Called after every change to the transaction `key`: removes it when
    /// it terminated, else files its next deadline.
    fn remove_if_terminated(&mut self, key: &TransactionKey) {
        let Some(entry) = self.transactions.get_mut(key) else {
            return;
        };
        if entry.transaction.is_terminated() {
            debug!(%key, "transaction removed");
            if entry.indexed {
                self.by_sequence.remove(&entry.sequence);
            }
            self.transactions.remove(key);
        } else if let Some((at, _)) = entry.transaction.timers().next() {
            self.deadlines.push(Reverse((at, entry.sequence)));
            if !entry.indexed {
                self.by_sequence.insert(entry.sequence, key.clone());
                entry.indexed = true;
            }
        }
        self.tidy();
    }

    /// Drops stale entries from the top of the deadline heap, so its top is
    /// the true earliest deadline: every current deadline has an entry, and
    /// an entry is current while its transaction's next deadline equals it.
    fn tidy(&mut self) {
        while let Some(Reverse((at, sequence))) = self.deadlines.peek().copied() {
            let current = self
                .by_sequence
                .get(&sequence)
                .and_then(|key| self.transactions.get(key))
                .and_then(|entry| entry.transaction.timers().next())
                .is_some_and(|(next, _)| next == at);
            if current {
                return;
            }
            self.deadlines.pop();
        }
    }
}
