//! Azure's request rates, kept to: converging many bindings against a simulator that
//! enforces its buckets (shrunk here so the test is short) paces the identity creates, the
//! writes and the scale set's updates so that Azure refuses none of them.

use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_bindings_converge_within_azures_rates_without_a_429() {
    let rates = "rates:
  identityCreates: {size: 3, perSecond: 2}
  writes: {size: 10, perSecond: 5}
  computeUpdates: {size: 2, perSecond: 0.5}
";
    let s = Scenario::start("rates", seed(&format!("{}{rates}", cluster(&["pool-vmss"], &[], false)))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let bindings: Vec<String> = (0..12).map(|i| format!("app-{i}")).collect();
    for name in &bindings {
        s.apply(&class(name, &[("db-password", "secret", 0)]));
        s.apply(&binding(name, &format!("{name}-reader"), &[name], ""));
    }
    for name in &bindings {
        s.wait_condition(name, "Ready").await;
    }
    let requests = s.sim.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 429).collect();
    assert!(refused.is_empty(), "Azure refused {} requests for their rate: {refused:#?}", refused.len());
    let creates = requests.iter().filter(|r| r.method == "PUT" && r.operation == "UserAssignedIdentities_CreateOrUpdate").count();
    assert_eq!(creates, bindings.len(), "one create a binding, none retried");
    // Twelve creates at a burst of two (three less the quarter left to others) and 1.5 a
    // second take at least six seconds: the pacing is what kept them from the 429s.
    let first = requests.iter().find(|r| r.operation == "UserAssignedIdentities_CreateOrUpdate").map(|r| r.at_ms).unwrap_or_default();
    let last = requests.iter().filter(|r| r.operation == "UserAssignedIdentities_CreateOrUpdate").map(|r| r.at_ms).max().unwrap_or_default();
    assert!(last - first >= 6_000, "the creates went out over {} ms", last - first);
}
