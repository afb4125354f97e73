//! The policy check as a table, on caches filled by each test: what one tenant's binding is
//! allowed, given the other bindings, the namespaces and the nodes.

use serde_json::{Value, json};

use super::*;
use crate::binding::inputs::needs_of;
use crate::needs::identity_of;
use crate::test_context::{Cluster, context};

const GROUP: &str = "/subscriptions/sub/resourceGroups/rg-ids";
const VAULTS: &str = "/subscriptions/sub/resourceGroups/rg-vaults";

/// Binding `namespace/name` on identity `identity` in `rg-ids`, created at `second`, for
/// class `app` of its namespace, with `extra` spec fields.
fn binding(namespace: &str, name: &str, identity: &str, second: u32, extra: Value) -> Value {
    let mut spec = json!({"identity": {"name": identity, "resourceGroup": "rg-ids"}, "secretProviderClasses": {"names": ["app"]}});
    spec.as_object_mut().expect("an object").extend(extra.as_object().cloned().unwrap_or_default());
    json!({
        "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}"), "generation": 1,
                     "creationTimestamp": format!("2026-01-01T00:00:{second:02}Z")},
        "spec": spec,
    })
}

fn class(namespace: &str) -> Value {
    json!({
        "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
        "metadata": {"name": "app", "namespace": namespace, "uid": format!("{namespace}-app"), "resourceVersion": "1"},
        "spec": {"provider": "azure", "parameters": {"keyvaultName": "kv", "tenantId": "t",
                 "objects": "array:\n  - |\n    objectName: db\n    objectType: secret\n"}},
    })
}

/// Policy `name` for namespaces labelled `team: <team>`, identities in `rg-ids` and vaults
/// in `rg-vaults`, with `extra` spec fields.
fn policy(name: &str, team: &str, extra: Value) -> Value {
    let mut spec = json!({"namespaceSelector": {"matchLabels": {"team": team}}, "identityResourceGroups": [GROUP], "vaults": [VAULTS]});
    spec.as_object_mut().expect("an object").extend(extra.as_object().cloned().unwrap_or_default());
    json!({"apiVersion": "kvbind.io/v1alpha1", "kind": "BindingPolicy", "metadata": {"name": name}, "spec": spec})
}

fn node(name: &str, pool: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": format!("azure:///subscriptions/sub/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/{pool}/virtualMachines/0")},
    })
}

/// What the policies say of `namespace/name`: the allowing policies, or the refusal.
fn verdict(cluster: &Cluster, namespace: &str, name: &str) -> Result<Vec<String>, String> {
    let ctx = context(cluster);
    let judge = Judge::new(&ctx);
    let binding = ctx.index.bindings.get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace)).expect("the binding is cached");
    let (identity, adopt) = identity_of(&binding.spec.identity, &ctx.config).map_err(|e| e.to_string())?;
    let needs = needs_of(&binding, &ctx).map_err(|e| e.to_string())?;
    let checked = check(&binding, &identity, adopt, &needs, &judge).map_err(|e| e.to_string());
    assert_eq!(judge.verdict(&binding).allowing, checked.clone().ok(), "the judge's verdict is the check's");
    checked
}

fn teams(names: &[(&'static str, &str)]) -> Vec<(&'static str, Value)> {
    names.iter().map(|(ns, team)| (*ns, json!({"team": team}))).collect()
}

#[tokio::test]
async fn a_namespace_no_policy_selects_is_refused_by_name() {
    let cluster = Cluster {
        bindings: vec![binding("stray", "app", "app-id", 0, json!({}))],
        classes: vec![class("stray")],
        policies: vec![policy("a", "a", json!({}))],
        namespaces: teams(&[("stray", "none")]),
        ..Cluster::default()
    };
    let refused = verdict(&cluster, "stray", "app").expect_err("refused");
    assert!(refused.contains("no BindingPolicy selects namespace stray"), "{refused}");
}

#[tokio::test]
async fn each_refusal_names_the_field_it_refuses() {
    let cases = [
        (json!({"identity": {"name": "app-id", "resourceGroup": "rg-other"}}), "spec.identity.resourceGroup /subscriptions/sub/resourceGroups/rg-other"),
        (json!({"mode": "WorkloadIdentity", "serviceAccount": {"name": "sa"}}), "spec.mode WorkloadIdentity is not among its modes"),
        (json!({"identity": {"resourceId": format!("{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/theirs")}}), "spec.identity.resourceId"),
        (json!({"keyVault": {"resourceId": "/subscriptions/sub/resourceGroups/payroll/providers/Microsoft.KeyVault/vaults/kv"}}), "spec.keyVault.resourceId"),
    ];
    for (extra, named) in cases {
        let cluster = Cluster {
            bindings: vec![binding("a", "app", "app-id", 0, extra.clone())],
            classes: vec![class("a")],
            policies: vec![policy("a", "a", json!({"modes": ["VMManagedIdentity"]}))],
            namespaces: teams(&[("a", "a")]),
            ..Cluster::default()
        };
        let refused = verdict(&cluster, "a", "app").expect_err("refused");
        assert!(refused.contains(named), "{extra}: {refused}");
    }
}

#[tokio::test]
async fn sharing_an_identity_across_namespaces_needs_both_policies_and_the_first_keeps_it() {
    let both = |first: bool, second: bool| Cluster {
        bindings: vec![binding("a", "app", "shared", 1, json!({})), binding("b", "app", "shared", 2, json!({}))],
        classes: vec![class("a"), class("b")],
        policies: vec![policy("a", "a", json!({"allowCrossNamespaceSharing": first})), policy("b", "b", json!({"allowCrossNamespaceSharing": second}))],
        namespaces: teams(&[("a", "a"), ("b", "b")]),
        ..Cluster::default()
    };
    for (first, second) in [(false, false), (true, false), (false, true), (true, true)] {
        let cluster = both(first, second);
        assert!(verdict(&cluster, "a", "app").is_ok(), "the first user keeps its identity ({first}, {second})");
        let joining = verdict(&cluster, "b", "app");
        match (first, second) {
            (true, true) => assert_eq!(joining, Ok(vec!["b".to_owned()])),
            (_, false) => assert!(joining.expect_err("refused").contains("already used by binding a/app in another namespace")),
            (false, true) => assert!(joining.expect_err("refused").contains("needs both sides' consent")),
        }
    }
}

#[tokio::test]
async fn a_namespace_no_policy_selects_is_nobody_s_elder() {
    let cluster = Cluster {
        bindings: vec![binding("squat", "app", "shared", 0, json!({})), binding("a", "app", "shared", 5, json!({}))],
        classes: vec![class("squat"), class("a")],
        policies: vec![policy("a", "a", json!({}))],
        namespaces: teams(&[("squat", "none"), ("a", "a")]),
        ..Cluster::default()
    };
    assert!(verdict(&cluster, "a", "app").is_ok(), "an earlier claim from an unpoliced namespace does not count");
}

#[tokio::test]
async fn quotas_count_only_the_bindings_that_came_first() {
    let cluster = Cluster {
        bindings: vec![
            binding("a", "first", "one", 1, json!({})),
            binding("a", "second", "two", 2, json!({})),
            binding("a", "third", "one", 3, json!({})),
            binding("a", "fourth", "three", 4, json!({})),
        ],
        classes: vec![class("a")],
        policies: vec![policy("a", "a", json!({"maxBindingsPerNamespace": 3, "maxIdentitiesPerNamespace": 2}))],
        namespaces: teams(&[("a", "a")]),
        ..Cluster::default()
    };
    assert!(verdict(&cluster, "a", "first").is_ok());
    assert!(verdict(&cluster, "a", "second").is_ok());
    assert!(verdict(&cluster, "a", "third").is_ok(), "a third binding on an identity already counted");
    let fourth = verdict(&cluster, "a", "fourth").expect_err("refused");
    assert!(fourth.contains("already has 3 IdentityBindings and its maxBindingsPerNamespace is 3"), "{fourth}");
}

#[tokio::test]
async fn a_node_policy_holds_for_every_node_of_each_scale_set_reached() {
    let cluster = |other_label: Value| Cluster {
        bindings: vec![binding("a", "app", "app-id", 0, json!({"nodes": {"matchLabels": {"team": "a"}}}))],
        classes: vec![class("a")],
        nodes: vec![node("n1", "pool-a", json!({"team": "a"})), node("n2", "pool-a", other_label)],
        policies: vec![policy("a", "a", json!({"nodeSelectors": [{"matchLabels": {"team": "a"}}]}))],
        namespaces: teams(&[("a", "a")]),
    };
    assert!(verdict(&cluster(json!({"team": "a"})), "a", "app").is_ok());
    let refused = verdict(&cluster(json!({})), "a", "app").expect_err("refused");
    assert!(refused.contains("reaches VM scale set pool-a, which also runs node n2"), "{refused}");
}

#[tokio::test]
async fn a_verdict_is_kept_across_reconciles_until_a_watch_tells_of_a_change_and_never_given_to_another_version() {
    let versioned = |version: &str, extra: Value| {
        let mut b = binding("a", "app", "app-id", 0, extra);
        b["metadata"]["resourceVersion"] = json!(version);
        serde_json::from_value::<kvbind_api::IdentityBinding>(b).expect("binding")
    };
    let cluster = Cluster {
        bindings: vec![serde_json::to_value(versioned("1", json!({}))).expect("json")],
        classes: vec![class("a")],
        policies: vec![policy("a", "a", json!({}))],
        namespaces: teams(&[("a", "a")]),
        ..Cluster::default()
    };
    let ctx = context(&cluster);
    let stored = versioned("1", json!({}));
    let first = Judge::new(&ctx).verdict(&stored);
    assert!(first.allowing.is_some(), "allowed");
    assert!(Arc::ptr_eq(&first, &Judge::new(&ctx).verdict(&stored)), "the next reconcile takes the kept verdict");

    // A newer copy of the binding (its identity moved where no policy allows) is judged on
    // its own, though no watch has told of it yet.
    let moved = versioned("2", json!({"identity": {"name": "app-id", "resourceGroup": "rg-other"}}));
    assert!(Judge::new(&ctx).verdict(&moved).allowing.is_none(), "refused: the kept verdict of version 1 is not version 2's");

    ctx.index.judged.changed();
    let again = Judge::new(&ctx).verdict(&stored);
    assert!(!Arc::ptr_eq(&first, &again), "worked out again after a change");

    // One reconcile judges one view: a change landing mid-reconcile does not change what it
    // was told.
    let judge = Judge::new(&ctx);
    let before = judge.verdict(&stored);
    ctx.index.judged.changed();
    assert!(Arc::ptr_eq(&before, &judge.verdict(&stored)));
}
