//! What each binding needs, kept while nothing it is read from changes.
//!
//! Every reconcile of a binding that shares an identity reads what each other sharer
//! needs (its classes' objects, its stores', the pools of its nodes), and after one write
//! lands a thousand sharers' reconciles run at once: made afresh, that is a thousand copies
//! of a thousand sharers' needs in memory at the same moment. A binding's needs depend only
//! on its spec and on the classes, stores, ExternalSecrets and nodes in the caches, so they
//! are kept per binding UID and generation, and dropped whenever one of those watches
//! reports a change.

use std::sync::Arc;

use kube::ResourceExt;
use kvbind_api::IdentityBinding;

use super::stamped::Stamped;
use crate::error::BindingError;
use crate::needs::Needs;

/// Each binding's needs by UID and generation, until a change of what they are read from.
#[derive(Default)]
pub struct NeedsMemo {
    needs: Stamped<(String, Option<i64>), Arc<Needs>>,
}

impl NeedsMemo {
    /// Notes that a cache the needs are read from (classes, stores, ExternalSecrets, nodes)
    /// has changed.
    pub fn inputs_changed(&self) {
        self.needs.changed();
    }

    /// What `binding` needs, as `read` reads it: kept from an earlier read when nothing it
    /// depends on changed since. Failures are not kept.
    pub fn get_or_read(&self, binding: &IdentityBinding, read: impl FnOnce() -> Result<Needs, BindingError>) -> Result<Arc<Needs>, BindingError> {
        let Some(uid) = binding.uid() else {
            return read().map(Arc::new);
        };
        self.needs.get_or((uid, binding.metadata.generation), || read().map(Arc::new))
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
        let read = |b: &IdentityBinding, vault: &str| memo.get_or_read(b, || needing(vault)).expect("reads");
        let first = read(&binding("u", 1), "v1");
        assert!(Arc::ptr_eq(&first, &read(&binding("u", 1), "v2")), "kept");
        let edited = read(&binding("u", 2), "v2");
        assert!(edited.vaults.contains_key("v2"), "a new generation is read again");
        memo.inputs_changed();
        assert!(read(&binding("u", 2), "v3").vaults.contains_key("v3"), "a cache change drops it");
        assert!(memo.get_or_read(&binding("w", 1), || Err(BindingError::NoIssuer)).is_err());
        assert!(read(&binding("w", 1), "v4").vaults.contains_key("v4"), "a failure is not kept");
    }
}
