//! A BindingPolicy's `imdsEgress: Deny`, with the operator under the chart's RBAC: the
//! namespace gets a NetworkPolicy that the real API server accepts, letting its pods reach
//! everything but IMDS; it goes when the policy stops asking, comes back when it asks
//! again, and goes with the namespace's last binding.

use kvbind_e2e::TestNamespace;
use kvbind_e2e::chart::operator_client;
use kvbind_e2e::operator::{SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster, namespace_policy};

fn policy(namespace: &str, imds: &str) -> String {
    let groups = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups");
    namespace_policy(namespace, namespace, &format!("  vaults: [{groups}/rg-vaults]\n  identityResourceGroups: [{groups}/rg-identities]\n{imds}"))
}

fn network_policy(s: &Scenario) -> String {
    let out = s.ns.kubectl(&["get", "networkpolicy", "kvbind-deny-imds", "-o", "jsonpath={.spec.egress[0].to[0].ipBlock.except[0]}", "--ignore-not-found"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_denies_imds_keeps_a_network_policy_in_its_bound_namespaces() {
    let ns = TestNamespace::unpoliced("imds").await;
    let client = operator_client(&ns, &[]).await;
    let s = Scenario::start_in(ns, client, seed(&cluster(&["pool-vmss"], &[], false)), |_| {}).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&policy(&s.ns.name, "  imdsEgress: Deny\n"));
    s.apply(&binding("app", "imds-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;
    assert_eq!(network_policy(&s), "169.254.169.254/32", "every address but IMDS");
    let types = s.ns.kubectl(&["get", "networkpolicy", "kvbind-deny-imds", "-o", "jsonpath={.spec.policyTypes}"]);
    assert_eq!(String::from_utf8_lossy(&types.stdout), "[\"Egress\"]");
    s.eventually("an Event saying so", |s| {
        let out = s.ns.kubectl(&["get", "events", "--field-selector", "involvedObject.name=app", "-o", "jsonpath={.items[*].message}"]);
        String::from_utf8_lossy(&out.stdout).contains("NetworkPolicy kvbind-deny-imds keeps this namespace's pods off IMDS")
    })
    .await;

    // The policy stops asking: the NetworkPolicy goes; it asks again: it comes back.
    s.apply(&policy(&s.ns.name, ""));
    s.eventually("the NetworkPolicy removed", |s| network_policy(s).is_empty()).await;
    s.apply(&policy(&s.ns.name, "  imdsEgress: Deny\n"));
    s.eventually("the NetworkPolicy back", |s| network_policy(s) == "169.254.169.254/32").await;

    // The namespace's last binding takes it with it.
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "app", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(network_policy(&s), "", "gone with the last binding");
    let out = s.ns.kubectl(&["delete", "bindingpolicy", &s.ns.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}
