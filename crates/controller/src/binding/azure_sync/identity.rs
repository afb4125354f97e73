//! Step 1: the identity, created, tagged, found or adopted; and deleted when it is kvbind's.

use kvbind_api::identity_binding::IdentitySpec;
use kvbind_azure::model::Identity;
use kvbind_azure::{ComputeId, IdentityId};

use crate::binding::plan::identity::{IdentityStep, identity_step, identity_tags, made_here};
use crate::context::Context;
use crate::desks::handoff::Change;
use crate::error::{BindingError, Step};

/// Reads the identity, creating it (or updating kvbind's tags on it) when asked to.
/// Returns it and whether kvbind created it. `pool`, one of the scale sets it belongs on,
/// may vouch for it instead of a read ([`IdentityDesk::read`](crate::desks::identity::IdentityDesk::read)).
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
    let _resolving = ctx.azure.compute.resolving_identity();
    // Bindings that share an identity reconcile at once; one at a time here, so the first
    // creates it and the rest find it (through the cache) instead of each writing it. The
    // reconcile may hold the identity's turn already (`held`, see `binding::Turn`).
    let _turn = match held {
        Some(turn) => turn,
        None => ctx.azure.identities.turn(id).lock_owned().await,
    };
    let found = ctx
        .azure
        .identities
        .read(id, pool.map(|pool| (&ctx.azure.compute, pool)))
        .await
        .map_err(BindingError::azure(Step::Identity, "reading the identity"))?;
    if adopt {
        return found.map(|i| (i, false)).ok_or_else(|| BindingError::IdentityNotFound(id.to_string()));
    }
    let tags = identity_tags(spec, &ctx.config.installation, users);
    let step = identity_step(found.as_ref(), may_adopt, &ctx.config.installation, namespace, users, &tags);
    match (step, found) {
        (IdentityStep::RefuseAdoption, _) => Err(BindingError::NotAllowedByPolicy(format!(
            "identity {id} already exists and this kvbind installation did not create it for this namespace: using it is adoption, which needs it within a BindingPolicy's adoptableIdentities"
        ))),
        (IdentityStep::Adopt, Some(identity)) => Ok((identity, false)),
        (IdentityStep::Keep, Some(identity)) => Ok((identity, true)),
        (IdentityStep::Retag, Some(identity)) => {
            let location = identity.location.clone();
            let updated = ctx
                .azure
                .arm
                .create_or_update_identity(id, &location, &tags)
                .await
                .map_err(BindingError::azure(Step::Identity, "updating the identity's tags"))?;
            ctx.azure.identities.put(&updated);
            Ok((updated, true))
        }
        (_, _) => {
            let location = spec.location.clone().unwrap_or_else(|| ctx.config.default_location.clone());
            let created =
                ctx.azure.arm.create_or_update_identity(id, &location, &tags).await.map_err(BindingError::azure(Step::Identity, "creating the identity"))?;
            ctx.azure.identities.put(&created);
            changes.push(("IdentityCreated", format!("created identity {id} (client ID {})", created.client_id)));
            Ok((created, true))
        }
    }
}

/// Removes the identity this installation created, once no binding uses it.
pub async fn delete_identity(ctx: &Context, id: &IdentityId, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    let found = ctx.azure.arm.get_identity(id).await.map_err(BindingError::azure(Step::Identity, "reading the identity"))?;
    if found.is_some_and(|i| made_here(&i, &ctx.config.installation)) {
        ctx.azure.arm.delete_identity(id).await.map_err(BindingError::azure(Step::Identity, "deleting the identity"))?;
        ctx.azure.identities.forget(id);
        changes.push(("IdentityDeleted", format!("deleted identity {id}")));
    }
    Ok(())
}
