//! The live side of the event store: committed events fanned out to
//! subscribers such as the HTTP event stream.
//!
//! The writer publishes each group of events once its transaction has
//! committed, so a subscriber never sees an event that a crash could still
//! take back. Publishing never waits. Each subscriber has a place in one
//! bounded ring ([`tokio::sync::broadcast`]); one that falls more than the
//! ring's length behind is told so on its next read, and then reads what
//! it missed from the table, which holds every event the ring held.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::{EventStore, EventStoreError, StoredEvent};

/// Events held for subscribers that have not read them yet. Past that a
/// subscriber lags and catches up from the table.
pub(crate) const FEED_CAPACITY: usize = 1024;

/// Most events read from the table at once while catching up, so a client
/// that reconnects after a long absence does not make one huge query.
const CATCH_UP_PAGE: u32 = 500;

/// Sender side of the feed; cloning shares it.
#[derive(Clone)]
pub(crate) struct EventFeed {
    sender: broadcast::Sender<Arc<StoredEvent>>,
}

impl EventFeed {
    /// Creates a feed that keeps up to `capacity` events for the slowest
    /// subscriber.
    pub(crate) fn new(capacity: usize) -> EventFeed {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventFeed { sender }
    }

    /// Hands committed events to every subscriber, in order.
    pub(crate) fn publish(&self, events: Vec<StoredEvent>) {
        for event in events {
            // An error only means that no subscriber exists right now.
            let _ = self.sender.send(Arc::new(event));
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.sender.subscribe()
    }
}

/// An item of a subscription.
#[derive(Debug)]
pub(crate) enum StreamItem {
    Event(Arc<StoredEvent>),
    /// The subscriber fell behind the feed by `skipped` events and now
    /// reads them from the table, starting after `resume_after`.
    Lagged {
        skipped: u64,
        resume_after: i64,
    },
}

/// One subscriber: first the stored events after its starting point, then
/// the live ones, each once and in sequence order.
pub(crate) struct Subscription {
    store: EventStore,
    live: broadcast::Receiver<Arc<StoredEvent>>,
    /// Only this agent's events, for a subscriber of role agent.
    agent: Option<String>,
    /// Sequence number of the last event handed out (or skipped as the
    /// starting point); nothing at or before it is handed out again.
    last_seq: i64,
    pending: VecDeque<StoredEvent>,
    catching_up: bool,
}

impl Subscription {
    /// Subscribes to `feed`, starting after event `after`, or after the
    /// newest stored event when `after` is `None` or lies beyond it (a
    /// client that remembers a number from a database since replaced).
    pub(crate) async fn start(
        store: EventStore,
        feed: &EventFeed,
        agent: Option<String>,
        after: Option<i64>,
    ) -> Result<Subscription, EventStoreError> {
        // Subscribe before reading the table: an event committed after the
        // read below is then in the ring, and one committed before it is in
        // the table, so none falls between the two.
        let live = feed.subscribe();
        let newest = store.last_seq().await?;
        let last_seq = after.map_or(newest, |after| after.min(newest));
        Ok(Subscription {
            store,
            live,
            agent,
            last_seq,
            pending: VecDeque::new(),
            catching_up: true,
        })
    }

    /// Sequence number of the last event handed out.
    pub(crate) fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Waits for the next item; `None` once the feed is gone.
    pub(crate) async fn next(&mut self) -> Result<Option<StreamItem>, EventStoreError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last_seq = event.seq;
                return Ok(Some(StreamItem::Event(Arc::new(event))));
            }
            if self.catching_up {
                let page = self
                    .store
                    .events_after(self.last_seq, self.agent.as_deref(), CATCH_UP_PAGE)
                    .await?;
                // A short page means the table has nothing more; what
                // follows is in the ring.
                if page.len() < CATCH_UP_PAGE as usize {
                    self.catching_up = false;
                }
                self.pending.extend(page);
                continue;
            }
            match self.live.recv().await {
                Ok(event) => {
                    // Events already read from the table come again
                    // through the ring; the sequence number drops them.
                    if event.seq <= self.last_seq || !self.visible(&event) {
                        continue;
                    }
                    self.last_seq = event.seq;
                    return Ok(Some(StreamItem::Event(event)));
                }
                Err(RecvError::Lagged(skipped)) => {
                    self.catching_up = true;
                    return Ok(Some(StreamItem::Lagged {
                        skipped,
                        resume_after: self.last_seq,
                    }));
                }
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    fn visible(&self, event: &StoredEvent) -> bool {
        match &self.agent {
            None => true,
            Some(agent) => event.agent.as_deref() == Some(agent.as_str()),
        }
    }
}
