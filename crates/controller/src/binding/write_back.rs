//! Writing the identity into the SecretProviderClasses, with server-side apply under
//! kvbind's field manager, so every other parameter stays as its owner wrote it.

use kube::api::{Api, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_api::secret_provider_class::{SecretProviderClass, keys};
use serde_json::json;

use super::azure_sync::Change;
use super::inputs::ClassInput;
use crate::context::Context;
use crate::error::BindingError;

/// Sets `useVMManagedIdentity: "true"` and `userAssignedIdentityID: <client_id>` on each
/// class that does not carry them yet.
pub async fn write_identity(
    ctx: &Context,
    namespace: &str,
    classes: &[ClassInput],
    client_id: &str,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let api: Api<SecretProviderClass> = Api::namespaced(ctx.client.clone(), namespace);
    for class in classes {
        if class.uses_vm_identity && class.identity_id.as_deref() == Some(client_id) {
            continue;
        }
        let patch = json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClass",
            "metadata": {"name": class.name, "namespace": namespace},
            "spec": {"parameters": {keys::USE_VM_MANAGED_IDENTITY: "true", keys::USER_ASSIGNED_IDENTITY_ID: client_id}},
        });
        api.patch(&class.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(|source| BindingError::Kube { action: "writing the client ID into the SecretProviderClass", source })?;
        changes.push(("SecretProviderClassUpdated", format!("wrote client ID {client_id} into SecretProviderClass {}", class.name)));
    }
    Ok(())
}

/// Takes back what kvbind wrote into a class: applying an empty configuration under
/// kvbind's field manager removes the fields only kvbind owned.
pub async fn forget_identity(ctx: &Context, namespace: &str, class: &str) -> Result<(), BindingError> {
    let api: Api<SecretProviderClass> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": class, "namespace": namespace},
    });
    match api.patch(class, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(BindingError::Kube { action: "removing the client ID from the SecretProviderClass", source }),
    }
}
