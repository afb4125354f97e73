//! A namespace tenant cannot turn kvbind against Azure. Each test plays one attack as the
//! tenant (a kubeconfig bound to a Role in its own namespace, never the admin) against
//! the real API server and the simulator, and checks the simulator's whole request
//! history: nothing foreign is ever granted, attached, federated, detached, stripped or
//! deleted.

use kvbind_arm_sim::Simulator;
use kvbind_arm_sim::http::LoggedRequest;
use kvbind_e2e::TestNamespace;
use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, TENANT, seed};
use kvbind_e2e::tenant::Tenant;
use kvbind_e2e::world::{binding, class, identities_on, key, managed_cluster_id, namespace_policy, perms, policy_of, uami};

const VAULTS: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults";

/// A BindingPolicy for exactly one namespace, applied by the admin.
fn allow(ns: &TestNamespace, spec: &str) {
    let out = ns.kubectl_apply(&namespace_policy(&ns.name, &ns.name, spec));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every ARM write the simulator answered.
fn writes(sim: &Simulator) -> Vec<LoggedRequest> {
    sim.requests().into_iter().filter(|r| r.method != "GET" && r.operation != "Token").collect()
}

fn describe(requests: &[LoggedRequest]) -> String {
    requests.iter().map(|r| format!("{} {} ({}) -> {}", r.method, r.path, r.operation, r.status)).collect::<Vec<_>>().join("\n")
}

/// A seed with one pool, the access-policy vault `kvname` in `rg-vaults` and, in
/// `rg-payroll`, two vaults no policy allows, one with access policies and one with RBAC;
/// `identities` and `on_pool` as given.
fn azure(identities: &str, on_pool: &[String], kvname_policies: &str) -> kvbind_arm_sim::Seed {
    let on_pool: Vec<String> = on_pool.iter().map(|id| format!("\"{id}\"")).collect();
    seed(&format!(
        "subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
        identities:
{identities}
      - name: {NODE_GROUP}
        scaleSets:
          - {{name: pool-vmss, systemAssigned: true, userAssigned: [{}]}}
      - name: rg-vaults
        vaults:
          - name: kvname
            accessPolicies: [{kvname_policies}]
      - name: rg-payroll
        vaults:
          - name: kv-forbidden
          - name: kv-forbidden-rbac
            rbac: true
",
        on_pool.join(", ")
    ))
}

/// Someone else's identity `name` (with `principal` and the seed fields `extra`), already
/// on the pool and holding `get`, `list` and `set` on `kvname`: its ID and the seed.
fn foreign_on_the_pool(name: &str, principal: &str, extra: &str) -> (String, kvbind_arm_sim::Seed) {
    let id = uami("rg-identities", name);
    let identities = format!("          - {{name: {name}, principalId: {principal}, {extra}}}");
    let existing = format!("{{tenantId: {TENANT}, objectId: {principal}, permissions: {{secrets: [get, list, set]}}}}");
    let world = azure(&identities, std::slice::from_ref(&id), &existing);
    (id, world)
}

/// The policy most tests give their namespace: identities in `rg-identities`, grants on `kvname`.
fn identities_and_kvname() -> String {
    format!("  identityResourceGroups: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-identities]\n  vaults: [{VAULTS}/kvname]\n")
}

/// A namespace that the test-wide policy does not select, with `policy` (if any) for it
/// alone, its tenant (made by `tenant`), and an operator for it on `world`.
async fn tenant_scenario(prefix: &str, policy: Option<&str>, tenant: fn(&TestNamespace) -> Tenant, world: kvbind_arm_sim::Seed) -> (Scenario, Tenant) {
    let ns = TestNamespace::unpoliced(prefix).await;
    if let Some(policy) = policy {
        allow(&ns, policy);
    }
    let tenant = tenant(&ns);
    let client = ns.client.clone();
    let s = Scenario::start_in(ns, client, world, |c| c.oidc_issuer = Some("https://oidc.example/issuer".into())).await;
    (s, tenant)
}

/// The tenant writes `forged` into binding `app`'s status, edits its spec (`spec`, the
/// manifest it applied) to bring a reconcile, then deletes it to bring the cleanup: kvbind
/// must have written nothing to Azure for any of it.
async fn forge_status_then_delete(s: &Scenario, tenant: &Tenant, spec: &str, forged: &serde_json::Value) {
    let out = tenant.kubectl(&["patch", "identitybinding", "app", "--subresource=status", "--type=merge", "-p", &forged.to_string()]);
    assert!(out.status.success(), "the tenant may patch status here: {}", String::from_utf8_lossy(&out.stderr));
    tenant.apply(&spec.replace("  secretProviderClasses:", "  rbacScope: Vault\n  secretProviderClasses:"));
    s.eventually("the edit to be observed", |s| s.jsonpath("identitybinding/app", "{.status.observedGeneration}") == "2").await;
    let out = tenant.kubectl(&["delete", "identitybinding", "app", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let writes = writes(&s.sim);
    assert!(writes.is_empty(), "a forged status made kvbind write to Azure:\n{}", describe(&writes));
}

async fn reason(s: &Scenario, name: &str) -> (String, String) {
    let b = format!("identitybinding/{name}");
    (s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].reason}"), s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].message}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_identity_never_reaches_a_vault_its_sharers_were_refused() {
    // A scope, as policies usually name vaults: before a vault is found, any name may be in it.
    let policy = format!(
        "  identityResourceGroups: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-identities]\n  vaults: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-vaults]\n"
    );
    let (s, tenant) = tenant_scenario("tenant-vaults", Some(&policy), Tenant::of, azure("          - {name: team-foreign}", &[], "")).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;

    tenant.apply(&class("allowed", &[("db-password", "secret", 0)]));
    tenant.apply(&class("forbidden", &[("payroll", "secret", 0)]).replace("keyvaultName: kvname", "keyvaultName: kv-forbidden"));
    tenant.apply(&class("forbidden-rbac", &[("payroll", "secret", 0)]).replace("keyvaultName: kvname", "keyvaultName: kv-forbidden-rbac"));
    // The refused sharers first, so that the allowed one's reconcile sees them.
    tenant.apply(&binding("b", "shared-reader", &["forbidden"], ""));
    tenant.apply(&binding("c", "shared-reader", &["forbidden-rbac"], ""));
    s.wait_condition("b", "Stalled").await;
    s.wait_condition("c", "Stalled").await;
    tenant.apply(&binding("a", "shared-reader", &["allowed"], ""));
    s.wait_condition("a", "Ready").await;
    // And once more, with every sharer in the caches.
    tenant.apply(&binding("a", "shared-reader", &["allowed"], "  rbacScope: Vault\n"));
    s.eventually("a to see its edit", |s| s.jsonpath("identitybinding/a", "{.status.observedGeneration}") == "2").await;

    for name in ["b", "c"] {
        let (why, message) = reason(&s, name).await;
        assert_eq!(why, "NotAllowedByPolicy", "{name}: {message}");
        assert!(message.contains("kv-forbidden"), "{name}: the refusal names the vault: {message}");
    }
    let writes = writes(&s.sim);
    let foreign: Vec<LoggedRequest> = writes.iter().filter(|r| r.path.to_ascii_lowercase().contains("/vaults/kv-forbidden")).cloned().collect();
    assert!(foreign.is_empty(), "the shared identity was granted on a vault no policy allows it:\n{}", describe(&foreign));
    assert!(writes.iter().any(|r| r.operation == "Vaults_UpdateAccessPolicy"), "the allowed vault was granted:\n{}", describe(&writes));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_an_existing_identity_is_adoption_and_needs_the_policy_to_allow_it() {
    let identities = "          - {name: aks-agentpool, principalId: 99999999-0000-0000-0000-000000000001}";
    let (s, tenant) = tenant_scenario("tenant-adopt", Some(&identities_and_kvname()), Tenant::of, azure(identities, &[], "")).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;

    tenant.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    tenant.apply(&class("app-wi", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("vm", "aks-agentpool", &["app"], ""));
    tenant.apply(&binding("wi", "aks-agentpool", &["app-wi"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n"));
    for name in ["vm", "wi"] {
        s.wait_condition(name, "Stalled").await;
        let (why, message) = reason(&s, name).await;
        assert_eq!(why, "NotAllowedByPolicy", "{name}: {message}");
        assert!(message.contains("adoption") && message.contains("aks-agentpool"), "{name}: {message}");
    }
    let writes = writes(&s.sim);
    assert!(writes.is_empty(), "an identity nobody allowed the tenant was attached, granted or federated:\n{}", describe(&writes));
    assert!(!identities_on(&s.sim, "pool-vmss").contains(&key(&uami("rg-identities", "aks-agentpool"))));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_identity_another_kvbind_tagged_is_never_detached_stripped_or_deleted() {
    let principal = "99999999-0000-0000-0000-000000000002";
    // Another cluster's kvbind made it, attached it to this pool and granted it more than get.
    let (leftover, world) = foreign_on_the_pool("leftover", principal, "tags: {kvbind.io-managed-by: another-installation, kvbind.io-bindings: other/app}");
    let policy = format!("  identityResourceGroups: []\n  adoptableIdentities: [{leftover}]\n  vaults: [{VAULTS}/kvname]\n");
    let (s, tenant) = tenant_scenario("tenant-leftover", Some(&policy), Tenant::of, world).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;

    tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    tenant.apply(&format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: app\nspec:\n  identity:\n    resourceId: {leftover}\n  secretProviderClasses:\n    names: [app]\n"
    ));
    s.wait_condition("app", "Ready").await;
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.identity.createdByKvbind}"), "false");
    let out = tenant.kubectl(&["delete", "identitybinding", "app", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let writes = writes(&s.sim);
    let harmful: Vec<LoggedRequest> = writes
        .iter()
        .filter(|r| {
            r.operation == "UserAssignedIdentities_Delete" || r.operation == "VirtualMachineScaleSets_Update" || r.path.contains("accessPolicies/remove")
        })
        .cloned()
        .collect();
    assert!(harmful.is_empty(), "kvbind undid what it did not do:\n{}", describe(&harmful));
    assert!(s.sim.snapshot()["identities"].as_object().is_some_and(|m| m.contains_key(&key(&leftover))), "the identity is still there");
    assert!(identities_on(&s.sim, "pool-vmss").contains(&key(&leftover)), "still on its pool");
    assert_eq!(perms(&policy_of(&s.sim, principal), "secrets"), ["get", "list", "set"], "its access policy is as it was");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_status_in_a_namespace_no_policy_selects_makes_kvbind_touch_nothing() {
    let principal = "99999999-0000-0000-0000-000000000003";
    let github =
        "federatedCredentials: [{name: github-main, issuer: \"https://token.actions.githubusercontent.com\", subject: \"repo:org/app:ref:refs/heads/main\"}]";
    let (foreign, world) = foreign_on_the_pool("foreign", principal, github);
    let (s, tenant) = tenant_scenario("tenant-forged", None, Tenant::with_every_kvbind_resource, world).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let before = s.sim.snapshot();

    tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    let spec = format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: app\nspec:\n  identity:\n    resourceId: {foreign}\n  secretProviderClasses:\n    names: [app]\n"
    );
    tenant.apply(&spec);
    s.wait_condition("app", "Stalled").await;
    assert_eq!(reason(&s, "app").await.0, "NotAllowedByPolicy");

    // The tenant writes what it would like kvbind to believe it did.
    let pool =
        Scenario::vmss_node("pool-vmss", 0).trim_start_matches("azure://").rsplit_once("/virtualMachines/").map(|(p, _)| p.to_owned()).expect("a pool ID");
    let forged = serde_json::json!({"status": {
        "identity": {"name": "foreign", "resourceId": foreign, "principalId": principal, "createdByKvbind": true},
        "attachments": [{"resourceId": pool, "origin": "Attached"}],
        "grants": [{"vaultId": format!("{VAULTS}/kvname"), "model": "AccessPolicy", "secrets": ["get", "list", "set"]}],
        "workloadIdentity": {"federatedCredential": "github-main", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:org/app:ref:refs/heads/main", "serviceAccount": "app"},
    }});
    forge_status_then_delete(&s, &tenant, &spec, &forged).await;
    assert_eq!(s.sim.snapshot(), before, "Azure is as it was");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bindings_that_want_one_class_differently_are_told_and_the_class_is_left_alone() {
    let world = azure("          - {name: team-foreign}", &[], "");
    let (s, tenant) = tenant_scenario("tenant-conflict", Some(&identities_and_kvname()), Tenant::of, world).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    tenant.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    tenant.apply(&class("shared", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("vm", "vm-reader", &["shared"], ""));
    s.wait_condition("vm", "Ready").await;
    let written = s.jsonpath("secretproviderclass/shared", "{.metadata.generation}");

    tenant.apply(&binding("wi", "wi-reader", &["shared"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n"));
    for (name, other) in [("wi", "vm"), ("vm", "wi")] {
        s.eventually(&format!("{name} to be told of the conflict"), |s| {
            s.jsonpath(&format!("identitybinding/{name}"), "{.status.conditions[?(@.type==\"Ready\")].reason}") == "SecretProviderClassConflict"
        })
        .await;
        let (_, message) = reason(&s, name).await;
        assert!(message.contains("shared") && message.contains(&format!("/{other}")), "{name}: {message}");
        assert_eq!(s.jsonpath(&format!("identitybinding/{name}"), "{.status.conditions[?(@.type==\"Stalled\")].status}"), "True", "{name}");
    }
    // Both reconciled once more: still no write to the class.
    tenant.apply(&binding("vm", "vm-reader", &["shared"], "  rbacScope: Vault\n"));
    tenant.apply(&binding("wi", "wi-reader", &["shared"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n  rbacScope: Vault\n"));
    for name in ["vm", "wi"] {
        s.eventually(&format!("{name} to see its edit"), |s| s.jsonpath(&format!("identitybinding/{name}"), "{.status.observedGeneration}") == "2").await;
    }
    assert_eq!(s.jsonpath("secretproviderclass/shared", "{.metadata.generation}"), written, "the class was written again");

    // One of them goes: the other takes the class within its next look.
    let out = tenant.kubectl(&["delete", "identitybinding", "wi", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tenant.apply(&binding("vm", "vm-reader", &["shared"], ""));
    s.wait_condition("vm", "Ready").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_policy_is_held_per_scale_set_because_an_identity_reaches_every_pod_on_it() {
    let policy = format!("{}  nodeSelectors:\n    - matchLabels: {{team: a}}\n", identities_and_kvname());
    let (s, tenant) = tenant_scenario("tenant-pools", Some(&policy), Tenant::of, azure("          - {name: team-foreign}", &[], "")).await;
    // One scale set, running a node of team a and a node of nobody's.
    s.node("a-0", &Scenario::vmss_node("pool-vmss", 0), &[("team", "a")]).await;
    s.node("shared-1", &Scenario::vmss_node("pool-vmss", 1), &[]).await;

    tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("app", "app-reader", &["app"], "  nodes:\n    matchLabels: {team: a}\n"));
    s.wait_condition("app", "Stalled").await;
    let (why, message) = reason(&s, "app").await;
    assert_eq!(why, "NotAllowedByPolicy", "{message}");
    assert!(message.contains("pool-vmss") && message.contains("shared-1"), "the refusal names the scale set and the node: {message}");
    let writes = writes(&s.sim);
    assert!(writes.is_empty(), "{}", describe(&writes));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_no_policy_selects_cannot_squat_an_identity_name() {
    // One operator for two namespaces, picking this test's bindings by a label.
    let owner = TestNamespace::unpoliced("tenant-owner").await;
    let run = owner.name.clone();
    let client = owner.client.clone();
    let world = azure("          - {name: team-foreign}", &[], "");
    let s = Scenario::start_in(owner, client, world, |config| {
        config.namespace = None;
        config.binding_selector = Some(format!("kvbind.io/run={run}"));
    })
    .await;
    allow(&s.ns, &identities_and_kvname());
    let squatter = TestNamespace::unpoliced("tenant-squat").await;
    let (owner_tenant, squatter_tenant) = (Tenant::of(&s.ns), Tenant::of(&squatter));
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let labelled = |yaml: String| yaml.replacen("metadata:\n  name:", &format!("metadata:\n  labels: {{kvbind.io/run: {run}}}\n  name:"), 1);

    // The squatter claims the name first, from a namespace no policy selects.
    squatter_tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    squatter_tenant.apply(&labelled(binding("app", "payments-reader", &["app"], "")));
    let out = squatter.kubectl_off_runtime(&["wait", "--for=condition=Stalled", "identitybinding/app", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The namespace a policy allows gets it all the same.
    owner_tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    owner_tenant.apply(&labelled(binding("app", "payments-reader", &["app"], "")));
    s.wait_condition("app", "Ready").await;
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.identity.createdByKvbind}"), "true");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_quota_refuses_the_newcomers_and_lets_one_in_when_another_goes() {
    let policy = format!("{}  maxBindingsPerNamespace: 1\n  maxIdentitiesPerNamespace: 1\n", identities_and_kvname());
    let (s, tenant) = tenant_scenario("tenant-quota", Some(&policy), Tenant::of, azure("          - {name: team-foreign}", &[], "")).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    tenant.apply(&class("first", &[("db-password", "secret", 0)]));
    tenant.apply(&class("second", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("first", "first-reader", &["first"], ""));
    s.wait_condition("first", "Ready").await;
    tenant.apply(&binding("second", "second-reader", &["second"], ""));
    s.wait_condition("second", "Stalled").await;
    let (why, message) = reason(&s, "second").await;
    assert_eq!(why, "NotAllowedByPolicy", "{message}");
    assert!(message.contains("maxBindingsPerNamespace is 1"), "{message}");
    assert!(!writes(&s.sim).iter().any(|r| r.path.contains("second-reader")), "the refused binding cost no ARM write");

    let out = tenant.kubectl(&["delete", "identitybinding", "first", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.wait_condition("second", "Ready").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_whose_identities_share_a_pool_are_each_told_of_the_other() {
    // One operator for two namespaces, picking this test's bindings by a label.
    let first = TestNamespace::new("shared-pool-a").await;
    let run = first.name.clone();
    let client = first.client.clone();
    let s = Scenario::start_in(first, client, seed(&kvbind_e2e::world::cluster(&["pool-vmss"], &[], false)), |config| {
        config.namespace = None;
        config.binding_selector = Some(format!("kvbind.io/run={run}"));
    })
    .await;
    let second = TestNamespace::new("shared-pool-b").await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let labelled = |yaml: String| yaml.replacen("metadata:\n  name:", &format!("metadata:\n  labels: {{kvbind.io/run: {run}}}\n  name:"), 1);

    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&labelled(binding("app", &format!("{}-reader", s.ns.name), &["app"], "")));
    s.wait_condition("app", "Ready").await;
    let alone = s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"NodeWideAccess\")].reason}");
    assert_eq!(alone, "ReachableFromEveryPodOnPools", "no other namespace on the pool yet");

    let apply = |yaml: String| {
        let out = second.kubectl_apply(&yaml);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    apply(class("web", &[("db-password", "secret", 0)]));
    apply(labelled(binding("web", &format!("{}-reader", second.name), &["web"], "")));
    let out = second.kubectl_off_runtime(&["wait", "--for=condition=Ready", "identitybinding/web", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let of_second =
        |path: &str| String::from_utf8_lossy(&second.kubectl(&["get", "identitybinding", "web", "-o", &format!("jsonpath={path}")]).stdout).into_owned();
    assert_eq!(of_second("{.status.conditions[?(@.type==\"NodeWideAccess\")].reason}"), "SharedWithOtherNamespaces");
    let message = of_second("{.status.conditions[?(@.type==\"NodeWideAccess\")].message}");
    assert!(message.contains(&s.ns.name) && message.contains("pool-vmss"), "the newcomer is told who is there: {message}");

    // The binding that was there first is told too, without waiting for a resync.
    s.eventually("the first namespace told of the second", |s| {
        s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"NodeWideAccess\")].message}").contains(&second.name)
    })
    .await;
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"NodeWideAccess\")].reason}"), "SharedWithOtherNamespaces");
    s.stop().await;
}

/// An operator for a fresh namespace that knows managed cluster `aks`, on `world` with that
/// cluster added, and the namespace's tenant.
async fn aks_tenant_scenario(prefix: &str, policy: Option<&str>, tenant: fn(&TestNamespace) -> Tenant, world: kvbind_arm_sim::Seed) -> (Scenario, Tenant) {
    let ns = TestNamespace::unpoliced(prefix).await;
    if let Some(policy) = policy {
        allow(&ns, policy);
    }
    let tenant = tenant(&ns);
    let client = ns.client.clone();
    let s = Scenario::start_in(ns, client, world, |c| c.managed_cluster = Some(managed_cluster_id())).await;
    s.sim.seed(
        &kvbind_arm_sim::Seed::from_yaml(&format!(
            "subscriptions:\n  - id: {SUBSCRIPTION}\n    resourceGroups:\n      - name: rg-aks\n        managedClusters: [{{name: aks, nodeResourceGroup: {NODE_GROUP}}}]\n"
        ))
        .expect("seed parses"),
    );
    (s, tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_a_foreign_identity_in_aks_identity_binding_mode_is_adoption_and_binds_nothing() {
    let (foreign, world) = foreign_on_the_pool("foreign", "99999999-0000-0000-0000-000000000004", "");
    let policy = format!("{}  modes: [AKSIdentityBinding]\n", identities_and_kvname());
    let (s, tenant) = aks_tenant_scenario("tenant-aib", Some(&policy), Tenant::of, world).await;

    tenant.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    tenant.apply(&binding("app", "foreign", &["app"], "  mode: AKSIdentityBinding\n  serviceAccount: {name: app}\n"));
    s.wait_condition("app", "Stalled").await;
    let (why, message) = reason(&s, "app").await;
    assert_eq!(why, "NotAllowedByPolicy", "{message}");
    assert!(message.contains("adoption") && message.contains("foreign"), "{message}");

    let writes = writes(&s.sim);
    assert!(writes.is_empty(), "an identity nobody allowed the tenant was bound to the cluster or granted:\n{}", describe(&writes));
    assert_eq!(s.sim.snapshot()["identityBindings"], serde_json::json!({}), "no AKS identity binding");
    let credentials = &s.sim.snapshot()["identities"][key(&foreign)]["federatedCredentials"];
    assert!(credentials.is_null(), "no credential on the foreign identity: {credentials}");
    let roles = s.ns.kubectl(&["get", "clusterroles", "-l", &format!("kvbind.io/namespace={}", s.ns.name), "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&roles.stdout).trim(), "", "no ClusterRole lets the tenant's ServiceAccount use it");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_aks_identity_binding_status_makes_kvbind_remove_nothing() {
    let (foreign, world) = foreign_on_the_pool("foreign", "99999999-0000-0000-0000-000000000005", "");
    let (s, tenant) = aks_tenant_scenario("tenant-aib-forged", None, Tenant::with_every_kvbind_resource, world).await;
    // Someone else bound the foreign identity to this cluster (AKS gave it its credential),
    // and keeps a ClusterRole of their own.
    let body = serde_json::json!({"properties": {"managedIdentity": {"resourceId": foreign}}});
    s.sim.world().put_identity_binding(SUBSCRIPTION, "rg-aks", "aks", "theirs", &body).expect("their identity binding");
    let role = format!("{}-victim", s.ns.name);
    let out = s.ns.kubectl_apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\n  labels: {{kvbind.io/namespace: {}}}\nrules: []\n",
        s.ns.name
    ));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = s.sim.snapshot();

    tenant.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    tenant.apply(&class("app", &[("db-password", "secret", 0)]));
    let spec = format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: app\nspec:\n  mode: AKSIdentityBinding\n  serviceAccount: {{name: app}}\n  identity:\n    resourceId: {foreign}\n  secretProviderClasses:\n    names: [app]\n"
    );
    tenant.apply(&spec);
    s.wait_condition("app", "Stalled").await;
    // The tenant writes what it would like kvbind to believe it did.
    let theirs = format!("{}/identityBindings/theirs", managed_cluster_id());
    let forged = serde_json::json!({"status": {
        "identity": {"name": "foreign", "resourceId": foreign, "createdByKvbind": true},
        "aksIdentityBinding": {"resourceId": theirs, "clusterRole": role, "serviceAccount": "app"},
    }});
    forge_status_then_delete(&s, &tenant, &spec, &forged).await;
    assert_eq!(s.sim.snapshot(), before, "their identity binding and AKS's credential are as they were");
    let kept = s.ns.kubectl(&["get", "clusterrole", &role, "-o", "name"]);
    assert!(kept.status.success(), "the ClusterRole the status named is still there");
    let _ = s.ns.kubectl(&["delete", "clusterrole", &role]);
    s.stop().await;
}
