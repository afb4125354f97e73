//! Everything a reconcile needs, shared by all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kvbind_api::secret_provider_class::SecretProviderClass;
use kvbind_api::{BindingPolicy, IdentityBinding};
use kvbind_azure::Arm;

use crate::caches::node_targets::NodeTargets;
use crate::caches::unpinned_classes::UnpinnedClasses;
use crate::config::ControllerConfig;
use crate::desks::compute::{ComputeClerk, ComputeDesk};
use crate::desks::handoff::Handoffs;
use crate::desks::identity::IdentityDesk;
use crate::desks::vault::{VaultClerk, VaultDesk};
use crate::event_queue::EventQueue;
use crate::external_secrets::EsoCaches;
use crate::metrics::Metrics;
use crate::records::ledger::Ledger;

/// What the watches keep: the informer stores a reconcile reads instead of the API server,
/// and the answers derived from them, each dropped by the watch event that stales it.
pub struct Index {
    /// Every IdentityBinding (the controller's own cache).
    pub bindings: Store<IdentityBinding>,
    /// Every SecretProviderClass (v1).
    pub classes: Store<SecretProviderClass>,
    /// Every Node, stripped to labels and providerID.
    pub nodes: Store<Node>,
    /// Every BindingPolicy.
    pub policies: Store<BindingPolicy>,
    /// Every Namespace's metadata, for the policies' namespace selectors.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// ESO's SecretStores and ExternalSecrets, when the API server serves them.
    pub external_secrets: Option<EsoCaches>,
    /// The scale sets behind the nodes, told of every node change.
    pub node_targets: Arc<NodeTargets>,
    /// The classes that leave IMDS to pick the identity, told of every class change.
    pub unpinned_classes: Arc<UnpinnedClasses>,
    /// What each binding needs, told of every change of what that is read from.
    pub needs_memo: Arc<crate::caches::needs_memo::NeedsMemo>,
    /// The policy judge's answers, told of every change of what they are read from.
    pub judged: Arc<crate::policy::judged::Judged>,
    /// Each SecretProviderClass read once per version.
    pub parsed_classes: crate::caches::parsed_classes::ParsedClasses,
    /// True once every cache has listed its objects.
    pub ready: tokio::sync::watch::Receiver<bool>,
}

/// How many reconciles take their Azure steps (reads, the identity, handing off
/// attachments and grants) at once: as many as the ARM client sends requests at once, so
/// identities are created as fast as ARM takes them, while a thousand new bindings do not
/// all build their state at the same moment. Writing to Kubernetes comes after the turn,
/// so a slow API server does not hold identities back.
pub const AZURE_STEPS_AT_ONCE: usize = kvbind_azure::client::MAX_CONCURRENT_REQUESTS;

/// The Azure side: the ARM port and the desks that stand between it and the reconciles,
/// one per kind of resource kvbind writes.
pub struct AzureSide {
    /// The ARM port.
    pub arm: Arc<dyn Arm>,
    /// VM scale sets and VMs: identity blocks and their writers.
    pub compute: ComputeDesk,
    /// Vaults: the vaults, their names and their access-policy writers.
    pub vaults: VaultDesk,
    /// Identities: the identities, their turns and their AKS identity bindings.
    pub identities: IdentityDesk,
    /// Writes handed to the desks that have landed, per binding.
    pub handoffs: Arc<Handoffs>,
    /// Reconciles taking their Azure steps at once; see [`AZURE_STEPS_AT_ONCE`].
    pub steps: tokio::sync::Semaphore,
    /// The role assignments each subscription may still take.
    pub role_budget: crate::role_budget::RoleAssignmentBudget,
}

/// The Kubernetes side: the client, the Events on their way, and the budget of writes.
pub struct KubeSide {
    /// The Kubernetes client.
    pub client: Client,
    /// Events on their way to the API server.
    pub events: EventQueue,
    /// Reconciles writing their classes and status at once.
    pub writes: tokio::sync::Semaphore,
}

/// The reconcilers' shared state: what the watches keep, the two sides kvbind writes to,
/// and what it keeps of its own.
pub struct Context {
    /// What the watches keep.
    pub index: Index,
    /// Azure, and the writers and reads in front of it.
    pub azure: AzureSide,
    /// Kubernetes.
    pub kube: KubeSide,
    /// Settings.
    pub config: ControllerConfig,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The identities' namespaces, published for the admission policy.
    pub bound: Option<crate::records::bound_identities::BoundIdentities>,
    /// Consecutive failures per binding, for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// What kvbind did per identity since this process started.
    pub ledger: Ledger,
    /// The durable part of the ledger: what kvbind did to identities it adopted.
    pub adoption: Option<crate::records::adoption_records::AdoptionRecords>,
    /// When kvbind last made each namespace's IMDS NetworkPolicy what its policies say.
    pub(crate) imds_looked: crate::caches::imds_looked::Looked,
    /// Each namespace's Azure writes of the last hour, for `maxAzureWritesPerHour`.
    pub writes: crate::policy::write_quota::WriteLog,
    /// The HTTP client of `spec.verifyAccess`'s token exchanges and vault reads.
    pub probe_http: reqwest::Client,
    /// When each binding's path is to be proven.
    pub verification: crate::verify::schedule::Schedule,
}

impl Context {
    /// Builds the context; the writers record landed writes in `handoffs`.
    pub fn new(client: Client, arm: Arc<dyn Arm>, config: ControllerConfig, index: Index, metrics: Arc<Metrics>, handoffs: Handoffs) -> Arc<Self> {
        let config_bound =
            config.bound_identities.as_ref().map(|(namespace, name)| crate::records::bound_identities::BoundIdentities::new(client.clone(), namespace, name));
        let config_role_limit = config.role_assignment_limit;
        let adoption =
            config.adoption_records.as_ref().map(|(namespace, name)| crate::records::adoption_records::AdoptionRecords::new(client.clone(), namespace, name));
        let events = EventQueue::start(client.clone(), Reporter { controller: config.reporter.clone(), instance: None });
        let probe_http = probe_client(&config);
        let window = config.batching.then_some(config.batch_window);
        let handoffs = Arc::new(handoffs);
        let compute = ComputeDesk::new(ComputeClerk::new(arm.clone()), config.resync, window, handoffs.clone());
        let vaults = VaultDesk::new(VaultClerk::new(arm.clone()), config.resync, window, handoffs.clone());
        let identities = IdentityDesk::new(arm.clone(), config.resync);
        Arc::new(Context {
            index,
            azure: AzureSide {
                arm,
                compute,
                vaults,
                identities,
                handoffs,
                steps: tokio::sync::Semaphore::new(AZURE_STEPS_AT_ONCE),
                role_budget: crate::role_budget::RoleAssignmentBudget::new(config_role_limit),
            },
            kube: KubeSide { client, events, writes: tokio::sync::Semaphore::new(crate::request_limit::DEFAULT_API_REQUESTS) },
            config,
            metrics,
            probe_http,
            verification: crate::verify::schedule::Schedule::default(),
            bound: config_bound,
            failures: Mutex::default(),
            ledger: Ledger::default(),
            adoption,
            imds_looked: crate::caches::imds_looked::Looked::default(),
            writes: crate::policy::write_quota::WriteLog::default(),
        })
    }
}

/// The probe's HTTP client, sending everything to the configured origin when there is one.
fn probe_client(config: &ControllerConfig) -> reqwest::Client {
    let address = config.access_probe.data_plane_origin.as_ref().and_then(|o| o.host_str()).and_then(|h| h.parse().ok());
    crate::verify::probe::http_client(address).unwrap_or_default()
}

impl Context {
    /// What proving a pod's path needs of the context.
    pub fn prover(&self) -> crate::verify::Prover<'_> {
        crate::verify::Prover {
            client: &self.kube.client,
            config: &self.config,
            http: &self.probe_http,
            nodes: &self.index.nodes,
            node_targets: &self.index.node_targets,
        }
    }
}
