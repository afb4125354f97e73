//! The queue behind each batching writer: changes wait per resource key, and one writer
//! task per key drains them a batch at a time.

use std::collections::HashMap;
use std::sync::Mutex;

/// Pending changes per resource key (lowercase ID), with the resource's typed ID.
pub type WriteQueues<I, P> = Mutex<HashMap<String, (I, P)>>;

/// Takes the batch waiting for `key`; when none is, removes the key instead, under the
/// same lock, so that the next change starts a new writer and none is left unserved.
pub fn next_batch<I: Clone, P: Default>(queues: &WriteQueues<I, P>, key: &str, is_empty: impl Fn(&P) -> bool) -> Option<(I, P)> {
    let mut queues = queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match queues.get_mut(key) {
        Some((id, pending)) if !is_empty(pending) => Some((id.clone(), std::mem::take(pending))),
        _ => {
            queues.remove(key);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_key_is_retired() {
        let queues: WriteQueues<String, Vec<u32>> = Mutex::default();
        queues.lock().expect("lock").insert("a".into(), ("A".into(), vec![1, 2]));
        assert_eq!(next_batch(&queues, "a", Vec::is_empty), Some(("A".to_owned(), vec![1, 2])));
        assert_eq!(next_batch(&queues, "a", Vec::is_empty), None);
        assert!(queues.lock().expect("lock").is_empty(), "the writer for a is retired");
    }
}
