//! `AccessVerified` (`spec.verifyAccess`): proving the path a pod takes to its secrets, not
//! just that kvbind made its changes.
//!
//! In `VMManagedIdentity` mode a short-lived Pod in kvbind's namespace runs `kvbind probe`
//! on a node of each pool: it asks that node's IMDS for the identity the class pins and
//! reads each object the classes list (`on_nodes`). In `WorkloadIdentity` mode kvbind
//! takes the pod's path itself: a ServiceAccount token for Entra ID's audience, the
//! federated exchange in the class's tenant, then the reads (`federated`). AKS identity
//! bindings exchange their token inside AKS's proxy, which kvbind cannot reach from
//! outside the pod, so they are not probed.
//!
//! The evidence comes from Azure's answers and from Pods in kvbind's own namespace, never
//! from anything a tenant can write.

mod federated;
mod on_nodes;
pub mod probe;
pub mod schedule;
pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kvbind_api::condition::ConditionStatus;
use kvbind_api::identity_binding::{IdentityBinding, IdentityMode};

use crate::caches::node_targets::NodeTargets;
use crate::config::ControllerConfig;
use crate::needs::ClassInput;
pub use on_nodes::{PROBE_COMPONENT, PROBE_REQUEST_ARG};
use probe::ProbeObject;
use verdict::Verdict;

/// The condition type.
pub const CONDITION: &str = "AccessVerified";

/// How soon a binding looks again while a probe Pod runs.
pub const PROBE_RECHECK: Duration = Duration::from_secs(2);

/// Where a proof stands after one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A verdict, fresh from probes.
    Done(Verdict),
    /// Probe Pods are running; the binding keeps the verdict it has until they end.
    Pending,
}

/// What proving a path needs of the controller: the API server, the settings, the HTTP
/// client for Entra ID and the vaults, and the nodes of each pool.
pub struct Prover<'a> {
    /// The Kubernetes client.
    pub client: &'a kube::Client,
    /// The controller's settings (the cloud, where probe Pods run).
    pub config: &'a ControllerConfig,
    /// The HTTP client of the token exchanges and vault reads.
    pub http: &'a reqwest::Client,
    /// Every node.
    pub nodes: &'a Store<Node>,
    /// The scale sets and VMs behind the nodes.
    pub node_targets: &'a NodeTargets,
}

/// What the classes ask a pod to read, each object once, by the tenant each class names.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    by_tenant: BTreeMap<String, BTreeSet<ProbeObject>>,
}

impl Wanted {
    /// What `classes` list.
    pub fn of(classes: &[Arc<ClassInput>]) -> Wanted {
        let mut by_tenant: BTreeMap<String, BTreeSet<ProbeObject>> = BTreeMap::new();
        for class in classes {
            let listed = by_tenant.entry(class.tenant_id.to_ascii_lowercase()).or_default();
            listed.extend(class.objects.iter().map(|o| ProbeObject {
                vault: class.vault_name.to_ascii_lowercase(),
                kind: o.object_type.as_str().to_owned(),
                name: o.name.clone(),
            }));
        }
        Wanted { by_tenant }
    }

    fn all(&self) -> Vec<ProbeObject> {
        self.by_tenant.values().flatten().cloned().collect::<BTreeSet<_>>().into_iter().collect()
    }
}

/// Proves the path for `binding`, whose identity has client ID `client_id`.
pub async fn check(prover: &Prover<'_>, binding: &IdentityBinding, client_id: &str, wanted: &Wanted) -> Check {
    match binding.spec.mode {
        IdentityMode::VmManagedIdentity => on_nodes::check(prover, binding, client_id, wanted).await,
        IdentityMode::WorkloadIdentity => Check::Done(federated::check(prover, binding, client_id, wanted).await),
        IdentityMode::AksIdentityBinding => Check::Done((
            ConditionStatus::Unknown,
            "NotProbedInThisMode",
            "AKS's token proxy exchanges the token inside the pod, out of kvbind's reach; mode AKSIdentityBinding is not probed".to_owned(),
        )),
    }
}

/// Deletes the probe Pods of a binding that is going away.
pub async fn forget(prover: &Prover<'_>, binding: &IdentityBinding) {
    if binding.spec.verify_access {
        on_nodes::forget(prover, binding).await;
    }
}

/// The verdict the binding shows now: the last proof's, kept in `schedule` (never read from
/// the status a tenant may write), or not proven yet.
pub fn kept_verdict(schedule: &schedule::Schedule, binding: &IdentityBinding) -> Verdict {
    schedule
        .verdict(binding)
        .unwrap_or_else(|| (ConditionStatus::Unknown, "Probing", format!("the path a pod of {} takes is not proven yet", binding.name_any())))
}
