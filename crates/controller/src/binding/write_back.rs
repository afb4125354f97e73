//! Writing the identity into the SecretProviderClasses, with server-side apply under
//! kvbind's field manager, so every other parameter stays as its owner wrote it.

use kube::api::{Api, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_api::external_secrets::{SecretStore, fields};
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::secret_provider_class::{SecretProviderClass, keys};
use serde_json::json;

use super::azure_sync::Change;
use crate::context::Context;
use crate::error::BindingError;
use crate::needs::{ClassInput, StoreInput, store_auth_type};

/// Writes the identity into each class that does not carry it yet: for VM managed identity
/// `useVMManagedIdentity: "true"` and `userAssignedIdentityID`, for workload identity
/// `clientID`, for AKS identity bindings `useAzureTokenProxy: "true"` and `clientID`. Being a full apply of kvbind's fields, it also takes back the other mode's
/// parameters when a binding changes mode.
pub async fn write_identity(
    ctx: &Context,
    namespace: &str,
    classes: &[ClassInput],
    client_id: &str,
    mode: IdentityMode,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let api: Api<SecretProviderClass> = Api::namespaced(ctx.kube.client.clone(), namespace);
    for class in classes {
        let current = match mode {
            IdentityMode::VmManagedIdentity => {
                class.uses_vm_identity && class.identity_id.as_deref() == Some(client_id) && class.client_id.is_none() && !class.uses_token_proxy
            }
            IdentityMode::WorkloadIdentity => {
                class.client_id.as_deref() == Some(client_id) && !class.uses_vm_identity && class.identity_id.is_none() && !class.uses_token_proxy
            }
            IdentityMode::AksIdentityBinding => {
                class.client_id.as_deref() == Some(client_id) && class.uses_token_proxy && !class.uses_vm_identity && class.identity_id.is_none()
            }
        };
        if current {
            continue;
        }
        let parameters = match mode {
            IdentityMode::VmManagedIdentity => {
                json!({keys::USE_VM_MANAGED_IDENTITY: "true", keys::USER_ASSIGNED_IDENTITY_ID: client_id})
            }
            IdentityMode::WorkloadIdentity => json!({keys::CLIENT_ID: client_id}),
            IdentityMode::AksIdentityBinding => json!({keys::USE_AZURE_TOKEN_PROXY: "true", keys::CLIENT_ID: client_id}),
        };
        let patch = json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClass",
            "metadata": {"name": class.name, "namespace": namespace},
            "spec": {"parameters": parameters},
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
    let api: Api<SecretProviderClass> = Api::namespaced(ctx.kube.client.clone(), namespace);
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

/// Writes the identity into each External Secrets store that does not carry it yet: for VM
/// managed identity `authType: ManagedIdentity` and `identityId` (the client ID, which ESO
/// asks IMDS for), for workload identity `authType: WorkloadIdentity` and the binding's
/// ServiceAccount, whose client ID annotation ESO reads. As with classes, the full apply of
/// kvbind's fields takes back the other mode's.
pub async fn write_store_identity(
    ctx: &Context,
    namespace: &str,
    stores: &[StoreInput],
    client_id: &str,
    mode: IdentityMode,
    service_account: Option<&str>,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let api: Api<SecretStore> = Api::namespaced(ctx.kube.client.clone(), namespace);
    let auth_type = store_auth_type(mode);
    for store in stores {
        let current = store.auth_type.as_deref() == Some(auth_type)
            && match mode {
                IdentityMode::VmManagedIdentity => store.identity_id.as_deref() == Some(client_id) && store.service_account.is_none(),
                // The CRD refuses stores in mode AKSIdentityBinding; were one to come, ESO's
                // nearest is workload identity.
                IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding => {
                    store.service_account.as_deref() == service_account && store.identity_id.is_none()
                }
            };
        if current {
            continue;
        }
        let azurekv = match mode {
            IdentityMode::VmManagedIdentity => json!({fields::AUTH_TYPE: auth_type, fields::IDENTITY_ID: client_id}),
            IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding => {
                json!({fields::AUTH_TYPE: auth_type, fields::SERVICE_ACCOUNT_REF: {"name": service_account}})
            }
        };
        let patch = json!({
            "apiVersion": kvbind_api::external_secrets::API_VERSION,
            "kind": "SecretStore",
            "metadata": {"name": store.name, "namespace": namespace},
            "spec": {"provider": {"azurekv": azurekv}},
        });
        api.patch(&store.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(|source| BindingError::Kube { action: "writing the identity into the SecretStore", source })?;
        changes.push(("SecretStoreUpdated", format!("wrote the identity (client ID {client_id}) into SecretStore {}", store.name)));
    }
    Ok(())
}

/// Takes back what kvbind wrote into a store, as [`forget_identity`] does for a class.
pub async fn forget_store_identity(ctx: &Context, namespace: &str, store: &str) -> Result<(), BindingError> {
    let api: Api<SecretStore> = Api::namespaced(ctx.kube.client.clone(), namespace);
    let patch = json!({
        "apiVersion": kvbind_api::external_secrets::API_VERSION,
        "kind": "SecretStore",
        "metadata": {"name": store, "namespace": namespace},
    });
    match api.patch(store, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(BindingError::Kube { action: "removing the identity from the SecretStore", source }),
    }
}
