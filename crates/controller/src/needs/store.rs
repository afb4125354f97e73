//! One External Secrets SecretStore as kvbind reads it, and what kvbind would write into it.

use kube::ResourceExt;
use kvbind_api::external_secrets::{SecretStore, fields, vault_name_of};
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::{IdentityBinding, KeyVaultObject};
use kvbind_azure::Cloud;

use super::inputs::StoreInput;
use crate::error::BindingError;
use crate::external_secrets::kvbind_owns_field;

/// The store with `objects` as `binding` would use it, or why it cannot.
pub fn store_input(store: &SecretStore, objects: Vec<KeyVaultObject>, binding: &IdentityBinding, cloud: &Cloud) -> Result<StoreInput, BindingError> {
    let name = store.name_any();
    let invalid = |problem: String| BindingError::InvalidSecretStore { name: name.clone(), problem };
    let azure = store
        .spec
        .provider
        .as_ref()
        .and_then(|p| p.azurekv.as_ref())
        .ok_or_else(|| invalid("spec.provider.azurekv is not set: kvbind serves only Azure Key Vault stores".to_owned()))?;
    let vault_name = vault_name_of(azure.vault_url.as_deref(), &cloud.key_vault_suffix).map_err(|e| invalid(e.to_string()))?;
    let service_account = azure.service_account_ref.as_ref().map(|r| r.name.clone()).filter(|n| !n.is_empty());
    let wanted_auth = store_auth_type(binding.spec.mode);
    let wanted_account = binding.spec.service_account.as_ref().map(|s| s.name.as_str());
    // What kvbind would overwrite, when someone else set it to something else.
    let foreign = |field: &'static str, found: Option<&str>, wanted: Option<&str>| match found {
        Some(found) if Some(found) != wanted && !kvbind_owns_field(store, field) => {
            Err(BindingError::SecretStoreConflict { name: name.clone(), field, found: found.to_owned() })
        }
        _ => Ok(()),
    };
    foreign(fields::AUTH_TYPE, azure.auth_type_chosen(), Some(wanted_auth))?;
    foreign(fields::IDENTITY_ID, azure.identity_id.as_deref().filter(|i| !i.is_empty()), None)?;
    foreign(fields::SERVICE_ACCOUNT_REF, service_account.as_deref(), wanted_account)?;
    Ok(StoreInput {
        name: name.clone(),
        vault_name,
        tenant_id: azure.tenant_id.clone().unwrap_or_default(),
        objects,
        auth_type: azure.auth_type.clone(),
        identity_id: azure.identity_id.clone().filter(|i| !i.is_empty()),
        service_account,
    })
}

/// The `authType` of ESO's Azure provider for a mode.
pub fn store_auth_type(mode: IdentityMode) -> &'static str {
    match mode {
        IdentityMode::VmManagedIdentity => "ManagedIdentity",
        IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding => "WorkloadIdentity",
    }
}
