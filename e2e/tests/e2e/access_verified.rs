//! `spec.verifyAccess`: the path a pod takes, proven against the simulator's IMDS, Entra ID
//! and Key Vault data plane, both ways round: a granted object verifies; a grant someone
//! removes in Azure turns `AccessVerified` False within one resync, naming the object, and
//! True again once kvbind restores it; an object outside the grant and an unpinned class
//! on a pool with a second identity are caught.

use std::time::Duration;

use kvbind_controller::verify::probe::{ProbeObject, ProbeRequest};
use kvbind_controller::verify::verdict::{Probed, verdict};
use kvbind_e2e::kubelet::probe_from;
use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster_with_secrets};

/// The API server's service-account token issuer, which federated credentials must trust.
const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// One resync: short, so that the test sees a removed grant found and restored.
const RESYNC: Duration = Duration::from_secs(4);

/// The test cluster (two pools), its vault holding secrets `db-password` and `other`.
fn with_secrets(rbac: bool) -> kvbind_arm_sim::Seed {
    seed(&cluster_with_secrets(&["pool-vmss", "pool-b"], rbac, &["db-password", "other"]))
}

/// A VM-mode binding `app` that asks for its access to be proven, once it is: the scenario
/// and the bound identity's client ID.
async fn proven_vm_binding(prefix: &str) -> (Scenario, String) {
    let s = Scenario::start_verifying(prefix, with_secrets(false), |config| config.resync = RESYNC).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.node("b-0", &Scenario::vmss_node("pool-b", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], "  verifyAccess: true\n"));
    s.wait_condition("app", "AccessVerified").await;
    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    (s, client_id)
}

fn condition(s: &Scenario, binding: &str, kind: &str, field: &str) -> String {
    s.jsonpath(&format!("identitybinding/{binding}"), &format!("{{.status.conditions[?(@.type==\"{kind}\")].{field}}}"))
}

/// The data-plane reads of `client_id` the simulator answered with `status`.
fn reads(s: &Scenario, client_id: &str, status: u16) -> usize {
    s.sim.requests().iter().filter(|r| r.operation == "GetSecret" && r.client_id.as_deref() == Some(client_id) && r.status == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_mode_proves_the_path_from_a_node_of_each_pool_and_catches_a_removed_grant() {
    let (s, client_id) = proven_vm_binding("av-vm").await;
    assert_eq!(condition(&s, "app", "AccessVerified", "reason"), "Verified");
    let message = condition(&s, "app", "AccessVerified", "message");
    assert!(message.contains("pool pool-vmss") && message.contains("pool pool-b"), "proven from a node of each pool: {message}");
    assert_eq!(condition(&s, "app", "Ready", "status"), "True");
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    assert!(reads(&s, &client_id, 200) >= 1, "the secret was read with the bound identity's token from the node's IMDS");

    // Someone removes the grant in Azure: the next resync proves the path before repairing
    // it, so the condition names the object, then kvbind restores the grant and proves it.
    s.sim.world().vaults.values_mut().filter(|v| v.name == "kvname").for_each(|v| v.access_policies.retain(|p| p["objectId"] != principal.as_str()));
    s.wait_condition("app", "AccessVerified=False").await;
    let message = condition(&s, "app", "AccessVerified", "message");
    assert!(message.contains("secret kvname/db-password: 403 Forbidden (AccessDenied)"), "{message}");
    assert!(reads(&s, &client_id, 403) >= 1);
    s.wait_condition("app", "AccessVerified=True").await;

    // From the pool, with the grant kvbind made: an object no class lists is refused, and a
    // class that does not pin the identity gets the node's other identity.
    let pool = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{NODE_GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets/pool-vmss");
    let sim: url::Url = s.sim.url.parse().expect("url");
    let object = |name: &str| ProbeObject { vault: "kvname".into(), kind: "secret".into(), name: name.into() };
    let pinned = ProbeRequest {
        key_vault_suffix: "vault.azure.net".into(),
        expected_client_id: client_id.clone(),
        pinned_client_id: Some(client_id.clone()),
        objects: vec![object("db-password"), object("missing")],
    };
    let report = probe_from(&sim, &pool, &pinned).await;
    let (_, reason, message) = verdict(&client_id, &[Probed { place: "pool pool-vmss".into(), pinned: true, report }]);
    assert_eq!(reason, "ObjectNotFound", "{message}");
    assert!(message.contains("kvname/missing: 404 SecretNotFound"), "{message}");
    let keys = ProbeRequest { objects: vec![ProbeObject { vault: "kvname".into(), kind: "key".into(), name: "signing".into() }], ..pinned.clone() };
    let report = probe_from(&sim, &pool, &keys).await;
    assert_eq!(report.failures.first().map(|f| (f.status, f.error.as_str())), Some((Some(403), "Forbidden (AccessDenied)")), "only secrets were granted");
    let unpinned = ProbeRequest { pinned_client_id: None, ..pinned };
    let report = probe_from(&sim, &pool, &unpinned).await;
    let (_, reason, message) = verdict(&client_id, &[Probed { place: "pool pool-vmss".into(), pinned: false, report }]);
    assert_eq!(reason, "WrongIdentity", "{message}");
    assert!(message.contains("does not pin userAssignedIdentityID"), "{message}");

    // Deleting the binding leaves no probe Pod behind.
    let out = s.ns.kubectl(&["delete", "identitybinding", "app", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pods = s.ns.kubectl(&["get", "pods", "-l", "app.kubernetes.io/component=access-probe", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&pods.stdout).trim(), "", "probe Pods are deleted with the binding");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_proves_the_federated_exchange_and_each_object_role() {
    let s = Scenario::start_verifying("av-wi", with_secrets(true), |config| {
        config.resync = RESYNC;
        config.oidc_issuer = Some(CLUSTER_ISSUER.to_owned());
    })
    .await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n  verifyAccess: true\n"));
    s.wait_condition("app", "AccessVerified").await;
    assert!(condition(&s, "app", "AccessVerified", "message").contains("ServiceAccount app"));
    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    assert!(reads(&s, &client_id, 200) >= 1, "read with the token the federated exchange gave");
    assert_eq!(s.ns.kubectl(&["get", "pods", "-o", "name"]).stdout, b"", "the federated path needs no Pod");

    // The role assignment on the object goes: named within a resync, then restored.
    s.sim.world().role_assignments.retain(|_, a| !a.principal_id.eq_ignore_ascii_case(&principal));
    s.wait_condition("app", "AccessVerified=False").await;
    let message = condition(&s, "app", "AccessVerified", "message");
    assert!(message.contains("ServiceAccount app: secret kvname/db-password: 403 Forbidden (ForbiddenByRbac)"), "{message}");
    s.wait_condition("app", "AccessVerified=True").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_status_does_not_change_which_identity_the_probe_proves() {
    let (s, client_id) = proven_vm_binding("av-forge").await;

    // The foreign identity is on the same pool: a probe that believed the status would get
    // its token from the node's IMDS and read with it.
    let foreign = s.sim.snapshot()["identities"]
        .as_object()
        .and_then(|m| m.values().find(|i| i["name"] == "team-foreign").map(|i| i["clientId"].as_str().unwrap_or_default().to_owned()))
        .expect("the foreign identity");
    let patch = format!("{{\"status\":{{\"identity\":{{\"clientId\":\"{foreign}\"}}}}}}");
    let out = s.ns.kubectl(&["patch", "identitybinding", "app", "--subresource=status", "--type=merge", "-p", &patch]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = reads(&s, &client_id, 200);
    s.eventually("the next proof, a resync later", |s| reads(s, &client_id, 200) > before).await;
    let tokens_of_foreign = s.sim.requests().iter().filter(|r| r.client_id.as_deref() == Some(foreign.as_str())).count();
    assert_eq!(tokens_of_foreign, 0, "nothing was read with the identity the forged status named");
    s.stop().await;
}
