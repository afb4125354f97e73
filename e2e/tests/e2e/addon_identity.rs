//! The AKS Key Vault secrets provider add-on's identity (`spec.identity.addon`): read from
//! the managed cluster, granted least privilege and written into the classes, never
//! created, attached, detached, tagged or deleted; deletion back to Azure's exact state
//! before; a policy that does not list it among its adoptable identities refusing it with
//! no Azure call but the start's one read of the managed cluster; an operator given no
//! managed cluster naming the setting; and an add-on enabled later picked up at a resync.

use std::time::Duration;

use kvbind_arm_sim::Seed;
use kvbind_e2e::TestNamespace;
use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{ADDON_IDENTITY, class, cluster, cluster_with_addon, identities_on, key, managed_cluster_id, namespace_policy, perms, policy_of, uami};

const ADDON_BINDING: &str = "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: addon\nspec:\n  identity:\n    addon: azureKeyvaultSecretsProvider\n  secretProviderClasses:\n    names: [app]\n";

fn condition(s: &Scenario, binding: &str, kind: &str, field: &str) -> String {
    s.jsonpath(&format!("identitybinding/{binding}"), &format!("{{.status.conditions[?(@.type==\"{kind}\")].{field}}}"))
}

/// The simulator's record of the add-on's identity (its client and principal IDs).
fn addon_identity(s: &Scenario) -> serde_json::Value {
    s.sim.snapshot()["identities"][key(&uami(NODE_GROUP, ADDON_IDENTITY))].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_add_on_identity_is_granted_and_named_and_never_attached_or_deleted() {
    let s = Scenario::start_with("addon", seed(&cluster_with_addon(&["pool-a-vmss", "pool-b-vmss"])), |config| {
        config.managed_cluster = Some(managed_cluster_id());
    })
    .await;
    s.node("pool-a", &Scenario::vmss_node("pool-a-vmss", 0), &[]).await;
    s.node("pool-b", &Scenario::vmss_node("pool-b-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0), ("signing", "key", 0)]));
    let before = s.sim.snapshot();
    let addon = addon_identity(&s);
    let (client_id, principal) = (addon["clientId"].as_str().expect("client ID").to_owned(), addon["principalId"].as_str().expect("principal").to_owned());

    s.apply(ADDON_BINDING);
    s.wait_condition("addon", "Ready").await;
    assert_eq!(s.jsonpath("identitybinding/addon", "{.status.identity.clientId}"), client_id);
    assert_eq!(s.jsonpath("identitybinding/addon", "{.status.identity.createdByKvbind}"), "false");
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.userAssignedIdentityID}"), client_id);
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.useVMManagedIdentity}"), "true");
    let entry = policy_of(&s.sim, &principal);
    assert_eq!((perms(&entry, "secrets"), perms(&entry, "keys"), perms(&entry, "certificates")), (vec!["get".to_owned()], vec!["get".to_owned()], vec![]));
    assert_eq!(condition(&s, "addon", "NodeWideAccess", "reason"), "AddonIdentityOnEveryPool", "the binding says every pod can reach it");
    assert_eq!(condition(&s, "addon", "NodesAssigned", "reason"), "AttachedByAKS");

    // Azure heard one kind of write: the access policy. The identity and the pools are AKS's.
    let writes: Vec<String> =
        s.sim.requests().into_iter().filter(|r| r.method != "GET" && r.operation != "Token").map(|r| format!("{} {}", r.method, r.operation)).collect();
    assert!(!writes.is_empty() && writes.iter().all(|w| w.contains("AccessPolicy")), "only access-policy writes: {writes:?}");
    for pool in ["pool-a-vmss", "pool-b-vmss"] {
        assert!(identities_on(&s.sim, pool).contains(&key(&uami(NODE_GROUP, ADDON_IDENTITY))), "{pool} still carries the add-on's identity");
    }

    // Deletion takes back the grant and nothing else: Azure is exactly as it was.
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "addon", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.userAssignedIdentityID}"), "");
    assert_eq!(s.sim.snapshot(), before, "Azure is as it was before the binding");
    assert!(
        s.sim.requests().iter().all(|r| r.method == "GET" || r.operation == "Token" || r.operation.contains("AccessPolicy")),
        "nothing but access policies was ever written"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_does_not_list_the_add_on_identity_refuses_it_before_any_azure_call() {
    let ns = TestNamespace::unpoliced("addon-pol").await;
    let client = ns.client.clone();
    let s = Scenario::start_in(ns, client, seed(&cluster_with_addon(&["pool-vmss"])), |config| {
        config.managed_cluster = Some(managed_cluster_id());
    })
    .await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    let groups = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups");
    let policy = |adoptable: &str| {
        let spec = format!("  vaults: [{groups}/rg-vaults]\n  identityResourceGroups: [{groups}/rg-identities]\n  adoptableIdentities: [{adoptable}]\n");
        namespace_policy(&s.ns.name, &s.ns.name, &spec)
    };
    // The policy lets the namespace adopt an identity, but not the add-on's.
    s.apply(&policy(&uami("rg-identities", "team-foreign")));
    s.apply(ADDON_BINDING);
    s.eventually("the add-on refused", |s| condition(s, "addon", "Ready", "reason") == "NotAllowedByPolicy").await;
    let message = condition(&s, "addon", "Ready", "message");
    assert!(message.contains("spec.identity.addon") && message.contains("adoptableIdentities"), "{message}");
    let asked: Vec<String> = s.sim.requests().into_iter().filter(|r| r.operation != "Token").map(|r| r.operation).collect();
    assert!(asked.iter().all(|op| op == "ManagedClusters_Get"), "no Azure call but the start's read of the cluster: {asked:?}");
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.userAssignedIdentityID}"), "");

    // Listed by full ID, it is allowed, without a restart.
    s.apply(&policy(&uami(NODE_GROUP, ADDON_IDENTITY)));
    s.wait_condition("addon", "Ready").await;
    let principal = addon_identity(&s)["principalId"].as_str().expect("principal").to_owned();
    assert_eq!(perms(&policy_of(&s.sim, &principal), "secrets"), ["get"]);

    // A policy that keeps the namespace to some nodes cannot allow an identity on every pool:
    // it is refused, naming the node, and its grant is taken back.
    s.apply(&format!("{}  nodeSelectors:\n    - matchLabels: {{pool: a}}\n", policy(&uami(NODE_GROUP, ADDON_IDENTITY))));
    s.eventually("the add-on refused by the node policy", |s| condition(s, "addon", "Ready", "reason") == "NotAllowedByPolicy").await;
    let message = condition(&s, "addon", "Ready", "message");
    assert!(message.contains("is on every node pool") && message.contains(&format!("{}-pool-0", s.ns.name)), "{message}");
    s.eventually("the grant taken back", |s| perms(&policy_of(&s.sim, &principal), "secrets").is_empty()).await;
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "addon", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.ns.kubectl(&["delete", "bindingpolicy", &s.ns.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_managed_cluster_id_or_the_add_on_the_binding_names_what_is_missing_until_it_is_there() {
    // No managed cluster configured: the binding names the setting.
    let s = Scenario::start("addon-unset", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(ADDON_BINDING);
    s.eventually("refused", |s| condition(s, "addon", "Ready", "reason") == "InvalidIdentity").await;
    assert!(condition(&s, "addon", "Ready", "message").contains("--managed-cluster-id"));
    assert_eq!(condition(&s, "addon", "Stalled", "status"), "True");
    s.stop().await;

    // A managed cluster with the add-on off: the binding says how to turn it on, and once it
    // is on, kvbind sees it at its next read of the cluster (once a resync).
    let off = cluster_with_addon(&["pool-vmss"]).replace(&format!(", keyVaultSecretsProvider: {ADDON_IDENTITY}"), "");
    let s = Scenario::start_with("addon-off", seed(&off), |config| {
        config.managed_cluster = Some(managed_cluster_id());
        config.resync = Duration::from_secs(2);
    })
    .await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(ADDON_BINDING);
    s.eventually("refused", |s| condition(s, "addon", "Ready", "reason") == "InvalidIdentity").await;
    assert!(condition(&s, "addon", "Ready", "message").contains("az aks enable-addons"));
    assert_eq!(s.sim.counters().writes, 0, "nothing was written in Azure");

    s.sim.seed(
        &Seed::from_yaml(&format!(
            "subscriptions:\n  - id: {SUBSCRIPTION}\n    resourceGroups:\n      - name: rg-aks\n        managedClusters:\n          - {{name: aks, nodeResourceGroup: {NODE_GROUP}, keyVaultSecretsProvider: {ADDON_IDENTITY}}}\n"
        ))
        .expect("seed parses"),
    );
    s.wait_condition("addon", "Ready").await;
    let client_id = addon_identity(&s)["clientId"].as_str().expect("client ID").to_owned();
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.userAssignedIdentityID}"), client_id);
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "addon", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}
