//! What the controller is told by the operator's configuration.

use std::time::Duration;

use kvbind_azure::Cloud;

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Subscriptions searched for vaults by name; the first is the default for identities.
    pub subscriptions: Vec<String>,
    /// Region for identities whose binding names none.
    pub default_location: String,
    /// The cloud the operator works in; SecretProviderClasses naming another are refused.
    pub cloud: Cloud,
    /// How often each binding is re-read against Azure to repair drift.
    pub resync: Duration,
    /// How long identity changes for one VM scale set, and access-policy changes for one
    /// vault, are collected into one write.
    pub batch_window: Duration,
    /// Batch writes at all. Off, every binding writes its own changes (one PATCH per
    /// binding per scale set): the naive strategy the benchmark compares against.
    pub batching: bool,
    /// The name Events are reported under.
    pub reporter: String,
    /// Watch IdentityBindings and SecretProviderClasses in this namespace only.
    pub namespace: Option<String>,
    /// Consider only Nodes with these labels (a label selector string).
    pub node_selector: Option<String>,
    /// Reconcile only IdentityBindings with these labels (a label selector string), so
    /// several operators can split a cluster's bindings between them.
    pub binding_selector: Option<String>,
    /// The cluster's OIDC issuer URL, which federated credentials trust (workload identity).
    pub oidc_issuer: Option<String>,
    /// The AKS managed cluster's ARM ID, whose Key Vault secrets provider add-on identity
    /// bindings may use (`spec.identity.addon`).
    pub managed_cluster: Option<String>,
    /// What the managed cluster says of the add-on's identity: not a setting but the
    /// controller's latest read of it, kept current once a resync ([`crate::addon`]).
    pub addon_identity: crate::addon::AddonIdentitySource,
    /// This installation's ID, which kvbind tags the identities it creates with and by
    /// which alone it knows them as its own. Empty: the `kube-system` namespace's UID,
    /// stable for the life of the cluster and unknown to another cluster's kvbind.
    pub installation: String,
    /// The ConfigMap, as `(namespace, name)`, where kvbind lists the namespaces each identity
    /// it wrote into a class is bound to, for the chart's admission policy; `None` keeps no
    /// such list.
    pub bound_identities: Option<(String, String)>,
    /// The ConfigMap (namespace, name) in kvbind's own namespace where it keeps what it did
    /// to identities it adopted, so that a restart does not forget it. `None`: only in
    /// memory, for this process's life.
    pub adoption_records: Option<(String, String)>,
    /// The role assignments kvbind lets a subscription reach before it refuses to create
    /// more: Azure allows 4,000 (fixed) and counts everyone's; lower, it leaves room.
    pub role_assignment_limit: usize,
    /// Where and how `spec.verifyAccess` probes run.
    pub access_probe: AccessProbeConfig,
}

/// Where and how the probes of `spec.verifyAccess` run.
#[derive(Debug, Clone, Default)]
pub struct AccessProbeConfig {
    /// kvbind's own namespace, where VM mode's probe Pods run; `None` runs none, and VM
    /// mode bindings are not verified.
    pub namespace: Option<String>,
    /// The image the probe Pods run (kvbind's own), as `kvbind probe`.
    pub image: String,
    /// Send token and data-plane requests to this origin's address, scheme and port, keeping
    /// the vault's host name (local runs against the simulator); `None` follows DNS.
    pub data_plane_origin: Option<url::Url>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            subscriptions: Vec::new(),
            default_location: "eastus".to_owned(),
            cloud: Cloud::public(),
            resync: Duration::from_secs(600),
            batch_window: Duration::from_secs(2),
            batching: true,
            reporter: "kvbind".to_owned(),
            namespace: None,
            node_selector: None,
            binding_selector: None,
            managed_cluster: None,
            addon_identity: crate::addon::AddonIdentitySource::default(),
            oidc_issuer: None,
            installation: String::new(),
            bound_identities: None,
            adoption_records: None,
            role_assignment_limit: crate::role_budget::AZURE_ROLE_ASSIGNMENT_LIMIT,
            access_probe: AccessProbeConfig::default(),
        }
    }
}
