//! Step 2: where the identity's tokens can be had from: the node pools, a federated
//! ServiceAccount, AKS's identity binding, or, for the add-on's identity, where AKS put it.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::AttachmentStatus;
use kvbind_azure::{ComputeId, IdentityId};

use super::azure_sync::{self, Change};
use super::names::first_ten;
use super::plan::group::Demand;
use super::plan::reach::{Way, pools_report, reach_plan};
use super::undo::release_aks_binding;
use super::{aks_identity_binding, workload_identity};
use crate::context::Context;
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
    let plan = reach_plan(binding);
    if plan.way == Way::AddOn {
        return Ok(attached_by_aks());
    }
    let changes_before = changes.len();
    let azure_sync::Attachments { status: attachments, crowded, newly_crowded, pending } =
        azure_sync::sync_attachments(ctx, &identity.id, created, &demand.targets, &demand.records, demand.may_remove, waiting, changes).await?;
    let namespace = binding.namespace().unwrap_or_default();
    if let Some(old) = plan.unfederate {
        workload_identity::unfederate(ctx, &namespace, &identity.id, old, changes).await?;
    }
    if let Some((old, cluster_too)) = plan.release {
        release_aks_binding(judge, binding, &identity.id, &identity.client_id, old, cluster_too, created, changes).await?;
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
    match plan.way {
        // Returned above, before any attachment: AKS keeps the add-on's identity.
        Way::AddOn => {}
        Way::AksBinding(account) => {
            let bound = aks_identity_binding::bind(ctx, &namespace, account, identity, changes).await?;
            reach.message = format!(
                "bound to the cluster by AKS identity binding {}; ServiceAccount {account} may use it through AKS's token proxy (ClusterRole {}); attached to no node pool",
                bound.resource_id.rsplit('/').next().unwrap_or_default(),
                bound.cluster_role
            );
            reach.reason = "BoundByAKS";
            reach.aks_binding = Some(bound);
        }
        Way::Federated(account) => {
            let previous = binding.status.as_ref().and_then(|s| s.workload_identity.as_ref());
            let federation = workload_identity::federate(ctx, &namespace, account, identity, previous, changes).await?;
            reach.message = format!("federated with ServiceAccount {account} (credential {}); attached to no node pool", federation.federated_credential);
            reach.reason = "Federated";
            reach.federation = Some(federation);
        }
        Way::Pools => {
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
            let names: Vec<String> = reach.attachments.iter().map(|a| a.resource_id.rsplit('/').next().unwrap_or_default().to_owned()).collect();
            let sharing =
                if names.is_empty() { BTreeSet::new() } else { neighbours(ctx, binding, &identity.id, &namespace, &reach, changes.len() > changes_before) };
            let (reason, message, notice) = pools_report(&names, &sharing);
            reach.reason = reason;
            reach.message = message;
            reach.notices.extend(notice.map(|(reason, text)| ("NodeWideAccess", reason, text)));
        }
    }
    Ok(reach)
}

/// The other namespaces whose bindings are on the pools `reach` attached, from kvbind's
/// own ledger, never from statuses a tenant can write. When this binding is new there, or
/// just changed what is attached, those bindings are woken: their notices name this
/// namespace after their next reconcile.
fn neighbours(ctx: &Context, binding: &IdentityBinding, identity: &IdentityId, namespace: &str, reach: &Reach, changed: bool) -> BTreeSet<String> {
    let newcomer = ctx.ledger.used_by(identity, namespace, &binding.name_any());
    let pools: BTreeSet<ComputeId> = reach.attachments.iter().filter_map(|a| ComputeId::parse(&a.resource_id).ok()).collect();
    let neighbours = ctx.ledger.sharing(&pools, namespace);
    if newcomer || changed {
        for (ns, name) in &neighbours {
            ctx.azure.handoffs.wake(ObjectRef::new(name).within(ns));
        }
    }
    neighbours.into_iter().map(|(ns, _)| ns).collect()
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
