//! Bindings over time: new pools, changing objects, shared identities and deletion.

use kvbind_e2e::operator::{Scenario, seed};

use kvbind_e2e::world::{binding, class, cluster, identities_on, key, perms, policy_of, uami};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pool_gets_the_identity_and_grants_follow_the_objects() {
    let s = Scenario::start("scale-out", seed(&cluster(&["pool-a-vmss", "pool-b-vmss"], &[], false))).await;
    s.node("a-0", &Scenario::vmss_node("pool-a-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;
    let identity = key(&uami("rg-identities", "app-reader"));
    assert!(!identities_on(&s.sim, "pool-b-vmss").contains(&identity), "no node of pool b yet");

    s.node("b-0", &Scenario::vmss_node("pool-b-vmss", 0), &[]).await;
    s.eventually("pool b to carry the identity", |s| identities_on(&s.sim, "pool-b-vmss").contains(&identity)).await;

    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    s.apply(&class("app", &[("db-password", "secret", 0), ("tls", "cert", 0)]));
    s.eventually("the cert grant", |s| perms(&policy_of(&s.sim, &principal), "certificates") == ["get"]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.eventually("the cert grant to go", |s| perms(&policy_of(&s.sim, &principal), "certificates").is_empty()).await;
    assert_eq!(perms(&policy_of(&s.sim, &principal), "secrets"), ["get"], "the secret grant stays");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_identity_survives_one_deletion_and_both_deletions_restore_azure() {
    let s = Scenario::start("shared", seed(&cluster(&["pool-a-vmss", "pool-b-vmss"], &[], false))).await;
    let before = s.sim.snapshot();
    s.node("a-0", &Scenario::vmss_node("pool-a-vmss", 0), &[("pool", "a")]).await;
    s.node("b-0", &Scenario::vmss_node("pool-b-vmss", 0), &[("pool", "b")]).await;
    s.apply(&class("one", &[("db-password", "secret", 0)]));
    s.apply(&class("two", &[("signing", "key", 0)]));
    s.apply(&binding("one", "shared-reader", &["one"], "  nodes:\n    matchLabels: {pool: a}\n"));
    s.apply(&binding("two", "shared-reader", &["two"], "  nodes:\n    matchLabels: {pool: b}\n"));
    s.wait_condition("one", "Ready").await;
    s.wait_condition("two", "Ready").await;
    let principal = s.jsonpath("identitybinding/one", "{.status.identity.principalId}");
    assert_eq!(principal, s.jsonpath("identitybinding/two", "{.status.identity.principalId}"), "one identity for both");
    let identity = key(&uami("rg-identities", "shared-reader"));
    s.eventually("both pools and both grants", |s| {
        let p = policy_of(&s.sim, &principal);
        identities_on(&s.sim, "pool-a-vmss").contains(&identity)
            && identities_on(&s.sim, "pool-b-vmss").contains(&identity)
            && perms(&p, "secrets") == ["get"]
            && perms(&p, "keys") == ["get"]
    })
    .await;

    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "one", "--wait=true", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(s.sim.world().identities.keys().any(|k| k.ends_with("/shared-reader")), "the identity stays for binding two");
    assert!(identities_on(&s.sim, "pool-b-vmss").contains(&identity), "pool b keeps it");
    assert!(!identities_on(&s.sim, "pool-a-vmss").contains(&identity), "pool a is no longer needed");
    let p = policy_of(&s.sim, &principal);
    assert_eq!((perms(&p, "secrets"), perms(&p, "keys")), (vec![], vec!["get".to_owned()]), "only binding two's grant stays");
    assert_eq!(s.jsonpath("secretproviderclass/one", "{.spec.parameters.userAssignedIdentityID}"), "", "kvbind took its write back");

    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "two", "--wait=true", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.sim.snapshot(), before, "Azure is as it was before the first apply");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_leaves_azure_alone() {
    let s = Scenario::start("retain", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "kept-reader", &["app"], "  deletionPolicy: Retain\n"));
    s.wait_condition("app", "Ready").await;
    let converged = s.sim.snapshot();
    let writes = s.sim.counters().writes;
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "app", "--wait=true", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.sim.snapshot(), converged);
    assert_eq!(s.sim.counters().writes, writes, "no ARM write on deletion");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_class_revokes_only_its_grants_and_says_so() {
    let s = Scenario::start("class-gone", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("one", &[("db-password", "secret", 0)]));
    s.apply(&class("two", &[("signing", "key", 0)]));
    s.apply(&binding("app", "app-reader", &["one", "two"], ""));
    s.wait_condition("app", "Ready").await;
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    assert_eq!(perms(&policy_of(&s.sim, &principal), "keys"), ["get"]);

    let out = s.ns.kubectl(&["delete", "secretproviderclass", "two"]);
    assert!(out.status.success());
    s.eventually("the key grant to go", |s| perms(&policy_of(&s.sim, &principal), "keys").is_empty()).await;
    assert_eq!(perms(&policy_of(&s.sim, &principal), "secrets"), ["get"]);
    s.wait_condition("app", "Stalled").await;
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"Ready\")].reason}"), "SecretProviderClassNotFound");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_without_an_identity_id_are_warned_when_a_pool_gets_a_second_identity() {
    let s = Scenario::start("blast", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: unpinned\nspec:\n  provider: azure\n  parameters:\n    useVMManagedIdentity: \"true\"\n    keyvaultName: kvname\n");
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;
    s.wait_condition("app", "UnpinnedClassesAtRisk").await;
    let message = s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"UnpinnedClassesAtRisk\")].message}");
    assert!(message.contains("pool-vmss") && message.contains("/unpinned"), "{message}");
    s.eventually("a warning on the unpinned class", |s| s.event_reasons("unpinned").iter().any(|r| r == "MultipleIdentitiesOnPool")).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_repairs_drift_made_behind_kvbinds_back() {
    let s = Scenario::start_with("drift", seed(&cluster(&["pool-vmss"], &[], false)), |c| c.resync = std::time::Duration::from_secs(2)).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    let identity = key(&uami("rg-identities", "app-reader"));

    // Someone detaches the identity and deletes the access policy, outside Kubernetes.
    {
        let mut world = s.sim.world();
        let pool = world.compute.values_mut().find(|c| c.name == "pool-vmss").expect("pool");
        pool.user_assigned.remove(&identity);
        let vault = world.vaults.values_mut().find(|v| v.name == "kvname").expect("vault");
        vault.access_policies.retain(|p| p["objectId"] != principal.as_str());
    }
    assert!(!identities_on(&s.sim, "pool-vmss").contains(&identity));
    s.eventually("the attachment and the grant to come back", |s| {
        identities_on(&s.sim, "pool-vmss").contains(&identity) && perms(&policy_of(&s.sim, &principal), "secrets") == ["get"]
    })
    .await;
    assert!(identities_on(&s.sim, "pool-vmss").contains(&key(&uami("rg-identities", "team-foreign"))), "the foreign identity stayed");
    s.stop().await;
}
