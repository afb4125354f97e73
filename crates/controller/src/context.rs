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
use kvbind_azure::{Arm, VaultId};

use crate::caches::node_targets::NodeTargets;
use crate::caches::read_cache::ReadCache;
use crate::caches::unpinned_classes::UnpinnedClasses;
use crate::config::ControllerConfig;
use crate::event_queue::EventQueue;
use crate::external_secrets::EsoCaches;
use crate::metrics::Metrics;
use crate::records::ledger::Ledger;
use crate::writers::access_batcher::AccessPolicyBatcher;
use crate::writers::batcher::ComputeBatcher;
use crate::writers::handoff::Handoffs;

/// The informer caches a reconcile reads instead of the API server.
pub struct Caches {
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
    /// True once every cache has listed its objects.
    pub ready: tokio::sync::watch::Receiver<bool>,
}

pub use crate::turns::Turns;

/// How many reconciles take their Azure steps (reads, the identity, handing off
/// attachments and grants) at once: as many as the ARM client sends requests at once, so
/// identities are created as fast as ARM takes them, while a thousand new bindings do not
/// all build their state at the same moment. Writing to Kubernetes comes after the turn,
/// so a slow API server does not hold identities back.
pub const AZURE_STEPS_AT_ONCE: usize = kvbind_azure::client::MAX_CONCURRENT_REQUESTS;

/// The reconcilers' shared state.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The ARM port.
    pub arm: Arc<dyn Arm>,
    /// Settings.
    pub config: ControllerConfig,
    /// Every IdentityBinding (the controller's own cache).
    pub bindings: Store<IdentityBinding>,
    /// Every SecretProviderClass (v1).
    pub classes: Store<SecretProviderClass>,
    /// Every Node, stripped to labels and providerID.
    pub nodes: Store<Node>,
    /// Every BindingPolicy.
    pub policies: Store<BindingPolicy>,
    /// Every Namespace's metadata.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// ESO's SecretStores and ExternalSecrets, when the API server serves them.
    pub external_secrets: Option<EsoCaches>,
    /// The per-VM-scale-set writer.
    pub compute: ComputeBatcher,
    /// The per-vault access-policy writer.
    pub access: AccessPolicyBatcher,
    /// Writes handed to the batching writers that have landed, per binding.
    pub handoffs: Arc<Handoffs>,
    /// One turn at a time per identity, for creating and tagging it.
    pub identity_turns: Turns,
    /// The scale sets behind the nodes each node selector selects.
    pub node_targets: Arc<NodeTargets>,
    /// The classes that leave IMDS to pick the identity.
    pub unpinned_classes: Arc<UnpinnedClasses>,
    /// What each binding needs, while nothing it is read from changes.
    pub needs_memo: Arc<crate::caches::needs_memo::NeedsMemo>,
    /// Identity blocks and vaults, read once per resync period.
    pub reads: Arc<ReadCache>,
    /// Events on their way to the API server.
    pub events: EventQueue,
    /// Reconciles writing their classes and status at once.
    pub api_writes: tokio::sync::Semaphore,
    /// Reconciles taking their Azure steps at once; see [`AZURE_STEPS_AT_ONCE`].
    pub azure_steps: tokio::sync::Semaphore,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The identities' namespaces, published for the admission policy.
    pub bound: Option<crate::records::bound_identities::BoundIdentities>,
    /// True once every cache has listed its objects.
    pub caches_ready: tokio::sync::watch::Receiver<bool>,
    /// Consecutive failures per binding, for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Vaults found by name (lowercase), kept until the vault answers 404.
    pub vault_names: Mutex<HashMap<String, VaultId>>,
    /// One search at a time per vault name.
    pub vault_lookups: Turns,
    /// What kvbind did per identity since this process started.
    pub ledger: Ledger,
    /// The durable part of the ledger: what kvbind did to identities it adopted.
    pub adoption: Option<crate::records::adoption_records::AdoptionRecords>,
    /// When kvbind last made each namespace's IMDS NetworkPolicy what its policies say.
    pub(crate) imds_looked: crate::caches::imds_looked::Looked,
    /// The role assignments each subscription may still take.
    pub role_budget: crate::role_budget::RoleAssignmentBudget,
    /// Each namespace's Azure writes of the last hour, for `maxAzureWritesPerHour`.
    pub writes: crate::policy::write_quota::WriteLog,
    /// Each SecretProviderClass read once per version.
    pub parsed_classes: crate::caches::parsed_classes::ParsedClasses,
    /// The HTTP client of `spec.verifyAccess`'s token exchanges and vault reads.
    pub probe_http: reqwest::Client,
    /// When each binding's path is to be proven.
    pub verification: crate::verify::schedule::Schedule,
}

impl Context {
    /// Builds the context; the writers record landed writes in `handoffs`.
    pub fn new(client: Client, arm: Arc<dyn Arm>, config: ControllerConfig, caches: Caches, metrics: Arc<Metrics>, handoffs: Handoffs) -> Arc<Self> {
        let Caches { bindings, classes, nodes, policies, namespaces, external_secrets, node_targets, unpinned_classes, needs_memo, ready: caches_ready } =
            caches;
        let config_bound =
            config.bound_identities.as_ref().map(|(namespace, name)| crate::records::bound_identities::BoundIdentities::new(client.clone(), namespace, name));
        let config_role_limit = config.role_assignment_limit;
        let adoption =
            config.adoption_records.as_ref().map(|(namespace, name)| crate::records::adoption_records::AdoptionRecords::new(client.clone(), namespace, name));
        let events = EventQueue::start(client.clone(), Reporter { controller: config.reporter.clone(), instance: None });
        let probe_http = probe_client(&config);
        let reads = Arc::new(ReadCache::new(config.resync));
        let window = config.batching.then_some(config.batch_window);
        let handoffs = Arc::new(handoffs);
        let compute = ComputeBatcher::new(arm.clone(), reads.clone(), window, handoffs.clone());
        let access = AccessPolicyBatcher::new(arm.clone(), reads.clone(), window, handoffs.clone());
        Arc::new(Context {
            client,
            arm,
            config,
            bindings,
            classes,
            nodes,
            policies,
            namespaces,
            external_secrets,
            compute,
            access,
            handoffs,
            reads,
            node_targets,
            unpinned_classes,
            needs_memo,
            identity_turns: Turns::default(),
            events,
            api_writes: tokio::sync::Semaphore::new(crate::request_limit::DEFAULT_API_REQUESTS),
            azure_steps: tokio::sync::Semaphore::new(AZURE_STEPS_AT_ONCE),
            metrics,
            probe_http,
            verification: crate::verify::schedule::Schedule::default(),
            bound: config_bound,
            caches_ready,
            failures: Mutex::default(),
            vault_names: Mutex::default(),
            vault_lookups: Turns::default(),
            ledger: Ledger::default(),
            adoption,
            imds_looked: crate::caches::imds_looked::Looked::default(),
            role_budget: crate::role_budget::RoleAssignmentBudget::new(config_role_limit),
            writes: crate::policy::write_quota::WriteLog::default(),
            parsed_classes: crate::caches::parsed_classes::ParsedClasses::default(),
        })
    }
}

/// The probe's HTTP client, sending everything to the configured origin when there is one.
fn probe_client(config: &ControllerConfig) -> reqwest::Client {
    let address = config.access_probe.data_plane_origin.as_ref().and_then(|o| o.host_str()).and_then(|h| h.parse().ok());
    crate::verify::probe::http_client(address, None).unwrap_or_default()
}

impl Context {
    /// What proving a pod's path needs of the context.
    pub fn prover(&self) -> crate::verify::Prover<'_> {
        crate::verify::Prover { client: &self.client, config: &self.config, http: &self.probe_http, nodes: &self.nodes, node_targets: &self.node_targets }
    }
}
