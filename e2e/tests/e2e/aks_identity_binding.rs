//! Mode AKSIdentityBinding end to end, with the operator under the chart's RBAC: one ARM
//! identity binding per identity (AKS adds one shared credential), a ClusterRole and
//! ClusterRoleBinding per ServiceAccount that the real API server's authoriser honours,
//! `useAzureTokenProxy` and `clientID` in the class, deletion back to Azure's exact state
//! before, and a policy that does not list the mode refusing it with no Azure call.

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::{Api, PostParams};
use kvbind_e2e::TestNamespace;
use kvbind_e2e::chart::operator_client;
use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster_with_addon, key, managed_cluster_id, namespace_policy, perms, policy_of, uami};

fn bound(name: &str, identity: &str, account: &str) -> String {
    binding(name, identity, &["app"], &format!("  mode: AKSIdentityBinding\n  serviceAccount: {{name: {account}}}\n"))
}

fn condition(s: &Scenario, binding: &str, kind: &str, field: &str) -> String {
    s.jsonpath(&format!("identitybinding/{binding}"), &format!("{{.status.conditions[?(@.type==\"{kind}\")].{field}}}"))
}

/// Whether the real API server's authoriser lets `account` of the namespace use identity
/// `client_id`, asked as AKS's token proxy asks: a SubjectAccessReview.
async fn may_use(s: &Scenario, account: &str, client_id: &str) -> bool {
    let namespace = &s.ns.name;
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": format!("system:serviceaccount:{namespace}:{account}"),
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}"), "system:authenticated"],
            "resourceAttributes": {"group": "cid.wi.aks.azure.com", "resource": client_id, "verb": "use-managed-identity"},
        }
    }))
    .expect("review literal");
    let answer = Api::<SubjectAccessReview>::all(s.ns.client.clone()).create(&PostParams::default(), &review).await.expect("the API server reviews");
    answer.status.is_some_and(|status| status.allowed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aks_identity_binding_lets_exactly_its_service_accounts_use_the_identity_and_deletion_restores_azure() {
    let ns = TestNamespace::new("aib").await;
    let client = operator_client(&ns, &[&format!("controller.managedClusterId={}", managed_cluster_id())]).await;
    let s = Scenario::start_in(ns, client, seed(&cluster_with_addon(&["pool-vmss"])), |config| {
        config.managed_cluster = Some(managed_cluster_id());
    })
    .await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: worker\n");
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    let before = s.sim.snapshot();

    s.apply(&bound("app", "aib-reader", "app"));
    s.wait_condition("app", "Ready").await;
    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.useAzureTokenProxy}"), "true");
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.clientID}"), client_id);
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.userAssignedIdentityID}"), "");
    assert_eq!(condition(&s, "app", "NodesAssigned", "reason"), "BoundByAKS");
    assert_eq!(perms(&policy_of(&s.sim, &principal), "secrets"), ["get"]);

    // Azure: one ARM identity binding, and on the identity only the credential AKS made.
    let snapshot = s.sim.snapshot();
    let bindings = snapshot["identityBindings"].as_object().cloned().unwrap_or_default();
    let identity_key = key(&uami("rg-identities", "aib-reader"));
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert!(bindings.values().all(|b| b["identity"] == identity_key.as_str()));
    let credentials: Vec<String> =
        snapshot["identities"][&identity_key]["federatedCredentials"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    assert_eq!(credentials, ["aks-identity-binding"]);
    assert!(s.sim.requests().iter().all(|r| !r.operation.contains("VirtualMachineScaleSets_Update")), "no pool was touched");

    // Kubernetes: the ServiceAccount, and no other, may use the identity.
    assert!(may_use(&s, "app", &client_id).await, "the bound ServiceAccount may use the identity");
    assert!(!may_use(&s, "default", &client_id).await, "another ServiceAccount of the namespace may not");
    assert!(!may_use(&s, "app", "00000000-0000-0000-0000-00000000beef").await, "nor may it use another identity");

    // A second ServiceAccount on the same identity: its own RBAC, the same ARM binding.
    s.apply(&bound("worker", "aib-reader", "worker"));
    s.wait_condition("worker", "Ready").await;
    assert!(may_use(&s, "worker", &client_id).await);
    assert_eq!(s.sim.snapshot()["identityBindings"].as_object().map(|m| m.len()), Some(1), "one ARM binding per identity");

    // Deleting one takes back only its ServiceAccount's access.
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "app", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!may_use(&s, "app", &client_id).await, "app's access is gone");
    assert!(may_use(&s, "worker", &client_id).await, "worker keeps its own");
    assert_eq!(s.sim.snapshot()["identityBindings"].as_object().map(|m| m.len()), Some(1), "the identity is still bound for worker");

    // Deleting the last leaves Azure exactly as it was: the ARM binding, AKS's credential
    // and the identity kvbind made are gone.
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "worker", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!may_use(&s, "worker", &client_id).await);
    assert_eq!(s.sim.snapshot(), before, "Azure is as it was before the bindings");
    let leftovers = s.ns.kubectl(&["get", "clusterroles,clusterrolebindings", "-l", &format!("kvbind.io/namespace={}", s.ns.name), "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&leftovers.stdout).trim(), "", "no RBAC object of kvbind's is left");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mode_needs_a_policy_that_lists_it_and_a_managed_cluster() {
    let ns = TestNamespace::unpoliced("aib-pol").await;
    let client = ns.client.clone();
    let s = Scenario::start_in(ns, client, seed(&cluster_with_addon(&["pool-vmss"])), |config| {
        config.managed_cluster = Some(managed_cluster_id());
    })
    .await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&namespace_policy(&s.ns.name, &s.ns.name, "  vaults: [\"*\"]\n  identityResourceGroups: [\"*\"]\n"));
    s.apply(&bound("app", "aib-refused", "app"));
    s.eventually("refused", |s| condition(s, "app", "Ready", "reason") == "NotAllowedByPolicy").await;
    let message = condition(&s, "app", "Ready", "message");
    assert!(message.contains("spec.mode AKSIdentityBinding is not among its modes"), "{message}");
    let asked: Vec<String> = s.sim.requests().into_iter().filter(|r| r.operation != "Token").map(|r| r.operation).collect();
    assert!(asked.iter().all(|op| op == "ManagedClusters_Get"), "no Azure call but the start's read of the cluster: {asked:?}");
    let out = s.ns.kubectl(&["delete", "bindingpolicy", &s.ns.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;

    // An operator that was not told its managed cluster names the setting, before any write.
    let s = Scenario::start("aib-unset", seed(&cluster_with_addon(&["pool-vmss"]))).await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&bound("app", "aib-unset", "app"));
    s.eventually("refused", |s| condition(s, "app", "Ready", "reason") == "ManagedClusterNotConfigured").await;
    assert!(condition(&s, "app", "Ready", "message").contains("--managed-cluster-id"));
    assert_eq!(s.sim.counters().writes, 0, "nothing was written in Azure");
    s.stop().await;
}
