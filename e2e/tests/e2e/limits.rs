//! Azure's hard limits, planned within: a binding that would take a scale set past the 150
//! user-assigned identities Azure allows is refused by name before any write to it, and the
//! other bindings go on.

use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{binding, class, uami};

/// The `(reason, message)` of condition `kind` on binding `name`.
fn condition(s: &Scenario, name: &str, kind: &str) -> (String, String) {
    let b = format!("identitybinding/{name}");
    (
        s.jsonpath(&b, &format!("{{.status.conditions[?(@.type==\"{kind}\")].reason}}")),
        s.jsonpath(&b, &format!("{{.status.conditions[?(@.type==\"{kind}\")].message}}")),
    )
}

/// A world whose scale set `crowded` carries `held` identities someone else attached, beside
/// empty scale sets `others`.
fn pool_holding(crowded: &str, held: usize, others: &[&str]) -> kvbind_arm_sim::Seed {
    let names: Vec<String> = (0..held).map(|i| format!("{{name: other-{i}}}")).collect();
    let on_pool: Vec<String> = (0..held).map(|i| format!("\"{}\"", uami("rg-identities", &format!("other-{i}")))).collect();
    let others: String = others.iter().map(|o| format!("          - {{name: {o}}}\n")).collect();
    seed(&format!(
        "subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
        identities: [{}]
      - name: {NODE_GROUP}
        scaleSets:
          - {{name: {crowded}, userAssigned: [{}]}}
{others}      - name: rg-vaults
        vaults: [{{name: kvname}}]
",
        names.join(", "),
        on_pool.join(", ")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_refused_by_name_and_the_other_pools_go_on() {
    let s = Scenario::start("limits", pool_holding("full-vmss", 150, &["roomy-vmss"])).await;
    s.node("full-0", &Scenario::vmss_node("full-vmss", 0), &[("pool", "full")]).await;
    s.node("roomy-0", &Scenario::vmss_node("roomy-vmss", 0), &[("pool", "roomy")]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&class("other", &[("db-password", "secret", 0)]));
    s.apply(&binding("crowded", "crowded-reader", &["app"], "  nodes:\n    matchLabels: {pool: full}\n"));
    s.apply(&binding("roomy", "roomy-reader", &["other"], "  nodes:\n    matchLabels: {pool: roomy}\n"));
    s.wait_condition("crowded", "Stalled").await;
    s.wait_condition("roomy", "Ready").await;

    let (reason, message) = condition(&s, "crowded", "NodesAssigned");
    assert_eq!(reason, "PoolIdentityLimit");
    assert!(message.contains("full-vmss would carry 151 user-assigned identities; Azure allows 150"), "{message}");
    assert!(message.contains("WorkloadIdentity"), "the way out is named: {message}");
    let touched: Vec<_> = s.sim.requests().into_iter().filter(|r| r.method != "GET" && r.path.contains("full-vmss")).collect();
    assert!(touched.is_empty(), "nothing was written to the full pool: {touched:?}");
    s.eventually("a PoolIdentityLimit event", |s| s.event_reasons("crowded").iter().any(|r| r == "PoolIdentityLimit")).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_vault_gives_its_last_entry_to_one_binding_and_refuses_the_others_by_name() {
    use kvbind_e2e::operator::TENANT;
    // A vault one entry short of the 1,024 access-policy entries Azure allows.
    let held: Vec<String> = (0..1023)
        .map(|i| format!("              - {{tenantId: {TENANT}, objectId: 00000000-0000-0000-0000-{i:012}, permissions: {{secrets: [get]}}}}\n"))
        .collect();
    let world = seed(&format!(
        "subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
      - name: {NODE_GROUP}
        scaleSets: [{{name: pool-vmss}}]
      - name: rg-vaults
        vaults:
          - name: kvname
            accessPolicies:
{}",
        held.concat()
    ));
    let s = Scenario::start("vault-limit", world).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let names = ["first", "second", "third"];
    for name in names {
        s.apply(&class(name, &[("db-password", "secret", 0)]));
        s.apply(&binding(name, &format!("{name}-reader"), &[name], ""));
    }
    let mut ready = Vec::new();
    let mut refused = Vec::new();
    s.eventually("one binding Ready and two refused for the vault's limit", |s| {
        ready = names
            .iter()
            .filter(|n| s.jsonpath(&format!("identitybinding/{n}"), "{.status.conditions[?(@.type==\"Ready\")].status}") == "True")
            .map(|n| n.to_string())
            .collect();
        refused = names
            .iter()
            .filter(|n| s.jsonpath(&format!("identitybinding/{n}"), "{.status.conditions[?(@.type==\"Ready\")].reason}") == "VaultAccessPolicyLimit")
            .map(|n| n.to_string())
            .collect();
        ready.len() == 1 && refused.len() == 2
    })
    .await;
    let (_, message) = condition(&s, &refused[0], "Ready");
    assert!(message.contains("kvname holds 1024 access-policy entries") || message.contains("kvname holds 1023 access-policy entries"), "{message}");
    assert!(message.contains("Azure's limit") && message.contains("Share an identity"), "the limit and the way out are named: {message}");
    // kvbind sent nothing Azure would have refused for the limit, and the vault is full.
    let rejected: Vec<_> = s.sim.requests().into_iter().filter(|r| r.path.contains("accessPolicies") && r.status >= 400).collect();
    assert!(rejected.is_empty(), "{rejected:?}");
    let state = s.sim.snapshot();
    let entries = state["vaults"].as_object().and_then(|v| v.values().next()).and_then(|v| v["accessPolicies"].as_array()).map(Vec::len);
    assert_eq!(entries, Some(1024), "the last entry went to the binding that is Ready");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_node_resource_group_stops_vm_mode_by_name_and_workload_identity_goes_on() {
    let world = seed(&format!(
        "subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
      - name: {NODE_GROUP}
        lockdown: true
        scaleSets: [{{name: pool-vmss}}]
      - name: rg-vaults
        vaults: [{{name: kvname}}]
"
    ));
    let s = Scenario::start_with("lockdown", world, |config| config.oidc_issuer = Some("https://oidc.example.test/tenant/issuer/".to_owned())).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    s.apply(&class("vm", &[("db-password", "secret", 0)]));
    s.apply(&class("wi", &[("db-password", "secret", 0)]));
    s.apply(&binding("vm", "vm-reader", &["vm"], ""));
    s.apply(&binding("wi", "wi-reader", &["wi"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n"));
    s.wait_condition("wi", "Ready").await;
    // Another look at the binding tries the scale set again (and is refused again), so the
    // step reads InProgress in between: wait for the refusal rather than read it once.
    let mut message = String::new();
    s.eventually("the scale set refused by the deny assignment", |s| {
        let (reason, said) = condition(s, "vm", "NodesAssigned");
        message = said;
        reason == "AzureDenyAssignment"
    })
    .await;
    s.wait_condition("vm", "Stalled").await;
    assert!(message.contains("node resource group lockdown") && message.contains("WorkloadIdentity"), "the constraint and the way out: {message}");
    let written: Vec<_> = s.sim.requests().into_iter().filter(|r| r.method != "GET" && r.path.contains(NODE_GROUP) && r.status < 400).collect();
    assert!(written.is_empty(), "nothing changed in the locked group: {written:?}");
    s.eventually("an AzureDenyAssignment event", |s| s.event_reasons("vm").iter().any(|r| r == "AzureDenyAssignment")).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_auto_provisioned_nodes_are_left_alone_and_named() {
    let world = kvbind_e2e::world::cluster(&["pool-vmss"], &["aks-default-abcde"], false)
        .replace("- {name: aks-default-abcde}", "- {name: aks-default-abcde, autoProvisioned: true}");
    assert!(world.contains("autoProvisioned: true"), "{world}");
    let s = Scenario::start("nap", seed(&world)).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let nap = format!("azure:///subscriptions/{SUBSCRIPTION}/resourceGroups/{NODE_GROUP}/providers/Microsoft.Compute/virtualMachines/aks-default-abcde");
    s.node("nap-0", &nap, &[("karpenter.sh/nodepool", "default")]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;

    let (reason, message) = condition(&s, "app", "AutoProvisionedNodes");
    assert_eq!(reason, "NodeAutoProvisioning");
    assert!(message.contains(&format!("{}-nap-0", s.ns.name)) && message.contains("WorkloadIdentity"), "the node and the way out: {message}");
    assert!(kvbind_e2e::world::identities_on(&s.sim, "pool-vmss").iter().any(|k| k.contains("app-reader")), "the scale set carries it");
    let touched: Vec<_> = s.sim.requests().into_iter().filter(|r| r.path.to_ascii_lowercase().contains("aks-default-abcde")).collect();
    assert!(touched.is_empty(), "kvbind never touched the auto-provisioned VM: {touched:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regional_identity_from_another_region_is_refused_by_name_and_its_pools_batch_goes_on() {
    let world = seed(&format!(
        "subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
      - name: rg-west
        location: westeurope
        identities: [{{name: regional, isolationScope: Regional}}]
      - name: {NODE_GROUP}
        scaleSets: [{{name: pool-vmss}}]
      - name: rg-vaults
        vaults: [{{name: kvname}}]
"
    ));
    let s = Scenario::start("regional", world).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("near", &[("db-password", "secret", 0)]));
    s.apply(&class("far", &[("db-password", "secret", 0)]));
    let regional = uami("rg-west", "regional");
    let far = format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: far\nspec:\n  identity:\n    resourceId: {regional}\n  secretProviderClasses:\n    names: [far]\n"
    );
    // Both at once: one batch for the pool.
    s.apply(&format!("{}\n---\n{far}", binding("near", "near-reader", &["near"], "")));
    s.wait_condition("near", "Ready").await;
    s.wait_condition("far", "Stalled").await;

    let (reason, message) = condition(&s, "far", "NodesAssigned");
    assert_eq!(reason, "AzureRejectedRequest");
    assert!(message.contains("isolationScope 'Regional'") && message.contains("regional"), "the identity and the restriction: {message}");
    let on_pool = kvbind_e2e::world::identities_on(&s.sim, "pool-vmss");
    assert!(on_pool.iter().any(|k| k.contains("near-reader")), "the rest of the batch landed: {on_pool:?}");
    assert!(!on_pool.iter().any(|k| k.ends_with("/regional")), "{on_pool:?}");
    // The refusal is not retried in a loop: one refused PATCH, then the batch without it.
    let refused = s.sim.requests().into_iter().filter(|r| r.method == "PATCH" && r.status == 400).count();
    assert_eq!(refused, 1, "one refusal, not a retry loop");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_object_role_assignments_past_the_subscriptions_limit_are_refused_whole_before_any_is_created() {
    let mut world = seed(&kvbind_e2e::world::cluster(&["pool-vmss"], &[], true));
    // Azure's 4,000, shrunk to five for the simulator and the operator alike.
    world.limits = Some(kvbind_arm_sim::seed::LimitsSeed { role_assignments_per_subscription: 5, ..Default::default() });
    let s = Scenario::start_with("role-limit", world, |config| config.role_assignment_limit = 5).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let three = [("db-password", "secret", 0), ("api-key", "secret", 0), ("tls", "cert", 0)];
    s.apply(&class("first", &three));
    s.apply(&class("second", &three));
    s.apply(&binding("first", "first-reader", &["first"], ""));
    s.wait_condition("first", "Ready").await;
    s.apply(&binding("second", "second-reader", &["second"], ""));
    s.eventually("second refused for the subscription's role assignments", |s| {
        s.jsonpath("identitybinding/second", "{.status.conditions[?(@.type==\"Ready\")].reason}") == "RoleAssignmentLimit"
    })
    .await;

    let (_, message) = condition(&s, "second", "Ready");
    assert!(
        message.contains("the 3 this binding needs would take it past 5") && message.contains("rbacScope: Vault"),
        "the limit, the count and the way out: {message}"
    );
    let creates: Vec<_> = s.sim.requests().into_iter().filter(|r| r.operation == "RoleAssignments_Create").collect();
    assert!(creates.iter().all(|r| r.status < 400), "nothing was sent that ARM refused for the limit: {creates:?}");
    let second_principal = s.jsonpath("identitybinding/second", "{.status.identity.principalId}");
    let snapshot = s.sim.snapshot();
    let of_second = snapshot["roleAssignments"]
        .as_object()
        .map(|m| m.values().filter(|a| a["principalId"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(&second_principal))).count())
        .unwrap_or(0);
    assert_eq!(of_second, 0, "not half a grant: none of the three was created");
    assert_eq!(creates.len(), 3, "the first binding's three, and no more");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_would_pass_the_pools_limit_lands_what_fits_and_refuses_the_rest_by_name() {
    // 149 identities on the pool: room for one more, and two bindings ask at once.
    let s = Scenario::start("batch-limit", pool_holding("pool-vmss", 149, &[])).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("one", &[("db-password", "secret", 0)]));
    s.apply(&class("two", &[("db-password", "secret", 0)]));
    s.apply(&format!("{}\n---\n{}", binding("one", "one-reader", &["one"], ""), binding("two", "two-reader", &["two"], "")));
    let mut ready = Vec::new();
    s.eventually("one binding Ready and the other refused for the pool's limit", |s| {
        let reason = |n: &str| s.jsonpath(&format!("identitybinding/{n}"), "{.status.conditions[?(@.type==\"Ready\")].reason}");
        let status = |n: &str| s.jsonpath(&format!("identitybinding/{n}"), "{.status.conditions[?(@.type==\"Ready\")].status}");
        ready = ["one", "two"].into_iter().filter(|n| status(n) == "True").collect();
        ready.len() == 1 && ["one", "two"].iter().any(|n| reason(n) == "PoolIdentityLimit")
    })
    .await;
    let refused = if ready[0] == "one" { "two" } else { "one" };
    let (_, message) = condition(&s, refused, "Ready");
    assert!(message.contains("pool-vmss would carry") && message.contains("Azure allows 150"), "{message}");
    let on_pool = kvbind_e2e::world::identities_on(&s.sim, "pool-vmss");
    assert_eq!(on_pool.len(), 150, "the pool is full, not past it");
    assert!(on_pool.iter().any(|k| k.ends_with(&format!("/{}-reader", ready[0]))), "{on_pool:?}");
    let rejected: Vec<_> = s.sim.requests().into_iter().filter(|r| r.method == "PATCH" && r.status >= 400).collect();
    assert!(rejected.is_empty(), "no PATCH Azure refused for the limit: {rejected:?}");
    s.stop().await;
}
