//! The ARM port: every Azure operation kvbind performs, in kvbind's own terms.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::AzureError;
use crate::ids::{ComputeId, IdentityId, VaultId};
use crate::model::{AccessPolicy, AccessPolicyOp, ComputeIdentity, FederatedCredential, Identity, IdentityChange, RoleAssignment, Vault};

/// What kvbind asks of Azure Resource Manager.
#[async_trait]
pub trait Arm: Send + Sync {
    /// Reads a user-assigned identity; `None` when it does not exist.
    async fn get_identity(&self, id: &IdentityId) -> Result<Option<Identity>, AzureError>;

    /// Creates a user-assigned identity, or updates its tags (its client and principal IDs
    /// never change).
    async fn create_or_update_identity(&self, id: &IdentityId, location: &str, tags: &BTreeMap<String, String>) -> Result<Identity, AzureError>;

    /// Deletes a user-assigned identity; success when it is already gone.
    async fn delete_identity(&self, id: &IdentityId) -> Result<(), AzureError>;

    /// Reads one federated identity credential of an identity; `None` when it does not exist.
    async fn get_federated_credential(&self, identity: &IdentityId, name: &str) -> Result<Option<FederatedCredential>, AzureError>;

    /// Creates or replaces a federated identity credential of an identity.
    async fn put_federated_credential(&self, identity: &IdentityId, credential: &FederatedCredential) -> Result<(), AzureError>;

    /// Deletes a federated identity credential; success when it is already gone.
    async fn delete_federated_credential(&self, identity: &IdentityId, name: &str) -> Result<(), AzureError>;

    /// Reads the identity block of a VM scale set or VM.
    async fn get_compute_identity(&self, target: &ComputeId) -> Result<ComputeIdentity, AzureError>;

    /// Attaches and detaches user-assigned identities on a VM scale set or VM whose identity
    /// block was `current`, keeping the system-assigned identity and every other identity,
    /// and follows the long-running operation to its end. Returns the resulting block.
    async fn update_compute_identities(&self, target: &ComputeId, current: &ComputeIdentity, change: &IdentityChange) -> Result<ComputeIdentity, AzureError>;

    /// Reads a vault's tenant, authorisation model and access policies.
    async fn get_vault(&self, id: &VaultId) -> Result<Vault, AzureError>;

    /// Finds a vault by name in a subscription; `None` when there is none.
    async fn find_vault(&self, subscription: &str, name: &str) -> Result<Option<VaultId>, AzureError>;

    /// Adds, replaces or removes access-policy entries (at most
    /// [`MAX_ACCESS_POLICIES_PER_REQUEST`](crate::model::MAX_ACCESS_POLICIES_PER_REQUEST)
    /// in one call, as the REST spec allows).
    async fn update_access_policy(&self, vault: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) -> Result<(), AzureError>;

    /// Creates a role assignment; an identical existing one (same name, or the same
    /// principal, role and scope under another name) counts as success and is returned.
    async fn create_role_assignment(&self, assignment: &RoleAssignment) -> Result<RoleAssignment, AzureError>;

    /// Lists the role assignments of `principal_id` at `scope` or below it (a vault and its
    /// secrets, keys and certificates), in one call.
    async fn list_role_assignments(&self, scope: &str, principal_id: &str) -> Result<Vec<RoleAssignment>, AzureError>;

    /// How many role assignments a subscription holds, at every scope in it: Azure allows
    /// 4,000, and counts everyone's.
    async fn count_role_assignments(&self, subscription: &str) -> Result<usize, AzureError>;

    /// Deletes a role assignment; success when it is already gone.
    async fn delete_role_assignment(&self, scope: &str, name: &str) -> Result<(), AzureError>;

    /// The operator's own permissions at a resource group or a resource (`kvbind doctor`).
    async fn permissions(&self, scope: &crate::model::PermissionScope) -> Result<Vec<crate::model::PermissionSet>, AzureError>;

    /// The deny assignments that apply to a resource group (`kvbind doctor`): on AKS, the
    /// node resource group lockdown's.
    async fn deny_assignments(&self, subscription: &str, resource_group: &str) -> Result<Vec<crate::model::DenyAssignment>, AzureError>;

    /// The user-assigned identities of a resource group, with their isolation scope
    /// (`kvbind doctor`).
    async fn list_identities(&self, subscription: &str, resource_group: &str) -> Result<Vec<crate::model::ListedIdentity>, AzureError>;

    /// The identity of the AKS Key Vault secrets provider add-on of the managed cluster with
    /// ARM ID `cluster`; `None` when the add-on is off or has no identity yet.
    async fn get_addon_identity(&self, cluster: &str) -> Result<Option<crate::model::AddonIdentity>, AzureError>;

    /// AKS identity binding `name` of the managed cluster with ARM ID `cluster`, if it exists.
    async fn get_cluster_identity_binding(&self, cluster: &str, name: &str) -> Result<Option<crate::model::ClusterIdentityBinding>, AzureError>;

    /// Creates (or updates) AKS identity binding `name` of `cluster` for `identity`, waiting
    /// for the operation to finish. AKS creates the identity's shared federated credential.
    async fn put_cluster_identity_binding(&self, cluster: &str, name: &str, identity: &IdentityId) -> Result<crate::model::ClusterIdentityBinding, AzureError>;

    /// Deletes AKS identity binding `name` of `cluster`, waiting for the operation to finish;
    /// an absent binding is success. AKS leaves the shared federated credential in place.
    async fn delete_cluster_identity_binding(&self, cluster: &str, name: &str) -> Result<(), AzureError>;
}
