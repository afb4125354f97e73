//! The queue behind each batching writer: changes wait per resource key, and one writer
//! task per key drains them a batch at a time.

use std::collections::HashMap;
use std::sync::Mutex;

/// Pending changes per resource key (lowercase ID), with the resource's typed ID.
pub type WriteQueues<I, P> = Mutex<HashMap<String, (I, P)>>;

/// Takes the batch waiting for `key` (what `take` returns from its pending changes); when
/// none is, removes the key instead, under the same lock, so that the next change starts a
/// new writer and none is left unserved.
pub fn next_batch<I: Clone, P, B>(queues: &WriteQueues<I, P>, key: &str, take: impl FnOnce(&mut P) -> Option<B>) -> Option<(I, B)> {
    let mut queues = queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let batch = queues.get_mut(key).and_then(|(id, pending)| take(pending).map(|batch| (id.clone(), batch)));
    if batch.is_none() {
        queues.remove(key);
    }
    batch
}

/// For [`next_batch`]: the whole of a non-empty list.
pub fn take_all<T>(pending: &mut Vec<T>) -> Option<Vec<T>> {
    (!pending.is_empty()).then(|| std::mem::take(pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_key_is_retired() {
        let queues: WriteQueues<String, Vec<u32>> = Mutex::default();
        queues.lock().expect("lock").insert("a".into(), ("A".into(), vec![1, 2]));
        assert_eq!(next_batch(&queues, "a", take_all), Some(("A".to_owned(), vec![1, 2])));
        assert_eq!(next_batch(&queues, "a", take_all), None);
        assert!(queues.lock().expect("lock").is_empty(), "the writer for a is retired");
    }
}
