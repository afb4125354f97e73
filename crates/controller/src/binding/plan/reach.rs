//! Step 2's decision: which way a binding's pods reach the identity's tokens, what an
//! earlier way left behind to take back when the binding changed mode or ServiceAccount,
//! and what the binding is told about who else can reach them.

use std::collections::BTreeSet;

use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::IdentityMode;

use crate::binding::names::first_ten;

/// The way a binding's pods reach the identity's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way<'a> {
    /// The Key Vault add-on's identity, which AKS keeps on every pool: nothing to do.
    AddOn,
    /// IMDS on the node pools the binding selects: attach the identity there.
    Pools,
    /// A federated credential for this ServiceAccount.
    Federated(&'a str),
    /// The cluster's AKS identity binding, and a ClusterRole for this ServiceAccount.
    AksBinding(&'a str),
}

/// Step 2 for one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachPlan<'a> {
    /// The way now.
    pub way: Way<'a>,
    /// A ServiceAccount federated before and not now: its credential and annotation go.
    pub unfederate: Option<&'a str>,
    /// A ServiceAccount given the identity through AKS before and not now: its ClusterRole
    /// goes, and with `true` (the binding left the mode) the cluster's ARM binding too,
    /// unless others still use it.
    pub release: Option<(&'a str, bool)>,
}

/// Decides step 2 from the binding's spec and the ways its status records. Every name
/// taken back is derived from the binding's own namespace, so a status that names another
/// ServiceAccount points kvbind at most at one of the tenant's own.
pub fn reach_plan(binding: &IdentityBinding) -> ReachPlan<'_> {
    let spec = &binding.spec;
    if spec.identity.addon.is_some() {
        return ReachPlan { way: Way::AddOn, unfederate: None, release: None };
    }
    let account = spec.service_account.as_ref().map(|s| s.name.as_str());
    let way = match (spec.mode, account) {
        (IdentityMode::WorkloadIdentity, Some(account)) => Way::Federated(account),
        (IdentityMode::AksIdentityBinding, Some(account)) => Way::AksBinding(account),
        _ => Way::Pools,
    };
    let status = binding.status.as_ref();
    let federated_before = status.and_then(|s| s.workload_identity.as_ref()).map(|w| w.service_account.as_str());
    let bound_before = status.and_then(|s| s.aks_identity_binding.as_ref()).map(|b| b.service_account.as_str());
    ReachPlan {
        way,
        unfederate: federated_before.filter(|before| way != Way::Federated(before)),
        release: bound_before.filter(|before| way != Way::AksBinding(before)).map(|before| (before, !matches!(way, Way::AksBinding(_)))),
    }
}

/// What a binding reached through node pools is told: a reason and a message, and the
/// notice that every pod on `pools` can get the identity's tokens, naming the other
/// namespaces (`sharing`) whose identities are there too. No pool yet is its own reason.
pub fn pools_report(pools: &[String], sharing: &BTreeSet<String>) -> (&'static str, String, Option<(&'static str, String)>) {
    if pools.is_empty() {
        return ("NoMatchingNodes", "no node matches spec.nodes yet; the identity is attached as nodes appear".to_owned(), None);
    }
    let others = if sharing.is_empty() {
        String::new()
    } else {
        format!(
            "; identities of namespaces {} are on these pools too, so their pods there can get this identity's tokens, and this namespace's pods theirs",
            first_ten(sharing.iter())
        )
    };
    let reason = if sharing.is_empty() { "ReachableFromEveryPodOnPools" } else { "SharedWithOtherNamespaces" };
    let notice =
        format!("every pod on {} can get this identity's tokens from IMDS{others}; mode WorkloadIdentity limits them to one ServiceAccount", pools.join(", "));
    ("Attached", format!("attached to {}", pools.join(", ")), Some((reason, notice)))
}

#[cfg(test)]
mod tests;
