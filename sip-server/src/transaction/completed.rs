//! Finished non-INVITE server transactions over UDP. Each one waits out
//! Timer J (RFC 3261 section 17.2.2) only to send its final response again
//! when the request is retransmitted, so it keeps the response and its
//! target, and no per-transaction timer.
//!
//! A registrar leaves 64 × R of them at R registrations a second. Kept in
//! one hash map, they made it grow by doubling, and each growth moved every
//! entry at once: at about 230,000 entries that stopped the PBX's engine
//! for 250 ms. Here entries go into one map per time slice (a generation),
//! every map stays a fraction of the whole, and an emptied map is reused
//! with its capacity, so steady load neither allocates nor rehashes.
//!
//! Every request received is looked up in all the maps. Its key is hashed
//! once, with the store's hasher, and that hash probes each map. With a
//! hashing map per generation, a new request's key was hashed nine times.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::{Target, TransactionKey};

/// Number of time slices that Timer J is cut into. A request is looked up
/// in up to this many maps plus one, and each map contains about this
/// fraction of the store.
const GENERATIONS_PER_TIMER_J: u32 = 8;

/// The final response of a finished transaction and its destination, sent
/// again on each retransmission of the request.
#[derive(Debug)]
pub(super) struct Completed {
    pub(super) target: Target,
    pub(super) response: Bytes,
}

/// A finished transaction with its key's hash, which a map needs again
/// when it grows.
struct Slot {
    hash: u64,
    key: TransactionKey,
    completed: Completed,
}

/// Entries added during one time slice.
struct Generation {
    /// Position of this generation since the store was created, so an
    /// expiry entry can find its map after older ones are gone.
    serial: u64,
    opened: Instant,
    entries: HashTable<Slot>,
}

/// One Timer J deadline, in the order the transactions finished.
struct Expiry {
    at: Instant,
    generation: u64,
    hash: u64,
    key: TransactionKey,
}

pub(super) struct CompletedStore {
    timer_j: Duration,
    /// Hashes the keys of every map. foldhash is randomly seeded, so a peer
    /// cannot choose colliding branches in advance.
    hasher: foldhash::fast::RandomState,
    /// Oldest first; only the newest one takes new entries.
    generations: VecDeque<Generation>,
    /// Emptied maps, kept with their capacity for later generations.
    spare: Vec<HashTable<Slot>>,
    /// Deadlines in the order of insertion. Timer J is one constant, so
    /// this order is also the order of the deadlines.
    expiries: VecDeque<Expiry>,
    next_serial: u64,
}

impl CompletedStore {
    pub(super) fn new(timer_j: Duration) -> CompletedStore {
        CompletedStore {
            timer_j,
            hasher: foldhash::fast::RandomState::default(),
            generations: VecDeque::new(),
            spare: Vec::new(),
            expiries: VecDeque::new(),
            next_serial: 0,
        }
    }

    /// Keeps `completed` under `key` until Timer J, started at `now`, fires.
    pub(super) fn insert(&mut self, key: TransactionKey, completed: Completed, now: Instant) {
        // A caller whose clock goes back must not put a deadline before an
        // earlier one, which would break the order that expiry relies on.
        let at = self
            .expiries
            .back()
            .map_or(now + self.timer_j, |last| last.at.max(now + self.timer_j));
        let hash = self.hasher.hash_one(&key);
        let generation = self.current_generation(now);
        match generation
            .entries
            .entry(hash, |slot| slot.key == key, |slot| slot.hash)
        {
            Entry::Occupied(mut slot) => slot.get_mut().completed = completed,
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    hash,
                    key: key.clone(),
                    completed,
                });
            }
        }
        let generation = generation.serial;
        self.expiries.push_back(Expiry {
            at,
            generation,
            hash,
            key,
        });
    }

    /// Returns the finished transaction `key`, if its Timer J has not been
    /// handled yet.
    pub(super) fn get(&self, key: &TransactionKey) -> Option<&Completed> {
        let hash = self.hasher.hash_one(key);
        // Retransmissions come soon after the response, so newest first.
        self.generations.iter().rev().find_map(|generation| {
            generation
                .entries
                .find(hash, |slot| slot.key == *key)
                .map(|slot| &slot.completed)
        })
    }

    /// Returns the earliest Timer J deadline.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.front().map(|expiry| expiry.at)
    }

    /// Drops every entry whose Timer J fired at or before `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(expiry) = self.expiries.front() {
            if expiry.at > now {
                break;
            }
            let Some(expiry) = self.expiries.pop_front() else {
                break;
            };
            if let Some(oldest) = self.generations.front()
                && let Some(index) = expiry.generation.checked_sub(oldest.serial)
                && let Some(generation) = usize::try_from(index)
                    .ok()
                    .and_then(|index| self.generations.get_mut(index))
                && let Ok(slot) = generation
                    .entries
                    .find_entry(expiry.hash, |slot| slot.key == expiry.key)
            {
                slot.remove();
            }
            self.recycle_empty_generations();
        }
    }

    /// Finished transactions kept.
    pub(super) fn len(&self) -> usize {
        self.expiries.len()
    }

    /// Returns the generation that takes entries finished at `now`, opening
    /// a new one when the newest is a slice old.
    fn current_generation(&mut self, now: Instant) -> &mut Generation {
        let slice = self.timer_j / GENERATIONS_PER_TIMER_J;
        let is_stale = self
            .generations
            .back()
            .is_none_or(|newest| now.saturating_duration_since(newest.opened) >= slice);
        if is_stale {
            // Without a spare map, the new one starts at the size of the
            // last, so that under steady load it does not grow either.
            let last_len = self.generations.back().map_or(0, |g| g.entries.len());
            let entries = self
                .spare
                .pop()
                .unwrap_or_else(|| HashTable::with_capacity(last_len));
            self.generations.push_back(Generation {
                serial: self.next_serial,
                opened: now,
                entries,
            });
            self.next_serial += 1;
        }
        let newest = self.generations.len() - 1;
        &mut self.generations[newest]
    }

    /// Moves the emptied oldest generations, except the newest, to the
    /// spare maps.
    fn recycle_empty_generations(&mut self) {
        while self.generations.len() > 1
            && self
                .generations
                .front()
                .is_some_and(|oldest| oldest.entries.is_empty())
        {
            if let Some(mut oldest) = self.generations.pop_front() {
                // `clear` keeps the allocation.
                oldest.entries.clear();
                self.spare.push(oldest.entries);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{TransportKind, tests::CLIENT_ADDR, tests::udp};
    use sip_message::Method;

    fn key(branch: &str) -> TransactionKey {
        TransactionKey::client(branch.to_owned(), Method::Register)
    }

    fn completed(body: &'static str) -> Completed {
        Completed {
            target: udp(CLIENT_ADDR),
            response: Bytes::from_static(body.as_bytes()),
        }
    }

    const TIMER_J: Duration = Duration::from_secs(32);

    #[test]
    fn entry_is_found_until_its_timer_j() {
        let mut store = CompletedStore::new(TIMER_J);
        let start = Instant::now();
        store.insert(key("z9hG4bKa"), completed("200"), start);
        assert_eq!(store.next_expiry(), Some(start + TIMER_J));
        store.expire(start + TIMER_J - Duration::from_millis(1));
        let found = store.get(&key("z9hG4bKa")).expect("kept before Timer J");
        assert_eq!(found.response, Bytes::from_static(b"200"));
        assert_eq!(found.target.transport, TransportKind::Udp);
        store.expire(start + TIMER_J);
        assert!(store.get(&key("z9hG4bKa")).is_none());
        assert_eq!(store.len(), 0);
        assert_eq!(store.next_expiry(), None);
    }

    #[test]
    fn entries_expire_in_order_across_generations() {
        let mut store = CompletedStore::new(TIMER_J);
        let start = Instant::now();
        // One entry a second for 40 s spans more generations than Timer J.
        for second in 0..40u64 {
            let now = start + Duration::from_secs(second);
            store.expire(now);
            store.insert(key(&format!("z9hG4bK{second}")), completed("200"), now);
        }
        let now = start + Duration::from_secs(40);
        store.expire(now);
        // Entries 0..=8 are past Timer J at 40 s, 9..=39 are not.
        assert_eq!(store.len(), 31);
        assert!(store.get(&key("z9hG4bK8")).is_none());
        assert!(store.get(&key("z9hG4bK9")).is_some());
        assert!(store.get(&key("z9hG4bK39")).is_some());
        assert_eq!(store.next_expiry(), Some(start + Duration::from_secs(41)));
        assert!(store.generations.len() <= GENERATIONS_PER_TIMER_J as usize + 1);
    }

    #[test]
    fn emptied_generations_are_reused() {
        let mut store = CompletedStore::new(TIMER_J);
        let start = Instant::now();
        for second in 0..100u64 {
            let now = start + Duration::from_secs(second);
            store.expire(now);
            store.insert(key(&format!("z9hG4bK{second}")), completed("200"), now);
        }
        // Maps opened: one per 4 s slice while at most nine are live, so
        // the expired ones came back from the spare list.
        let maps = store.generations.len() + store.spare.len();
        assert!(maps <= GENERATIONS_PER_TIMER_J as usize + 2, "{maps} maps");
    }

    #[test]
    fn clock_going_back_keeps_deadlines_ordered() {
        let mut store = CompletedStore::new(TIMER_J);
        let start = Instant::now() + Duration::from_secs(10);
        store.insert(key("z9hG4bKlate"), completed("200"), start);
        store.insert(
            key("z9hG4bKearly"),
            completed("200"),
            start - Duration::from_secs(5),
        );
        store.expire(start + TIMER_J);
        assert_eq!(store.len(), 0);
    }
}
