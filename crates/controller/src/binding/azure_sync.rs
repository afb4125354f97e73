//! The Azure steps of a binding, in the order of the manual page they replace: the
//! identity, its attachment to the node pools, and the Key Vault grants. Each step reads
//! first and writes only what differs, so a converged binding costs no ARM write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::KeyVaultObject;
use kvbind_api::identity_binding::{AttachmentOrigin, AttachmentStatus, IdentitySpec, RbacScope, VaultAccessModel, VaultGrantStatus};
use kvbind_azure::intern::intern;
use kvbind_azure::model::{AccessPolicy, AccessPolicyOp, ComputeIdentity, Identity, Permissions, Vault};
use kvbind_azure::{ComputeId, IdentityId, VaultId};

use super::plan::{self, AttachStep, access_policy_change, access_policy_permissions, list_reason, made_by_kvbind, role_assignments};
use crate::context::Context;
use crate::error::{BindingError, Step};
use crate::writers::handoff::Waiting;

/// Tag that marks an identity kvbind created (and so may delete), with the installation
/// ID as its value: an identity another cluster's kvbind made, or one tagged by hand, is not
/// this installation's.
pub const MANAGED_BY_TAG: &str = "kvbind.io-managed-by";

/// Tag that names the bindings using an identity kvbind created.
pub const BINDINGS_TAG: &str = "kvbind.io-bindings";

pub use crate::records::Records;

/// Something kvbind changed in Azure, for an Event.
pub use crate::writers::handoff::Change;

/// True when this installation of kvbind created `identity`: its tag carries our
/// installation ID. Only kvbind writes Azure tags; tenants write none.
pub fn made_here(identity: &Identity, ctx: &Context) -> bool {
    identity.tags.get(MANAGED_BY_TAG).is_some_and(|v| !ctx.config.installation.is_empty() && *v == ctx.config.installation)
}

/// Whether `namespace`'s bindings may take `identity`, which this installation made, as
/// theirs: its bindings tag names a binding of that namespace, or one of `users` (the live
/// bindings sharing it). An identity whose every binding is gone (a `Retain` leftover) is
/// taken over only by its own namespace's bindings; anyone else must adopt it.
pub fn ours_to_join(identity: &Identity, namespace: &str, users: &[String]) -> bool {
    let named: Vec<&str> = identity.tags.get(BINDINGS_TAG).map(|t| t.split(',').collect()).unwrap_or_default();
    named.iter().any(|key| key.split_once('/').is_some_and(|(ns, _)| ns == namespace) || users.iter().any(|u| u == key))
}

/// Reads the identity, creating it (or updating kvbind's tags on it) when asked to.
/// Returns it and whether kvbind created it. `pool`, one of the scale sets it belongs on,
/// may vouch for it instead of a read ([`ReadCache::identity`](crate::caches::read_cache::ReadCache::identity)).
///
/// An identity that exists under the name and is not this installation's to join is
/// adoption, whichever field named it: allowed only when `may_adopt` (a policy allowing the
/// binding lists it among its `adoptableIdentities`), and then never changed or deleted.
#[allow(clippy::too_many_arguments)]
pub async fn ensure_identity(
    ctx: &Context,
    id: &IdentityId,
    adopt: bool,
    may_adopt: bool,
    namespace: &str,
    spec: &IdentitySpec,
    users: &[String],
    pool: Option<&ComputeId>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
    changes: &mut Vec<Change>,
) -> Result<(Identity, bool), BindingError> {
    let _resolving = ctx.compute.resolving_identity();
    // Bindings that share an identity reconcile at once; one at a time here, so the first
    // creates it and the rest find it (through the cache) instead of each writing it. The
    // reconcile may hold the identity's turn already (`held`, see `binding::Turn`).
    let _turn = match held {
        Some(turn) => turn,
        None => ctx.identity_turns.turn(&id.key()).lock_owned().await,
    };
    let found = ctx.reads.identity(ctx.arm.as_ref(), id, pool).await.map_err(BindingError::azure(Step::Identity, "reading the identity"))?;
    if adopt {
        return found.map(|i| (i, false)).ok_or_else(|| BindingError::IdentityNotFound(id.to_string()));
    }
    let mut tags: BTreeMap<String, String> = spec.tags.clone().unwrap_or_default();
    tags.insert(MANAGED_BY_TAG.to_owned(), ctx.config.installation.clone());
    tags.insert(BINDINGS_TAG.to_owned(), owners_tag(users));
    match found {
        // Made by someone else, or left by bindings of another namespace: taking it is
        // adoption, never a change to it.
        Some(identity) if !made_here(&identity, ctx) || !ours_to_join(&identity, namespace, users) => {
            if may_adopt {
                Ok((identity, false))
            } else {
                Err(BindingError::NotAllowedByPolicy(format!(
                    "identity {id} already exists and this kvbind installation did not create it for this namespace: using it is adoption, which needs it within a BindingPolicy's adoptableIdentities"
                )))
            }
        }
        Some(identity) if identity.tags == tags => Ok((identity, true)),
        Some(identity) => {
            let location = identity.location.clone();
            let updated =
                ctx.arm.create_or_update_identity(id, &location, &tags).await.map_err(BindingError::azure(Step::Identity, "updating the identity's tags"))?;
            ctx.reads.put_identity(&updated);
            Ok((updated, true))
        }
        None => {
            let location = spec.location.clone().unwrap_or_else(|| ctx.config.default_location.clone());
            let created =
                ctx.arm.create_or_update_identity(id, &location, &tags).await.map_err(BindingError::azure(Step::Identity, "creating the identity"))?;
            ctx.reads.put_identity(&created);
            changes.push(("IdentityCreated", format!("created identity {id} (client ID {})", created.client_id)));
            Ok((created, true))
        }
    }
}

/// Finds each vault by name (or the binding's explicit vault) and reads it, checking its
/// tenant against the classes'.
pub async fn resolve_vaults(
    ctx: &Context,
    wanted: &BTreeMap<String, (String, Vec<KeyVaultObject>)>,
    explicit: Option<&str>,
    origins: &BTreeMap<String, crate::error::VaultOrigin>,
) -> Result<BTreeMap<String, Arc<Vault>>, BindingError> {
    let mut out = BTreeMap::new();
    for (name, (tenant, _)) in wanted {
        let origin = origins.get(name).cloned().unwrap_or_else(|| crate::error::VaultOrigin::Class(String::new()));
        let not_found = || BindingError::VaultNotFound { origin: origin.clone(), vault: name.clone(), subscriptions: ctx.config.subscriptions.join(", ") };
        let mut id = match explicit {
            Some(raw) => VaultId::parse(raw).map_err(|e| BindingError::Azure {
                step: Step::Access,
                action: "reading spec.keyVault.resourceId",
                source: kvbind_azure::AzureError::Invalid {
                    operation: "ParseVaultId",
                    resource: raw.to_owned(),
                    code: "InvalidResourceId".into(),
                    message: e.to_string(),
                },
            })?,
            None => find_vault(ctx, name).await?.ok_or_else(not_found)?,
        };
        let vault = match ctx.reads.vault(ctx.arm.as_ref(), &id).await {
            // The vault found by this name is gone (deleted, or made again elsewhere): the
            // name is searched for again.
            Err(kvbind_azure::AzureError::NotFound { .. }) if explicit.is_none() => {
                ctx.vault_names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name);
                id = find_vault(ctx, name).await?.ok_or_else(not_found)?;
                ctx.reads.vault(ctx.arm.as_ref(), &id).await
            }
            read => read,
        }
        .map_err(BindingError::azure(Step::Access, "reading the vault"))?;
        if !tenant.is_empty() && !vault.tenant_id.eq_ignore_ascii_case(tenant) {
            return Err(BindingError::TenantMismatch { origin, vault: id.to_string(), expected: tenant.clone(), found: vault.tenant_id.clone() });
        }
        out.insert(name.clone(), vault);
    }
    Ok(out)
}

/// The vault a name stands for. A vault keeps its ID for life, so a name is searched for
/// once and kept until its vault answers 404 (see [`resolve_vaults`]): a converged cluster
/// lists no vaults.
async fn find_vault(ctx: &Context, name: &str) -> Result<Option<VaultId>, BindingError> {
    let known = || ctx.vault_names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned();
    if let Some(id) = known() {
        return Ok(Some(id));
    }
    // Every binding of a new vault name asks at once; one of them lists.
    let turn = ctx.vault_lookups.turn(name);
    let _turn = turn.lock().await;
    if let Some(id) = known() {
        return Ok(Some(id));
    }
    for subscription in &ctx.config.subscriptions {
        if let Some(id) = ctx.arm.find_vault(subscription, name).await.map_err(BindingError::azure(Step::Access, "searching for the vault"))? {
            ctx.vault_names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.to_owned(), id.clone());
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The attachments, and the targets that carry more than one user-assigned identity (where
/// a SecretProviderClass that names no identity cannot mount), split by whether kvbind just
/// made them so.
#[derive(Debug, Default)]
pub struct Attachments {
    /// One entry per desired target.
    pub status: Vec<AttachmentStatus>,
    /// Targets with several user-assigned identities.
    pub crowded: Vec<ComputeId>,
    /// Targets that kvbind's attachment just took from one identity to two.
    pub newly_crowded: Vec<ComputeId>,
    /// Targets whose attachment was handed to their writer and has not landed yet.
    pub pending: Vec<ComputeId>,
}

/// Attaches the identity to every desired target and detaches it from targets kvbind
/// attached that no binding needs any more. Targets that carried the identity before
/// kvbind looked are recorded as found and never detached.
///
/// An identity kvbind created (`owned`) was attached by nobody else, so every attachment
/// of it is kvbind's: that holds even when kvbind was killed between a PATCH and the status
/// write that records it. For adopted identities the records are the only evidence.
#[allow(clippy::too_many_arguments)]
pub async fn sync_attachments(
    ctx: &Context,
    identity: &IdentityId,
    owned: bool,
    desired: &BTreeSet<ComputeId>,
    records: &Records,
    may_remove: bool,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<Attachments, BindingError> {
    // Every scale set at once: each has its own writer, and a binding on twenty pools
    // should wait for one PATCH, not twenty in a row. They share one copy of the ID.
    let shared = Arc::new(identity.clone());
    let attached = futures::future::join_all(desired.iter().map(|target| attach(ctx, &shared, owned, target, records, waiting))).await;
    let mut out = Attachments::default();
    for (target, result) in desired.iter().zip(attached) {
        let Some((origin, after, newly_crowded, change)) = result? else {
            out.pending.push(target.clone());
            continue;
        };
        changes.extend(change);
        if newly_crowded {
            out.newly_crowded.push(target.clone());
        }
        if after.user_assigned().len() > 1 {
            out.crowded.push(target.clone());
        }
        out.status.push(AttachmentStatus { resource_id: intern(&target.to_string()), origin });
    }
    let desired_keys: BTreeSet<Arc<str>> = desired.iter().map(|target| intern(&target.key())).collect();
    for key in plan::detachments(&records.attached, &desired_keys, may_remove) {
        let Ok(target) = ComputeId::parse(key) else {
            continue;
        };
        match ctx.compute.change(&target, None, Some(identity)).await {
            Ok(_) => changes.push(("IdentityDetached", format!("detached the identity from {} {}", target.kind().describe(), target.name))),
            // A pool that is gone took the identity with it.
            Err(kvbind_azure::AzureError::NotFound { .. }) => {}
            Err(e) => {
                return Err(BindingError::azure(Step::Nodes, "detaching the identity")(e));
            }
        }
    }
    Ok(out)
}

/// One scale set or VM: attached already (by kvbind or someone else), or attached now, or
/// (`None`) handed to its writer. Returns who attached it, its identity block after,
/// whether kvbind just gave it its second identity, and the change made.
async fn attach(
    ctx: &Context,
    identity: &Arc<IdentityId>,
    owned: bool,
    target: &ComputeId,
    records: &Records,
    waiting: Waiting<'_>,
) -> Result<Option<(AttachmentOrigin, Arc<ComputeIdentity>, bool, Option<Change>)>, BindingError> {
    let current = ctx.reads.compute(ctx.arm.as_ref(), target).await.map_err(BindingError::azure(Step::Nodes, "reading the VM scale set's identities"))?;
    let attached_now = |before: usize, after| {
        let change = ("IdentityAttached", format!("attached the identity to {} {}", target.kind().describe(), target.name));
        Some((AttachmentOrigin::Attached, after, before == 1, Some(change)))
    };
    let recorded = records.attached.contains(target.key().as_str());
    match plan::attach_step(current.has(identity), current.user_assigned().len(), owned, recorded) {
        AttachStep::Keep { ours } => {
            // An attachment handed off before that has landed since is this reconcile's news.
            if let Waiting::HandOff { landed, .. } = waiting
                && let Some(Ok(before)) = landed.compute(target)
            {
                return Ok(attached_now(*before, current));
            }
            let origin = if ours { AttachmentOrigin::Attached } else { AttachmentOrigin::Found };
            return Ok(Some((origin, current, false, None)));
        }
        // Azure refuses an update that would leave more than 150 user-assigned identities
        // on a scale set or VM; refused here, by name, the pool's other writes go on.
        AttachStep::OverLimit { count } => {
            return Err(BindingError::PoolIdentityLimit { target: target.name.clone(), count, limit: kvbind_azure::model::MAX_USER_ASSIGNED_PER_COMPUTE });
        }
        AttachStep::Attach { .. } => {}
    }
    if !owned {
        record_ahead(ctx, identity, |ledger, key| ledger.note_attached(key, &target.key())).await?;
    }
    match waiting {
        Waiting::InPlace => {
            let written = ctx.compute.change(target, Some(identity), None).await.map_err(BindingError::azure(Step::Nodes, "attaching the identity"))?;
            Ok(attached_now(written.before, written.after))
        }
        Waiting::HandOff { binding, landed } => {
            // A handed-off write that failed is this reconcile's error; the binding's retry
            // hands it off again.
            if let Some(Err(e)) = landed.compute(target) {
                return Err(BindingError::azure(Step::Nodes, "attaching the identity")(e.clone()));
            }
            ctx.compute.hand_off(target, identity, binding.clone());
            Ok(None)
        }
    }
}

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
    vaults: &BTreeMap<String, (Arc<Vault>, Vec<KeyVaultObject>)>,
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
async fn sync_access_policy(
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
    let desired = access_policy_permissions(objects);
    let existing = vault.access_policies.iter().find(|p| p.object_id.eq_ignore_ascii_case(principal)).map(|p| p.permissions.clone()).unwrap_or_default();
    let mut granted = records.granted.get(&vault.id.key()).cloned().unwrap_or_default();
    if owned {
        granted.secrets.extend(existing.secrets.iter().cloned());
        granted.keys.extend(existing.keys.iter().cloned());
        granted.certificates.extend(existing.certificates.iter().cloned());
    }
    let change = access_policy_change(&desired, &existing, &granted, may_remove);
    let entry = |permissions: Permissions| AccessPolicy { tenant_id: vault.tenant_id.clone(), object_id: principal.to_owned(), permissions };
    let mut pending = false;
    let granted_now = || ("AccessGranted", format!("granted {} on vault {}", describe(&change.granted), vault.id.name));
    if !owned && !change.add.is_empty() {
        record_ahead(ctx, identity, |ledger, key| ledger.note_granted(key, &vault.id.key(), &change.add)).await?;
    }
    match waiting {
        _ if change.add.is_empty() => {
            // A grant handed off before that has landed since is this reconcile's news.
            if let Waiting::HandOff { landed, .. } = waiting
                && let Some(Ok(())) = landed.vault(&vault.id)
            {
                changes.push(granted_now());
            }
        }
        Waiting::InPlace => {
            ctx.access
                .change(&vault.id, AccessPolicyOp::Add, entry(change.add.clone()))
                .await
                .map_err(BindingError::azure(Step::Access, "adding the access policy"))?;
            changes.push(("AccessGranted", format!("granted {} on vault {}", describe(&change.add), vault.id.name)));
        }
        Waiting::HandOff { binding, landed } => {
            if let Some(Err(e)) = landed.vault(&vault.id) {
                return Err(BindingError::azure(Step::Access, "adding the access policy")(e.clone()));
            }
            ctx.access.hand_off(&vault.id, AccessPolicyOp::Add, entry(change.add.clone()), binding.clone());
            pending = true;
        }
    }
    if !change.remove.is_empty() {
        ctx.access
            .change(&vault.id, AccessPolicyOp::Remove, entry(change.remove.clone()))
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
async fn sync_role_assignments(
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
        ctx.arm.list_role_assignments(&vault.id.to_string(), principal).await.map_err(BindingError::azure(Step::Access, "listing role assignments"))?;
    let existing_names: BTreeSet<&str> = existing.iter().map(|a| a.name.as_str()).collect();
    let missing: Vec<&kvbind_azure::model::RoleAssignment> =
        desired.iter().filter(|(name, _)| !existing_names.contains(name.as_str())).map(|(_, a)| a).collect();
    let stale: Vec<&kvbind_azure::model::RoleAssignment> =
        if may_remove { existing.iter().filter(|a| made_by_kvbind(a) && !desired.contains_key(&a.name)).collect() } else { Vec::new() };
    // All of them or none: past a namespace's quota or the subscription's limit ARM would
    // refuse some and leave the binding half granted.
    crate::policy::role_quota::check(ctx, namespaces, &vault.id.subscription, missing.len().saturating_sub(stale.len())).await?;
    ctx.role_budget
        .reserve(ctx.arm.as_ref(), &vault.id.subscription, missing.len())
        .await
        .map_err(BindingError::azure(Step::Access, "planning the role assignments"))?;
    for assignment in missing {
        ctx.arm.create_role_assignment(assignment).await.map_err(BindingError::azure(Step::Access, "creating a role assignment"))?;
        changes.push(("AccessGranted", format!("assigned role {} on {}", assignment.role_definition, assignment.scope)));
    }
    for stale in stale {
        ctx.arm.delete_role_assignment(&stale.scope, &stale.name).await.map_err(BindingError::azure(Step::Access, "deleting a role assignment"))?;
        ctx.role_budget.release(&vault.id.subscription, 1).await;
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

fn describe(p: &Permissions) -> String {
    let mut parts = Vec::new();
    for (kind, set) in [("secrets", &p.secrets), ("keys", &p.keys), ("certificates", &p.certificates)] {
        if !set.is_empty() {
            parts.push(format!("{} on {kind}", set.iter().cloned().collect::<Vec<_>>().join("+")));
        }
    }
    parts.join(", ")
}

/// The bindings tag: the users' keys, whole, as many as fit in Azure's 256 characters.
fn owners_tag(users: &[String]) -> String {
    let mut owners = String::new();
    for user in users {
        if owners.len() + user.len() + 1 > 256 {
            break;
        }
        if !owners.is_empty() {
            owners.push(',');
        }
        owners.push_str(user);
    }
    owners
}

/// Notes in the ledger a write about to be made for an identity kvbind adopted, and keeps
/// the ledger's record of it (see [`crate::records::adoption_records`]): first, so that a crash right
/// after the write still leaves a record of it.
async fn record_ahead(ctx: &Context, identity: &IdentityId, note: impl FnOnce(&crate::records::ledger::Ledger, &str)) -> Result<(), BindingError> {
    let key = identity.key();
    note(&ctx.ledger, &key);
    keep_adoption_record(ctx, &key).await
}

/// Keeps what the ledger holds for adopted identity `key` where it outlives the process.
pub async fn keep_adoption_record(ctx: &Context, key: &str) -> Result<(), BindingError> {
    let Some(store) = &ctx.adoption else { return Ok(()) };
    let mut records = Records::default();
    ctx.ledger.add_to(key, &mut records);
    store.save(key, &records).await.map_err(|source| BindingError::Kube { action: "recording what kvbind did to an adopted identity", source })
}

/// Removes the identity this installation created, once no binding uses it.
pub async fn delete_identity(ctx: &Context, id: &IdentityId, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    let found = ctx.arm.get_identity(id).await.map_err(BindingError::azure(Step::Identity, "reading the identity"))?;
    if found.is_some_and(|i| made_here(&i, ctx)) {
        ctx.arm.delete_identity(id).await.map_err(BindingError::azure(Step::Identity, "deleting the identity"))?;
        ctx.reads.forget_identity(id);
        changes.push(("IdentityDeleted", format!("deleted identity {id}")));
    }
    Ok(())
}
