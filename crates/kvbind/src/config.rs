//! The operator's configuration, from flags and environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kvbind_azure::credential::IMDS_TOKEN_ENDPOINT;
use kvbind_azure::{Cloud, CredentialConfig};

/// How the operator authenticates to Azure.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CredentialKind {
    /// Workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE).
    WorkloadIdentity,
    /// A managed identity on the node (IMDS); AZURE_CLIENT_ID picks a user-assigned one.
    ManagedIdentity,
    /// A service principal secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET).
    ClientSecret,
}

/// Settings of `kvbind run`.
#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    /// Subscriptions where vaults are looked up by name; the first is the default for
    /// identities (comma-separated).
    #[arg(long, env = "KVBIND_SUBSCRIPTIONS", value_delimiter = ',', required = true)]
    pub subscriptions: Vec<String>,
    /// Region for identities whose binding names none.
    #[arg(long, env = "KVBIND_DEFAULT_LOCATION", default_value = "eastus")]
    pub default_location: String,
    /// The Azure cloud: AzurePublicCloud, AzureChinaCloud, AzureUSGovernmentCloud.
    #[arg(long, env = "KVBIND_CLOUD", default_value = "AzurePublicCloud")]
    pub cloud: String,
    /// A custom cloud file (Azure Stack environment JSON); overrides --cloud.
    #[arg(long, env = "KVBIND_CLOUD_FILE")]
    pub cloud_file: Option<PathBuf>,
    /// An ARM endpoint to use instead of the cloud's (for the ARM simulator).
    #[arg(long, env = "KVBIND_ARM_ENDPOINT")]
    pub arm_endpoint: Option<url::Url>,
    /// How the operator authenticates to Azure.
    #[arg(long, env = "KVBIND_CREDENTIAL", value_enum, default_value = "workload-identity")]
    pub credential: CredentialKind,
    /// The directory (tenant) ID.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// The operator identity's client ID.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The projected service-account token for workload identity.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// How often each binding is checked against Azure for drift (seconds).
    #[arg(long, env = "KVBIND_RESYNC_SECONDS", default_value_t = 600)]
    pub resync_seconds: u64,
    /// How long changes to one VM scale set are collected into one PATCH (milliseconds): a
    /// batch closes after a quarter of this with no new change and no binding still
    /// resolving its identity, and after sixteen of it at most.
    #[arg(long, env = "KVBIND_BATCH_WINDOW_MS", default_value_t = 2000)]
    pub batch_window_ms: u64,
    /// Watch only this namespace.
    #[arg(long, env = "KVBIND_NAMESPACE")]
    pub namespace: Option<String>,
    /// Consider only nodes matching this label selector.
    #[arg(long, env = "KVBIND_NODE_SELECTOR")]
    pub node_selector: Option<String>,
    /// The share of each of Azure's request budgets (ARM's writes and deletes, each scale
    /// set's updates, identity creates) kvbind leaves to everything else that spends them,
    /// such as the cluster autoscaler and AKS upgrades: 0 to 0.9.
    #[arg(long, env = "KVBIND_ARM_RESERVE", default_value_t = kvbind_azure::DEFAULT_RESERVE, value_parser = reserve_share)]
    pub arm_reserve: f64,
    /// The role assignments kvbind lets a subscription reach before it refuses a binding's
    /// per-object grants by name: Azure allows 4,000 per subscription, counting everyone's;
    /// set it lower to leave room for others.
    #[arg(long, env = "KVBIND_ROLE_ASSIGNMENT_LIMIT", default_value_t = kvbind_controller::role_budget::AZURE_ROLE_ASSIGNMENT_LIMIT)]
    pub role_assignment_limit: usize,
    /// Send requests as fast as they come instead of pacing them within Azure's published
    /// rates (429s then do the pacing).
    #[arg(long, env = "KVBIND_NO_PACING")]
    pub no_pacing: bool,
    /// Write each binding's changes on its own instead of batching them per scale set and
    /// vault (for comparison; never faster).
    #[arg(long, env = "KVBIND_NO_BATCHING")]
    pub no_batching: bool,
    /// Reconcile only IdentityBindings matching this label selector.
    #[arg(long, env = "KVBIND_BINDING_SELECTOR")]
    pub binding_selector: Option<String>,
    /// The cluster's OIDC issuer URL, for bindings in mode WorkloadIdentity (on AKS:
    /// `az aks show --query oidcIssuerProfile.issuerUrl`). Kept exactly as given: federated
    /// credentials must name the issuer exactly as the tokens do.
    #[arg(long, env = "KVBIND_OIDC_ISSUER_URL", value_parser = https_url)]
    pub oidc_issuer_url: Option<String>,
    /// The image `spec.verifyAccess`'s probe Pods run (kvbind's own; the chart sets it).
    /// Unset, VM-mode bindings are not verified.
    #[arg(long, env = "KVBIND_PROBE_IMAGE")]
    pub probe_image: Option<String>,
    /// The AKS cluster's ARM ID (`/subscriptions/…/resourceGroups/…/providers/
    /// Microsoft.ContainerService/managedClusters/NAME`), for bindings that use the Key Vault
    /// secrets provider add-on's identity (`spec.identity.addon`; on AKS: `az aks show --query id`).
    #[arg(long, env = "KVBIND_MANAGED_CLUSTER_ID", value_parser = managed_cluster_id)]
    pub managed_cluster_id: Option<String>,
    /// This installation's ID, which kvbind tags the identities it creates with and by which
    /// alone it takes them for its own (default: the kube-system namespace's UID). Set it
    /// only to keep the ID when a cluster is rebuilt under the same operator.
    #[arg(long, env = "KVBIND_INSTALLATION_ID")]
    pub installation_id: Option<String>,
    /// The ConfigMap in the operator's namespace (`POD_NAMESPACE`) where kvbind lists the
    /// namespaces each identity it bound is bound to, for the chart's admission policy.
    #[arg(long, env = "KVBIND_BOUND_IDENTITIES_CONFIGMAP")]
    pub bound_identities_configmap: Option<String>,
    /// The ConfigMap in the operator's namespace (`POD_NAMESPACE`) where kvbind keeps what
    /// it attached and granted to identities it adopted, so that a restart does not forget
    /// it. Without it kvbind remembers that only while it runs.
    #[arg(long, env = "KVBIND_ADOPTION_RECORDS_CONFIGMAP")]
    pub adoption_records_configmap: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "KVBIND_LOG_JSON")]
    pub log_json: bool,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "KVBIND_ADMIN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub admin_address: std::net::SocketAddr,
    /// Elect a leader among replicas on a Lease; only the leader writes.
    #[arg(long, env = "KVBIND_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(long, env = "KVBIND_LEASE_NAME", default_value = "kvbind")]
    pub lease_name: String,
    /// The Lease's namespace (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kvbind-system")]
    pub lease_namespace: String,
    /// This replica's name in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How long a Lease holds without renewal (seconds); failover takes at most this long.
    #[arg(long, env = "KVBIND_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
}

impl RunConfig {
    /// The cloud to work in.
    pub fn cloud(&self) -> anyhow::Result<Cloud> {
        match &self.cloud_file {
            Some(path) => Ok(Cloud::from_json(&std::fs::read_to_string(path)?, false)?),
            None => Ok(Cloud::by_name(&self.cloud, None)?),
        }
    }

    /// The credential settings; the client secret is read from AZURE_CLIENT_SECRET only,
    /// never from a flag, so it does not show in the process list.
    pub fn credential(&self) -> anyhow::Result<CredentialConfig> {
        let need = |v: &Option<String>, name: &str| v.clone().ok_or_else(|| anyhow::anyhow!("{name} is required for this credential"));
        Ok(match self.credential {
            CredentialKind::WorkloadIdentity => CredentialConfig::WorkloadIdentity {
                tenant_id: need(&self.tenant_id, "AZURE_TENANT_ID")?,
                client_id: need(&self.client_id, "AZURE_CLIENT_ID")?,
                token_file: self.federated_token_file.clone().ok_or_else(|| anyhow::anyhow!("AZURE_FEDERATED_TOKEN_FILE is required"))?,
            },
            CredentialKind::ManagedIdentity => CredentialConfig::ManagedIdentity { client_id: self.client_id.clone(), endpoint: IMDS_TOKEN_ENDPOINT.parse()? },
            CredentialKind::ClientSecret => CredentialConfig::ClientSecret {
                tenant_id: need(&self.tenant_id, "AZURE_TENANT_ID")?,
                client_id: need(&self.client_id, "AZURE_CLIENT_ID")?,
                secret: std::env::var("AZURE_CLIENT_SECRET").map_err(|_| anyhow::anyhow!("AZURE_CLIENT_SECRET is required"))?,
            },
        })
    }

    /// The resync period.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds.max(10))
    }
}

/// Accepts an absolute HTTPS URL, returned as written.
fn https_url(text: &str) -> Result<String, String> {
    match url::Url::parse(text) {
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Ok(text.to_owned()),
        Ok(_) => Err("the OIDC issuer URL must be https://".to_owned()),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}

/// An AKS managed cluster's ARM ID, checked as every ID kvbind sends to ARM is.
fn managed_cluster_id(text: &str) -> Result<String, String> {
    kvbind_azure::ids::GroupResourceId::parse(kvbind_azure::ResourceKind::ManagedCluster, text).map(|id| id.to_string()).map_err(|e| e.to_string())
}

/// A share of a budget, 0 to 0.9.
fn reserve_share(text: &str) -> Result<f64, String> {
    let share: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=0.9).contains(&share) { Ok(share) } else { Err(format!("{share} is not between 0 and 0.9")) }
}
