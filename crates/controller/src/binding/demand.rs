//! What one identity needs across every binding that shares it: the group's plan is made
//! from this, so a sharer a policy refuses widens nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::IdentityBinding;

use super::azure_sync::Records;
use super::names::key;
use crate::needs::Needs;
use crate::policy::sharing::sharing_identity;
use crate::policy::{self, Judge, Verdict};

/// Everything the binding's identity needs across all bindings that share it.
pub(super) struct Demand {
    pub(super) needs: Needs,
    pub(super) vaults: BTreeMap<String, (String, Vec<kvbind_api::KeyVaultObject>)>,
    pub(super) targets: BTreeSet<kvbind_azure::ComputeId>,
    pub(super) may_remove: bool,
    pub(super) records: Records,
    pub(super) users: Vec<String>,
    /// The other bindings sharing the identity whose input reads, with their verdicts:
    /// each must pass its own policies on the vaults found for it before it adds to the
    /// group's demand ([`Demand::only_allowed_vaults`]).
    pub(super) members: Vec<(Arc<IdentityBinding>, Arc<Verdict>)>,
}

pub(super) fn demand(binding: &IdentityBinding, identity: &kvbind_azure::IdentityId, own: Option<Needs>, judge: &Judge<'_>) -> Demand {
    let ctx = judge.ctx;
    let group = sharing_identity(binding, identity, judge);
    let needs = own.clone().unwrap_or_default();
    let mut may_remove = true;
    let mut users: Vec<String> = own.is_some().then(|| key(binding)).into_iter().collect();
    let mut members = Vec::new();
    for member in &group {
        users.push(key(member));
        let verdict = judge.verdict(member);
        match verdict.needs {
            Some(_) => members.push((member.clone(), verdict)),
            // Keep what a broken member may still need until it is fixed.
            None => may_remove = false,
        }
    }
    users.sort();
    // What kvbind did comes from its own ledger, never from a status: a tenant who may
    // patch `identitybindings/status` could otherwise name anything as kvbind's to undo.
    let mut records = Records::default();
    ctx.ledger.add_to(identity, &mut records);
    let mut demand = Demand { needs, vaults: BTreeMap::new(), targets: BTreeSet::new(), may_remove, records, users, members };
    demand.sum();
    demand
}

impl Demand {
    /// The namespaces of the bindings the identity serves.
    pub(super) fn namespaces(&self) -> BTreeSet<String> {
        self.users.iter().filter_map(|user| user.split_once('/')).map(|(namespace, _)| namespace.to_owned()).collect()
    }

    /// The group's vaults and targets: the binding's own needs and every member's.
    pub(super) fn sum(&mut self) {
        self.vaults = self.needs.vaults.clone();
        self.targets = self.needs.targets.clone();
        for n in self.members.iter().filter_map(|(_, verdict)| verdict.needs.as_ref()) {
            self.targets.extend(n.targets.iter().cloned());
            for (vault, (tenant, objects)) in &n.vaults {
                self.vaults.entry(vault.clone()).or_insert_with(|| (tenant.clone(), Vec::new())).1.extend(objects.iter().cloned());
            }
        }
    }

    /// Drops the members whose vaults, now found by name, none of their own policies
    /// allows by full ID: a policy checks a `keyvaultName` only loosely before the vault is
    /// found, and a member refused on its vault must not have the shared identity granted
    /// on it through this binding. Returns the vaults the group still needs, keeping those
    /// where kvbind granted before (their grants are revoked).
    pub(super) fn only_allowed_vaults(
        &mut self,
        vaults: BTreeMap<String, Arc<kvbind_azure::model::Vault>>,
        judge: &Judge<'_>,
    ) -> BTreeMap<String, Arc<kvbind_azure::model::Vault>> {
        let before = self.members.len();
        self.members.retain(|(member, verdict)| {
            let names = verdict.needs.iter().flat_map(|needs| needs.vaults.keys());
            let ids: Vec<kvbind_azure::VaultId> = names.filter_map(|name| vaults.get(name)).map(|v| v.id.clone()).collect();
            policy::allows_vaults(member, &ids, judge)
        });
        if self.members.len() != before {
            self.sum();
        }
        vaults.into_iter().filter(|(name, vault)| self.vaults.contains_key(name) || self.records.granted.contains_key(&vault.id.key())).collect()
    }
}
