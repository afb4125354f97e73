//! Step 2: where the identity's tokens can be had from: the node pools, a federated
//! ServiceAccount, AKS's identity binding, or, for the add-on's identity, where AKS put it.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::{AttachmentStatus, IdentityMode};
use kvbind_azure::ComputeId;

use super::azure_sync::{self, Change};
use super::names::first_ten;
use super::plan::group::Demand;
use super::undo::release_aks_binding;
use super::{aks_identity_binding, workload_identity};
use crate::desks::handoff::Waiting;
use crate::error::BindingError;
use crate::policy::Judge;

/// Where a binding's identity can be reached from, after step 2.
pub(super) struct Reach {
    pub(super) attachments: Vec<AttachmentStatus>,
    pub(super) pending: Vec<kvbind_azure::ComputeId>,
    pub(super) crowded: Vec<kvbind_azure::ComputeId>,
    pub(super) newly_crowded: Vec<kvbind_azure::ComputeId>,
    pub(super) federation: Option<kvbind_api::identity_binding::WorkloadIdentityStatus>,
    pub(super) aks_binding: Option<kvbind_api::identity_binding::AksIdentityBindingStatus>,
    pub(super) notices: Vec<(&'static str, &'static str, String)>,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

/// Step 2: the identity on the node pools that the bindings sharing it need, and in mode
/// `WorkloadIdentity` federated with the binding's ServiceAccount instead.
pub(super) async fn reach(
    judge: &Judge<'_>,
    binding: &IdentityBinding,
    identity: &kvbind_azure::model::Identity,
    created: bool,
    demand: &Demand,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<Reach, BindingError> {
    let ctx = judge.ctx;
    if binding.spec.identity.addon.is_some() {
        return Ok(attached_by_aks());
    }
    let changes_before = changes.len();
    let azure_sync::Attachments { status: attachments, crowded, newly_crowded, pending } =
        azure_sync::sync_attachments(ctx, &identity.id, created, &demand.targets, &demand.records, demand.may_remove, waiting, changes).await?;
    let names: Vec<String> = attachments.iter().map(|a| a.resource_id.rsplit('/').next().unwrap_or_default().to_owned()).collect();
    let namespace = binding.namespace().unwrap_or_default();
    let previous = binding.status.as_ref().and_then(|s| s.workload_identity.clone());
    let service_account = binding.spec.service_account.as_ref().filter(|_| binding.spec.mode == IdentityMode::WorkloadIdentity).map(|s| s.name.as_str());
    if let Some(old) = previous.as_ref().filter(|old| Some(old.service_account.as_str()) != service_account) {
        workload_identity::unfederate(ctx, &namespace, &identity.id, &old.service_account, changes).await?;
    }
    let mut reach = Reach {
        attachments,
        pending,
        crowded,
        newly_crowded,
        federation: None,
        aks_binding: None,
        notices: Vec::new(),
        reason: "Attached",
        message: String::new(),
    };
    let bound_account = binding.spec.service_account.as_ref().filter(|_| binding.spec.mode == IdentityMode::AksIdentityBinding).map(|s| s.name.as_str());
    if let Some(old) = binding.status.as_ref().and_then(|s| s.aks_identity_binding.as_ref()).filter(|old| Some(old.service_account.as_str()) != bound_account) {
        // Still in the mode with another ServiceAccount, the cluster's binding stays.
        let cluster_too = bound_account.is_none();
        release_aks_binding(judge, binding, &identity.id, &identity.client_id, &old.service_account, cluster_too, created, changes).await?;
    }
    if let Some(account) = bound_account {
        let bound = aks_identity_binding::bind(ctx, &namespace, account, identity, changes).await?;
        reach.message = format!(
            "bound to the cluster by AKS identity binding {}; ServiceAccount {account} may use it through AKS's token proxy (ClusterRole {}); attached to no node pool",
            bound.resource_id.rsplit('/').next().unwrap_or_default(),
            bound.cluster_role
        );
        reach.reason = "BoundByAKS";
        reach.aks_binding = Some(bound);
        return Ok(reach);
    }
    if service_account.is_none() {
        let skipped = ctx.index.node_targets.auto_provisioned(&ctx.index.nodes, &binding.spec.nodes);
        if !skipped.is_empty() {
            reach.notices.push((
                "AutoProvisionedNodes",
                "NodeAutoProvisioning",
                format!(
                    "nodes {} were made by node auto-provisioning, whose VMs cannot carry user-assigned identities, so kvbind leaves them alone and pods there cannot use this identity: select other nodes with spec.nodes, or use mode WorkloadIdentity",
                    first_ten(skipped.iter())
                ),
            ));
        }
    }
    match service_account {
        Some(account) => {
            let federation = workload_identity::federate(ctx, &namespace, account, identity, previous.as_ref(), changes).await?;
            reach.message = format!("federated with ServiceAccount {account} (credential {}); attached to no node pool", federation.federated_credential);
            reach.reason = "Federated";
            reach.federation = Some(federation);
        }
        None if names.is_empty() => {
            reach.reason = "NoMatchingNodes";
            reach.message = "no node matches spec.nodes yet; the identity is attached as nodes appear".to_owned();
        }
        None => {
            // From kvbind's own ledger, never from statuses a tenant can write.
            let newcomer = ctx.ledger.used_by(&identity.id, &namespace, &binding.name_any());
            let pools: BTreeSet<ComputeId> = reach.attachments.iter().filter_map(|a| ComputeId::parse(&a.resource_id).ok()).collect();
            let neighbours = ctx.ledger.sharing(&pools, &namespace);
            // The bindings already on these pools learn of this namespace: their notices
            // name it after their next reconcile, which this asks for when it is news.
            if newcomer || changes.len() > changes_before {
                for (ns, name) in &neighbours {
                    ctx.azure.handoffs.wake(ObjectRef::new(name).within(ns));
                }
            }
            let sharing: BTreeSet<String> = neighbours.into_iter().map(|(ns, _)| ns).collect();
            let others = if sharing.is_empty() {
                String::new()
            } else {
                format!(
                    "; identities of namespaces {} are on these pools too, so their pods there can get this identity's tokens, and this namespace's pods theirs",
                    first_ten(sharing.iter())
                )
            };
            reach.notices.push((
                "NodeWideAccess",
                if sharing.is_empty() { "ReachableFromEveryPodOnPools" } else { "SharedWithOtherNamespaces" },
                format!(
                    "every pod on {} can get this identity's tokens from IMDS{others}; mode WorkloadIdentity limits them to one ServiceAccount",
                    names.join(", ")
                ),
            ));
            reach.message = format!("attached to {}", names.join(", "));
        }
    }
    Ok(reach)
}

/// Where the add-on's identity is: AKS put it on every node pool and keeps it there, so
/// kvbind attaches and detaches nothing and says what that means.
pub(super) fn attached_by_aks() -> Reach {
    Reach {
        attachments: Vec::new(),
        pending: Vec::new(),
        crowded: Vec::new(),
        newly_crowded: Vec::new(),
        federation: None,
        aks_binding: None,
        notices: vec![(
            "NodeWideAccess",
            "AddonIdentityOnEveryPool",
            "AKS attaches the Key Vault add-on's identity to every node pool, so every pod of the cluster can get its tokens from IMDS; mode WorkloadIdentity limits an identity to one ServiceAccount".to_owned(),
        )],
        reason: "AttachedByAKS",
        message: "AKS attaches the add-on's identity to every node pool; kvbind attaches and detaches nothing".to_owned(),
    }
}
