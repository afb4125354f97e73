//! One turn at a time per key: an async lock per key (an identity, a vault name, a scale
//! set), made on first use, so that work on one key queues while other keys go ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An async lock per key, made on first use.
#[derive(Default)]
pub struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    /// The lock for `key`.
    pub fn turn(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key.to_owned()).or_default().clone()
    }
}
