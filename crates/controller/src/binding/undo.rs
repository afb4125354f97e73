//! Undoing what kvbind did for a binding that is deleted or refused, keeping what other
//! bindings need.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::{DeletionPolicy, IdentityMode};

use super::azure_sync::{self, Change};
use super::demand::demand;
use super::events::publish;
use super::names::key;
use super::plan;
use super::{aks_identity_binding, imds_egress, workload_identity, write_back};
use crate::context::Context;
use crate::desks::handoff::Waiting;
use crate::error::{BindingError, ReconcileError, Step};
use crate::needs::identity_of;
use crate::policy::sharing::sharing_identity;
use crate::policy::{self, Judge};

/// Takes back what mode AKSIdentityBinding gave `account` of the binding's namespace,
/// unless another live binding there still gives it the identity; and, with `cluster_too`
/// once no other live binding uses the identity in that mode, the cluster's ARM identity
/// binding (with the credential AKS left, when `owned`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn release_aks_binding(
    judge: &Judge<'_>,
    binding: &IdentityBinding,
    identity: &kvbind_azure::IdentityId,
    client_id: &str,
    account: &str,
    cluster_too: bool,
    owned: bool,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let ctx = judge.ctx;
    let namespace = binding.namespace().unwrap_or_default();
    let others = sharing_identity(binding, identity, judge);
    let in_mode: Vec<&Arc<IdentityBinding>> = others.iter().filter(|b| b.spec.mode == IdentityMode::AksIdentityBinding).collect();
    let same_account =
        in_mode.iter().any(|b| b.namespace().as_deref() == Some(namespace.as_str()) && b.spec.service_account.as_ref().is_some_and(|s| s.name == account));
    if !same_account {
        aks_identity_binding::disallow(ctx, &namespace, account, client_id, changes).await?;
    }
    if cluster_too && in_mode.is_empty() {
        aks_identity_binding::unbind(ctx, identity, owned, changes).await?;
    }
    Ok(())
}

/// Undoes what kvbind did for a deleted binding, keeping what other bindings need.
pub(super) async fn cleanup(binding: &IdentityBinding, ctx: &Context) -> Result<Action, ReconcileError> {
    ctx.verification.forget(binding);
    crate::verify::forget(&ctx.prover(), binding).await;
    if binding.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Action::await_change());
    }
    // Whatever was handed off for it has landed or will land unread.
    ctx.azure.handoffs.forget(&ObjectRef::from_obj(binding));
    let mut changes = Vec::new();
    let result = undo(binding, ctx, &mut changes).await;
    ctx.writes.spend_changes(&binding.namespace().unwrap_or_default(), &changes, tokio::time::Instant::now());
    publish(ctx, binding, &changes, result.as_ref().err());
    result.map_err(ReconcileError::Cleanup)?;
    Ok(Action::await_change())
}

pub(super) async fn undo(binding: &IdentityBinding, ctx: &Context, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    // An identity that never validated was never touched.
    let Ok((identity_id, adopt)) = identity_of(&binding.spec.identity, &ctx.config) else {
        return Ok(());
    };
    let judge = Judge::new(ctx);
    let mut demand = demand(binding, &identity_id, None, &judge);
    let namespace = binding.namespace().unwrap_or_default();
    let sharers = sharing_identity(binding, &identity_id, &judge);
    let sharers_here: Vec<&IdentityBinding> = sharers.iter().filter(|b| b.namespace().as_deref() == Some(namespace.as_str())).map(|b| b.as_ref()).collect();
    let leaving = plan::undo::leaving(binding, &sharers_here);
    let found = ctx.azure.arm.get_identity(&identity_id).await.map_err(BindingError::azure(Step::Identity, "reading the identity"))?;
    // An identity adopted by ID is never kvbind's, whoever tagged it; one named is only when
    // this installation made it for this namespace (`ensure_identity`).
    let owned = found.as_ref().is_some_and(|i| plan::identity::owned(i, adopt, &ctx.config.installation, &namespace, &[key(binding)]));
    // Nothing is undone for a binding kvbind has no evidence of having served: no policy
    // allows it, the identity is not this installation's, and the ledger knows nothing of
    // it. Its status may say anything; the tenant writes that.
    if !owned && !ctx.ledger.knows(&identity_id) && !policy::admits(binding, &judge) {
        return Ok(());
    }
    if let Some(account) = leaving.unfederate {
        workload_identity::unfederate(ctx, &namespace, &identity_id, account, changes).await?;
    }
    let client_id = found.as_ref().map(|i| i.client_id.clone());
    if let Some(identity) = found {
        for account in &leaving.aks_accounts {
            release_aks_binding(&judge, binding, &identity.id, &identity.client_id, account, true, owned, changes).await?;
        }
        let mut records = demand.records.clone();
        if owned {
            // Pools this binding reaches may carry the identity without a record of it (a
            // crash between the PATCH and the status write); they are kvbind's to clean.
            if let Ok(targets) = super::inputs::targets_of(binding, ctx) {
                records.attached.extend(targets.iter().cloned());
            }
        }
        let attachments =
            azure_sync::sync_attachments(ctx, &identity.id, owned, &demand.targets, &records, demand.may_remove, Waiting::InPlace, changes).await?.status;
        ctx.ledger.note_attachments(&identity.id, &attachments);
        // Every vault this binding touched, with what the remaining bindings still need.
        let explicit = binding.spec.key_vault.as_ref().map(|k| k.resource_id.as_str());
        let mut vaults = BTreeMap::new();
        let resolved = azure_sync::resolve_vaults(ctx, &demand.vaults, explicit, &BTreeMap::new()).await?;
        for (name, vault) in demand.only_allowed_vaults(resolved, |member, ids| policy::allows_vaults(member, ids, &judge)) {
            let objects = demand.vaults.get(&name).map(|(_, o)| o.clone()).unwrap_or_default();
            vaults.insert(vault.id.clone(), (vault, objects));
        }
        for grant in binding.status.iter().flat_map(|s| s.grants.iter()) {
            let Ok(id) = kvbind_azure::VaultId::parse(&grant.vault_id) else {
                continue;
            };
            if vaults.contains_key(&id) {
                continue;
            }
            match ctx.azure.arm.get_vault(&id).await {
                Ok(vault) => {
                    vaults.insert(id, (Arc::new(vault), Vec::new()));
                }
                Err(kvbind_azure::AzureError::NotFound { .. }) => {}
                Err(e) => return Err(BindingError::azure(Step::Access, "reading the vault")(e)),
            }
        }
        let grants = azure_sync::sync_grants(
            ctx,
            &demand.namespaces(),
            &identity.id,
            &identity.principal_id,
            owned,
            &vaults,
            &records,
            binding.spec.rbac_scope,
            demand.may_remove,
            Waiting::InPlace,
            changes,
        )
        .await?;
        ctx.ledger.note_grants(&identity.id, &grants.status);
        if !owned {
            azure_sync::keep_adoption_record(ctx, &identity.id).await?;
        }
        if demand.users.is_empty() && owned {
            azure_sync::delete_identity(ctx, &identity.id, changes).await?;
            ctx.ledger.forget(&identity.id);
        }
    }
    for class in &leaving.classes {
        write_back::forget_identity(ctx, &namespace, class).await?;
    }
    // Only kvbind's own fields go, and only in the binding's namespace, so the names may
    // come from the spec and status; a store another live binding names keeps them.
    if ctx.index.external_secrets.is_some() {
        let mut stores: BTreeSet<&str> = binding.spec.secret_stores.iter().flat_map(|s| s.names.iter().map(String::as_str)).collect();
        stores.extend(binding.status.iter().flat_map(|s| s.secret_stores.iter().map(|s| s.name.as_str())));
        for store in stores {
            if crate::policy::sharing::other_binding_naming_store(binding, store, ctx).is_none() {
                write_back::forget_store_identity(ctx, &namespace, store).await?;
            }
        }
    }
    // The namespace's last binding takes its NetworkPolicy with it.
    let others_here = ctx
        .index
        .bindings
        .state()
        .into_iter()
        .any(|b| b.namespace().as_deref() == Some(namespace.as_str()) && b.name_any() != binding.name_any() && b.metadata.deletion_timestamp.is_none());
    if !others_here {
        imds_egress::keep(ctx, &namespace, false, changes).await?;
    }
    if let (Some(bound), Some(client_id), true) = (&ctx.bound, client_id, leaving.withdraw_namespace) {
        bound
            .unbind(&client_id, &namespace)
            .await
            .map_err(|source| BindingError::Kube { action: "withdrawing the identity's namespace from the admission policy", source })?;
    }
    Ok(())
}
