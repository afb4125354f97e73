//! The desk for user-assigned identities: the identity as last read or written, one turn
//! at a time per identity for creating and tagging it, and the AKS identity bindings that
//! bind it on the cluster.
//!
//! Identities are read once per binding, so a read is trusted for six resync periods (an
//! hour by default): their client and principal IDs never change and kvbind writes their
//! tags itself. After that a pool that lists the identity with its principal vouches for
//! it, so a steady cluster costs one read per scale set and vault per period. An identity
//! deleted behind kvbind's back loses its principal on the pools and is read, and
//! recreated, within six periods.

use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::model::{ClusterIdentityBinding, Identity};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId};

use super::compute::ComputeDesk;
use crate::caches::shelf::Shelf;
use crate::turns::Turns;

/// How many resync periods an identity read is trusted.
const IDENTITY_PERIODS: u32 = 6;

/// Identities, their turns and their AKS identity bindings.
pub struct IdentityDesk {
    arm: Arc<dyn Arm>,
    ttl: Duration,
    reads: Shelf<IdentityId, Identity>,
    /// One turn at a time per identity, for creating and tagging it.
    turns: Turns<IdentityId>,
    /// AKS identity bindings by name (lowercase): every ServiceAccount's binding of an
    /// identity would otherwise read the one ARM binding they share.
    aks_bindings: Shelf<String, ClusterIdentityBinding>,
}

impl IdentityDesk {
    /// A desk whose reads live for `ttl` (the resync period; identities six of them).
    pub fn new(arm: Arc<dyn Arm>, ttl: Duration) -> Self {
        IdentityDesk { arm, ttl, reads: Shelf::default(), turns: Turns::default(), aks_bindings: Shelf::default() }
    }

    /// The turn for `id`: creating or tagging it waits for whoever holds it.
    pub fn turn(&self, id: &IdentityId) -> Arc<tokio::sync::Mutex<()>> {
        self.turns.turn(id)
    }

    /// A user-assigned identity; an absent one is not kept (it is about to be created).
    ///
    /// When its read has aged out, a `pool`'s identity block (read at most once a period,
    /// and read by the reconcile right after anyway) can vouch for it: ARM lists each
    /// attached identity with its principal, and blanks the principal of one that was
    /// deleted. Listed with the principal kvbind knows, the identity is taken as read, so a
    /// converged cluster reads no identity at all.
    pub async fn read(&self, id: &IdentityId, pool: Option<(&ComputeDesk, &ComputeId)>) -> Result<Option<Identity>, AzureError> {
        if let Some(hit) = self.reads.fresh(id, self.ttl * IDENTITY_PERIODS) {
            return Ok(Some(hit));
        }
        if let (Some(known), Some((pools, pool))) = (self.reads.last(id), pool)
            && let Ok(block) = pools.read(pool).await
            && block.principal_of(id) == Some(known.principal_id.as_str())
        {
            self.reads.put(id.clone(), known.clone());
            return Ok(Some(known));
        }
        let read = self.arm.get_identity(id).await?;
        if let Some(found) = &read {
            self.reads.put(id.clone(), found.clone());
        }
        Ok(read)
    }

    /// Keeps an identity kvbind just created or updated.
    pub fn put(&self, identity: &Identity) {
        self.reads.put(identity.id.clone(), identity.clone());
    }

    /// Drops an identity kvbind just deleted.
    pub fn forget(&self, id: &IdentityId) {
        self.reads.forget(id);
    }

    /// AKS identity binding `name` as kvbind last read or wrote it, if that was within one
    /// resync: a binding deleted behind kvbind's back is made again at the latest then.
    pub fn aks_binding(&self, name: &str) -> Option<ClusterIdentityBinding> {
        self.aks_bindings.fresh(&name.to_ascii_lowercase(), self.ttl)
    }

    /// Keeps AKS identity binding `name` as read or written now.
    pub fn put_aks_binding(&self, name: &str, binding: &ClusterIdentityBinding) {
        self.aks_bindings.put(name.to_ascii_lowercase(), binding.clone());
    }

    /// Drops AKS identity binding `name`, which kvbind just deleted.
    pub fn forget_aks_binding(&self, name: &str) {
        self.aks_bindings.forget(&name.to_ascii_lowercase());
    }
}
