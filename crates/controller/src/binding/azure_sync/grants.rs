//! Step 3: exactly the read access the objects need, by the vault's permission model.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::KeyVaultObject;
use kvbind_api::identity_binding::{RbacScope, VaultAccessModel, VaultGrantStatus};
use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, Permissions, Vault};
use kvbind_azure::{IdentityId, VaultId};

use super::records::record_ahead;
use crate::binding::plan::{RoleChange, access_policy_permissions, access_policy_plan, list_reason, role_assignment_change, role_assignments};
use crate::context::Context;
use crate::desks::handoff::{Change, Waiting};
use crate::desks::vault::EntryChange;
use crate::error::{BindingError, Step};
use crate::records::Records;

/// The grants on every vault, and the vaults whose access-policy write was handed to
/// their writer and has not landed yet.
#[derive(Debug, Default)]
pub struct Grants {
    /// One entry per vault.
    pub status: Vec<VaultGrantStatus>,
    /// Names of the vaults still to take a write.
    pub pending: Vec<String>,
}

/// Grants `principal` exactly what the objects need on each vault, and revokes what
/// kvbind granted that is no longer needed; `namespaces` are those of the bindings the
/// identity serves, whose role assignment quotas its grants count against. For an identity kvbind created (`owned`) every
/// permission of its principal is kvbind's, recorded or not.
#[allow(clippy::too_many_arguments)]
pub async fn sync_grants(
    ctx: &Context,
    namespaces: &BTreeSet<String>,
    identity: &IdentityId,
    principal: &str,
    owned: bool,
    vaults: &BTreeMap<VaultId, (Arc<Vault>, Vec<KeyVaultObject>)>,
    records: &Records,
    scope: RbacScope,
    may_remove: bool,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<Grants, BindingError> {
    let mut out = Grants::default();
    for (vault, objects) in vaults.values() {
        let status = if vault.rbac_authorization {
            sync_role_assignments(ctx, namespaces, principal, vault, objects, scope, may_remove, changes).await?
        } else {
            let (status, pending) = sync_access_policy(ctx, identity, principal, owned, vault, objects, records, may_remove, waiting, changes).await?;
            if pending {
                out.pending.push(vault.id.name.clone());
            }
            status
        };
        out.status.push(status);
    }
    Ok(out)
}

/// The access-policy entry `principal` needs on `vault`, and whether its write was handed
/// off and has not landed yet.
#[allow(clippy::too_many_arguments)]
pub(super) async fn sync_access_policy(
    ctx: &Context,
    identity: &IdentityId,
    principal: &str,
    owned: bool,
    vault: &Vault,
    objects: &[KeyVaultObject],
    records: &Records,
    may_remove: bool,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<(VaultGrantStatus, bool), BindingError> {
    let change = access_policy_plan(vault, principal, objects, records.granted.get(&vault.id), owned, may_remove);
    let entry = |permissions: Permissions| AccessPolicy { tenant_id: vault.tenant_id.clone(), object_id: principal.to_owned(), permissions };
    let mut pending = false;
    let granted_now = || ("AccessGranted", format!("granted {} on vault {}", describe(&change.granted), vault.id.name));
    if !owned && !change.add.is_empty() {
        record_ahead(ctx, identity, |ledger, identity| ledger.note_granted(identity, &vault.id, &change.add)).await?;
    }
    if change.add.is_empty() {
        // A grant handed off before that has landed since is this reconcile's news.
        if let Waiting::HandOff { landed, .. } = waiting
            && let Some(Ok(_)) = landed.of(&vault.id)
        {
            changes.push(granted_now());
        }
    } else {
        let add = EntryChange { op: AccessPolicyOp::Add, entry: entry(change.add.clone()) };
        match ctx.azure.vaults.write(&vault.id, add, waiting).await.map_err(BindingError::azure(Step::Access, "adding the access policy"))? {
            Some(_) => changes.push(("AccessGranted", format!("granted {} on vault {}", describe(&change.add), vault.id.name))),
            None => pending = true,
        }
    }
    if !change.remove.is_empty() {
        ctx.azure
            .vaults
            .write_in_place(&vault.id, EntryChange { op: AccessPolicyOp::Remove, entry: entry(change.remove.clone()) })
            .await
            .map_err(BindingError::azure(Step::Access, "removing access-policy permissions"))?;
        changes.push(("AccessRevoked", format!("revoked {} on vault {}", describe(&change.remove), vault.id.name)));
    }
    let list = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    // A handed-off grant is recorded before it lands: should kvbind stop in between, the
    // record is what lets it revoke the grant later.
    let status = VaultGrantStatus {
        vault_id: vault.id.to_string(),
        model: VaultAccessModel::AccessPolicy,
        secrets: list(&change.granted.secrets),
        keys: list(&change.granted.keys),
        certificates: list(&change.granted.certificates),
        role_assignments: Vec::new(),
        list_reason: list_reason(objects),
    };
    Ok((status, pending))
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn sync_role_assignments(
    ctx: &Context,
    namespaces: &BTreeSet<String>,
    principal: &str,
    vault: &Vault,
    objects: &[KeyVaultObject],
    scope: RbacScope,
    may_remove: bool,
    changes: &mut Vec<Change>,
) -> Result<VaultGrantStatus, BindingError> {
    let desired = role_assignments(&vault.id, objects, principal, scope);
    let existing =
        ctx.azure.arm.list_role_assignments(&vault.id.to_string(), principal).await.map_err(BindingError::azure(Step::Access, "listing role assignments"))?;
    let RoleChange { create: missing, delete: stale } = role_assignment_change(&desired, &existing, may_remove);
    // All of them or none: past a namespace's quota or the subscription's limit ARM would
    // refuse some and leave the binding half granted.
    crate::policy::role_quota::check(ctx, namespaces, &vault.id.subscription, missing.len().saturating_sub(stale.len())).await?;
    ctx.azure
        .role_budget
        .reserve(ctx.azure.arm.as_ref(), &vault.id.subscription, missing.len())
        .await
        .map_err(BindingError::azure(Step::Access, "planning the role assignments"))?;
    for assignment in missing {
        ctx.azure.arm.create_role_assignment(assignment).await.map_err(BindingError::azure(Step::Access, "creating a role assignment"))?;
        changes.push(("AccessGranted", format!("assigned role {} on {}", assignment.role_definition, assignment.scope)));
    }
    for stale in stale {
        ctx.azure.arm.delete_role_assignment(&stale.scope, &stale.name).await.map_err(BindingError::azure(Step::Access, "deleting a role assignment"))?;
        ctx.azure.role_budget.release(&vault.id.subscription, 1).await;
        changes.push(("AccessRevoked", format!("removed role {} on {}", stale.role_definition, stale.scope)));
    }
    let types = access_policy_permissions(objects);
    let list = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    Ok(VaultGrantStatus {
        vault_id: vault.id.to_string(),
        model: VaultAccessModel::Rbac,
        secrets: list(&types.secrets),
        keys: list(&types.keys),
        certificates: list(&types.certificates),
        role_assignments: desired.values().map(|a| format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", a.scope, a.name)).collect(),
        list_reason: list_reason(objects),
    })
}

/// The permissions, as an Event says them.
pub(super) fn describe(p: &Permissions) -> String {
    let mut parts = Vec::new();
    for (kind, set) in [("secrets", &p.secrets), ("keys", &p.keys), ("certificates", &p.certificates)] {
        if !set.is_empty() {
            parts.push(format!("{} on {kind}", set.iter().cloned().collect::<Vec<_>>().join("+")));
        }
    }
    parts.join(", ")
}
