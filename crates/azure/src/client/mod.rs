//! The real implementation of [`Arm`] on the azure_mgmt 0.21 crates.
//!
//! Each resource kind lives in its own file, with a note on where and why it goes around
//! the generated code (see also the crate README).

mod compute;
mod federated_credentials;
mod identities;
mod identity_bindings;
mod identity_list;
mod lro;
mod managed_cluster;
pub mod pacing;
mod raw;
mod role_assignments;
mod transport;
mod vaults;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::auth::TokenCredential;
use azure_core::{HttpClient, RetryOptions, TransportOptions, Url};

pub use lro::LroSettings;
pub use transport::{ArmObserver, MAX_CONCURRENT_REQUESTS, WriteFence, classify, parse_failure, resource_type};

use self::raw::RawArm;
use self::transport::ArmTransport;
use crate::error::AzureError;
use crate::ids::{ComputeId, IdentityId, VaultId};
use crate::model::{AccessPolicy, AccessPolicyOp, ComputeIdentity, FederatedCredential, Identity, IdentityChange, RoleAssignment, Vault};
use crate::port::Arm;

/// How to reach ARM.
#[derive(Clone)]
pub struct ArmClientConfig {
    /// The Resource Manager endpoint.
    pub endpoint: Url,
    /// The token scope (`{audience}/.default`).
    pub scope: String,
    /// An extra CA certificate (PEM) to trust, for endpoints with a private CA.
    pub extra_ca: Option<PathBuf>,
    /// How long one HTTP request may take.
    pub request_timeout: Duration,
    /// How long-running operations are followed.
    pub lro: LroSettings,
    /// Told about every request (for metrics).
    pub observer: Option<Arc<dyn ArmObserver>>,
    /// Consulted before every write; `None` writes unconditionally.
    pub fence: Option<Arc<dyn WriteFence>>,
    /// The rates kvbind keeps to, and the share it leaves to others.
    pub pacing: pacing::PacingSettings,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA file could not be read or parsed.
    #[error("reading the CA certificate {path}: {detail}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(String),
    /// A generated client could not be built.
    #[error("building the ARM clients: {0}")]
    Sdk(String),
}

/// The HTTP client kvbind uses for ARM and token requests.
pub fn http_client(extra_ca: Option<&PathBuf>, timeout: Duration) -> Result<Arc<dyn HttpClient>, ClientError> {
    // Few idle connections: each keeps a read buffer as large as the largest response it
    // carried (a scale set with a thousand identities is hundreds of kilobytes).
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(8)
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).map_err(|e| ClientError::Ca { path: path.clone(), detail: e.to_string() })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ClientError::Ca { path: path.clone(), detail: e.to_string() })?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| ClientError::Http(e.to_string()))?;
    Ok(Arc::new(client))
}

/// ARM through the azure_mgmt crates, with kvbind's own transport, LRO polling and the
/// requests the generated code gets wrong.
pub struct ArmClient {
    msi: azure_mgmt_msi::package_2023_01_31::Client,
    compute: azure_mgmt_compute::package_2024_07_01::Client,
    keyvault: azure_mgmt_keyvault::profile_hybrid_2020_09_01::Client,
    authorization: azure_mgmt_authorization::package_2022_04_01::Client,
    raw: RawArm,
    lro: LroSettings,
    /// Turns for handling identity blocks; see [`IDENTITY_BLOCKS_AT_ONCE`].
    identity_blocks: tokio::sync::Semaphore,
}

/// How many VM scale set or VM bodies are read, or identity PATCHes built and sent, at
/// once. With a thousand identities a pool's body is hundreds of kilobytes, and its read
/// buffers and parse several times that; twenty pools whose PATCHes end together would
/// otherwise hold all of it at the same moment. The long-running part of a PATCH holds no
/// turn.
pub const IDENTITY_BLOCKS_AT_ONCE: usize = 4;

impl ArmClient {
    /// Builds the clients for `config`, authenticating with `credential`.
    pub fn new(config: &ArmClientConfig, credential: Arc<dyn TokenCredential>) -> Result<Self, ClientError> {
        let http = http_client(config.extra_ca.as_ref(), config.request_timeout)?;
        let transport = Arc::new(ArmTransport::new(http, config.observer.clone(), config.fence.clone(), config.pacing));
        let scopes = [config.scope.as_str()];
        // Retries are the controller's: it requeues with the server's delay instead of
        // sleeping inside a call.
        macro_rules! build {
            ($krate:path) => {{
                use $krate as package;
                package::Client::builder(credential.clone())
                    .endpoint(config.endpoint.clone())
                    .scopes(&scopes)
                    .retry(RetryOptions::none())
                    .transport(TransportOptions::new_custom_policy(transport.clone()))
                    .build()
                    .map_err(|e| ClientError::Sdk(e.to_string()))?
            }};
        }
        Ok(ArmClient {
            msi: build!(azure_mgmt_msi::package_2023_01_31),
            compute: build!(azure_mgmt_compute::package_2024_07_01),
            keyvault: build!(azure_mgmt_keyvault::profile_hybrid_2020_09_01),
            authorization: build!(azure_mgmt_authorization::package_2022_04_01),
            raw: RawArm::new(config.endpoint.clone(), credential.clone(), config.scope.clone(), transport),
            lro: config.lro,
            identity_blocks: tokio::sync::Semaphore::new(IDENTITY_BLOCKS_AT_ONCE),
        })
    }
}

#[async_trait]
impl Arm for ArmClient {
    async fn get_identity(&self, id: &IdentityId) -> Result<Option<Identity>, AzureError> {
        self.read_identity(id).await
    }

    async fn create_or_update_identity(&self, id: &IdentityId, location: &str, tags: &BTreeMap<String, String>) -> Result<Identity, AzureError> {
        self.put_identity(id, location, tags).await
    }

    async fn delete_identity(&self, id: &IdentityId) -> Result<(), AzureError> {
        self.remove_identity(id).await
    }

    async fn get_federated_credential(&self, identity: &IdentityId, name: &str) -> Result<Option<FederatedCredential>, AzureError> {
        self.read_federated_credential(identity, name).await
    }

    async fn put_federated_credential(&self, identity: &IdentityId, credential: &FederatedCredential) -> Result<(), AzureError> {
        self.write_federated_credential(identity, credential).await
    }

    async fn delete_federated_credential(&self, identity: &IdentityId, name: &str) -> Result<(), AzureError> {
        self.remove_federated_credential(identity, name).await
    }

    async fn get_compute_identity(&self, target: &ComputeId) -> Result<ComputeIdentity, AzureError> {
        self.read_compute_identity(target).await
    }

    async fn update_compute_identities(&self, target: &ComputeId, current: &ComputeIdentity, change: &IdentityChange) -> Result<ComputeIdentity, AzureError> {
        self.patch_compute_identity(target, current, change).await
    }

    async fn get_vault(&self, id: &VaultId) -> Result<Vault, AzureError> {
        self.read_vault(id).await
    }

    async fn find_vault(&self, subscription: &str, name: &str) -> Result<Option<VaultId>, AzureError> {
        self.search_vault(subscription, name).await
    }

    async fn update_access_policy(&self, vault: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) -> Result<(), AzureError> {
        self.change_access_policy(vault, op, entries).await
    }

    async fn create_role_assignment(&self, assignment: &RoleAssignment) -> Result<RoleAssignment, AzureError> {
        self.put_role_assignment(assignment).await
    }

    async fn list_role_assignments(&self, scope: &str, principal_id: &str) -> Result<Vec<RoleAssignment>, AzureError> {
        self.find_role_assignments(scope, principal_id).await
    }

    async fn count_role_assignments(&self, subscription: &str) -> Result<usize, AzureError> {
        self.count_subscription_role_assignments(subscription).await
    }

    async fn delete_role_assignment(&self, scope: &str, name: &str) -> Result<(), AzureError> {
        self.remove_role_assignment(scope, name).await
    }

    async fn permissions(&self, scope: &crate::model::PermissionScope) -> Result<Vec<crate::model::PermissionSet>, AzureError> {
        self.read_permissions(scope).await
    }

    async fn deny_assignments(&self, subscription: &str, resource_group: &str) -> Result<Vec<crate::model::DenyAssignment>, AzureError> {
        self.read_deny_assignments(subscription, resource_group).await
    }

    async fn list_identities(&self, subscription: &str, resource_group: &str) -> Result<Vec<crate::model::ListedIdentity>, AzureError> {
        self.read_identity_list(subscription, resource_group).await
    }

    async fn get_addon_identity(&self, cluster: &str) -> Result<Option<crate::model::AddonIdentity>, AzureError> {
        self.read_addon_identity(cluster).await
    }

    async fn get_cluster_identity_binding(&self, cluster: &str, name: &str) -> Result<Option<crate::model::ClusterIdentityBinding>, AzureError> {
        self.read_cluster_identity_binding(cluster, name).await
    }

    async fn put_cluster_identity_binding(&self, cluster: &str, name: &str, identity: &IdentityId) -> Result<crate::model::ClusterIdentityBinding, AzureError> {
        self.write_cluster_identity_binding(cluster, name, identity).await
    }

    async fn delete_cluster_identity_binding(&self, cluster: &str, name: &str) -> Result<(), AzureError> {
        self.remove_cluster_identity_binding(cluster, name).await
    }
}
