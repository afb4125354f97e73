//! AKS's platform constraints as the simulator models them: the node resource group
//! lockdown refuses every write under the group with a deny-assignment 403, and changes
//! nothing, while reads and writes elsewhere go on; a VM that node auto-provisioning made
//! refuses user-assigned identities.

use kvbind_arm_sim::{Seed, Simulator};
use serde_json::{Value, json};

const TOKEN: &str = "platform-test-token";

#[tokio::test]
async fn a_locked_node_resource_group_refuses_writes_and_serves_reads() {
    let seed: Seed = serde_json::from_value(json!({
        "subscriptions": [{"id": "s", "resourceGroups": [
            {"name": "MC_rg_aks_eastus", "lockdown": true, "scaleSets": [{"name": "pool"}]},
            {"name": "rg-identities"},
        ]}],
        "clients": [{"clientId": "c", "staticTokens": [TOKEN]}],
    }))
    .expect("seed");
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let http = reqwest::Client::new();
    let pool =
        format!("{}/subscriptions/s/resourceGroups/MC_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/pool?api-version=2024-07-01", sim.url);
    let before: Value = http.get(&pool).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");

    let identity = "/subscriptions/s/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-reader";
    let created =
        http.put(format!("{}{identity}?api-version=2023-01-31", sim.url)).bearer_auth(TOKEN).json(&json!({"location": "eastus"})).send().await.expect("PUT");
    assert_eq!(created.status(), 201, "writes outside the locked group go on");

    let attach = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}});
    let refused = http.patch(&pool).bearer_auth(TOKEN).json(&attach).send().await.expect("PATCH");
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "DenyAssignmentAuthorizationFailed");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("because of the deny assignment")), "{body}");

    let after: Value = http.get(&pool).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(before, after, "reads go on, and the refused write changed nothing");
}

#[tokio::test]
async fn an_auto_provisioned_vm_refuses_user_assigned_identities() {
    let seed: Seed = serde_json::from_value(json!({
        "subscriptions": [{"id": "s", "resourceGroups": [
            {"name": "MC_rg_aks_eastus", "virtualMachines": [{"name": "aks-default-abcde", "autoProvisioned": true}]},
            {"name": "rg-identities", "identities": [{"name": "app-reader"}]},
        ]}],
        "clients": [{"clientId": "c", "staticTokens": [TOKEN]}],
    }))
    .expect("seed");
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let http = reqwest::Client::new();
    let vm = format!(
        "{}/subscriptions/s/resourceGroups/MC_rg_aks_eastus/providers/Microsoft.Compute/virtualMachines/aks-default-abcde?api-version=2024-07-01",
        sim.url
    );
    let identity = "/subscriptions/s/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-reader";
    let attach = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}});
    let refused = http.patch(&vm).bearer_auth(TOKEN).json(&attach).send().await.expect("PATCH");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "OperationNotAllowed", "{body}");
    let after: Value = http.get(&vm).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");
    assert!(after["identity"]["userAssignedIdentities"].is_null(), "nothing attached: {after}");
}
