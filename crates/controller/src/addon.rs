//! The AKS Key Vault secrets provider add-on's identity, as the managed cluster shows it
//! (`spec.identity.addon`). AKS makes the identity when the add-on is enabled and a new one
//! each time it is enabled again, so kvbind reads the managed cluster at start and again
//! once a resync, and bindings see the answer on their next reconcile.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kvbind_azure::Arm;
use kvbind_azure::model::AddonIdentity;

/// What the managed cluster last said of the add-on's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AddonLookup {
    /// No managed cluster ID was configured.
    #[default]
    NotConfigured,
    /// The add-on is enabled and has this identity.
    Found(AddonIdentity),
    /// The add-on is off, or AKS has made no identity for it.
    NotEnabled,
    /// The managed cluster could not be read.
    Unreadable(String),
}

/// The latest [`AddonLookup`], shared by every reconcile and kept current by
/// [`keep_current`]. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct AddonIdentitySource(Arc<RwLock<AddonLookup>>);

impl AddonIdentitySource {
    /// A source that always answers `lookup` (tests, and operators with no managed cluster).
    pub fn fixed(lookup: AddonLookup) -> Self {
        Self(Arc::new(RwLock::new(lookup)))
    }

    /// The latest answer.
    pub fn current(&self) -> AddonLookup {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the answer; true when it changed.
    pub(crate) fn set(&self, lookup: AddonLookup) -> bool {
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let changed = *current != lookup;
        *current = lookup;
        changed
    }
}

/// Reads the managed cluster, asking a few times over transient failures: a cluster that
/// cannot be read leaves only the bindings that use the add-on's identity refused, naming why.
pub async fn read(arm: &dyn Arm, cluster: &str) -> AddonLookup {
    let mut delay = Duration::from_millis(500);
    let mut last = String::new();
    for _ in 0..5 {
        match arm.get_addon_identity(cluster).await {
            Ok(Some(found)) => return AddonLookup::Found(found),
            Ok(None) => return AddonLookup::NotEnabled,
            Err(error) if error.is_retryable() => last = error.to_string(),
            Err(error) => return AddonLookup::Unreadable(error.to_string()),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    AddonLookup::Unreadable(last)
}

/// Reads the managed cluster into `source` every `every`, until dropped (the first read is
/// the caller's, before any reconcile). A binding refused because the add-on was off
/// converges on the resync after it is enabled.
pub async fn keep_current(arm: Arc<dyn Arm>, cluster: String, source: AddonIdentitySource, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let lookup = read(arm.as_ref(), &cluster).await;
        if source.set(lookup.clone()) {
            tracing::info!(%cluster, addon = ?lookup, "the Key Vault secrets provider add-on's identity changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_reports_only_real_changes_and_is_shared_by_its_clones() {
        let source = AddonIdentitySource::default();
        let reader = source.clone();
        assert_eq!(reader.current(), AddonLookup::NotConfigured);
        assert!(source.set(AddonLookup::NotEnabled));
        assert!(!source.set(AddonLookup::NotEnabled), "the same answer again is no change");
        assert_eq!(reader.current(), AddonLookup::NotEnabled, "clones share one answer");
        assert!(source.set(AddonLookup::Unreadable("throttled".into())));
    }
}
