//! The simulator's starting state, read from YAML (or JSON) and also accepted by the admin
//! API at run time to add resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::faults::FaultRule;

/// Everything the simulator starts with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// The directory every identity and vault belongs to.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Subscriptions and what is in them.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSeed>,
    /// Clients that may get tokens, and what their principals may do.
    #[serde(default)]
    pub clients: Vec<ClientSeed>,
    /// How long-running operations behave.
    #[serde(default)]
    pub lro: Option<LroSeed>,
    /// How many items a list page holds.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Faults to inject from the start.
    #[serde(default)]
    pub faults: Vec<FaultRule>,
    /// Directory principals (object IDs) that exist besides identities and clients.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Azure's hard limits, to shrink for tests; Azure's own numbers when absent.
    #[serde(default)]
    pub limits: Option<LimitsSeed>,
    /// Azure's request rates, to shrink or turn off for tests; Azure's own when absent.
    #[serde(default)]
    pub rates: Option<crate::rates::RatesSeed>,
}

/// Azure's hard limits on what kvbind writes (`shared/azure/LIMITS-AND-CLIENTS.md` §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSeed {
    /// User-assigned identities a VM scale set or VM may carry. Azure refuses an update
    /// that names more than 150 in one request; no source states a separate cap on the
    /// total, so the simulator takes 150 as the cap on the resource, as a PUT of the whole
    /// resource is one request.
    #[serde(default = "LimitsSeed::azure_identities_per_compute")]
    pub user_assigned_per_compute: usize,
    /// Access-policy entries a vault may hold (the REST spec's 0–1024).
    #[serde(default = "LimitsSeed::azure_access_policies")]
    pub access_policies_per_vault: usize,
    /// Role assignments in one subscription, at every scope under it.
    #[serde(default = "LimitsSeed::azure_role_assignments")]
    pub role_assignments_per_subscription: usize,
}

impl LimitsSeed {
    fn azure_identities_per_compute() -> usize {
        150
    }
    fn azure_access_policies() -> usize {
        1024
    }
    fn azure_role_assignments() -> usize {
        4000
    }
}

impl Default for LimitsSeed {
    fn default() -> Self {
        LimitsSeed {
            user_assigned_per_compute: Self::azure_identities_per_compute(),
            access_policies_per_vault: Self::azure_access_policies(),
            role_assignments_per_subscription: Self::azure_role_assignments(),
        }
    }
}

/// One subscription.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionSeed {
    /// The subscription ID.
    pub id: String,
    /// Its resource groups.
    #[serde(default)]
    pub resource_groups: Vec<ResourceGroupSeed>,
}

/// One resource group and its resources.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceGroupSeed {
    /// The name.
    pub name: String,
    /// The region.
    #[serde(default = "default_location")]
    pub location: String,
    /// User-assigned identities that exist already.
    #[serde(default)]
    pub identities: Vec<IdentitySeed>,
    /// VM scale sets.
    #[serde(default)]
    pub scale_sets: Vec<ComputeSeed>,
    /// Virtual machines (availability sets, standalone, VMSS Flex).
    #[serde(default)]
    pub virtual_machines: Vec<ComputeSeed>,
    /// Key Vaults.
    #[serde(default)]
    pub vaults: Vec<VaultSeed>,
    /// AKS managed clusters.
    #[serde(default)]
    pub managed_clusters: Vec<ManagedClusterSeed>,
    /// AKS's node resource group lockdown (`nodeResourceGroupProfile.restrictionLevel:
    /// ReadOnly`, preset on AKS Automatic): a deny assignment refuses every write under the
    /// group; reads go on.
    #[serde(default)]
    pub lockdown: bool,
}

/// An AKS managed cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedClusterSeed {
    /// The name.
    pub name: String,
    /// The node resource group, seeded on its own with the pools' scale sets.
    pub node_resource_group: String,
    /// With the Key Vault secrets provider add-on on: the name of its identity in the node
    /// resource group (AKS names it `azurekeyvaultsecretsprovider-<cluster>`), seeded there.
    #[serde(default)]
    pub key_vault_secrets_provider: Option<String>,
}

fn default_location() -> String {
    "eastus".to_owned()
}

/// An existing user-assigned identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySeed {
    /// The name.
    pub name: String,
    /// Its tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A fixed client ID (random when absent).
    #[serde(default)]
    pub client_id: Option<String>,
    /// A fixed principal ID (random when absent).
    #[serde(default)]
    pub principal_id: Option<String>,
    /// `Regional` for an identity that may be assigned only in its own region (default `None`).
    #[serde(default)]
    pub isolation_scope: Option<String>,
    /// Federated identity credentials it already has (someone else's, for tests of what
    /// kvbind leaves alone).
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredentialSeed>,
}

/// A federated identity credential present at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedCredentialSeed {
    /// The name.
    pub name: String,
    /// The issuer URL.
    pub issuer: String,
    /// The subject.
    pub subject: String,
}

/// A VM scale set or VM and its identity block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputeSeed {
    /// The name.
    pub name: String,
    /// A system-assigned identity is enabled.
    #[serde(default)]
    pub system_assigned: bool,
    /// Full resource IDs of user-assigned identities already attached.
    #[serde(default)]
    pub user_assigned: Vec<String>,
    /// A VM that AKS's node auto-provisioning (Karpenter) made and manages: it cannot carry
    /// custom user-assigned identities (Azure/AKS#5496), so identity changes are refused.
    #[serde(default)]
    pub auto_provisioned: bool,
}

/// A Key Vault.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultSeed {
    /// The name.
    pub name: String,
    /// Data access through Azure RBAC instead of access policies.
    #[serde(default)]
    pub rbac: bool,
    /// Existing access-policy entries.
    #[serde(default)]
    pub access_policies: Vec<serde_json::Value>,
    /// The names of the secrets in it, for the data plane.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The names of its keys.
    #[serde(default)]
    pub keys: Vec<String>,
    /// The names of its certificates.
    #[serde(default)]
    pub certificates: Vec<String>,
}

/// A client of the token endpoint and its principal's permissions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSeed {
    /// The client (application) ID.
    pub client_id: String,
    /// The client secret, for the client-credentials grant.
    #[serde(default)]
    pub secret: Option<String>,
    /// Accept federated assertions (workload identity) for this client.
    #[serde(default)]
    pub federated: bool,
    /// The client is a managed identity: IMDS (`/metadata/identity/oauth2/token`) hands out
    /// its tokens.
    #[serde(default)]
    pub managed_identity: bool,
    /// Bearer tokens accepted for this client without the token endpoint (tests).
    #[serde(default)]
    pub static_tokens: Vec<String>,
    /// The principal's object ID (random when absent).
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Actions the principal may perform: ARM action strings, `*` wildcards allowed.
    #[serde(default = "all_actions")]
    pub actions: Vec<String>,
}

fn all_actions() -> Vec<String> {
    vec!["*".to_owned()]
}

/// Long-running operation timing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LroSeed {
    /// How long a VMSS/VM update takes, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// The `Retry-After` sent with operation responses, in seconds.
    #[serde(default)]
    pub retry_after_seconds: u64,
}

impl Default for LroSeed {
    fn default() -> Self {
        LroSeed { duration_ms: 0, retry_after_seconds: 1 }
    }
}

impl Seed {
    /// Parses a seed from YAML (which also reads JSON).
    pub fn from_yaml(text: &str) -> Result<Seed, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(text)
    }
}
