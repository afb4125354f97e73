//! Step 4's decision: the fields kvbind owns in a SecretProviderClass or an External
//! Secrets store for the binding's mode, or nothing when the object carries exactly them.
//!
//! Each answer is the full set of kvbind's fields for the mode, so applying it under
//! kvbind's field manager also takes back what an earlier mode wrote.

use kvbind_api::external_secrets::fields;
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::secret_provider_class::keys;
use serde_json::{Value, json};

use crate::needs::{ClassInput, StoreInput, store_auth_type};

/// The class's `spec.parameters` that kvbind owns for `mode`: for VM managed identity
/// `useVMManagedIdentity: "true"` and `userAssignedIdentityID`, for workload identity
/// `clientID`, for AKS identity bindings `useAzureTokenProxy: "true"` and `clientID`.
/// `None` when the class carries them and no other mode's.
pub fn class_parameters(class: &ClassInput, client_id: &str, mode: IdentityMode) -> Option<Value> {
    let ours = Some(client_id);
    let current = match mode {
        IdentityMode::VmManagedIdentity => {
            class.uses_vm_identity && class.identity_id.as_deref() == ours && class.client_id.is_none() && !class.uses_token_proxy
        }
        IdentityMode::WorkloadIdentity => {
            class.client_id.as_deref() == ours && !class.uses_vm_identity && class.identity_id.is_none() && !class.uses_token_proxy
        }
        IdentityMode::AksIdentityBinding => {
            class.client_id.as_deref() == ours && class.uses_token_proxy && !class.uses_vm_identity && class.identity_id.is_none()
        }
    };
    (!current).then(|| match mode {
        IdentityMode::VmManagedIdentity => json!({keys::USE_VM_MANAGED_IDENTITY: "true", keys::USER_ASSIGNED_IDENTITY_ID: client_id}),
        IdentityMode::WorkloadIdentity => json!({keys::CLIENT_ID: client_id}),
        IdentityMode::AksIdentityBinding => json!({keys::USE_AZURE_TOKEN_PROXY: "true", keys::CLIENT_ID: client_id}),
    })
}

/// The store's `spec.provider.azurekv` fields that kvbind owns for `mode`: for VM managed
/// identity `authType: ManagedIdentity` and `identityId` (the client ID, which ESO asks
/// IMDS for), for workload identity `authType: WorkloadIdentity` and the binding's
/// ServiceAccount, whose client ID annotation ESO reads. `None` when the store carries them
/// and no other mode's.
pub fn store_provider(store: &StoreInput, client_id: &str, mode: IdentityMode, service_account: Option<&str>) -> Option<Value> {
    let auth_type = store_auth_type(mode);
    let current = store.auth_type.as_deref() == Some(auth_type)
        && match mode {
            IdentityMode::VmManagedIdentity => store.identity_id.as_deref() == Some(client_id) && store.service_account.is_none(),
            // The CRD refuses stores in mode AKSIdentityBinding; were one to come, ESO's
            // nearest is workload identity.
            IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding => {
                store.service_account.as_deref() == service_account && store.identity_id.is_none()
            }
        };
    (!current).then(|| match mode {
        IdentityMode::VmManagedIdentity => json!({fields::AUTH_TYPE: auth_type, fields::IDENTITY_ID: client_id}),
        IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding => {
            json!({fields::AUTH_TYPE: auth_type, fields::SERVICE_ACCOUNT_REF: {"name": service_account}})
        }
    })
}

#[cfg(test)]
mod tests;
