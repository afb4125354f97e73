//! The Secrets Store CSI driver's `SecretProviderClass`, modelled as far as kvbind reads
//! and writes it. kvbind never applies this CRD: the driver's chart does.
//!
//! Parameters are kept as the map they are, so keys kvbind does not know survive every
//! read and write; [`AzureParameters`] is the typed view of the keys the Azure provider reads.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::objects::{KeyVaultObject, ObjectsError, parse_objects};

/// The API group of the Secrets Store CSI driver.
pub const GROUP: &str = "secrets-store.csi.x-k8s.io";

/// The `spec` of a SecretProviderClass, the same in v1 and v1alpha1.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretProviderClassSpec {
    /// The provider that serves the class (`azure` for Key Vault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Provider-specific parameters, all strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Kubernetes Secrets the driver syncs mounted content into; kvbind leaves it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_objects: Option<serde_json::Value>,
}

/// `secrets-store.csi.x-k8s.io/v1`, the version kvbind reads and writes.
pub mod v1 {
    use super::*;

    /// A SecretProviderClass as the CSI driver serves it.
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[kube(group = "secrets-store.csi.x-k8s.io", version = "v1", kind = "SecretProviderClass", namespaced)]
    pub struct Spec(pub SecretProviderClassSpec);
}

/// `secrets-store.csi.x-k8s.io/v1alpha1`, still served by older drivers; read only.
pub mod v1alpha1 {
    use super::*;

    /// A SecretProviderClass as older CSI drivers serve it.
    #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
    #[kube(group = "secrets-store.csi.x-k8s.io", version = "v1alpha1", kind = "SecretProviderClass", namespaced)]
    pub struct Spec(pub SecretProviderClassSpec);
}

pub use v1::SecretProviderClass;

/// Parameter keys the Azure provider reads.
pub mod keys {
    /// Use AAD pod identity (deprecated).
    pub const USE_POD_IDENTITY: &str = "usePodIdentity";
    /// Use a managed identity on the node's VM or scale set.
    pub const USE_VM_MANAGED_IDENTITY: &str = "useVMManagedIdentity";
    /// Use AKS's identity binding token proxy.
    pub const USE_AZURE_TOKEN_PROXY: &str = "useAzureTokenProxy";
    /// Client ID of the user-assigned identity to use with `useVMManagedIdentity`.
    pub const USER_ASSIGNED_IDENTITY_ID: &str = "userAssignedIdentityID";
    /// Client ID for workload identity.
    pub const CLIENT_ID: &str = "clientID";
    /// The vault's name.
    pub const KEYVAULT_NAME: &str = "keyvaultName";
    /// The cloud's name (`AzurePublicCloud` when empty).
    pub const CLOUD_NAME: &str = "cloudName";
    /// The vault's tenant ID.
    pub const TENANT_ID: &str = "tenantID";
    /// The old spelling of `tenantID`, still read by the provider.
    pub const TENANT_ID_LEGACY: &str = "tenantId";
    /// The objects to mount.
    pub const OBJECTS: &str = "objects";

    /// Every key above.
    pub const ALL: [&str; 10] = [
        USE_POD_IDENTITY,
        USE_VM_MANAGED_IDENTITY,
        USE_AZURE_TOKEN_PROXY,
        USER_ASSIGNED_IDENTITY_ID,
        CLIENT_ID,
        KEYVAULT_NAME,
        CLOUD_NAME,
        TENANT_ID,
        TENANT_ID_LEGACY,
        OBJECTS,
    ];
}

/// The typed view of the parameters the Azure provider reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureParameters<'a> {
    /// `usePodIdentity` is true.
    pub use_pod_identity: bool,
    /// `useVMManagedIdentity` is true.
    pub use_vm_managed_identity: bool,
    /// `useAzureTokenProxy` is true.
    pub use_azure_token_proxy: bool,
    /// `userAssignedIdentityID`, if set and not empty.
    pub user_assigned_identity_id: Option<&'a str>,
    /// `clientID`, if set and not empty.
    pub client_id: Option<&'a str>,
    /// `keyvaultName`, if set and not empty.
    pub keyvault_name: Option<&'a str>,
    /// `cloudName`, if set and not empty.
    pub cloud_name: Option<&'a str>,
    /// `tenantID`, or the old `tenantId`, if set and not empty.
    pub tenant_id: Option<&'a str>,
    /// `objects`, unparsed.
    pub objects: Option<&'a str>,
}

/// Why a SecretProviderClass's parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParametersError {
    /// A required parameter is missing or empty.
    #[error("spec.parameters.{0} is required")]
    Missing(&'static str),
    /// More than one way to get a token is switched on.
    #[error("spec.parameters: only one of usePodIdentity, useVMManagedIdentity and useAzureTokenProxy may be \"true\" ({0} are)")]
    ConflictingModes(String),
    /// The objects parameter is malformed.
    #[error("spec.parameters.{}", .0)]
    Objects(#[from] ObjectsError),
}

impl<'a> AzureParameters<'a> {
    /// Reads the provider's keys from a parameter map. Booleans are true only when spelled
    /// `true` in any case, as the provider reads them.
    pub fn read(parameters: &'a BTreeMap<String, String>) -> Self {
        let text = |key: &str| parameters.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let flag = |key: &str| text(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        AzureParameters {
            use_pod_identity: flag(keys::USE_POD_IDENTITY),
            use_vm_managed_identity: flag(keys::USE_VM_MANAGED_IDENTITY),
            use_azure_token_proxy: flag(keys::USE_AZURE_TOKEN_PROXY),
            user_assigned_identity_id: text(keys::USER_ASSIGNED_IDENTITY_ID),
            client_id: text(keys::CLIENT_ID),
            keyvault_name: text(keys::KEYVAULT_NAME),
            cloud_name: text(keys::CLOUD_NAME),
            tenant_id: text(keys::TENANT_ID).or_else(|| text(keys::TENANT_ID_LEGACY)),
            objects: parameters.get(keys::OBJECTS).map(String::as_str),
        }
    }

    /// Checks what kvbind needs to serve the class and parses its objects.
    pub fn validate(&self) -> Result<Vec<KeyVaultObject>, ParametersError> {
        let modes: Vec<&str> = [
            (self.use_pod_identity, keys::USE_POD_IDENTITY),
            (self.use_vm_managed_identity, keys::USE_VM_MANAGED_IDENTITY),
            (self.use_azure_token_proxy, keys::USE_AZURE_TOKEN_PROXY),
        ]
        .into_iter()
        .filter_map(|(on, key)| on.then_some(key))
        .collect();
        if modes.len() > 1 {
            return Err(ParametersError::ConflictingModes(modes.join(", ")));
        }
        if self.keyvault_name.is_none() {
            return Err(ParametersError::Missing(keys::KEYVAULT_NAME));
        }
        if self.tenant_id.is_none() {
            return Err(ParametersError::Missing(keys::TENANT_ID));
        }
        let objects = self.objects.ok_or(ParametersError::Missing(keys::OBJECTS))?;
        Ok(parse_objects(objects)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const OBJECTS: &str = "array:\n  - |\n    objectName: s\n    objectType: secret\n";

    #[test]
    fn reads_the_old_tenant_spelling() {
        let p = params(&[("tenantId", "t"), ("keyvaultName", "kv"), ("objects", OBJECTS)]);
        let view = AzureParameters::read(&p);
        assert_eq!(view.tenant_id, Some("t"));
        assert_eq!(view.validate().expect("valid").len(), 1);
    }

    #[test]
    fn new_tenant_spelling_wins() {
        let p = params(&[("tenantId", "old"), ("tenantID", "new")]);
        assert_eq!(AzureParameters::read(&p).tenant_id, Some("new"));
    }

    #[test]
    fn two_token_modes_are_refused() {
        let p = params(&[("usePodIdentity", "TRUE"), ("useVMManagedIdentity", "true"), ("keyvaultName", "kv"), ("tenantID", "t"), ("objects", OBJECTS)]);
        let err = AzureParameters::read(&p).validate().expect_err("conflict");
        assert!(err.to_string().contains("usePodIdentity, useVMManagedIdentity"), "{err}");
    }

    #[test]
    fn missing_vault_name_is_named() {
        let p = params(&[("tenantID", "t"), ("objects", OBJECTS)]);
        let err = AzureParameters::read(&p).validate().expect_err("missing");
        assert_eq!(err.to_string(), "spec.parameters.keyvaultName is required");
    }

    #[test]
    fn unknown_parameters_survive_a_round_trip() {
        let spc: SecretProviderClass = serde_json::from_value(serde_json::json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1",
            "kind": "SecretProviderClass",
            "metadata": {"name": "x"},
            "spec": {"provider": "azure", "parameters": {"somethingNew": "kept"}}
        }))
        .expect("parses");
        let back = serde_json::to_value(&spc).expect("serialises");
        assert_eq!(back["spec"]["parameters"]["somethingNew"], "kept");
    }
}
