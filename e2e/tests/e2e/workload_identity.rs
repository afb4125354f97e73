//! Workload identity mode end to end: a federated credential for the ServiceAccount, the
//! ServiceAccount annotated, `clientID` in the SecretProviderClass, the grant, no node pool
//! touched; and deletion taking all of it back. VM mode says which pools reach the identity.

use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster, identities_on, perms, policy_of};

const ISSUER: &str = "https://oidc.example.test/tenant/issuer/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_federates_one_service_account_and_cleans_up() {
    let s = Scenario::start_with("wi", seed(&cluster(&["pool-vmss"], &[], false)), |config| config.oidc_issuer = Some(ISSUER.to_owned())).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&class("vm-app", &[("db-password", "secret", 0)]));
    let before = identities_on(&s.sim, "pool-vmss");
    s.apply(&binding("app", "app-reader", &["app"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n"));
    s.apply(&binding("vm-app", "vm-reader", &["vm-app"], ""));
    s.apply(&class("ghost", &[("db-password", "secret", 0)]));
    s.apply(&binding("ghost", "ghost-reader", &["ghost"], "  mode: WorkloadIdentity\n  serviceAccount: {name: ghost}\n"));
    s.wait_condition("app", "Ready").await;
    s.wait_condition("vm-app", "Ready").await;

    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    let credential_name = s.jsonpath("identitybinding/app", "{.status.workloadIdentity.federatedCredential}");
    assert!(credential_name.starts_with(&format!("kvbind-{}-app-", s.ns.name)), "readable, then this cluster's digest: {credential_name}");
    let snapshot = s.sim.snapshot();
    let identity = snapshot["identities"].as_object().and_then(|m| m.values().find(|i| i["name"] == "app-reader").cloned()).expect("identity");
    let credential = &identity["federatedCredentials"][credential_name.as_str()];
    assert_eq!(credential["issuer"], ISSUER, "{identity}");
    assert_eq!(credential["subject"], format!("system:serviceaccount:{}:app", s.ns.name));
    assert_eq!(credential["audiences"][0], "api://AzureADTokenExchange");
    assert_eq!(s.jsonpath("serviceaccount/app", "{.metadata.annotations.azure\\.workload\\.identity/client-id}"), client_id);
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.clientID}"), client_id);
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.useVMManagedIdentity}"), "", "no VM identity in workload identity mode");
    assert_eq!(perms(&policy_of(&s.sim, &principal), "secrets"), ["get"]);
    let on_pool = identities_on(&s.sim, "pool-vmss");
    assert!(!on_pool.iter().any(|k| k.contains("app-reader")), "nothing attached to the pool: {on_pool:?}");
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"NodesAssigned\")].reason}"), "Federated");
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"NodeWideAccess\")].status}"), "", "no node-wide reach");

    // VM mode carries the trade-off in its conditions, naming the pool.
    assert_eq!(s.jsonpath("identitybinding/vm-app", "{.status.conditions[?(@.type==\"NodeWideAccess\")].status}"), "True");
    assert!(s.jsonpath("identitybinding/vm-app", "{.status.conditions[?(@.type==\"NodeWideAccess\")].message}").contains("pool-vmss"));

    // A missing ServiceAccount is named, and nothing is federated for it.
    s.eventually("ghost refused", |s| s.jsonpath("identitybinding/ghost", "{.status.conditions[?(@.type==\"Ready\")].reason}") == "ServiceAccountNotFound")
        .await;
    assert!(s.jsonpath("identitybinding/ghost", "{.status.conditions[?(@.type==\"Ready\")].message}").contains("spec.serviceAccount.name"));

    // Deletion takes back the credential, the annotation, clientID, the grant and the identity.
    let out = s.ns.kubectl(&["delete", "identitybinding", "app", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gone = s.sim.snapshot()["identities"].as_object().is_some_and(|m| m.values().all(|i| i["name"] != "app-reader"));
    assert!(gone, "the identity kvbind created is deleted, with its credential");
    let remaining = s.sim.requests().iter().filter(|r| r.operation == "FederatedIdentityCredentials_Delete").count();
    assert!(remaining >= 1, "the credential was deleted explicitly");
    assert_eq!(s.jsonpath("serviceaccount/app", "{.metadata.annotations.azure\\.workload\\.identity/client-id}"), "", "the annotation kvbind wrote is gone");
    assert_eq!(s.jsonpath("secretproviderclass/app", "{.spec.parameters.clientID}"), "");
    assert!(policy_of(&s.sim, &principal).is_none());
    assert_eq!(identities_on(&s.sim, "pool-vmss").len(), before.len() + 1, "only vm-app's identity was ever added to the pool");
    s.stop().await;
}
