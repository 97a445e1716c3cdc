//! The table of live transactions: a map from key to entry whose slots are
//! pointers.
//!
//! The table is reserved at start for the overload limit (200,000
//! transactions by default), because growing it moves every entry at once
//! and stopped the engine. With the key and entry stored in the slots, that
//! reservation was about 25 MB. The few transactions live at any moment were
//! spread over it, so each new one wrote to a cold cache line, which cost
//! about 3 % of the PBX's time under a registration storm. Here a slot contains a
//! pointer, so the reservation is about 2 MB, and the allocator hands out
//! the boxes that recently ended transactions freed, which are still in
//! the cache.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::{Entry, TransactionKey};

struct Slot {
    key: TransactionKey,
    entry: Entry,
}

pub(super) struct TransactionTable {
    /// foldhash, randomly seeded: much cheaper than SipHash on the short
    /// keys here, and a peer still cannot choose colliding branches.
    hasher: foldhash::fast::RandomState,
    slots: HashTable<Box<Slot>>,
}

impl TransactionTable {
    pub(super) fn with_capacity(capacity: usize) -> TransactionTable {
        TransactionTable {
            hasher: foldhash::fast::RandomState::default(),
            slots: HashTable::with_capacity(capacity),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn get(&self, key: &TransactionKey) -> Option<&Entry> {
        let hash = self.hasher.hash_one(key);
        self.slots
            .find(hash, |slot| slot.key == *key)
            .map(|slot| &slot.entry)
    }

    pub(super) fn get_mut(&mut self, key: &TransactionKey) -> Option<&mut Entry> {
        let hash = self.hasher.hash_one(key);
        self.slots
            .find_mut(hash, |slot| slot.key == *key)
            .map(|slot| &mut slot.entry)
    }

    pub(super) fn contains_key(&self, key: &TransactionKey) -> bool {
        self.get(key).is_some()
    }

    /// Files `entry` under `key`, returning the entry it replaces.
    pub(super) fn insert(&mut self, key: TransactionKey, entry: Entry) -> Option<Entry> {
        let hash = self.hasher.hash_one(&key);
        let hasher = &self.hasher;
        match self.slots.entry(
            hash,
            |slot| slot.key == key,
            |slot| hasher.hash_one(&slot.key),
        ) {
            TableEntry::Occupied(mut slot) => {
                Some(std::mem::replace(&mut slot.get_mut().entry, entry))
            }
            TableEntry::Vacant(slot) => {
                slot.insert(Box::new(Slot { key, entry }));
                None
            }
        }
    }

    pub(super) fn remove(&mut self, key: &TransactionKey) -> Option<Entry> {
        let hash = self.hasher.hash_one(key);
        let slot = self.slots.find_entry(hash, |slot| slot.key == *key).ok()?;
        Some(slot.remove().0.entry)
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&TransactionKey, &mut Entry)> {
        self.slots.iter_mut().map(|slot| {
            let Slot { key, entry } = &mut **slot;
            (&*key, entry)
        })
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.slots.iter_mut().map(|slot| &mut slot.entry)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&TransactionKey, &mut Entry) -> bool) {
        self.slots.retain(|slot| {
            let Slot { key, entry } = &mut **slot;
            keep(key, entry)
        });
    }
}
