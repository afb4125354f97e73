//! Azure state shared by many bindings, read once per resync period.
//!
//! Every binding on a pool reads that pool's identity block, and every binding of a vault
//! reads the vault. Reads are cached for the resync period, so a converged cluster costs
//! about one read per VM scale set and per vault per period instead of one per binding.
//! kvbind's own writes update the cache; a change made by someone else is seen at the next
//! expiry, which is when the resync promises to repair drift.
//!
//! Identities are read once per binding, so they are kept longer (six periods, an hour by
//! default): their client and principal IDs never change and kvbind writes their tags
//! itself. After that a pool that lists the identity with its principal vouches for it, so
//! a steady cluster costs one read per scale set and vault per period. An identity deleted
//! behind kvbind's back loses its principal on the pools and is read, and recreated, within
//! six periods.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, ClusterIdentityBinding, ComputeIdentity, Identity, Vault};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId, VaultId};

use crate::caches::shelf::Shelf;

/// How many resync periods an identity read is trusted.
const IDENTITY_PERIODS: u32 = 6;

/// Cached reads of identity blocks, vaults, identities and what names stand for.
pub struct ReadCache {
    ttl: Duration,
    compute: Shelf<ComputeId, Arc<ComputeIdentity>>,
    vaults: Shelf<VaultId, Arc<Vault>>,
    identities: Shelf<IdentityId, Identity>,
    /// AKS identity bindings by name (lowercase): every ServiceAccount's binding of an
    /// identity would otherwise read the one ARM binding they share.
    aks_bindings: Shelf<String, ClusterIdentityBinding>,
    /// Vaults found by name (lowercase). A vault keeps its ID for life, so a name is
    /// searched for once and kept until its vault answers 404: a converged cluster lists
    /// no vaults.
    vault_names: Shelf<String, VaultId>,
}

impl ReadCache {
    /// A cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            ttl,
            compute: Shelf::default(),
            vaults: Shelf::default(),
            identities: Shelf::default(),
            aks_bindings: Shelf::default(),
            vault_names: Shelf::default(),
        }
    }

    /// A VM scale set's or VM's identity block, shared: with a thousand identities on a
    /// pool it is large, and every binding on the pool reads it.
    pub async fn compute(&self, arm: &dyn Arm, target: &ComputeId) -> Result<Arc<ComputeIdentity>, AzureError> {
        self.compute.read_through(target, self.ttl, async { arm.get_compute_identity(target).await.map(Arc::new) }).await
    }

    /// Records an identity block kvbind just read or wrote.
    pub fn put_compute(&self, target: &ComputeId, identity: Arc<ComputeIdentity>) {
        self.compute.put(target.clone(), identity);
    }

    /// A vault, shared like identity blocks (its access policies grow with the bindings).
    pub async fn vault(&self, arm: &dyn Arm, id: &VaultId) -> Result<Arc<Vault>, AzureError> {
        self.vaults.read_through(id, self.ttl, async { arm.get_vault(id).await.map(Arc::new) }).await
    }

    /// Applies to a cached vault the access-policy changes kvbind just made, so the next
    /// reconcile sees them without reading the vault again (with a thousand principals it is
    /// hundreds of kilobytes). The entry keeps its age: drift is still read at expiry.
    pub fn vault_changed(&self, id: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) {
        self.vaults.change(id, |vault| {
            let vault = Arc::make_mut(vault);
            for entry in entries {
                vault.apply(op, entry);
            }
        });
    }

    /// True when the vault as kvbind last saw it (whatever the entry's age) already grants
    /// `entry`.
    pub fn vault_grants(&self, id: &VaultId, entry: &AccessPolicy) -> bool {
        self.vaults.peek(id, |vault| vault.grants(entry)).unwrap_or(false)
    }

    /// The principals (lowercase object IDs) the cached vault's access policies name, and
    /// how many entries it holds; `None` when the vault is not cached.
    pub fn vault_principals(&self, id: &VaultId) -> Option<(usize, HashSet<String>)> {
        self.vaults.peek(id, |vault| (vault.access_policies.len(), vault.access_policies.iter().map(|p| p.object_id.to_ascii_lowercase()).collect()))
    }

    /// The vault `name` stands for, as `find` answers it once however many ask; kept until
    /// [`forget_vault_name`](Self::forget_vault_name). A name nothing answers to is asked
    /// about again.
    pub async fn vault_named<E>(&self, name: &str, find: impl Future<Output = Result<Option<VaultId>, E>>) -> Result<Option<VaultId>, E> {
        self.vault_names.read_found(&name.to_ascii_lowercase(), Duration::MAX, find).await
    }

    /// Forgets what vault `name` stands for: the vault found by it answered 404 (deleted,
    /// or made again elsewhere).
    pub fn forget_vault_name(&self, name: &str) {
        self.vault_names.forget(&name.to_ascii_lowercase());
    }

    /// A user-assigned identity; an absent one is not cached (it is about to be created).
    ///
    /// When its entry has aged out, `pool`'s identity block (read at most once a period,
    /// and read by the reconcile right after anyway) can vouch for it: ARM lists each
    /// attached identity with its principal, and blanks the principal of one that was
    /// deleted. Listed with the principal kvbind knows, the identity is taken as read, so a
    /// converged cluster reads no identity at all.
    pub async fn identity(&self, arm: &dyn Arm, id: &IdentityId, pool: Option<&ComputeId>) -> Result<Option<Identity>, AzureError> {
        if let Some(hit) = self.identities.fresh(id, self.ttl * IDENTITY_PERIODS) {
            return Ok(Some(hit));
        }
        if let (Some(known), Some(pool)) = (self.identities.last(id), pool)
            && let Ok(block) = self.compute(arm, pool).await
            && block.principal_of(id) == Some(known.principal_id.as_str())
        {
            self.identities.put(id.clone(), known.clone());
            return Ok(Some(known));
        }
        let read = arm.get_identity(id).await?;
        if let Some(found) = &read {
            self.identities.put(id.clone(), found.clone());
        }
        Ok(read)
    }

    /// Records an identity kvbind just created or updated.
    pub fn put_identity(&self, identity: &Identity) {
        self.identities.put(identity.id.clone(), identity.clone());
    }

    /// Drops an identity kvbind just deleted.
    pub fn forget_identity(&self, id: &IdentityId) {
        self.identities.forget(id);
    }

    /// AKS identity binding `name` as kvbind last read or wrote it, if that was within one
    /// resync: a binding deleted behind kvbind's back is made again at the latest then.
    pub fn aks_binding(&self, name: &str) -> Option<ClusterIdentityBinding> {
        self.aks_bindings.fresh(&name.to_ascii_lowercase(), self.ttl)
    }

    /// Records AKS identity binding `name` as read or written now.
    pub fn put_aks_binding(&self, name: &str, binding: &ClusterIdentityBinding) {
        self.aks_bindings.put(name.to_ascii_lowercase(), binding.clone());
    }

    /// Drops AKS identity binding `name`, which kvbind just deleted.
    pub fn forget_aks_binding(&self, name: &str) {
        self.aks_bindings.forget(&name.to_ascii_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use kvbind_azure::ResourceKind;

    use super::*;
    use crate::fake_compute::FakeCompute;

    #[tokio::test(start_paused = true)]
    async fn bindings_that_find_an_entry_stale_at_once_share_one_read() {
        let arm = Arc::new(FakeCompute::new(Duration::from_secs(1)));
        let cache = Arc::new(ReadCache::new(Duration::from_secs(10)));
        let pool = ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "nodes", "pool-a").expect("id");
        let read_all = || {
            let reads: Vec<_> = (0..50)
                .map(|_| {
                    let (arm, cache, pool) = (arm.clone(), cache.clone(), pool.clone());
                    tokio::spawn(async move { cache.compute(arm.as_ref(), &pool).await })
                })
                .collect();
            futures::future::join_all(reads)
        };
        for read in read_all().await {
            read.expect("task").expect("read");
        }
        assert_eq!(arm.reads(), 1, "fifty bindings, one read");
        tokio::time::sleep(Duration::from_secs(11)).await;
        for read in read_all().await {
            read.expect("task").expect("read");
        }
        assert_eq!(arm.reads(), 2, "expired: read again, once");
    }
}
