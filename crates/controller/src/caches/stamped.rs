//! Answers worked out from the caches, kept until a watch they are read from reports a
//! change: the one invalidation rule of the scale sets behind node selectors, the unpinned
//! classes and each binding's needs. A reconcile's judge keeps its answers the same way for
//! its one reconcile, told of no change.
//!
//! Every reconcile asks these questions, while the answers change only with the watched
//! objects. Each answer is stamped with the count of changes it was worked out at, and is
//! good while the count has not moved. The count is read before the caches are, so a change
//! landing meanwhile leaves the answer already stale: at worst worked out again, never kept
//! wrong.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Answers per key, each good until the next change.
pub struct Stamped<K, V> {
    /// Bumped by the watches after each change has reached their cache.
    changes: AtomicU64,
    kept: Mutex<Kept<K, V>>,
}

struct Kept<K, V> {
    answers: HashMap<K, (u64, V)>,
    /// The count at which stale answers were last dropped: once per change, not per answer.
    swept_at: u64,
}

impl<K, V> Default for Stamped<K, V> {
    fn default() -> Self {
        Stamped { changes: AtomicU64::new(0), kept: Mutex::new(Kept { answers: HashMap::new(), swept_at: 0 }) }
    }
}

impl<K: Eq + Hash, V: Clone> Stamped<K, V> {
    /// Notes a change: every answer kept so far is stale.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The answer for `key`: kept when no change came since it was worked out, else
    /// `work_out`'s.
    pub fn get_or_make(&self, key: K, work_out: impl FnOnce() -> V) -> V {
        let answer = self.get_or(key, || Ok::<V, std::convert::Infallible>(work_out()));
        answer.unwrap_or_else(|never| match never {})
    }

    /// As [`Stamped::get_or_make`], for an answer that may fail to be worked out; a failure
    /// is not kept.
    pub fn get_or<E>(&self, key: K, work_out: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        let at = self.changes.load(Ordering::SeqCst);
        if let Some((stamp, answer)) = self.lock().answers.get(&key)
            && *stamp == at
        {
            return Ok(answer.clone());
        }
        let answer = work_out()?;
        let mut kept = self.lock();
        // Keys come and go (selectors with bindings, bindings by UID): what a change made
        // stale is dropped, so the map holds at most what was asked since the last change.
        if kept.swept_at != at {
            kept.answers.retain(|_, (stamp, _)| *stamp == at);
            kept.swept_at = at;
        }
        kept.answers.insert(key, (at, answer.clone()));
        Ok(answer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<K, V>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn an_answer_is_kept_until_a_change_and_a_change_drops_the_stale_ones() {
        let stamped: Stamped<&str, u32> = Stamped::default();
        let answer = |key, value| stamped.get_or(key, || Ok::<_, Infallible>(value)).expect("infallible");
        assert_eq!(answer("a", 1), 1);
        assert_eq!(answer("a", 2), 1, "kept");
        stamped.changed();
        assert_eq!(answer("a", 3), 3, "worked out again after a change");
        assert_eq!(answer("b", 4), 4);
        stamped.changed();
        assert_eq!(answer("c", 5), 5);
        assert_eq!(stamped.lock().answers.len(), 1, "a and b went stale and were dropped");
        assert_eq!(stamped.get_or("d", || Err::<u32, &str>("broken")), Err("broken"));
        assert_eq!(answer("d", 6), 6, "a failure is not kept");
    }
}
