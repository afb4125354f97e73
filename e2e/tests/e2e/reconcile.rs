//! The mission, end to end: IdentityBinding and SecretProviderClass in, Azure as the manual
//! steps would leave it out, against the real API server and the ARM simulator.

use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, TENANT, seed};
use serde_json::Value;

fn uami(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

fn cluster(vault_rbac: bool) -> String {
    format!(
        r#"subscriptions:
  - id: {SUBSCRIPTION}
    resourceGroups:
      - name: rg-identities
        identities: [{{name: team-foreign}}]
      - name: {NODE_GROUP}
        scaleSets:
          - name: aks-system-vmss
            systemAssigned: true
            userAssigned: ["{foreign}"]
          - name: aks-apps-vmss
            systemAssigned: true
            userAssigned: ["{foreign}"]
      - name: rg-vaults
        vaults:
          - name: kvname
            rbac: {vault_rbac}
            accessPolicies:
              - {{tenantId: {TENANT}, objectId: 11111111-2222-3333-4444-555555555555, permissions: {{secrets: [get, list, set, delete]}}}}
"#,
        foreign = uami("rg-identities", "team-foreign")
    )
}

const CLASS: &str = r#"apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: azure-kvname-user-msi
spec:
  provider: azure
  parameters:
    usePodIdentity: "false"
    keyvaultName: "kvname"
    cloudName: ""
    objects: |
      array:
        - |
          objectName: secret1
          objectType: secret
          objectVersion: ""
        - |
          objectName: key1
          objectType: key
          objectVersion: ""
    tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47"
    somethingElse: "kept"
"#;

const BINDING: &str = r#"apiVersion: kvbind.io/v1alpha1
kind: IdentityBinding
metadata:
  name: kvname-reader
spec:
  identity:
    name: kvname-reader
    resourceGroup: rg-identities
  secretProviderClasses:
    names: [azure-kvname-user-msi]
"#;

fn compute(sim: &kvbind_arm_sim::Simulator, name: &str) -> Value {
    let snapshot = sim.snapshot();
    snapshot["compute"]
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| k.ends_with(&format!("/{name}"))).map(|(_, v)| v.clone()))
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_leaves_azure_as_the_manual_steps_would() {
    let s = Scenario::start("seed", seed(&cluster(false))).await;
    s.node("system-0", &Scenario::vmss_node("aks-system-vmss", 0), &[]).await;
    s.node("apps-0", &Scenario::vmss_node("aks-apps-vmss", 0), &[]).await;
    s.apply(CLASS);
    s.apply(BINDING);
    s.wait_condition("kvname-reader", "Ready").await;

    let client_id = s.jsonpath("identitybinding/kvname-reader", "{.status.identity.clientId}");
    let principal = s.jsonpath("identitybinding/kvname-reader", "{.status.identity.principalId}");
    assert!(!client_id.is_empty() && !principal.is_empty());

    let identity = uami("rg-identities", "kvname-reader");
    for vmss in ["aks-system-vmss", "aks-apps-vmss"] {
        let c = compute(&s.sim, vmss);
        assert!(c["systemPrincipal"].is_string(), "{vmss} kept its system-assigned identity: {c}");
        let ids: Vec<String> = c["userAssigned"].as_object().expect("map").keys().cloned().collect();
        let key = |id: &str| id.trim_start_matches('/').to_ascii_lowercase();
        assert!(ids.contains(&key(&identity)), "{vmss} carries the identity: {ids:?}");
        assert!(ids.contains(&key(&uami("rg-identities", "team-foreign"))), "{vmss} kept the foreign identity");
    }

    let snapshot = s.sim.snapshot();
    let vault = snapshot["vaults"].as_object().expect("vaults").values().next().expect("one vault").clone();
    let ours = vault["accessPolicies"].as_array().expect("policies").iter().find(|p| p["objectId"] == principal.as_str()).expect("our entry").clone();
    assert_eq!(ours["permissions"]["secrets"], serde_json::json!(["get"]));
    assert_eq!(ours["permissions"]["keys"], serde_json::json!(["get"]));
    assert!(ours["permissions"]["certificates"].as_array().is_none_or(Vec::is_empty), "no cert grant: {ours}");
    assert_eq!(vault["accessPolicies"].as_array().map(Vec::len), Some(2), "the other entry is untouched");

    assert_eq!(s.jsonpath("secretproviderclass/azure-kvname-user-msi", "{.spec.parameters.userAssignedIdentityID}"), client_id);
    assert_eq!(s.jsonpath("secretproviderclass/azure-kvname-user-msi", "{.spec.parameters.useVMManagedIdentity}"), "true");
    assert_eq!(s.jsonpath("secretproviderclass/azure-kvname-user-msi", "{.spec.parameters.somethingElse}"), "kept");
    for condition in ["IdentityReady", "NodesAssigned", "AccessGranted", "SecretProviderClassesUpdated"] {
        assert_eq!(s.jsonpath("identitybinding/kvname-reader", &format!("{{.status.conditions[?(@.type==\"{condition}\")].status}}")), "True", "{condition}");
    }
    let generation = s.jsonpath("identitybinding/kvname-reader", "{.metadata.generation}");
    assert_eq!(s.jsonpath("identitybinding/kvname-reader", "{.status.observedGeneration}"), generation);
    s.stop().await;
}
