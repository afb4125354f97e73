//! `AccessVerified` (`spec.verifyAccess`): proving the path a pod takes to its secrets, not
//! just that kvbind made its changes.
//!
//! In `VMManagedIdentity` mode a short-lived Pod in kvbind's namespace runs `kvbind probe`
//! on a node of each pool: it asks that node's IMDS for the identity the class pins and
//! reads each object the classes list ([`on_nodes`]). In `WorkloadIdentity` mode kvbind
//! takes the pod's path itself: a ServiceAccount token for Entra ID's audience, the
//! federated exchange in the class's tenant, then the reads ([`federated`]). AKS identity
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

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kvbind_api::condition::{Condition, ConditionStatus, find};
use kvbind_api::identity_binding::{IdentityBinding, IdentityMode};

use crate::binding::inputs::ClassInput;
use crate::context::Context;
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

/// What the classes ask a pod to read, by the tenant each class names.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    by_tenant: BTreeMap<String, Vec<ProbeObject>>,
}

impl Wanted {
    /// The objects of `classes`, once each.
    pub fn of(classes: &[ClassInput]) -> Wanted {
        let mut by_tenant: BTreeMap<String, Vec<ProbeObject>> = BTreeMap::new();
        for class in classes {
            let objects = by_tenant.entry(class.tenant_id.to_ascii_lowercase()).or_default();
            for o in &class.objects {
                let object = ProbeObject { vault: class.vault_name.to_ascii_lowercase(), kind: o.object_type.as_str().to_owned(), name: o.name.clone() };
                if !objects.contains(&object) {
                    objects.push(object);
                }
            }
        }
        Wanted { by_tenant }
    }

    fn all(&self) -> Vec<ProbeObject> {
        let mut all: Vec<ProbeObject> = Vec::new();
        for o in self.by_tenant.values().flatten() {
            if !all.contains(o) {
                all.push(o.clone());
            }
        }
        all
    }
}

/// Proves the path for `binding`, whose identity has client ID `client_id`.
pub async fn check(ctx: &Context, binding: &IdentityBinding, client_id: &str, wanted: &Wanted) -> Check {
    match binding.spec.mode {
        IdentityMode::VmManagedIdentity => on_nodes::check(ctx, binding, client_id, wanted).await,
        IdentityMode::WorkloadIdentity => Check::Done(federated::check(ctx, binding, client_id, wanted).await),
        IdentityMode::AksIdentityBinding => Check::Done((
            ConditionStatus::Unknown,
            "NotProbedInThisMode",
            "AKS's token proxy exchanges the token inside the pod, out of kvbind's reach; mode AKSIdentityBinding is not probed".to_owned(),
        )),
    }
}

/// Forgets a binding that is going away, with its probe Pods.
pub async fn forget(ctx: &Context, binding: &IdentityBinding) {
    ctx.verification.forget(binding);
    if binding.spec.verify_access {
        on_nodes::forget(ctx, binding).await;
    }
}

/// The verdict the binding shows now, kept between proofs.
pub fn kept_verdict(binding: &IdentityBinding) -> Verdict {
    let conditions: &[Condition] = binding.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let fresh = |c: &&Condition| c.observed_generation == binding.metadata.generation;
    match find(conditions, CONDITION).filter(fresh) {
        Some(c) => (c.status, reason_of(&c.reason), c.message.clone()),
        None => (ConditionStatus::Unknown, "Probing", format!("the path a pod of {} takes is not proven yet", binding.name_any())),
    }
}

/// A kept reason as one of the verdict's own (they are `'static`).
fn reason_of(reason: &str) -> &'static str {
    const REASONS: [&str; 12] = [
        "Verified",
        "TokenNotIssued",
        "WrongIdentity",
        "ObjectNotReadable",
        "ObjectNotFound",
        "NothingToProbe",
        "Probing",
        "ProbeFailed",
        "ProbeTimedOut",
        "ProbeUnavailable",
        "NotProbedInThisMode",
        "NoNodeOfPool",
    ];
    REASONS.into_iter().find(|r| *r == reason).unwrap_or("Probing")
}
