//! What one identity's group of bindings needs together.
//!
//! Bindings in several namespaces may share an identity. Its pools and grants are the union
//! of what each member needs, with two guards that make a sharer unable to widen or strip
//! anything through another binding:
//! - a member whose input does not read (a malformed class, a missing vault) adds nothing,
//!   and nothing is removed while it is broken: it may still need what it had;
//! - a member whose vaults, once found by name, none of its own policies allows by full ID
//!   adds nothing either, and what kvbind granted for it is revoked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::{IdentityBinding, KeyVaultObject};
use kvbind_azure::model::Vault;
use kvbind_azure::{ComputeId, VaultId};

use crate::needs::Needs;
use crate::records::Records;

/// Everything the binding's identity needs across all bindings that share it.
pub struct Demand {
    /// The binding's own needs (empty while it is being deleted).
    pub needs: Needs,
    /// Objects per vault name (lowercase), with the tenant the classes name: the binding's
    /// and every member's.
    pub vaults: BTreeMap<String, (String, Vec<KeyVaultObject>)>,
    /// The scale sets and VMs the identity should be on.
    pub targets: BTreeSet<ComputeId>,
    /// False while a sharer's input does not read: nothing is detached or revoked then.
    pub may_remove: bool,
    /// What kvbind did for the identity, from its own ledger.
    pub records: Records,
    /// `namespace/name` of every binding the identity serves, sorted.
    pub users: Vec<String>,
    /// The other bindings sharing the identity whose input reads, with what they need:
    /// each must pass its own policies on the vaults found for it before it adds to the
    /// group's demand ([`Demand::only_allowed_vaults`]).
    pub members: Vec<(Arc<IdentityBinding>, Arc<Needs>)>,
}

/// A binding sharing the identity: `namespace/name`, the binding, and what it needs when
/// its input reads.
pub type Sharer = (String, Arc<IdentityBinding>, Option<Arc<Needs>>);

impl Demand {
    /// The group's demand: `own` is the binding's needs (`None` while it is being deleted:
    /// it is then no user), `own_name` its `namespace/name`, `sharers` the other bindings
    /// that share the identity, `records` what kvbind did for it.
    pub fn new(own: Option<Needs>, own_name: String, sharers: Vec<Sharer>, records: Records) -> Demand {
        let mut users: Vec<String> = own.is_some().then_some(own_name).into_iter().collect();
        let mut may_remove = true;
        let mut members = Vec::new();
        for (name, binding, needs) in sharers {
            users.push(name);
            match needs {
                Some(needs) => members.push((binding, needs)),
                // Keep what a broken member may still need until it is fixed.
                None => may_remove = false,
            }
        }
        users.sort();
        let mut demand = Demand { needs: own.unwrap_or_default(), vaults: BTreeMap::new(), targets: BTreeSet::new(), may_remove, records, users, members };
        demand.sum();
        demand
    }

    /// The namespaces of the bindings the identity serves.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.users.iter().filter_map(|user| user.split_once('/')).map(|(namespace, _)| namespace.to_owned()).collect()
    }

    /// The group's vaults and targets: the binding's own needs and every member's.
    fn sum(&mut self) {
        self.vaults = self.needs.vaults.clone();
        self.targets = self.needs.targets.clone();
        for (_, needs) in &self.members {
            self.targets.extend(needs.targets.iter().cloned());
            for (vault, (tenant, objects)) in &needs.vaults {
                self.vaults.entry(vault.clone()).or_insert_with(|| (tenant.clone(), Vec::new())).1.extend(objects.iter().cloned());
            }
        }
    }

    /// Drops the members whose vaults, now `found` by name, none of their own policies
    /// allows by full ID (`allows` asks them): a policy checks a `keyvaultName` only loosely
    /// before the vault is found, and a member refused on its vault must not have the
    /// shared identity granted on it through this binding. Returns the vaults the group
    /// still needs, keeping those where kvbind granted before (their grants are revoked).
    pub fn only_allowed_vaults(
        &mut self,
        found: BTreeMap<String, Arc<Vault>>,
        allows: impl Fn(&IdentityBinding, &[VaultId]) -> bool,
    ) -> BTreeMap<String, Arc<Vault>> {
        let before = self.members.len();
        self.members.retain(|(member, needs)| {
            let ids: Vec<VaultId> = needs.vaults.keys().filter_map(|name| found.get(name)).map(|v| v.id.clone()).collect();
            allows(member, &ids)
        });
        if self.members.len() != before {
            self.sum();
        }
        found.into_iter().filter(|(name, vault)| self.vaults.contains_key(name) || self.records.granted.contains_key(&vault.id)).collect()
    }
}

#[cfg(test)]
mod tests;
