//! A BindingPolicy's quotas on what a namespace makes kvbind spend of the subscription's
//! shared budgets: role assignments and ARM writes. Each is played as the tenant (a
//! kubeconfig bound to a namespace Role), and checked over the simulator's whole request
//! history.

use kvbind_arm_sim::http::LoggedRequest;
use kvbind_e2e::TestNamespace;
use kvbind_e2e::operator::{SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::tenant::Tenant;
use kvbind_e2e::world::{binding, class, cluster, namespace_policy};

/// A namespace the test-wide policy does not select, allowed identities in `rg-identities`
/// and grants on `kvname` (an Azure RBAC vault when `rbac`) with `quota` lines, its
/// tenant, and an operator for it.
async fn quota_scenario(prefix: &str, quota: &str, rbac: bool) -> (Scenario, Tenant) {
    let ns = TestNamespace::unpoliced(prefix).await;
    let spec = format!(
        "  identityResourceGroups: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-identities]\n  vaults: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kvname]\n{quota}"
    );
    let out = ns.kubectl_apply(&namespace_policy(&ns.name, &ns.name, &spec));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tenant = Tenant::of(&ns);
    let world = seed(&cluster(&["pool-vmss"], &[], rbac));
    let client = ns.client.clone();
    let s = Scenario::start_in(ns, client, world, |_| {}).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    (s, tenant)
}

fn ready(s: &Scenario, name: &str) -> (String, String) {
    let b = format!("identitybinding/{name}");
    (s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].reason}"), s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].message}"))
}

fn role_assignment_creates(requests: &[LoggedRequest]) -> usize {
    requests.iter().filter(|r| r.method == "PUT" && r.path.contains("/roleAssignments/")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_assignment_quota_refuses_a_grant_whole_and_lets_it_in_once_it_fits() {
    let (s, tenant) = quota_scenario("quota-roles", "  maxRoleAssignmentsPerNamespace: 4\n", true).await;
    let three = [("db-password", "secret", 0), ("signing", "key", 0), ("tls", "cert", 0)];
    tenant.apply(&class("first", &three));
    tenant.apply(&binding("first", "first-reader", &["first"], ""));
    s.wait_condition("first", "Ready").await;
    assert_eq!(role_assignment_creates(&s.sim.requests()), 3, "one per object");

    // Two more would make five: none is made, and the condition names the quota.
    tenant.apply(&class("second", &[("db-password", "secret", 0), ("signing", "key", 0)]));
    tenant.apply(&binding("second", "second-reader", &["second"], ""));
    s.eventually("the second binding refused on the quota", |s| ready(s, "second").0 == "RoleAssignmentQuotaReached").await;
    let (_, message) = ready(&s, "second");
    assert!(message.contains("hold 3") && message.contains("needs 2 more") && message.contains("maxRoleAssignmentsPerNamespace"), "{message}");
    assert_eq!(
        s.jsonpath("identitybinding/second", "{.status.conditions[?(@.type==\"AccessGranted\")].reason}"),
        "RoleAssignmentQuotaReached",
        "the condition of the step that stopped"
    );
    assert_eq!(role_assignment_creates(&s.sim.requests()), 3, "not one of the two was made");

    // One fits: the tenant's edit of the class lets it in.
    tenant.apply(&class("second", &[("db-password", "secret", 0)]));
    s.wait_condition("second", "Ready").await;
    assert_eq!(role_assignment_creates(&s.sim.requests()), 4);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_quota_holds_the_namespace_before_any_azure_write_and_never_holds_an_undo() {
    // A new binding in VM mode makes three writes: the identity, the attachment, the grant.
    let (s, tenant) = quota_scenario("quota-writes", "  maxAzureWritesPerHour: 3\n", false).await;
    tenant.apply(&class("first", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("first", "first-reader", &["first"], ""));
    s.wait_condition("first", "Ready").await;
    let after_first = s.sim.requests().iter().filter(|r| r.method != "GET" && r.operation != "Token").count();

    tenant.apply(&class("second", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("second", "second-reader", &["second"], ""));
    s.eventually("the second binding held on the quota", |s| ready(s, "second").0 == "AzureWriteQuotaReached").await;
    let (_, message) = ready(&s, "second");
    assert!(message.contains("made 3 Azure writes") && message.contains("maxAzureWritesPerHour") && message.contains("again in"), "{message}");
    assert_eq!(s.jsonpath("identitybinding/second", "{.status.conditions[?(@.type==\"Reconciling\")].status}"), "True", "time ends it: not Stalled");
    let writes: Vec<LoggedRequest> = s.sim.requests().into_iter().filter(|r| r.method != "GET" && r.operation != "Token").collect();
    assert!(!writes.iter().any(|r| r.path.contains("second-reader")), "the held binding cost no ARM write");
    assert_eq!(writes.len(), after_first, "no write at all since the first binding");

    // Deleting takes access away: it is never held, quota or not.
    assert!(s.sim.snapshot()["identities"].to_string().contains("first-reader"));
    let out = tenant.kubectl(&["delete", "identitybinding", "first", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let identities = s.sim.snapshot()["identities"].to_string();
    assert!(!identities.contains("first-reader"), "the first identity was deleted: {identities}");
    s.stop().await;
}
