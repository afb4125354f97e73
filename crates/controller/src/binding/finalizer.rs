//! kvbind's finalizer on a binding: in place before anything changes in Azure, taken off
//! once what kvbind did there is undone.
//!
//! kube's `finalizer` helper ends the reconcile that adds the finalizer and waits for the
//! watch to bring the binding back. At a thousand new bindings that is a whole round of
//! reconciles before the first identity is created; here the reconcile that adds it goes
//! on. The patches are kube's: JSON patches that test the list they change, so a finalizer
//! someone else added or removed meanwhile fails the write instead of being overwritten.

pub use crate::error::FinalizerError;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use kvbind_api::IdentityBinding;
use serde_json::json;

pub use kvbind_api::FINALIZER;

/// What a reconcile does with a binding, given its finalizer and deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Live, with the finalizer in place (now, if it was not).
    Apply,
    /// Being deleted while the finalizer holds it: undo, then [`release`].
    Cleanup,
    /// Being deleted with nothing of kvbind's to undo.
    Gone,
}

/// Adds the finalizer to a live binding that lacks it, and says what to do next.
pub async fn hold(api: &Api<IdentityBinding>, binding: &IdentityBinding) -> Result<Phase, FinalizerError> {
    let held = binding.finalizers().iter().any(|f| f == FINALIZER);
    match (binding.meta().deletion_timestamp.is_some(), held) {
        (true, true) => Ok(Phase::Cleanup),
        (true, false) => Ok(Phase::Gone),
        (false, true) => Ok(Phase::Apply),
        (false, false) => {
            let operations = if binding.finalizers().is_empty() {
                json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
            } else {
                json!([{"op": "test", "path": "/metadata/finalizers", "value": binding.finalizers()}, {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}])
            };
            patch(api, binding, operations, "adding").await?;
            Ok(Phase::Apply)
        }
    }
}

/// Takes the finalizer off, once the cleanup is done.
pub async fn release(api: &Api<IdentityBinding>, binding: &IdentityBinding) -> Result<(), FinalizerError> {
    let Some(index) = binding.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    patch(api, binding, json!([{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]), "removing").await
}

async fn patch(api: &Api<IdentityBinding>, binding: &IdentityBinding, operations: serde_json::Value, action: &'static str) -> Result<(), FinalizerError> {
    let name = binding.meta().name.as_deref().ok_or(FinalizerError::Unnamed)?;
    let operations: json_patch::Patch = serde_json::from_value(operations).map_err(FinalizerError::Patch)?;
    api.patch::<IdentityBinding>(name, &PatchParams::default(), &Patch::Json(operations)).await.map_err(|source| FinalizerError::Write { action, source })?;
    Ok(())
}
