//! Answers kept per key for a while, each read once however many ask for it at once.
//!
//! The pattern behind every Azure read kvbind shares between reconciles (a scale set's
//! identity block, a vault, an identity, a vault's ID by name): a fresh answer is served
//! from the shelf; a stale or missing one is read by the first to ask while the others
//! wait for its answer, so a thousand bindings on one pool that find the entry stale at
//! the same moment cost one read.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::turns::Turns;

/// Values per key, each with the time it was read or written.
pub struct Shelf<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    reading: Turns<K>,
}

impl<K, V> Default for Shelf<K, V> {
    fn default() -> Self {
        Shelf { entries: Mutex::default(), reading: Turns::default() }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Shelf<K, V> {
    fn entries(&self) -> MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for `key` if it was read or written within `ttl`.
    pub fn fresh(&self, key: &K, ttl: Duration) -> Option<V> {
        self.entries().get(key).filter(|(_, at)| at.elapsed() < ttl).map(|(v, _)| v.clone())
    }

    /// The value for `key` whatever its age.
    pub fn last(&self, key: &K) -> Option<V> {
        self.entries().get(key).map(|(v, _)| v.clone())
    }

    /// What `look` finds in the value for `key` whatever its age, without cloning it.
    pub fn peek<R>(&self, key: &K, look: impl FnOnce(&V) -> R) -> Option<R> {
        self.entries().get(key).map(|(v, _)| look(v))
    }

    /// Keeps `value` for `key` as read or written now.
    pub fn put(&self, key: K, value: V) {
        self.entries().insert(key, (value, Instant::now()));
    }

    /// Changes the value for `key` in place, if there is one; it keeps its age.
    pub fn change(&self, key: &K, change: impl FnOnce(&mut V)) {
        if let Some((value, _)) = self.entries().get_mut(key) {
            change(value);
        }
    }

    /// Drops the value for `key`.
    pub fn forget(&self, key: &K) {
        self.entries().remove(key);
    }

    /// The value for `key` if fresh within `ttl`, or `read`'s answer, kept and shared.
    /// Concurrent misses for one key wait for a single read.
    pub async fn read_through<E>(&self, key: &K, ttl: Duration, read: impl Future<Output = Result<V, E>>) -> Result<V, E> {
        let found = self.read_found(key, ttl, async { read.await.map(Some) }).await?;
        Ok(found.expect("a read that always finds keeps what it found"))
    }

    /// As [`read_through`](Self::read_through) for a read that may find nothing: nothing
    /// found is not kept, so the next to ask reads again.
    pub async fn read_found<E>(&self, key: &K, ttl: Duration, read: impl Future<Output = Result<Option<V>, E>>) -> Result<Option<V>, E> {
        if let Some(hit) = self.fresh(key, ttl) {
            return Ok(Some(hit));
        }
        let turn = self.reading.turn(key);
        let _turn = turn.lock().await;
        if let Some(hit) = self.fresh(key, ttl) {
            return Ok(Some(hit));
        }
        let found = read.await?;
        if let Some(value) = &found {
            self.put(key.clone(), value.clone());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn many_misses_at_once_share_one_read_and_nothing_found_is_read_again() {
        let shelf: Arc<Shelf<String, u32>> = Arc::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let ask = |found: bool| {
            let asks: Vec<_> = (0..20)
                .map(|_| {
                    let (shelf, reads) = (shelf.clone(), reads.clone());
                    tokio::spawn(async move {
                        shelf
                            .read_found(&"k".to_owned(), Duration::from_secs(10), async {
                                reads.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                Ok::<_, ()>(found.then_some(7))
                            })
                            .await
                    })
                })
                .collect();
            futures::future::join_all(asks)
        };
        for answer in ask(false).await {
            assert_eq!(answer.expect("task"), Ok(None));
        }
        assert_eq!(reads.swap(0, Ordering::SeqCst), 20, "nothing found is not kept: each asker reads in turn");
        for answer in ask(true).await {
            assert_eq!(answer.expect("task"), Ok(Some(7)));
        }
        assert_eq!(reads.swap(0, Ordering::SeqCst), 1, "twenty askers, one read");
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(shelf.fresh(&"k".to_owned(), Duration::from_secs(10)), None, "stale after the ttl");
        assert_eq!(shelf.last(&"k".to_owned()), Some(7), "but still there for whoever takes any age");
        shelf.change(&"k".to_owned(), |v| *v = 8);
        assert_eq!(shelf.fresh(&"k".to_owned(), Duration::from_secs(10)), None, "a change in place keeps the age");
        for answer in ask(true).await {
            assert_eq!(answer.expect("task"), Ok(Some(7)), "stale: read again once, and the read's answer kept");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }
}
