//! Agents and calls by id, with indexes of their deadlines and of the
//! available agents that every change keeps up to date.
//!
//! The server requests the ACD's next deadline after every event, and with
//! 10,000 registered agents a scan per question took a large share of its
//! CPU. So each table files its values under their deadline, and
//! `poll_timeout` reads the earliest one. A value can only be changed
//! through an [`EntryMut`], whose drop reads the value's deadline and
//! availability again and moves its index entries: no input can change a
//! deadline behind the index's back, whichever field it touches.
//!
//! The same drop notes the value's id as touched, so that dispatch can look
//! again at the agents and calls that changed since it last ran, and take
//! the others as it left them. It also moves the value between the table's
//! tallies (agents by queue and state, calls by queue and entry time), so
//! queue statistics read counters instead of walking every value.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

/// The properties of a value that a [`Table`] indexes.
pub(crate) trait Indexed {
    /// The part of a value that the table's tally counts.
    type Summary;
    /// Counts of the values' summaries.
    type Tally: Default + PartialEq + std::fmt::Debug;

    /// Returns the earliest instant at which the value needs `handle_timeout`.
    fn deadline(&self) -> Option<Instant>;

    fn summary(&self) -> Self::Summary;

    /// Brings `summary` up to date with the value, reusing its allocations.
    fn refresh_summary(&self, summary: &mut Self::Summary);

    /// Returns whether `summary` still describes the value. Every change
    /// calls this, so it should not allocate.
    fn has_summary(&self, summary: &Self::Summary) -> bool;

    /// Counts a summary into the tally (`added`) or out of it.
    fn count(tally: &mut Self::Tally, summary: &Self::Summary, added: bool);

    /// Returns whether the value may be offered a call, ignoring delays that
    /// pass with time. Calls keep their own order in `Acd::waiting`, so only
    /// agents use this.
    fn available(&self) -> bool {
        false
    }
}

/// A value with the index keys it is filed under now.
struct Slot<V: Indexed> {
    value: V,
    deadline: Option<Instant>,
    available: bool,
    summary: V::Summary,
}

/// Values by id in id order, which the strategies rely on for ties and the
/// random draws, with their deadlines and availability indexed.
// Ids are shared (`Arc<str>`) between the map and the indexes, so that
// refiling a value allocates nothing. Values are boxed, so that the map's
// nodes hold pointers: a call is several hundred bytes, and inline values
// left a third of each node empty and made every insert move them.
pub(crate) struct Table<V: Indexed> {
    slots: BTreeMap<Arc<str>, Box<Slot<V>>>,
    deadlines: BTreeSet<(Instant, Arc<str>)>,
    available: BTreeSet<Arc<str>>,
    /// Ids of the values added or changed since the last `take_touched`,
    /// possibly more than once.
    touched: Vec<Arc<str>>,
    /// The summaries of all values, counted.
    tally: V::Tally,
}

impl<V: Indexed> Default for Table<V> {
    fn default() -> Table<V> {
        Table {
            slots: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            available: BTreeSet::new(),
            touched: Vec::new(),
            tally: V::Tally::default(),
        }
    }
}

impl<V: Indexed> Table<V> {
    pub(crate) fn get(&self, id: &str) -> Option<&V> {
        self.slots.get(id).map(|slot| &slot.value)
    }

    /// Returns a value with its id as the table shares it.
    pub(crate) fn get_with_key(&self, id: &str) -> Option<(&Arc<str>, &V)> {
        let (key, slot) = self.slots.get_key_value(id)?;
        Some((key, &slot.value))
    }

    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    /// Returns all ids and values, in id order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Arc<str>, &V)> {
        self.slots.iter().map(|(id, slot)| (id, &slot.value))
    }

    /// Returns the ids touched since the last `take_touched`.
    pub(crate) fn touched(&self) -> &[Arc<str>] {
        &self.touched
    }

    /// Returns all values, in id order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.values().map(|slot| &slot.value)
    }

    /// Gives write access to a value; the indexes follow when it is dropped.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<EntryMut<'_, V>> {
        self.compact_touched();
        let Table {
            slots,
            deadlines,
            available,
            touched,
            tally,
        } = self;
        // `range_mut` lends the stored key too, which the index entries need.
        let (id, slot) = slots
            .range_mut::<str, _>((Bound::Included(id), Bound::Included(id)))
            .next()?;
        Some(EntryMut {
            id,
            slot,
            deadlines,
            available,
            touched,
            tally,
        })
    }

    /// Applies `change` to every value in id order, refiling each.
    pub(crate) fn for_each_mut(&mut self, mut change: impl FnMut(&mut V)) {
        self.compact_touched();
        let Table {
            slots,
            deadlines,
            available,
            touched,
            tally,
        } = self;
        for (id, slot) in slots.iter_mut() {
            let mut entry = EntryMut {
                id,
                slot,
                deadlines: &mut *deadlines,
                available: &mut *available,
                touched: &mut *touched,
                tally: &mut *tally,
            };
            change(&mut entry);
        }
    }

    /// Adds a value, or replaces the one with the same id.
    pub(crate) fn insert(&mut self, id: String, value: V) {
        self.remove(&id);
        let summary = value.summary();
        V::count(&mut self.tally, &summary, true);
        let slot = Box::new(Slot {
            value,
            deadline: None,
            available: false,
            summary,
        });
        self.slots.insert(Arc::from(id.as_str()), slot);
        // Dropping the entry files the new value in the indexes.
        drop(self.get_mut(&id));
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<V> {
        let (id, slot) = self.slots.remove_entry(id)?;
        V::count(&mut self.tally, &slot.summary, false);
        if slot.available {
            self.available.remove(&id);
        }
        if let Some(deadline) = slot.deadline {
            self.deadlines.remove(&(deadline, id));
        }
        Some(slot.value)
    }

    /// Returns the earliest deadline of any value.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Returns the ids of the values whose deadline is at or before `now`,
    /// earliest first.
    pub(crate) fn due(&self, now: Instant) -> Vec<Arc<str>> {
        self.deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Returns the ids of the values added or changed through an
    /// [`EntryMut`] since the last call, and starts a new list. Ids of
    /// values removed since may be among them.
    pub(crate) fn take_touched(&mut self, into: &mut Vec<Arc<str>>) {
        into.append(&mut self.touched);
    }

    /// Drops repeated ids from the touched list once it is much longer
    /// than the table, which only inputs that never dispatch can cause.
    fn compact_touched(&mut self) {
        if self.touched.len() > 2 * self.slots.len() + 64 {
            self.touched.sort_unstable();
            self.touched.dedup();
        }
    }

    /// Returns the counts of the values' summaries.
    pub(crate) fn tally(&self) -> &V::Tally {
        &self.tally
    }

    /// Returns how many values are available.
    pub(crate) fn available_len(&self) -> usize {
        self.available.len()
    }

    /// Returns the ids and values of those that are available, in id order.
    pub(crate) fn available_entries(&self) -> impl Iterator<Item = (&Arc<str>, &V)> {
        let entries = self.available.iter();
        entries.filter_map(|id| Some((id, &self.slots.get(id)?.value)))
    }

    /// Returns the values that are available, in id order.
    pub(crate) fn available(&self) -> impl Iterator<Item = &V> {
        self.available.iter().filter_map(|id| self.get(id))
    }

    /// Rebuilds both indexes from the values and describes the first
    /// difference from the ones kept up to date.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut deadlines = BTreeSet::new();
        let mut available = BTreeSet::new();
        let mut tally = V::Tally::default();
        for (id, slot) in &self.slots {
            if !slot.value.has_summary(&slot.summary) {
                return Err(format!("{id}: tallied under an old summary"));
            }
            V::count(&mut tally, &slot.summary, true);
            let deadline = slot.value.deadline();
            if slot.deadline != deadline {
                return Err(format!(
                    "{id}: filed under deadline {:?}, has {deadline:?}",
                    slot.deadline
                ));
            }
            if slot.available != slot.value.available() {
                return Err(format!("{id}: availability not filed"));
            }
            if let Some(deadline) = deadline {
                deadlines.insert((deadline, id.clone()));
            }
            if slot.available {
                available.insert(id.clone());
            }
        }
        if deadlines != self.deadlines {
            return Err(format!(
                "deadline index {:?} differs from the values' {deadlines:?}",
                self.deadlines
            ));
        }
        if available != self.available {
            return Err(format!(
                "available index {:?} differs from the values' {available:?}",
                self.available
            ));
        }
        if tally != self.tally {
            return Err(format!(
                "tally {:?} differs from the values' {tally:?}",
                self.tally
            ));
        }
        Ok(())
    }
}

/// Write access to one value of a [`Table`]. Dropping it files the value
/// under its new deadline and availability.
pub(crate) struct EntryMut<'a, V: Indexed> {
    id: &'a Arc<str>,
    slot: &'a mut Slot<V>,
    deadlines: &'a mut BTreeSet<(Instant, Arc<str>)>,
    available: &'a mut BTreeSet<Arc<str>>,
    touched: &'a mut Vec<Arc<str>>,
    tally: &'a mut V::Tally,
}

impl<V: Indexed> EntryMut<'_, V> {
    /// Returns the value's id as the table shares it.
    pub(crate) fn key(&self) -> &Arc<str> {
        self.id
    }
}

impl<V: Indexed> Deref for EntryMut<'_, V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.slot.value
    }
}

impl<V: Indexed> DerefMut for EntryMut<'_, V> {
    fn deref_mut(&mut self) -> &mut V {
        &mut self.slot.value
    }
}

impl<V: Indexed> Drop for EntryMut<'_, V> {
    fn drop(&mut self) {
        // The same value changed twice in a row is noted once.
        if self.touched.last() != Some(self.id) {
            self.touched.push(self.id.clone());
        }
        let deadline = self.slot.value.deadline();
        if deadline != self.slot.deadline {
            if let Some(old) = self.slot.deadline {
                self.deadlines.remove(&(old, self.id.clone()));
            }
            if let Some(new) = deadline {
                self.deadlines.insert((new, self.id.clone()));
            }
            self.slot.deadline = deadline;
        }
        if !self.slot.value.has_summary(&self.slot.summary) {
            V::count(self.tally, &self.slot.summary, false);
            self.slot.value.refresh_summary(&mut self.slot.summary);
            V::count(self.tally, &self.slot.summary, true);
        }
        let available = self.slot.value.available();
        if available != self.slot.available {
            if available {
                self.available.insert(self.id.clone());
            } else {
                self.available.remove(&**self.id);
            }
            self.slot.available = available;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Timer {
        at: Option<Instant>,
        on: bool,
    }

    impl Indexed for Timer {
        type Summary = bool;
        /// How many timers are on.
        type Tally = usize;

        fn deadline(&self) -> Option<Instant> {
            self.at
        }

        fn summary(&self) -> bool {
            self.on
        }

        fn refresh_summary(&self, on: &mut bool) {
            *on = self.on;
        }

        fn has_summary(&self, on: &bool) -> bool {
            self.on == *on
        }

        fn count(tally: &mut usize, on: &bool, added: bool) {
            match (on, added) {
                (false, _) => {}
                (true, true) => *tally += 1,
                (true, false) => *tally -= 1,
            }
        }

        fn available(&self) -> bool {
            self.on
        }
    }

    #[test]
    fn changes_through_entries_move_the_index() {
        let t0 = Instant::now();
        let mut table = Table::default();
        table.insert(
            "a".to_owned(),
            Timer {
                at: Some(t0 + Duration::from_secs(5)),
                on: true,
            },
        );
        table.insert(
            "b".to_owned(),
            Timer {
                at: None,
                on: false,
            },
        );
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(table.check(), Ok(()));

        if let Some(mut b) = table.get_mut("b") {
            b.at = Some(t0 + Duration::from_secs(2));
            b.on = true;
        }
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(2)));
        let due = table.due(t0 + Duration::from_secs(5));
        assert!(due.iter().map(|id| &**id).eq(["b", "a"]));
        assert_eq!(table.available().count(), 2);
        assert_eq!(*table.tally(), 2);

        if let Some(mut a) = table.get_mut("a") {
            a.on = false;
        }
        assert!(table.remove("b").is_some());
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(table.available().count(), 0);
        assert_eq!(*table.tally(), 0);
        assert_eq!(table.check(), Ok(()));
        let mut touched = Vec::new();
        table.take_touched(&mut touched);
        assert!(touched.iter().map(|id| &**id).eq(["a", "b", "a"]));
        touched.clear();
        table.take_touched(&mut touched);
        assert!(touched.is_empty());
    }

    #[test]
    fn replacing_a_value_refiles_it() {
        let t0 = Instant::now();
        let mut table = Table::default();
        table.insert(
            "a".to_owned(),
            Timer {
                at: Some(t0),
                on: true,
            },
        );
        table.insert(
            "a".to_owned(),
            Timer {
                at: None,
                on: false,
            },
        );
        assert_eq!(table.next_deadline(), None);
        assert_eq!(table.available().count(), 0);
        assert_eq!(table.check(), Ok(()));
    }
}
