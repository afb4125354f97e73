//! One SecretProviderClass as kvbind reads it: linted, parsed, and checked against what it
//! may overwrite.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kvbind_api::IdentityBinding;
use kvbind_api::class_lint::{Finding, Severity, lint};
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::secret_provider_class::{AzureParameters, SecretProviderClass, keys};
use kvbind_azure::Cloud;

use super::inputs::ClassInput;
use crate::caches::cache_trim::kvbind_owns_parameter;
use crate::error::BindingError;
use crate::selector::matches;

/// Whether `binding` serves the class `name` with `labels`: it names it, or selects it.
pub fn selects_class(binding: &IdentityBinding, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let s = &binding.spec.secret_provider_classes;
    s.names.as_ref().is_some_and(|n| n.iter().any(|n| n == name)) || s.selector.as_ref().is_some_and(|sel| matches(sel, Some(labels)))
}

/// The class as `mode` uses it in `cloud`, or why it cannot be.
pub fn class_input(class: &SecretProviderClass, mode: IdentityMode, cloud: &Cloud) -> Result<ClassInput, BindingError> {
    let name = class.name_any();
    let spec = &class.spec.0;
    let provider = spec.provider.clone().unwrap_or_default();
    if !provider.eq_ignore_ascii_case("azure") {
        return Err(BindingError::NotAzure { name, provider });
    }
    if let Some(bytes) = crate::caches::cache_trim::objects_too_long(class) {
        return Err(BindingError::ObjectsTooLong { name, bytes, limit: crate::caches::cache_trim::MAX_OBJECTS_BYTES });
    }
    // The lint comes first: a near miss of a required key is why it is missing.
    let (errors, warnings): (Vec<Finding>, Vec<Finding>) =
        lint(&spec.parameters, mode, |key| kvbind_owns_parameter(class, key)).into_iter().partition(|f| f.severity() == Severity::Error);
    if let Some(finding) = errors.into_iter().next() {
        return Err(BindingError::ClassLint { name, finding });
    }
    let params = AzureParameters::read(&spec.parameters);
    let objects = params.validate().map_err(|source| BindingError::InvalidClass { name: name.clone(), source })?;
    if let Some(cloud_name) = params.cloud_name {
        let same = Cloud::by_name(cloud_name, Some(cloud)).is_ok_and(|c| c.name.eq_ignore_ascii_case(&cloud.name));
        if !same {
            return Err(BindingError::CloudMismatch { name, cloud: cloud_name.to_owned(), ours: cloud.name.clone() });
        }
    }
    let identity_id = params.user_assigned_identity_id.map(str::to_owned);
    let client_id = params.client_id.map(str::to_owned);
    for (parameter, found) in [(keys::USER_ASSIGNED_IDENTITY_ID, &identity_id), (keys::CLIENT_ID, &client_id)] {
        if let Some(found) = found
            && !kvbind_owns_parameter(class, parameter)
        {
            return Err(BindingError::IdentityConflict { name, parameter, found: found.clone() });
        }
    }
    Ok(ClassInput {
        name,
        vault_name: params.keyvault_name.unwrap_or_default().to_ascii_lowercase(),
        tenant_id: params.tenant_id.unwrap_or_default().to_owned(),
        objects,
        identity_id,
        uses_vm_identity: params.use_vm_managed_identity,
        uses_token_proxy: params.use_azure_token_proxy,
        client_id,
        warnings,
    })
}
