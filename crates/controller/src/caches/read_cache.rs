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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, ComputeIdentity, Identity, Vault};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId, VaultId};

use crate::turns::Turns;

/// How many resync periods an identity read is trusted.
const IDENTITY_PERIODS: u32 = 6;

/// Cached reads of identity blocks and vaults.
pub struct ReadCache {
    ttl: Duration,
    compute: Mutex<HashMap<String, (Arc<ComputeIdentity>, Instant)>>,
    vaults: Mutex<HashMap<String, (Arc<Vault>, Instant)>>,
    identities: Mutex<HashMap<String, (Identity, Instant)>>,
    /// AKS identity bindings by name: every ServiceAccount's binding of an identity would
    /// otherwise read the one ARM binding they share.
    aks_bindings: Mutex<HashMap<String, (kvbind_azure::model::ClusterIdentityBinding, Instant)>>,
    /// One read at a time per key: when an entry expires, every binding on that pool or
    /// vault finds it stale at once, and all but the first wait for its answer.
    reading: Turns,
}

fn fresh<T: Clone>(map: &Mutex<HashMap<String, (T, Instant)>>, key: &str, ttl: Duration) -> Option<T> {
    let map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(key).filter(|(_, at)| at.elapsed() < ttl).map(|(v, _)| v.clone())
}

fn store<T>(map: &Mutex<HashMap<String, (T, Instant)>>, key: String, value: T) {
    map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, (value, Instant::now()));
}

/// The fresh cached value for `key`, or `read`'s answer, cached and shared. Concurrent
/// misses for one key wait for a single read.
async fn read_through<T>(
    map: &Mutex<HashMap<String, (Arc<T>, Instant)>>,
    reading: &Turns,
    key: String,
    ttl: Duration,
    read: impl std::future::Future<Output = Result<T, AzureError>>,
) -> Result<Arc<T>, AzureError> {
    if let Some(hit) = fresh(map, &key, ttl) {
        return Ok(hit);
    }
    let turn = reading.turn(&key);
    let _turn = turn.lock().await;
    if let Some(hit) = fresh(map, &key, ttl) {
        return Ok(hit);
    }
    let value = Arc::new(read.await?);
    store(map, key, value.clone());
    Ok(value)
}

impl ReadCache {
    /// A cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            ttl,
            compute: Mutex::default(),
            vaults: Mutex::default(),
            identities: Mutex::default(),
            aks_bindings: Mutex::default(),
            reading: Turns::default(),
        }
    }

    /// A VM scale set's or VM's identity block, shared: with a thousand identities on a
    /// pool it is large, and every binding on the pool reads it.
    pub async fn compute(&self, arm: &dyn Arm, target: &ComputeId) -> Result<Arc<ComputeIdentity>, AzureError> {
        read_through(&self.compute, &self.reading, target.key(), self.ttl, arm.get_compute_identity(target)).await
    }

    /// Records an identity block kvbind just read or wrote.
    pub fn put_compute(&self, target: &ComputeId, identity: Arc<ComputeIdentity>) {
        store(&self.compute, target.key(), identity);
    }

    /// A vault, shared like identity blocks (its access policies grow with the bindings).
    pub async fn vault(&self, arm: &dyn Arm, id: &VaultId) -> Result<Arc<Vault>, AzureError> {
        read_through(&self.vaults, &self.reading, id.key(), self.ttl, arm.get_vault(id)).await
    }

    /// Applies to a cached vault the access-policy changes kvbind just made, so the next
    /// reconcile sees them without reading the vault again (with a thousand principals it is
    /// hundreds of kilobytes). The entry keeps its age: drift is still read at expiry.
    pub fn vault_changed(&self, id: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) {
        let mut vaults = self.vaults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((vault, _)) = vaults.get_mut(&id.key()) {
            let vault = Arc::make_mut(vault);
            for entry in entries {
                vault.apply(op, entry);
            }
        }
    }

    /// True when the vault as kvbind last saw it (whatever the entry's age) already grants
    /// `entry`.
    pub fn vault_grants(&self, id: &VaultId, entry: &AccessPolicy) -> bool {
        self.vaults.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id.key()).is_some_and(|(vault, _)| vault.grants(entry))
    }

    /// The principals (lowercase object IDs) the cached vault's access policies name, and
    /// how many entries it holds; `None` when the vault is not cached.
    pub fn vault_principals(&self, id: &VaultId) -> Option<(usize, std::collections::HashSet<String>)> {
        let vaults = self.vaults.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (vault, _) = vaults.get(&id.key())?;
        Some((vault.access_policies.len(), vault.access_policies.iter().map(|p| p.object_id.to_ascii_lowercase()).collect()))
    }

    /// A user-assigned identity; an absent one is not cached (it is about to be created).
    ///
    /// When its entry has aged out, `pool`'s identity block (read at most once a period,
    /// and read by the reconcile right after anyway) can vouch for it: ARM lists each
    /// attached identity with its principal, and blanks the principal of one that was
    /// deleted. Listed with the principal kvbind knows, the identity is taken as read, so a
    /// converged cluster reads no identity at all.
    pub async fn identity(&self, arm: &dyn Arm, id: &IdentityId, pool: Option<&ComputeId>) -> Result<Option<Identity>, AzureError> {
        let key = id.key();
        if let Some(hit) = fresh(&self.identities, &key, self.ttl * IDENTITY_PERIODS) {
            return Ok(Some(hit));
        }
        let known = self.identities.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).map(|(i, _)| i.clone());
        if let (Some(known), Some(pool)) = (known, pool)
            && let Ok(block) = self.compute(arm, pool).await
            && block.principal_of(id) == Some(known.principal_id.as_str())
        {
            store(&self.identities, key, known.clone());
            return Ok(Some(known));
        }
        let read = arm.get_identity(id).await?;
        if let Some(found) = &read {
            store(&self.identities, key, found.clone());
        }
        Ok(read)
    }

    /// Records an identity kvbind just created or updated.
    pub fn put_identity(&self, identity: &Identity) {
        store(&self.identities, identity.id.key(), identity.clone());
    }

    /// Drops an identity kvbind just deleted.
    pub fn forget_identity(&self, id: &IdentityId) {
        self.identities.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id.key());
    }

    /// AKS identity binding `name` as kvbind last read or wrote it, if that was within one
    /// resync: a binding deleted behind kvbind's back is made again at the latest then.
    pub fn aks_binding(&self, name: &str) -> Option<kvbind_azure::model::ClusterIdentityBinding> {
        fresh(&self.aks_bindings, &name.to_ascii_lowercase(), self.ttl)
    }

    /// Records AKS identity binding `name` as read or written now.
    pub fn put_aks_binding(&self, name: &str, binding: &kvbind_azure::model::ClusterIdentityBinding) {
        store(&self.aks_bindings, name.to_ascii_lowercase(), binding.clone());
    }

    /// Drops AKS identity binding `name`, which kvbind just deleted.
    pub fn forget_aks_binding(&self, name: &str) {
        self.aks_bindings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&name.to_ascii_lowercase());
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
