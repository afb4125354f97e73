//! A stand-in for ARM in unit tests that knows only VM scale set identity blocks: it keeps
//! them in memory, takes `latency` for every read and write (tokio time, so tests can pause
//! it), and counts both. Access-policy updates are recorded and succeed unless they carry
//! the refused principal. Every other operation is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kvbind_azure::model::{
    AccessPolicy, AccessPolicyOp, ComputeIdentity, FederatedCredential, Identity, IdentityChange, PermissionScope, PermissionSet, RoleAssignment, Vault,
};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId, VaultId};

/// Identity blocks in memory, with read and write counters.
#[derive(Default)]
pub struct FakeCompute {
    latency: Duration,
    blocks: Mutex<HashMap<String, ComputeIdentity>>,
    reads: AtomicUsize,
    writes: AtomicUsize,
    /// The number of identities each write added, in order.
    pub added: Mutex<Vec<usize>>,
    /// Access-policy updates succeed unless they carry this principal.
    pub refused_principal: Option<String>,
    /// The role assignments the subscription holds, as counted.
    pub role_assignments_held: usize,
    /// How often they were counted.
    pub role_assignment_counts: AtomicUsize,
    /// Counting them is refused (no read permission on the subscription).
    pub counting_forbidden: bool,
    /// Scale set updates succeed unless they attach this identity (ARM refuses the whole
    /// update, naming it, as it does a Regional identity from another region).
    pub refused_identity: Option<IdentityId>,
    /// The principals of each access-policy update, in order.
    pub vault_writes: Mutex<Vec<Vec<String>>>,
}

impl FakeCompute {
    pub fn new(latency: Duration) -> Self {
        FakeCompute { latency, ..FakeCompute::default() }
    }

    /// A fake whose subscription holds `held` role assignments.
    pub fn holding_role_assignments(held: usize) -> Self {
        FakeCompute { role_assignments_held: held, ..FakeCompute::default() }
    }

    /// A fake that may not count the subscription's role assignments.
    pub fn forbidding_role_assignment_counts() -> Self {
        FakeCompute { counting_forbidden: true, ..FakeCompute::default() }
    }

    /// A fake whose scale set updates fail, naming it, when they attach `identity`.
    pub fn refusing_identity(latency: Duration, identity: IdentityId) -> Self {
        FakeCompute { latency, refused_identity: Some(identity), ..FakeCompute::default() }
    }

    /// A fake whose access-policy updates fail when they carry `principal`.
    pub fn refusing_principal(principal: &str) -> Self {
        FakeCompute { refused_principal: Some(principal.to_owned()), ..FakeCompute::default() }
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

fn refused(operation: &'static str) -> AzureError {
    AzureError::Invalid { operation, resource: String::new(), code: "NotInFake".into(), message: "this fake serves scale sets only".into() }
}

#[async_trait]
impl Arm for FakeCompute {
    async fn get_identity(&self, _: &IdentityId) -> Result<Option<Identity>, AzureError> {
        Err(refused("GetIdentity"))
    }
    async fn create_or_update_identity(&self, _: &IdentityId, _: &str, _: &BTreeMap<String, String>) -> Result<Identity, AzureError> {
        Err(refused("CreateIdentity"))
    }
    async fn delete_identity(&self, _: &IdentityId) -> Result<(), AzureError> {
        Err(refused("DeleteIdentity"))
    }
    async fn get_federated_credential(&self, _: &IdentityId, _: &str) -> Result<Option<FederatedCredential>, AzureError> {
        Err(refused("GetFederatedCredential"))
    }
    async fn put_federated_credential(&self, _: &IdentityId, _: &FederatedCredential) -> Result<(), AzureError> {
        Err(refused("PutFederatedCredential"))
    }
    async fn delete_federated_credential(&self, _: &IdentityId, _: &str) -> Result<(), AzureError> {
        Err(refused("DeleteFederatedCredential"))
    }
    async fn get_compute_identity(&self, target: &ComputeId) -> Result<ComputeIdentity, AzureError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        Ok(self.blocks.lock().expect("lock").get(&target.key()).cloned().unwrap_or_default())
    }
    async fn update_compute_identities(&self, target: &ComputeId, current: &ComputeIdentity, change: &IdentityChange) -> Result<ComputeIdentity, AzureError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.added.lock().expect("lock").push(change.add.len());
        tokio::time::sleep(self.latency).await;
        if let Some(bad) = &self.refused_identity
            && change.add.iter().any(|id| **id == *bad)
        {
            return Err(AzureError::Invalid {
                operation: "UpdateComputeIdentity",
                resource: target.to_string(),
                code: "FailedIdentityOperation".into(),
                message: format!("Identity '{bad}' has isolationScope 'Regional' in 'westeurope' and cannot be assigned to a resource in 'eastus'."),
            });
        }
        // Principals are not modelled here.
        let kept = current.user_assigned().iter().filter(|id| !change.remove.iter().any(|r| r.key().eq_ignore_ascii_case(id))).map(|id| id.to_string());
        let added = change.add.iter().filter(|id| !current.has(id)).map(ToString::to_string);
        let after = ComputeIdentity::new(current.system_assigned, kept.chain(added).map(|id| (id, String::new())).collect());
        self.blocks.lock().expect("lock").insert(target.key(), after.clone());
        Ok(after)
    }
    async fn deny_assignments(&self, _: &str, _: &str) -> Result<Vec<kvbind_azure::model::DenyAssignment>, AzureError> {
        Err(refused("ListDenyAssignments"))
    }
    async fn list_identities(&self, _: &str, _: &str) -> Result<Vec<kvbind_azure::model::ListedIdentity>, AzureError> {
        Err(refused("ListIdentities"))
    }
    async fn get_addon_identity(&self, _: &str) -> Result<Option<kvbind_azure::model::AddonIdentity>, AzureError> {
        Err(refused("GetManagedCluster"))
    }
    async fn get_cluster_identity_binding(&self, _: &str, _: &str) -> Result<Option<kvbind_azure::model::ClusterIdentityBinding>, AzureError> {
        Err(refused("GetIdentityBinding"))
    }
    async fn put_cluster_identity_binding(&self, _: &str, _: &str, _: &IdentityId) -> Result<kvbind_azure::model::ClusterIdentityBinding, AzureError> {
        Err(refused("PutIdentityBinding"))
    }
    async fn delete_cluster_identity_binding(&self, _: &str, _: &str) -> Result<(), AzureError> {
        Err(refused("DeleteIdentityBinding"))
    }
    async fn get_vault(&self, _: &VaultId) -> Result<Vault, AzureError> {
        Err(refused("GetVault"))
    }
    async fn find_vault(&self, _: &str, _: &str) -> Result<Option<VaultId>, AzureError> {
        Err(refused("FindVault"))
    }
    async fn update_access_policy(&self, _: &VaultId, _: AccessPolicyOp, entries: &[AccessPolicy]) -> Result<(), AzureError> {
        let principals: Vec<String> = entries.iter().map(|e| e.object_id.clone()).collect();
        self.vault_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(principals.clone());
        match &self.refused_principal {
            Some(bad) if principals.contains(bad) => Err(AzureError::Invalid {
                operation: "UpdateAccessPolicy",
                resource: String::new(),
                code: "BadRequest".into(),
                message: format!("{bad} is refused"),
            }),
            _ => Ok(()),
        }
    }
    async fn count_role_assignments(&self, _: &str) -> Result<usize, AzureError> {
        self.role_assignment_counts.fetch_add(1, Ordering::SeqCst);
        if self.counting_forbidden {
            return Err(AzureError::Forbidden {
                operation: "ListRoleAssignments",
                resource: "/subscriptions/sub".into(),
                action: Some("Microsoft.Authorization/roleAssignments/read".into()),
                message: "does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/read'".into(),
            });
        }
        Ok(self.role_assignments_held)
    }
    async fn create_role_assignment(&self, _: &RoleAssignment) -> Result<RoleAssignment, AzureError> {
        Err(refused("CreateRoleAssignment"))
    }
    async fn list_role_assignments(&self, _: &str, _: &str) -> Result<Vec<RoleAssignment>, AzureError> {
        Err(refused("ListRoleAssignments"))
    }
    async fn delete_role_assignment(&self, _: &str, _: &str) -> Result<(), AzureError> {
        Err(refused("DeleteRoleAssignment"))
    }
    async fn permissions(&self, _: &PermissionScope) -> Result<Vec<PermissionSet>, AzureError> {
        Err(refused("Permissions"))
    }
}
