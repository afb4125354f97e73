//! Role assignments per namespace (BindingPolicy `maxRoleAssignmentsPerNamespace`).
//!
//! Per-object grants on Azure RBAC vaults spend the subscription's 4,000 role assignments,
//! which every team shares. A namespace's count is read from Azure, not from anything a
//! tenant writes: the role assignments kvbind made (by their derived names) that the
//! principals of the identities its live bindings use hold in the vault's subscription. It
//! is read only when a grant is about to create some, and the grant creates all it needs or
//! none.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kvbind_azure::IdentityId;

use crate::binding::plan::made_by_kvbind;
use crate::context::Context;
use crate::error::{BindingError, Step};
use crate::needs::identity_of;
use crate::policy;

/// Refuses `adding` new role assignments (net of those about to go) in `subscription`
/// when one of `namespaces`, those whose bindings use the identity getting them, would
/// then pass its quota.
pub async fn check(ctx: &Context, namespaces: &BTreeSet<String>, subscription: &str, adding: usize) -> Result<(), BindingError> {
    if adding == 0 {
        return Ok(());
    }
    for namespace in namespaces {
        let Some((max, policy)) = policy::role_assignment_quota(namespace, ctx) else {
            continue;
        };
        let held = held_by(ctx, namespace, subscription).await?;
        if held + adding > max as usize {
            return Err(BindingError::RoleAssignmentQuota { namespace: namespace.clone(), held, needed: adding, max, policy });
        }
    }
    Ok(())
}

/// The role assignments kvbind made that the identities of `namespace`'s live bindings
/// hold in `subscription`.
async fn held_by(ctx: &Context, namespace: &str, subscription: &str) -> Result<usize, BindingError> {
    let identities: BTreeSet<IdentityId> = ctx
        .index
        .bindings
        .state()
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(namespace) && b.metadata.deletion_timestamp.is_none())
        .filter_map(|b| identity_of(&b.spec.identity, &ctx.config).ok().map(|(id, _)| id))
        .collect();
    let scope = format!("/subscriptions/{subscription}");
    let mut held = 0;
    for id in identities {
        let read =
            ctx.azure.identities.read(&id, None).await.map_err(BindingError::azure(Step::Access, "reading an identity to count its role assignments"))?;
        let Some(identity) = read else { continue };
        let assignments = ctx
            .azure
            .arm
            .list_role_assignments(&scope, &identity.principal_id)
            .await
            .map_err(BindingError::azure(Step::Access, "counting the namespace's role assignments"))?;
        held += assignments.iter().filter(|a| made_by_kvbind(a)).count();
    }
    Ok(held)
}
