//! The VM scale sets and VMs behind the cluster's nodes.
//!
//! Every reconcile of every binding asks which scale sets run the nodes it selects. With
//! thousands of nodes and bindings, walking every node per reconcile was most of the
//! controller's work, though the answer only changes when a node does and most bindings
//! share a selector (often the empty one). So the answer is kept per selector and dropped
//! whenever the node watch reports a change.
//!
//! Nodes that AKS's node auto-provisioning (Karpenter) made are left out: such VMs cannot
//! carry custom user-assigned identities (Azure/AKS#5496, #5611), so kvbind never writes
//! to them, and names them instead (see [`NodeTargets::auto_provisioned`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kvbind_api::identity_binding::LabelSelector;
use kvbind_azure::ids::IdError;
use kvbind_azure::{ComputeId, NodeLocation};

use super::stamped::Stamped;
use crate::selector::matches;

/// The scale sets of the selected nodes, or the first node whose providerID is not one.
pub type Targets = Result<Arc<BTreeSet<ComputeId>>, (String, IdError)>;

/// The label node auto-provisioning (Karpenter) puts on the nodes it makes.
pub const AUTO_PROVISIONED_LABEL: &str = "karpenter.sh/nodepool";

/// Parsed providerIDs and the targets of each selector, as of the last node change.
#[derive(Default)]
pub struct NodeTargets {
    parsed: Mutex<HashMap<String, Result<ComputeId, IdError>>>,
    /// Each selector's targets and the auto-provisioned nodes left out, until a node changes.
    by_selector: Stamped<String, (Targets, Arc<[String]>)>,
}

impl NodeTargets {
    /// Notes that the node store has changed, so every remembered answer is stale.
    pub fn nodes_changed(&self) {
        self.by_selector.changed();
    }

    /// The scale sets and VMs running the nodes in `nodes` that `selector` selects. Nodes
    /// without a providerID (not yet initialised, or virtual) are skipped.
    pub fn of(&self, nodes: &Store<Node>, selector: &LabelSelector) -> Targets {
        self.selected(nodes, selector).0
    }

    /// The auto-provisioned nodes that `selector` selects, which [`NodeTargets::of`] leaves out.
    pub fn auto_provisioned(&self, nodes: &Store<Node>, selector: &LabelSelector) -> Arc<[String]> {
        self.selected(nodes, selector).1
    }

    fn selected(&self, nodes: &Store<Node>, selector: &LabelSelector) -> (Targets, Arc<[String]>) {
        let key = serde_json::to_string(selector).unwrap_or_default();
        self.by_selector.get_or_make(key, || self.compute(nodes, selector))
    }

    fn compute(&self, nodes: &Store<Node>, selector: &LabelSelector) -> (Targets, Arc<[String]>) {
        let mut parsed = self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Nodes come and go with new IDs; forgetting now and then keeps this bounded.
        if parsed.len() > 50_000 {
            parsed.clear();
        }
        let mut targets = BTreeSet::new();
        let mut skipped = Vec::new();
        for node in nodes.state() {
            if !matches(selector, Some(node.labels())) {
                continue;
            }
            if node.labels().contains_key(AUTO_PROVISIONED_LABEL) {
                skipped.push(node.name_any());
                continue;
            }
            let Some(provider_id) = node.spec.as_ref().and_then(|s| s.provider_id.as_deref()).filter(|p| !p.is_empty()) else {
                continue;
            };
            let target = parsed.entry(provider_id.to_owned()).or_insert_with(|| NodeLocation::from_provider_id(provider_id).map(|l| l.attach_target().clone()));
            match target {
                Ok(target) if !targets.contains(target) => {
                    targets.insert(target.clone());
                }
                Ok(_) => {}
                Err(e) => return (Err((node.name_any(), e.clone())), Arc::from(skipped)),
            }
        }
        skipped.sort();
        (Ok(Arc::new(targets)), Arc::from(skipped))
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn node(name: &str, pool: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"providerID": format!("azure:///subscriptions/sub/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/{pool}/virtualMachines/0")},
        }))
        .expect("node")
    }

    fn names(targets: &Targets) -> Vec<String> {
        targets.as_ref().expect("targets").iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn a_pool_joins_the_targets_only_through_a_selected_node_and_only_after_the_change_is_told() {
        let mut writer = Writer::<Node>::default();
        writer.apply_watcher_event(&Event::Apply(node("a-0", "pool-apps", json!({"pool": "apps"}))));
        let (store, targets) = (writer.as_reader(), NodeTargets::default());
        let apps: LabelSelector = serde_json::from_value(json!({"matchLabels": {"pool": "apps"}})).expect("selector");
        assert_eq!(names(&targets.of(&store, &apps)), ["pool-apps"]);

        // A new pool whose node the selector does not select: not a target, whatever is told.
        writer.apply_watcher_event(&Event::Apply(node("g-0", "pool-gpu", json!({"pool": "gpu"}))));
        targets.nodes_changed();
        assert_eq!(names(&targets.of(&store, &apps)), ["pool-apps"]);
        assert_eq!(names(&targets.of(&store, &LabelSelector::default())), ["pool-apps", "pool-gpu"], "the empty selector takes every pool");

        // A selected node on a new pool: a target once the node watch tells of it.
        writer.apply_watcher_event(&Event::Apply(node("a-1", "pool-apps-2", json!({"pool": "apps"}))));
        assert_eq!(names(&targets.of(&store, &apps)), ["pool-apps"], "kept until told");
        targets.nodes_changed();
        assert_eq!(names(&targets.of(&store, &apps)), ["pool-apps", "pool-apps-2"]);

        // A node auto-provisioning made is named, never a target; a broken providerID is an error naming the node.
        writer.apply_watcher_event(&Event::Apply(node("k-0", "pool-karpenter", json!({"pool": "apps", AUTO_PROVISIONED_LABEL: "default"}))));
        writer.apply_watcher_event(&Event::Apply(
            serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "z-bad", "labels": {"pool": "other"}}, "spec": {"providerID": "aws:///i-1"}}),
            )
            .expect("node"),
        ));
        targets.nodes_changed();
        assert_eq!(names(&targets.of(&store, &apps)), ["pool-apps", "pool-apps-2"]);
        assert_eq!(&*targets.auto_provisioned(&store, &apps), ["k-0"]);
        let other: LabelSelector = serde_json::from_value(json!({"matchLabels": {"pool": "other"}})).expect("selector");
        assert!(matches!(targets.of(&store, &other), Err((node, _)) if node == "z-bad"));
    }
}
