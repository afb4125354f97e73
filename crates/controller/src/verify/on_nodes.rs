//! VM mode's path, from a node of each pool: a Pod in kvbind's namespace, pinned to one of
//! the pool's nodes, runs `kvbind probe` and ends with its report as the termination
//! message. A reconcile starts the Pods it lacks, reads and deletes the ones that ended,
//! and keeps the binding's verdict while the others run.
//!
//! The Pod runs as nobody on a read-only root, mounts no ServiceAccount token, tolerates
//! every taint (a pool's pods do), and can reach what any pod on that node can: IMDS and
//! the vaults. That is the point: it proves what a pod there gets.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_api::condition::ConditionStatus;
use kvbind_api::identity_binding::IdentityBinding;
use kvbind_azure::{ComputeId, NodeLocation};
use serde_json::json;

use super::probe::{ProbeReport, ProbeRequest};
use super::verdict::{Probed, verdict};
use super::{Check, Prover, Wanted};
use crate::selector::matches;

/// The `app.kubernetes.io/component` label of probe Pods.
pub const PROBE_COMPONENT: &str = "access-probe";

/// The argument before the probe's request (JSON) in the Pod's command line.
pub const PROBE_REQUEST_ARG: &str = "--request";

/// The label naming the binding (by UID) a probe Pod proves the path of.
const BINDING_LABEL: &str = "kvbind.io/probes-for-uid";

/// Deletes the probe Pods of a binding that is going away.
pub async fn forget(prover: &Prover<'_>, binding: &IdentityBinding) {
    let (Some(namespace), Some(uid)) = (prover.config.access_probe.namespace.as_deref(), binding.uid()) else { return };
    let pods: Api<Pod> = Api::namespaced(prover.client.clone(), namespace);
    let selector = kube::api::ListParams::default().labels(&format!("{BINDING_LABEL}={uid}"));
    if let Err(e) = pods.delete_collection(&DeleteParams::background(), &selector).await {
        tracing::warn!(error = %e, "deleting the probe Pods of a deleted binding");
    }
}

/// How long a probe Pod may take before kvbind gives up on it (pulling the image included).
const PROBE_DEADLINE: Duration = Duration::from_secs(120);

pub(super) async fn check(prover: &Prover<'_>, binding: &IdentityBinding, client_id: &str, wanted: &Wanted) -> Check {
    let Some(namespace) = prover.config.access_probe.namespace.clone() else {
        return Check::Done((ConditionStatus::Unknown, "ProbeUnavailable", "kvbind runs no probe Pods (no namespace configured for them)".to_owned()));
    };
    let targets = match prover.node_targets.of(prover.nodes, &binding.spec.nodes) {
        Ok(targets) => targets,
        Err((node, e)) => return Check::Done((ConditionStatus::Unknown, "ProbeUnavailable", format!("node {node}: {e}"))),
    };
    let request = ProbeRequest {
        key_vault_suffix: prover.config.cloud.key_vault_suffix.clone(),
        expected_client_id: client_id.to_owned(),
        pinned_client_id: Some(client_id.to_owned()),
        objects: wanted.all(),
    };
    let pods: Api<Pod> = Api::namespaced(prover.client.clone(), &namespace);
    // Every pool's report is read together: a Pod that ended waits for the others, so one
    // slow pool does not make the others' reports go unread.
    let (mut probed, mut ended_pods, mut unreported) = (Vec::new(), Vec::new(), None);
    let mut running = false;
    for target in targets.iter() {
        let place = format!("pool {}", target.name);
        let name = pod_name(binding, target);
        let pod = match pods.get_opt(&name).await {
            Ok(pod) => pod,
            Err(e) => return Check::Done((ConditionStatus::Unknown, "ProbeFailed", format!("{place}: reading probe Pod {name}: {e}"))),
        };
        match pod {
            None => {
                let Some(node) = node_of(prover, binding, target) else {
                    return Check::Done((ConditionStatus::Unknown, "NoNodeOfPool", format!("{place}: no node of the pool to probe from")));
                };
                let manifest = manifest(&name, &namespace, &node, &prover.config.access_probe.image, binding, &request);
                if let Err(e) = pods.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&manifest)).await {
                    return Check::Done((ConditionStatus::Unknown, "ProbeFailed", format!("{place}: starting probe Pod {name}: {e}")));
                }
                running = true;
            }
            Some(pod) => match ended(&pod) {
                Some(report) => {
                    match report {
                        Ok(report) => probed.push(Probed { place, pinned: request.pinned_client_id.is_some(), report }),
                        Err(why) => unreported = Some(format!("{place}: probe Pod {name} {why}")),
                    }
                    ended_pods.push(name);
                }
                None if older_than(&pod, PROBE_DEADLINE) => {
                    let _ = pods.delete(&name, &DeleteParams::background()).await;
                    let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
                    return Check::Done((
                        ConditionStatus::Unknown,
                        "ProbeTimedOut",
                        format!("{place}: probe Pod {name} did not end in {}s ({phase})", PROBE_DEADLINE.as_secs()),
                    ));
                }
                None => running = true,
            },
        }
    }
    if running {
        return Check::Pending;
    }
    for name in &ended_pods {
        let _ = pods.delete(name, &DeleteParams::background()).await;
    }
    match unreported {
        Some(why) => Check::Done((ConditionStatus::Unknown, "ProbeFailed", why)),
        None => Check::Done(verdict(client_id, &probed)),
    }
}

/// One Pod name per binding and pool, so a reconcile finds the Pod an earlier one started.
fn pod_name(binding: &IdentityBinding, target: &ComputeId) -> String {
    let seed = format!("{}/{}", binding.uid().unwrap_or_default(), target.key());
    let digest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes()).simple().to_string();
    format!("kvbind-probe-{}", &digest[..16])
}

/// A node of `target` that the binding selects.
fn node_of(prover: &Prover<'_>, binding: &IdentityBinding, target: &ComputeId) -> Option<String> {
    let on_target = |node: &Node| {
        let location = node.spec.as_ref().and_then(|s| s.provider_id.as_deref()).and_then(|p| NodeLocation::from_provider_id(p).ok());
        match location {
            Some(NodeLocation::ScaleSetInstance { scale_set, .. }) => scale_set == *target,
            Some(NodeLocation::VirtualMachine(vm)) => vm == *target,
            None => false,
        }
    };
    let names: BTreeSet<String> =
        prover.nodes.state().iter().filter(|n| matches(&binding.spec.nodes, n.metadata.labels.as_ref()) && on_target(n)).map(|n| n.name_any()).collect();
    names.into_iter().next()
}

fn manifest(name: &str, namespace: &str, node: &str, image: &str, binding: &IdentityBinding, request: &ProbeRequest) -> serde_json::Value {
    let request = serde_json::to_string(request).unwrap_or_default();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "kvbind", "app.kubernetes.io/component": PROBE_COMPONENT, "app.kubernetes.io/managed-by": "kvbind",
                BINDING_LABEL: binding.uid().unwrap_or_default(),
            },
            "annotations": {"kvbind.io/probes-for": format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any())},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": PROBE_DEADLINE.as_secs(),
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "tolerations": [{"operator": "Exists"}],
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe",
                "image": image,
                "args": ["probe", PROBE_REQUEST_ARG, request],
                "terminationMessagePolicy": "File",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    })
}

/// The report of a Pod that ended, or why it has none; `None` while it runs.
fn ended(pod: &Pod) -> Option<Result<ProbeReport, String>> {
    let status = pod.status.as_ref()?;
    let terminated = status.container_statuses.as_ref()?.iter().find(|c| c.name == "probe")?.state.as_ref()?.terminated.as_ref()?;
    let message = terminated.message.as_deref().unwrap_or_default();
    Some(
        serde_json::from_str(message)
            .map_err(|_| format!("ended ({}, exit code {}) without a report", terminated.reason.as_deref().unwrap_or("no reason"), terminated.exit_code)),
    )
}

fn older_than(pod: &Pod, age: Duration) -> bool {
    let Some(created) = pod.metadata.creation_timestamp.as_ref() else { return false };
    let now = k8s_openapi::jiff::Timestamp::now();
    now.duration_since(created.0).unsigned_abs() > age
}
