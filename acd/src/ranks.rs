//! The service order keys of one queue's calls, counted for positions.
//!
//! Announcements, `joined_position` and queue_log events need a call's
//! position in its queue at every join, abandon and exit. Counting the
//! calls ahead by a walk over all of them made each join cost as much as
//! the queue is long. The keys are kept sorted in chunks instead, so a
//! position costs a walk over the chunk lengths and one binary search, and
//! an insert or a removal moves at most one chunk's worth of keys.

use crate::call::CallOrder;

/// Chunks split when they pass twice this length.
const CHUNK: usize = 128;

/// A sorted set of call order keys that counts the keys below a given one.
#[derive(Debug, Default)]
pub(crate) struct Ranks {
    /// Non-empty chunks, each sorted, every key of a chunk below those of
    /// the next.
    chunks: Vec<Vec<CallOrder>>,
    len: usize,
}

impl Ranks {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the chunk where `order` is or belongs: the first whose last
    /// key is not below it, or the last chunk.
    fn chunk_for(&self, order: &CallOrder) -> usize {
        let index = self
            .chunks
            .partition_point(|chunk| chunk.last().is_some_and(|last| last < order));
        index.min(self.chunks.len().saturating_sub(1))
    }

    /// Adds `order` and returns false when it was there already.
    pub(crate) fn insert(&mut self, order: CallOrder) -> bool {
        if self.chunks.is_empty() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let index = self.chunk_for(&order);
        let chunk = &mut self.chunks[index];
        let Err(at) = chunk.binary_search(&order) else {
            return false;
        };
        chunk.insert(at, order);
        if chunk.len() > 2 * CHUNK {
            let upper = chunk.split_off(CHUNK);
            self.chunks.insert(index + 1, upper);
        }
        self.len += 1;
        true
    }

    /// Removes `order` and returns false when it was not there.
    pub(crate) fn remove(&mut self, order: &CallOrder) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let index = self.chunk_for(order);
        let chunk = &mut self.chunks[index];
        let Ok(at) = chunk.binary_search(order) else {
            return false;
        };
        chunk.remove(at);
        if chunk.is_empty() {
            self.chunks.remove(index);
        }
        self.len -= 1;
        true
    }

    /// Returns how many keys are below `order`, whether or not it is in the set.
    pub(crate) fn rank(&self, order: &CallOrder) -> usize {
        let index = self
            .chunks
            .partition_point(|chunk| chunk.last().is_some_and(|last| last < order));
        let before: usize = self.chunks[..index].iter().map(Vec::len).sum();
        let within = self
            .chunks
            .get(index)
            .map_or(0, |chunk| chunk.partition_point(|key| key < order));
        before + within
    }

    /// Returns the keys in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &CallOrder> {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::time::{Duration, Instant};

    fn key(t0: Instant, priority: u32, seq: u64) -> CallOrder {
        CallOrder {
            queue_weight: Reverse(0),
            priority: Reverse(priority),
            arrived: t0 + Duration::from_millis(seq),
            seq,
        }
    }

    #[test]
    fn ranks_match_a_sorted_vector() {
        let t0 = Instant::now();
        let mut ranks = Ranks::default();
        let mut sorted: Vec<CallOrder> = Vec::new();
        // Enough keys to split chunks, priorities mixed so inserts land in
        // the middle, and every third key removed again.
        for seq in 0..2_000u64 {
            let order = key(t0, (seq * 7 % 3) as u32, seq);
            assert!(ranks.insert(order));
            assert!(!ranks.insert(order));
            let at = sorted.partition_point(|k| *k < order);
            sorted.insert(at, order);
            if seq % 3 == 0 {
                let gone = sorted.remove(sorted.len() / 2);
                assert!(ranks.remove(&gone));
                assert!(!ranks.remove(&gone));
            }
        }
        assert_eq!(ranks.len(), sorted.len());
        assert!(ranks.iter().eq(sorted.iter()));
        for (rank, order) in sorted.iter().enumerate() {
            assert_eq!(ranks.rank(order), rank);
        }
        let absent = key(t0, 1, 5_000);
        assert_eq!(ranks.rank(&absent), sorted.partition_point(|k| *k < absent));
        for order in sorted {
            assert!(ranks.remove(&order));
        }
        assert!(ranks.is_empty());
        assert_eq!(ranks.rank(&absent), 0);
    }
}
