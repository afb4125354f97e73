//! Azure's hard limits, planned within: a binding that would take a scale set past the 150
//! user-assigned identities Azure allows is refused by name before any write to it, and the
//! other bindings go on.

use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{binding, class, uami};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_refused_by_name_and_the_other_pools_go_on() {
    let names: Vec<String> = (0..150).map(|i| format!("{{name: other-{i}}}")).collect();
    let on_full: Vec<String> = (0..150).map(|i| format!("\"{}\"", uami("rg-identities", &format!("other-{i}")))).collect();
    let world = seed(&format!(
        "subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
        identities: [{}]
      - name: {NODE_GROUP}
        scaleSets:
          - {{name: full-vmss, userAssigned: [{}]}}
          - {{name: roomy-vmss}}
      - name: rg-vaults
        vaults: [{{name: kvname}}]
",
        names.join(", "),
        on_full.join(", ")
    ));
    let s = Scenario::start("limits", world).await;
    s.node("full-0", &Scenario::vmss_node("full-vmss", 0), &[("pool", "full")]).await;
    s.node("roomy-0", &Scenario::vmss_node("roomy-vmss", 0), &[("pool", "roomy")]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&class("other", &[("db-password", "secret", 0)]));
    s.apply(&binding("crowded", "crowded-reader", &["app"], "  nodes:\n    matchLabels: {pool: full}\n"));
    s.apply(&binding("roomy", "roomy-reader", &["other"], "  nodes:\n    matchLabels: {pool: roomy}\n"));
    s.wait_condition("crowded", "Stalled").await;
    s.wait_condition("roomy", "Ready").await;

    let b = "identitybinding/crowded";
    assert_eq!(s.jsonpath(b, "{.status.conditions[?(@.type==\"NodesAssigned\")].reason}"), "PoolIdentityLimit");
    let message = s.jsonpath(b, "{.status.conditions[?(@.type==\"NodesAssigned\")].message}");
    assert!(message.contains("full-vmss would carry 151 user-assigned identities; Azure allows 150"), "{message}");
    assert!(message.contains("WorkloadIdentity"), "the way out is named: {message}");
    let touched: Vec<_> = s.sim.requests().into_iter().filter(|r| r.method != "GET" && r.path.contains("full-vmss")).collect();
    assert!(touched.is_empty(), "nothing was written to the full pool: {touched:?}");
    s.eventually("a PoolIdentityLimit event", |s| s.event_reasons("crowded").iter().any(|r| r == "PoolIdentityLimit")).await;
    s.stop().await;
}
