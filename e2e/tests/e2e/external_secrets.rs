//! External Secrets Operator stores end to end, with ESO's published CRDs: the identity
//! written into a SecretStore's `spec.provider.azurekv`, grants on exactly the objects the
//! namespace's ExternalSecrets read through it (following them as they change), what cannot
//! be granted by name refused by field, a store someone else pointed at another identity
//! left alone, deletion back to Azure's exact state before, and a policy refusing a store's
//! vault before any Azure call.

use kvbind_e2e::TestNamespace;
use kvbind_e2e::operator::{SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{cluster, namespace_policy, perms, policy_of};

fn store(name: &str, vault: &str, azurekv_extra: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata:\n  name: {name}\nspec:\n  refreshInterval: 60\n  provider:\n    azurekv:\n      vaultUrl: https://{vault}.vault.azure.net\n{azurekv_extra}"
    )
}

fn external_secret(name: &str, store: &str, data: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: {name}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{name: {store}, kind: SecretStore}}\n  target: {{name: {name}}}\n{data}"
    )
}

fn store_binding(name: &str, identity: &str, stores: &[&str], extra: &str) -> String {
    format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: {name}\nspec:\n  identity:\n    name: {identity}\n    resourceGroup: rg-identities\n  secretStores:\n    names: [{}]\n{extra}",
        stores.join(", ")
    )
}

fn condition(s: &Scenario, binding: &str, kind: &str, field: &str) -> String {
    s.jsonpath(&format!("identitybinding/{binding}"), &format!("{{.status.conditions[?(@.type==\"{kind}\")].{field}}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_store_gets_the_identity_and_grants_follow_its_external_secrets() {
    let s = Scenario::start("eso", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&store("vault", "kvname", ""));
    s.apply(&external_secret(
        "db",
        "vault",
        "  data:\n  - secretKey: password\n    remoteRef: {key: db-password}\n  - secretKey: signing\n    remoteRef: {key: key/signing}\n",
    ));
    let before = s.sim.snapshot();

    s.apply(&store_binding("app", "eso-reader", &["vault"], ""));
    s.wait_condition("app", "Ready").await;
    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.authType}"), "ManagedIdentity");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.identityId}"), client_id);
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.refreshInterval}"), "60", "the owner's fields stay as they were");
    assert_eq!(condition(&s, "app", "SecretStoresUpdated", "status"), "True");
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.secretStores[0].name}"), "vault");
    let entry = policy_of(&s.sim, &principal);
    assert_eq!((perms(&entry, "secrets"), perms(&entry, "keys"), perms(&entry, "certificates")), (vec!["get".to_owned()], vec!["get".to_owned()], vec![]));

    // A new ExternalSecret through the store widens the grant to what it reads, and no more.
    s.apply(&external_secret("tls", "vault", "  data:\n  - secretKey: tls\n    remoteRef: {key: cert/tls}\n"));
    s.eventually("the certificate granted", |s| perms(&policy_of(&s.sim, &principal), "certificates") == ["get"]).await;

    // One that lists the vault cannot be granted by name: refused, naming the field.
    s.apply(&external_secret("all", "vault", "  dataFrom:\n  - find: {name: {regexp: '.*'}}\n"));
    s.eventually("the find refused", |s| condition(s, "app", "Ready", "reason") == "InvalidExternalSecret").await;
    let message = condition(&s, "app", "SecretStoresUpdated", "message");
    assert!(message.contains("ExternalSecret all") && message.contains("spec.dataFrom[0].find"), "{message}");
    assert!(!perms(&policy_of(&s.sim, &principal), "secrets").contains(&"list".to_owned()), "no list was granted");
    let out = s.ns.kubectl(&["delete", "externalsecret", "all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.eventually("Ready again", |s| condition(s, "app", "Ready", "status") == "True").await;

    // A store whose identity someone else set is not overwritten, and Azure hears nothing of it.
    s.apply(&store("theirs", "kvname", "      authType: ManagedIdentity\n      identityId: 99999999-9999-9999-9999-999999999999\n"));
    s.apply(&store_binding("takeover", "takeover-reader", &["theirs"], ""));
    s.eventually("the takeover refused", |s| condition(s, "takeover", "Ready", "reason") == "SecretStoreConflict").await;
    assert!(condition(&s, "takeover", "Ready", "message").contains("spec.provider.azurekv.identityId"));
    assert_eq!(s.jsonpath("secretstore/theirs", "{.spec.provider.azurekv.identityId}"), "99999999-9999-9999-9999-999999999999");
    assert!(s.sim.requests().iter().all(|r| !r.path.to_ascii_lowercase().contains("takeover-reader")), "no Azure call for a refused store");
    let out = s.ns.kubectl(&["delete", "identitybinding", "takeover", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Deletion: the store loses only kvbind's fields, Azure is as it was.
    let out = s.ns.kubectl(&["delete", "identitybinding", "app", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.identityId}"), "");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.authType}"), "ServicePrincipal", "ESO's default, as before");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.vaultUrl}"), "https://kvname.vault.azure.net");
    assert_eq!(s.sim.snapshot(), before, "Azure is as it was before the binding");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_names_the_service_account_in_the_store() {
    let s = Scenario::start_with("eso-wi", seed(&cluster(&["pool-vmss"], &[], false)), |config| {
        config.oidc_issuer = Some("https://oidc.example.test/issuer/".to_owned())
    })
    .await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: eso-app\n");
    s.apply(&store("vault", "kvname", "      authType: WorkloadIdentity\n"));
    s.apply(&external_secret("db", "vault", "  data:\n  - secretKey: password\n    remoteRef: {key: db-password}\n"));
    s.apply(&store_binding("app", "eso-wi-reader", &["vault"], "  mode: WorkloadIdentity\n  serviceAccount: {name: eso-app}\n"));
    s.wait_condition("app", "Ready").await;
    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.authType}"), "WorkloadIdentity");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.serviceAccountRef.name}"), "eso-app");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.identityId}"), "", "ESO reads the client ID from the ServiceAccount");
    assert_eq!(s.jsonpath("serviceaccount/eso-app", "{.metadata.annotations.azure\\.workload\\.identity/client-id}"), client_id);
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    assert_eq!(perms(&policy_of(&s.sim, &principal), "secrets"), ["get"]);

    // A second binding naming the same store with another identity is a conflict, named, not
    // a write storm.
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: other\n");
    s.apply(&store_binding("rival", "eso-rival", &["vault"], "  mode: WorkloadIdentity\n  serviceAccount: {name: other}\n"));
    s.eventually("the rival refused", |s| condition(s, "rival", "Ready", "reason") == "SecretStoreShared").await;
    assert!(condition(&s, "rival", "Ready", "message").contains(&format!("{}/app", s.ns.name)));
    let generation = s.jsonpath("secretstore/vault", "{.metadata.generation}");
    assert_eq!(s.jsonpath("secretstore/vault", "{.spec.provider.azurekv.serviceAccountRef.name}"), "eso-app");
    // Another reconcile of both bindings leaves the store as it was.
    s.apply(&store_binding("rival", "eso-rival", &["vault"], "  mode: WorkloadIdentity\n  serviceAccount: {name: other}\n  rbacScope: Vault\n"));
    s.eventually("the rival refused again", |s| condition(s, "rival", "Ready", "observedGeneration") == "2").await;
    assert_eq!(s.jsonpath("secretstore/vault", "{.metadata.generation}"), generation, "nobody rewrote the store");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refuses_a_stores_vault_before_any_azure_call() {
    let ns = TestNamespace::unpoliced("eso-pol").await;
    let client = ns.client.clone();
    let name = ns.name.clone();
    let s = Scenario::start_in(ns, client, seed(&cluster(&["pool-vmss"], &[], false)), |_| {}).await;
    let vault = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kvname");
    s.apply(&namespace_policy(
        &name,
        &name,
        &format!("  identityResourceGroups: [/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-identities]\n  vaults: [{vault}]\n"),
    ));
    s.apply(&store("elsewhere", "otherkv", ""));
    s.apply(&external_secret("db", "elsewhere", "  data:\n  - secretKey: password\n    remoteRef: {key: db-password}\n"));
    s.apply(&store_binding("app", "eso-pol-reader", &["elsewhere"], ""));
    s.eventually("refused by policy", |s| condition(s, "app", "Ready", "reason") == "NotAllowedByPolicy").await;
    let message = condition(&s, "app", "Ready", "message");
    assert!(message.contains("SecretStore elsewhere") && message.contains("otherkv"), "{message}");
    let counters = s.sim.counters();
    assert_eq!((counters.reads, counters.writes), (0, 0), "a refused binding costs no Azure call: {counters:?}");
    assert_eq!(s.jsonpath("secretstore/elsewhere", "{.spec.provider.azurekv.authType}"), "ServicePrincipal", "nothing written into the store");
    let out = s.ns.kubectl(&["delete", "bindingpolicy", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}
