//! One login at a time per client address bucket.
//!
//! A login checks the locks, then spends tens of milliseconds verifying the
//! password, then counts the failure. Without a queue, many concurrent
//! requests would all pass the lock check before the first failure is
//! counted, and so try far more passwords than the lockout allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The queues of address buckets with a login in progress or waiting.
/// NOTE: this serializes logins within one process only, which is how the
/// PBX runs; two processes sharing a database could still race.
#[derive(Debug, Default)]
pub(crate) struct LoginQueues {
    buckets: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// The right to run a login for one bucket, until dropped.
pub(crate) struct LoginTurn<'a> {
    queues: &'a LoginQueues,
    bucket: String,
    queue: Arc<AsyncMutex<()>>,
    _guard: OwnedMutexGuard<()>,
}

impl LoginQueues {
    /// Waits for the logins of `bucket` queued before this one (tokio's
    /// mutex is first in, first out) and returns this login's turn.
    pub(crate) async fn enter(&self, bucket: &str) -> LoginTurn<'_> {
        let queue = {
            let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(buckets.entry(bucket.to_owned()).or_default())
        };
        let guard = Arc::clone(&queue).lock_owned().await;
        LoginTurn {
            queues: self,
            bucket: bucket.to_owned(),
            queue,
            _guard: guard,
        }
    }
}

impl Drop for LoginTurn<'_> {
    /// Removes the bucket's queue when nobody else waits on it, so the map
    /// holds only buckets with logins in progress.
    fn drop(&mut self) {
        let mut buckets = self
            .queues
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map, this turn and its guard hold one reference each; any
        // more belong to waiting logins, which cloned it under this lock.
        if Arc::strong_count(&self.queue) == 3 {
            buckets.remove(&self.bucket);
        }
    }
}
