//! What a leaving binding takes back, and what it leaves to the bindings that share its
//! identity in its namespace.

use serde_json::json;

use super::*;

/// A binding of namespace `team-a`: `spec` and `status` as JSON.
fn binding(spec: serde_json::Value, status: serde_json::Value) -> IdentityBinding {
    let mut full = json!({"identity": {"name": "app", "resourceGroup": "rg"}, "secretProviderClasses": {"names": ["app"]}});
    full.as_object_mut().expect("spec").extend(spec.as_object().expect("spec").clone());
    serde_json::from_value(json!({
        "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
        "metadata": {"name": "app", "namespace": "team-a"},
        "spec": full, "status": status,
    }))
    .expect("binding")
}

fn classes(names: &[&str]) -> serde_json::Value {
    json!(names.iter().map(|n| json!({"name": n, "updated": true})).collect::<Vec<_>>())
}

fn federated(account: &str) -> serde_json::Value {
    json!({"federatedCredential": "c", "issuer": "i", "subject": "s", "serviceAccount": account})
}

#[test]
fn a_binding_alone_takes_back_all_it_was_given() {
    let leaving_one = binding(
        json!({"mode": "WorkloadIdentity", "serviceAccount": {"name": "app"}}),
        json!({"workloadIdentity": federated("app"), "secretProviderClasses": classes(&["app", "db"])}),
    );
    assert_eq!(
        leaving(&leaving_one, &[]),
        Leaving { unfederate: Some("app"), aks_accounts: BTreeSet::new(), classes: BTreeSet::from(["app", "db"]), withdraw_namespace: true }
    );
}

#[test]
fn what_a_sharer_of_its_namespace_still_uses_stays() {
    let leaving_one = binding(
        json!({"mode": "WorkloadIdentity", "serviceAccount": {"name": "app"}}),
        json!({"workloadIdentity": federated("app"), "secretProviderClasses": classes(&["app", "db"])}),
    );
    let same_account = binding(json!({}), json!({"workloadIdentity": federated("app"), "secretProviderClasses": classes(&["db"])}));
    let other_account = binding(json!({}), json!({"workloadIdentity": federated("other")}));
    let plan = leaving(&leaving_one, &[&same_account]);
    assert_eq!(plan.unfederate, None, "the sharer's pods use the same ServiceAccount's federation");
    assert_eq!(plan.classes, BTreeSet::from(["app"]), "the sharer's class keeps the client ID");
    assert!(!plan.withdraw_namespace, "the namespace still uses the identity");
    let plan = leaving(&leaving_one, &[&other_account]);
    assert_eq!((plan.unfederate, plan.withdraw_namespace), (Some("app"), false));
}

#[test]
fn every_service_account_given_the_identity_through_aks_is_released() {
    // The spec's account, and the one its last status recorded (the binding moved).
    let moved = binding(
        json!({"mode": "AKSIdentityBinding", "serviceAccount": {"name": "new"}}),
        json!({"aksIdentityBinding": {"resourceId": "r", "oidcIssuer": "i", "clusterRole": "c", "serviceAccount": "old"}}),
    );
    assert_eq!(leaving(&moved, &[]).aks_accounts, BTreeSet::from(["new", "old"]));
    // Left the mode: only what the status recorded.
    let left = binding(json!({}), json!({"aksIdentityBinding": {"resourceId": "r", "oidcIssuer": "i", "clusterRole": "c", "serviceAccount": "old"}}));
    assert_eq!(leaving(&left, &[]).aks_accounts, BTreeSet::from(["old"]));
    assert!(leaving(&binding(json!({}), json!({})), &[]).aks_accounts.is_empty());
}
