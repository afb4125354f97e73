//! One turn at a time per key: an async lock per key (an identity, a vault, a scale set),
//! made on first use, so that work on one key queues while other keys go ahead. Keys are
//! the typed Azure IDs themselves, which compare as ARM does (case-insensitively).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// An async lock per key, made on first use.
pub struct Turns<K>(Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>);

impl<K> Default for Turns<K> {
    fn default() -> Self {
        Turns(Mutex::default())
    }
}

impl<K: Eq + Hash + Clone> Turns<K> {
    /// The lock for `key`.
    pub fn turn(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match turns.get(key) {
            Some(turn) => turn.clone(),
            None => turns.entry(key.clone()).or_default().clone(),
        }
    }
}
