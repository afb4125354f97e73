//! The queue behind each batching writer: changes wait per resource, and one writer task
//! per resource drains them a batch at a time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Pending changes per resource, keyed by its typed ID.
pub type WriteQueues<I, P> = Mutex<HashMap<I, P>>;

/// Takes the batch waiting for `id` (what `take` returns from its pending changes); when
/// none is, removes the resource instead, under the same lock, so that the next change
/// starts a new writer and none is left unserved.
pub fn next_batch<I: Eq + Hash, P, B>(queues: &WriteQueues<I, P>, id: &I, take: impl FnOnce(&mut P) -> Option<B>) -> Option<B> {
    let mut queues = queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let batch = queues.get_mut(id).and_then(take);
    if batch.is_none() {
        queues.remove(id);
    }
    batch
}

/// Queues `add` into the pending changes for `id`; true when no writer serves `id` yet
/// (the caller starts one).
pub fn enqueue<I: Eq + Hash + Clone, P: Default>(queues: &WriteQueues<I, P>, id: &I, add: impl FnOnce(&mut P)) -> bool {
    let mut queues = queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = !queues.contains_key(id);
    add(queues.entry(id.clone()).or_default());
    start
}

/// For [`next_batch`]: the whole of a non-empty list.
pub fn take_all<T>(pending: &mut Vec<T>) -> Option<Vec<T>> {
    (!pending.is_empty()).then(|| std::mem::take(pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_resource_is_retired() {
        let queues: WriteQueues<String, Vec<u32>> = Mutex::default();
        let a = "a".to_owned();
        assert!(enqueue(&queues, &a, |p: &mut Vec<u32>| p.push(1)), "the first change starts a writer");
        assert!(!enqueue(&queues, &a, |p: &mut Vec<u32>| p.push(2)), "the second joins it");
        assert_eq!(next_batch(&queues, &a, take_all), Some(vec![1, 2]));
        assert_eq!(next_batch(&queues, &a, take_all), None);
        assert!(queues.lock().expect("lock").is_empty(), "the writer for a is retired");
    }
}
