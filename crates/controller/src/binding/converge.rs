//! One binding's way to converged: check, the identity, then reach and access side by
//! side, then the classes; a refused binding keeps nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::{DeletionPolicy, IdentityMode, IdentityStatus, SecretProviderClassStatus, SecretStoreStatus};

use super::azure_sync::{self, Change};
use super::demand::demand;
use super::inputs::needs_of;
use super::plan::group::Demand;
use super::reach::reach;
use super::status::Progress;
use super::undo::undo;
use super::{blast_radius, class_lint, imds_egress, write_back};
use crate::context::Context;
use crate::desks::handoff::Waiting;
use crate::error::{BindingError, Step};
use crate::needs::{Needs, identity_of};
use crate::policy::{self, Judge};

/// Converges one binding: reads and checks everything first (bad input and what no policy
/// allows stop before any write), then the identity, then its reach and its access side by
/// side; returns what step 4 writes into the classes and stores.
pub(super) async fn converge(
    binding: &IdentityBinding,
    ctx: &Context,
    waiting: Waiting<'_>,
    identity_turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    progress: &mut Progress,
    changes: &mut Vec<Change>,
) -> Result<ClassWrite, BindingError> {
    // Read and check everything first: bad input and what no policy allows stop here,
    // before any write.
    let judge = Judge::new(ctx);
    let (identity_id, adopt) = identity_of(&binding.spec.identity, &ctx.config)?;
    let needs = needs_of(binding, ctx)?;
    class_lint::report(ctx, binding, &needs.classes, progress);
    let allowing = match policy::check(binding, &identity_id, adopt, &needs, &judge) {
        Ok(allowing) => allowing,
        Err(denial) => return Err(refuse(binding, ctx, progress, changes, denial).await),
    };
    crate::policy::sharing::check_class_conflicts(binding, &identity_id, &needs.classes, &judge)?;
    crate::policy::sharing::check_store_conflicts(binding, &identity_id, &needs.stores, &judge)?;
    let mut demand = demand(binding, &identity_id, Some(needs), &judge);
    let explicit = binding.spec.key_vault.as_ref().map(|k| k.resource_id.as_str());
    let vaults = azure_sync::resolve_vaults(ctx, &demand.vaults, explicit, &demand.needs.origins()).await?;
    let vaults = demand.only_allowed_vaults(vaults, |member, ids| policy::allows_vaults(member, ids, &judge));
    let own_vaults: Vec<kvbind_azure::VaultId> =
        vaults.iter().filter(|(name, _)| demand.needs.vaults.contains_key(*name) || explicit.is_some()).map(|(_, v)| v.id.clone()).collect();
    if let Err(denial) = policy::check_vaults(&allowing, &own_vaults, ctx) {
        return Err(refuse(binding, ctx, progress, changes, denial).await);
    }
    let namespace = binding.namespace().unwrap_or_default();
    if let Some((max, policy)) = policy::write_quota(&allowing, ctx)
        && let Some((spent, resume)) = ctx.writes.spent(&namespace, max, tokio::time::Instant::now())
    {
        return Err(BindingError::AzureWriteQuota { namespace, spent, max, policy, resume });
    }
    progress.done.push((Step::Policy, "Allowed", format!("allowed by BindingPolicy {}", allowing.join(", "))));
    if binding.spec.mode == IdentityMode::AksIdentityBinding && ctx.config.managed_cluster.is_none() {
        return Err(BindingError::NoManagedCluster);
    }

    // 1. The identity.
    let may_adopt = policy::allows_adoption(&allowing, &identity_id, ctx);
    let (identity, created) = azure_sync::ensure_identity(
        ctx,
        &identity_id,
        adopt,
        may_adopt,
        &namespace,
        &binding.spec.identity,
        &demand.users,
        demand.targets.first(),
        identity_turn,
        changes,
    )
    .await?;
    progress.status.identity = Some(IdentityStatus {
        name: identity.id.name.clone(),
        resource_id: identity.id.to_string(),
        client_id: Some(identity.client_id.clone()),
        principal_id: Some(identity.principal_id.clone()),
        created_by_kvbind: created,
    });
    let how = if adopt {
        "adopted"
    } else if created {
        "managed by kvbind"
    } else {
        "found"
    };
    progress.done.push((Step::Identity, "IdentityAvailable", format!("identity {} ({how}) has client ID {}", identity.id.name, identity.client_id)));

    // 2 and 3, side by side: where its tokens can be had (the node pools, or one
    // ServiceAccount) and what they can read. Neither needs the other. Azure's slowest work,
    // a scale set's long-running PATCH and a vault's queue of writes, is handed to their
    // writers, which wake the binding when it lands.
    let (mut reach_changes, mut access_changes) = (Vec::new(), Vec::new());
    let (reached, granted) = tokio::join!(
        reach(&judge, binding, &identity, created, &demand, waiting, &mut reach_changes),
        access(ctx, binding, &identity, created, &demand, vaults, waiting, &mut access_changes),
    );
    changes.append(&mut reach_changes);
    changes.append(&mut access_changes);
    // Whatever either step did is recorded even when the other failed: it is kvbind's to
    // undo.
    if let Ok(grants) = &granted {
        let summary: Vec<String> = grants.status.iter().map(|g| format!("{} ({:?})", g.vault_id.rsplit('/').next().unwrap_or_default(), g.model)).collect();
        ctx.ledger.note_grants(&identity.id, &grants.status);
        progress.status.grants = grants.status.clone();
        if grants.pending.is_empty() {
            progress.done.push((Step::Access, "Granted", format!("read access granted on {}", summary.join(", "))));
        } else {
            progress.waiting.push((Step::Access, format!("waiting for vault {} to take the access policy", grants.pending.join(", "))));
        }
    }
    match reached {
        Ok(reached) => {
            blast_radius::report(ctx, binding, &demand.needs.classes, &reached.crowded, &reached.newly_crowded, progress);
            ctx.ledger.note_attachments(&identity.id, &reached.attachments);
            // Handed off and not landed yet, they are kvbind's all the same.
            for target in &reached.pending {
                ctx.ledger.note_attached(&identity.id, target);
            }
            if !created {
                azure_sync::keep_adoption_record(ctx, &identity.id).await?;
            }
            progress.status.attachments = reached.attachments;
            progress.status.workload_identity = reached.federation;
            progress.status.aks_identity_binding = reached.aks_binding;
            progress.notices.extend(reached.notices);
            if reached.pending.is_empty() {
                progress.done.push((Step::Nodes, reached.reason, reached.message));
            } else {
                let names: Vec<&str> = reached.pending.iter().map(|t| t.name.as_str()).collect();
                progress.waiting.push((Step::Nodes, format!("waiting for {} to take the identity", names.join(", "))));
            }
        }
        Err(e) => return Err(e),
    }
    granted?;

    // 4 comes once the Azure steps' turn is over: the SecretProviderClasses.
    let Needs { classes, missing, stores, .. } = demand.needs;
    Ok(ClassWrite { classes, stores, client_id: identity.client_id, missing: missing.into_iter().next() })
}

/// Step 4's work: the classes and stores to name the identity in.
pub(super) struct ClassWrite {
    pub(super) classes: Vec<Arc<crate::needs::ClassInput>>,
    pub(super) stores: Vec<crate::needs::StoreInput>,
    pub(super) client_id: String,
    /// A named class that does not exist.
    pub(super) missing: Option<String>,
}

/// Step 4: the SecretProviderClasses name the identity. They can while its attachment and
/// grants are still landing (a pod mounting meanwhile fails and is retried either way).
pub(super) async fn write_classes(
    ctx: &Context,
    binding: &IdentityBinding,
    w: ClassWrite,
    progress: &mut Progress,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let namespace = binding.namespace().unwrap_or_default();
    // Published before the class names it, so that kvbind's own write passes the policy.
    if let Some(bound) = &ctx.bound {
        bound
            .bind(&w.client_id, &namespace)
            .await
            .map_err(|source| BindingError::Kube { action: "publishing the identity's namespace for the admission policy", source })?;
    }
    write_back::write_identity(ctx, &namespace, &w.classes, &w.client_id, binding.spec.mode, changes).await?;
    imds_egress::keep(ctx, &namespace, policy::denies_imds(&namespace, ctx), changes).await?;
    progress.status.secret_provider_classes = w.classes.iter().map(|c| SecretProviderClassStatus { name: c.name.clone(), updated: true }).collect();
    progress.done.push((Step::Classes, "Updated", format!("{} SecretProviderClass(es) carry client ID {}", w.classes.len(), w.client_id)));
    if binding.spec.secret_stores.is_some() {
        let account = binding.spec.service_account.as_ref().map(|s| s.name.as_str());
        write_back::write_store_identity(ctx, &namespace, &w.stores, &w.client_id, binding.spec.mode, account, changes).await?;
        progress.status.secret_stores = w.stores.iter().map(|s| SecretStoreStatus { name: s.name.clone(), updated: true }).collect();
        progress.done.push((Step::Stores, "Updated", format!("{} SecretStore(s) carry the identity (client ID {})", w.stores.len(), w.client_id)));
    }
    match w.missing {
        Some(name) => Err(BindingError::ClassNotFound(name)),
        None => Ok(()),
    }
}

/// Step 3: exactly the grants the objects need, on every vault of the bindings sharing the
/// identity.
#[allow(clippy::too_many_arguments)]
pub(super) async fn access(
    ctx: &Context,
    binding: &IdentityBinding,
    identity: &kvbind_azure::model::Identity,
    created: bool,
    demand: &Demand,
    vaults: BTreeMap<String, Arc<kvbind_azure::model::Vault>>,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<azure_sync::Grants, BindingError> {
    let mut granted_on = BTreeMap::new();
    for (name, vault) in vaults {
        let objects = demand.vaults.get(&name).map(|(_, o)| o.clone()).unwrap_or_default();
        granted_on.insert(vault.id.clone(), (vault, objects));
    }
    azure_sync::sync_grants(
        ctx,
        &demand.namespaces(),
        &identity.id,
        &identity.principal_id,
        created,
        &granted_on,
        &demand.records,
        binding.spec.rbac_scope,
        demand.may_remove,
        waiting,
        changes,
    )
    .await
}

/// A binding no policy allows keeps nothing it had: what kvbind did for it is undone as
/// its deletion policy says. A binding that never got that far costs no Azure call. Returns
/// the error to report: the denial, or what stopped the undo.
pub(super) async fn refuse(binding: &IdentityBinding, ctx: &Context, progress: &mut Progress, changes: &mut Vec<Change>, denial: BindingError) -> BindingError {
    let had = binding.status.as_ref().is_some_and(|s| {
        s.identity.is_some() || !s.attachments.is_empty() || !s.grants.is_empty() || s.workload_identity.is_some() || s.aks_identity_binding.is_some()
    });
    if had && binding.spec.deletion_policy == DeletionPolicy::Delete {
        if let Err(e) = undo(binding, ctx, changes).await {
            // Keep the records until the undo is complete.
            let mut kept = binding.status.clone().unwrap_or_default();
            kept.conditions.clear();
            progress.status = kept;
            return e;
        }
        changes.push(("AccessRevoked", "no BindingPolicy allows this binding any more: removed what kvbind had set up for it".to_owned()));
    }
    denial
}
