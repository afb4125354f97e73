//! What each binding needs, kept while nothing it is read from changes.
//!
//! Every reconcile of a binding that shares an identity reads what each other sharer
//! needs (its classes' objects, its stores', the pools of its nodes), and after one write
//! lands a thousand sharers' reconciles run at once: made afresh, that is a thousand copies
//! of a thousand sharers' needs in memory at the same moment. A binding's needs depend only
//! on its spec and on the classes, stores, ExternalSecrets and nodes in the caches, so they
//! are kept per binding UID and generation, and dropped whenever one of those watches
//! reports a change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kube::ResourceExt;
use kvbind_api::IdentityBinding;

use crate::binding::inputs::Needs;
use crate::error::BindingError;

/// Entries kept past the number of bindings in the cache before the memo starts afresh:
/// deleted bindings' entries go then.
const SLACK: usize = 64;

/// One binding's needs: the watches' count and the generation they were read at.
type Kept = (u64, Option<i64>, Arc<Needs>);

/// Each binding's needs, as of the last change of what they are read from.
#[derive(Default)]
pub struct NeedsMemo {
    /// Bumped by the class, store, ExternalSecret and node watches after each change has
    /// reached its cache.
    changes: AtomicU64,
    by_uid: Mutex<HashMap<String, Kept>>,
}

impl NeedsMemo {
    /// Notes that a cache the needs are read from has changed.
    pub fn inputs_changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// What `binding` needs, as `read` reads it: kept from an earlier read when nothing it
    /// depends on changed since. Failures are not kept. `cached` counts the bindings in the
    /// cache, asked only when an entry is added.
    pub fn get_or_read(
        &self,
        binding: &IdentityBinding,
        cached: impl FnOnce() -> usize,
        read: impl FnOnce() -> Result<Needs, BindingError>,
    ) -> Result<Arc<Needs>, BindingError> {
        let Some(uid) = binding.uid() else {
            return read().map(Arc::new);
        };
        // Read before the caches are: a change while reading leaves an entry already stale.
        let at = self.changes.load(Ordering::SeqCst);
        let generation = binding.metadata.generation;
        if let Some((seen, of, needs)) = self.by_uid.lock().unwrap_or_else(PoisonError::into_inner).get(&uid)
            && *seen == at
            && *of == generation
        {
            return Ok(needs.clone());
        }
        let needs = Arc::new(read()?);
        let bound = 2 * cached() + SLACK;
        let mut kept = self.by_uid.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() > bound {
            kept.clear();
        }
        kept.insert(uid, (at, generation, needs.clone()));
        Ok(needs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(uid: &str, generation: i64) -> IdentityBinding {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
            "metadata": {"name": "b", "namespace": "n", "uid": uid, "generation": generation},
            "spec": {"identity": {"name": "i", "resourceGroup": "rg"}, "secretProviderClasses": {"names": ["c"]}},
        }))
        .expect("a binding")
    }

    fn needing(vault: &str) -> Result<Needs, BindingError> {
        let mut needs = Needs::default();
        needs.vaults.insert(vault.into(), (String::new(), Vec::new()));
        Ok(needs)
    }

    #[test]
    fn needs_are_read_again_after_a_cache_change_or_a_spec_change_only() {
        let memo = NeedsMemo::default();
        let read = |b: &IdentityBinding, vault: &str| memo.get_or_read(b, || 1, || needing(vault)).expect("reads");
        let first = read(&binding("u", 1), "v1");
        assert!(Arc::ptr_eq(&first, &read(&binding("u", 1), "v2")), "kept");
        let edited = read(&binding("u", 2), "v2");
        assert!(edited.vaults.contains_key("v2"), "a new generation is read again");
        memo.inputs_changed();
        assert!(read(&binding("u", 2), "v3").vaults.contains_key("v3"), "a cache change drops it");
        assert!(memo.get_or_read(&binding("w", 1), || 1, || Err(BindingError::NoIssuer)).is_err());
        assert!(read(&binding("w", 1), "v4").vaults.contains_key("v4"), "a failure is not kept");
    }
}
