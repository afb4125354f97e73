//! What a binding that goes (deleted, or refused with deletion policy `Delete`) takes back
//! outside Azure's grants and attachments, which are planned as for any binding, with the
//! group's demand less this one: the federation, the AKS ClusterRoles, the classes' client
//! ID and the namespace's place in the admission policy, each kept while a binding of the
//! same namespace sharing the identity still uses it.
//!
//! Names come from the binding's spec and status, which the tenant writes; every name
//! taken back is derived in the binding's own namespace, so a forged status can at most
//! point kvbind at the tenant's own objects. A sharer's status can only make kvbind keep
//! more.

use std::collections::BTreeSet;

use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::IdentityMode;

/// What a leaving binding takes back in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaving<'a> {
    /// The ServiceAccount whose federated credential and annotation go.
    pub unfederate: Option<&'a str>,
    /// The ServiceAccounts whose AKS ClusterRole goes unless another binding still gives
    /// them the identity (checked against every live binding, not only this namespace's).
    pub aks_accounts: BTreeSet<&'a str>,
    /// The SecretProviderClasses whose client ID goes.
    pub classes: BTreeSet<&'a str>,
    /// The namespace leaves the admission policy's list for the identity.
    pub withdraw_namespace: bool,
}

/// Decides what `binding` takes back, given the live bindings of its namespace that share
/// its identity (`sharers_here`).
pub fn leaving<'a>(binding: &'a IdentityBinding, sharers_here: &[&IdentityBinding]) -> Leaving<'a> {
    let status = binding.status.as_ref();
    let federated = status.and_then(|s| s.workload_identity.as_ref()).map(|w| w.service_account.as_str());
    let still_federated =
        |account: &str| sharers_here.iter().any(|b| b.status.as_ref().and_then(|s| s.workload_identity.as_ref()).is_some_and(|w| w.service_account == account));
    let mut aks_accounts = BTreeSet::new();
    if binding.spec.mode == IdentityMode::AksIdentityBinding {
        aks_accounts.extend(binding.spec.service_account.as_ref().map(|s| s.name.as_str()));
    }
    aks_accounts.extend(status.and_then(|s| s.aks_identity_binding.as_ref()).map(|b| b.service_account.as_str()));
    let shared_classes: BTreeSet<&str> =
        sharers_here.iter().filter_map(|b| b.status.as_ref()).flat_map(|s| s.secret_provider_classes.iter().map(|c| c.name.as_str())).collect();
    Leaving {
        unfederate: federated.filter(|account| !still_federated(account)),
        aks_accounts,
        classes: status.iter().flat_map(|s| s.secret_provider_classes.iter().map(|c| c.name.as_str())).filter(|c| !shared_classes.contains(c)).collect(),
        withdraw_namespace: sharers_here.is_empty(),
    }
}

#[cfg(test)]
mod tests;
