//! Step 2's decision for every change of mode and ServiceAccount a tenant can make.

use serde_json::{Value, json};

use super::*;

/// A binding in mode `mode` (with `account` when the mode takes one), whose status says it
/// was federated with `federated` or bound through AKS for `bound`.
fn binding(mode: &str, account: Option<&str>, federated: Option<&str>, bound: Option<&str>) -> IdentityBinding {
    let mut spec = json!({"identity": {"name": "app", "resourceGroup": "rg"}, "secretProviderClasses": {"names": ["app"]}, "mode": mode});
    if let Some(account) = account {
        spec["serviceAccount"] = json!({"name": account});
    }
    let mut status = json!({});
    if let Some(account) = federated {
        status["workloadIdentity"] = json!({"federatedCredential": "c", "issuer": "i", "subject": "s", "serviceAccount": account});
    }
    if let Some(account) = bound {
        status["aksIdentityBinding"] = json!({"resourceId": "r", "oidcIssuer": "i", "clusterRole": "c", "serviceAccount": account});
    }
    let object: Value = json!({
        "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
        "metadata": {"name": "app", "namespace": "team-a"},
        "spec": spec, "status": status,
    });
    serde_json::from_value(object).expect("binding")
}

#[test]
fn each_change_of_mode_or_service_account_takes_back_what_the_earlier_way_left() {
    let plan = |way, unfederate, release| ReachPlan { way, unfederate, release };
    let table = [
        ("pools, as always", binding("VMManagedIdentity", None, None, None), plan(Way::Pools, None, None)),
        ("federated, as before", binding("WorkloadIdentity", Some("app"), Some("app"), None), plan(Way::Federated("app"), None, None)),
        ("federated, another ServiceAccount now", binding("WorkloadIdentity", Some("new"), Some("old"), None), plan(Way::Federated("new"), Some("old"), None)),
        ("back to the pools from workload identity", binding("VMManagedIdentity", None, Some("app"), None), plan(Way::Pools, Some("app"), None)),
        ("through AKS, as before", binding("AKSIdentityBinding", Some("app"), None, Some("app")), plan(Way::AksBinding("app"), None, None)),
        (
            "through AKS, another ServiceAccount: the cluster's binding stays",
            binding("AKSIdentityBinding", Some("new"), None, Some("old")),
            plan(Way::AksBinding("new"), None, Some(("old", false))),
        ),
        (
            "from AKS to workload identity: the cluster's binding goes",
            binding("WorkloadIdentity", Some("app"), None, Some("app")),
            plan(Way::Federated("app"), None, Some(("app", true))),
        ),
        ("from workload identity to AKS", binding("AKSIdentityBinding", Some("app"), Some("app"), None), plan(Way::AksBinding("app"), Some("app"), None)),
    ];
    for (case, binding, expected) in table {
        assert_eq!(reach_plan(&binding), expected, "{case}");
    }
}

#[test]
fn the_add_on_identity_is_aks_s_to_place_and_nothing_is_taken_back() {
    let mut addon = binding("VMManagedIdentity", None, Some("app"), None);
    addon.spec.identity.addon = Some(kvbind_api::identity_binding::AddonIdentity::AzureKeyvaultSecretsProvider);
    assert_eq!(reach_plan(&addon), ReachPlan { way: Way::AddOn, unfederate: None, release: None });
}

#[test]
fn a_binding_on_pools_is_told_who_else_reaches_them() {
    let pools = vec!["pool-a".to_owned(), "pool-b".to_owned()];
    let (reason, message, notice) = pools_report(&[], &BTreeSet::new());
    assert_eq!((reason, notice), ("NoMatchingNodes", None), "{message}");

    let (reason, message, notice) = pools_report(&pools, &BTreeSet::new());
    assert_eq!((reason, message.as_str()), ("Attached", "attached to pool-a, pool-b"));
    let (kind, text) = notice.expect("a notice");
    assert_eq!(kind, "ReachableFromEveryPodOnPools");
    assert!(text.starts_with("every pod on pool-a, pool-b can get this identity's tokens") && !text.contains("namespaces"), "{text}");

    let (_, _, notice) = pools_report(&pools, &BTreeSet::from(["team-b".to_owned(), "team-c".to_owned()]));
    let (kind, text) = notice.expect("a notice");
    assert_eq!(kind, "SharedWithOtherNamespaces");
    assert!(text.contains("identities of namespaces team-b, team-c are on these pools too"), "{text}");
}
