//! The shapes of what a binding asks for: each class and store it serves, and all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvbind_api::KeyVaultObject;
use kvbind_api::class_lint::Finding;
use kvbind_azure::ComputeId;

use crate::error::VaultOrigin;

/// One SecretProviderClass a binding serves.
#[derive(Debug, Clone)]
pub struct ClassInput {
    /// Its name.
    pub name: String,
    /// `keyvaultName`.
    pub vault_name: String,
    /// `tenantID` (or `tenantId`).
    pub tenant_id: String,
    /// The parsed objects.
    pub objects: Vec<KeyVaultObject>,
    /// `userAssignedIdentityID` as it is now.
    pub identity_id: Option<String>,
    /// `useVMManagedIdentity` is already true.
    pub uses_vm_identity: bool,
    /// `useAzureTokenProxy` is already true.
    pub uses_token_proxy: bool,
    /// `clientID` (workload identity) as it is now.
    pub client_id: Option<String>,
    /// What the lint found that misleads but does not stop the mount.
    pub warnings: Vec<Finding>,
}

/// One External Secrets SecretStore a binding serves.
#[derive(Debug, Clone)]
pub struct StoreInput {
    /// Its name.
    pub name: String,
    /// The vault of `spec.provider.azurekv.vaultUrl` (lowercase).
    pub vault_name: String,
    /// `spec.provider.azurekv.tenantId`, or empty.
    pub tenant_id: String,
    /// The objects the namespace's ExternalSecrets read through it.
    pub objects: Vec<KeyVaultObject>,
    /// `authType` as it is now.
    pub auth_type: Option<String>,
    /// `identityId` as it is now.
    pub identity_id: Option<String>,
    /// `serviceAccountRef.name` as it is now.
    pub service_account: Option<String>,
}

/// Everything one binding needs from Azure.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// The VM scale sets and VMs of the selected nodes.
    pub targets: BTreeSet<ComputeId>,
    /// Objects per vault name (lowercase), with the tenant the classes name.
    pub vaults: BTreeMap<String, (String, Vec<KeyVaultObject>)>,
    /// The classes, for write-back.
    pub classes: Vec<Arc<ClassInput>>,
    /// Classes named in the spec that do not exist (any more).
    pub missing: Vec<String>,
    /// The External Secrets stores, for write-back.
    pub stores: Vec<StoreInput>,
}

impl Needs {
    /// The class or store that names each vault, for messages: the first of each.
    pub fn origins(&self) -> BTreeMap<String, VaultOrigin> {
        let mut out = BTreeMap::new();
        for store in self.stores.iter().rev() {
            out.insert(store.vault_name.clone(), VaultOrigin::Store(store.name.clone()));
        }
        for class in self.classes.iter().rev() {
            out.insert(class.vault_name.clone(), VaultOrigin::Class(class.name.clone()));
        }
        out
    }
}
