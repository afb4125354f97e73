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

#[tokio::test]
async fn a_regional_identity_is_assigned_only_in_its_own_region() {
    let seed: Seed = serde_json::from_value(json!({
        "subscriptions": [{"id": "s", "resourceGroups": [
            {"name": "MC_rg_aks_eastus", "location": "eastus", "scaleSets": [{"name": "pool"}]},
            {"name": "rg-west", "location": "westeurope", "identities": [{"name": "regional", "isolationScope": "Regional"}, {"name": "global"}]},
            {"name": "rg-east", "location": "eastus", "identities": [{"name": "near", "isolationScope": "Regional"}]},
        ]}],
        "clients": [{"clientId": "c", "staticTokens": [TOKEN]}],
    }))
    .expect("seed");
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let http = reqwest::Client::new();
    let id = |rg: &str, name: &str| format!("/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}");
    let regional = |api: &'static str| {
        let request = http.get(format!("{}{}?api-version={api}", sim.url, id("rg-west", "regional"))).bearer_auth(TOKEN);
        async move { request.send().await.expect("GET").json::<Value>().await.expect("JSON") }
    };
    let shown = regional("2024-11-30").await;
    assert_eq!(shown["properties"]["isolationScope"], "Regional");
    let older = regional("2023-01-31").await;
    assert!(older["properties"].get("isolationScope").is_none(), "2023-01-31 has no isolationScope: {older}");

    let pool =
        format!("{}/subscriptions/s/resourceGroups/MC_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/pool?api-version=2024-07-01", sim.url);
    let attach = |ids: &[String]| {
        let entries: serde_json::Map<String, Value> = ids.iter().map(|i| (i.clone(), json!({}))).collect();
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": entries}})
    };
    let refused = http.patch(&pool).bearer_auth(TOKEN).json(&attach(&[id("rg-west", "global"), id("rg-west", "regional")])).send().await.expect("PATCH");
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "FailedIdentityOperation");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&id("rg-west", "regional")) && message.contains("Regional"), "the identity is named: {message}");
    let state: Value = http.get(&pool).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");
    assert!(state["identity"].get("userAssignedIdentities").is_none(), "the refused update changed nothing: {state}");

    let same_region = http.patch(&pool).bearer_auth(TOKEN).json(&attach(&[id("rg-west", "global"), id("rg-east", "near")])).send().await.expect("PATCH");
    assert!(same_region.status().is_success(), "a Regional identity in the pool's region and an unrestricted one are assigned");
}

#[tokio::test]
async fn a_new_vault_authorises_with_azure_rbac_from_2026_02_01_and_with_access_policies_before() {
    let seed: Seed = serde_json::from_value(json!({
        "subscriptions": [{"id": "s", "resourceGroups": [{"name": "rg-vaults", "location": "eastus"}]}],
        "clients": [{"clientId": "c", "staticTokens": [TOKEN]}],
    }))
    .expect("seed");
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let http = reqwest::Client::new();
    let vault =
        |name: &str, api: &str| format!("{}/subscriptions/s/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/{name}?api-version={api}", sim.url);
    let body = json!({"location": "eastus", "properties": {"tenantId": "t", "sku": {"family": "A", "name": "standard"}}});
    for (name, api, rbac) in [("kv-new", "2026-02-01", true), ("kv-legacy", "2024-11-01", false)] {
        let created = http.put(vault(name, api)).bearer_auth(TOKEN).json(&body).send().await.expect("PUT");
        assert_eq!(created.status(), 201, "{name}");
        let shown: Value = http.get(vault(name, "2026-02-01")).bearer_auth(TOKEN).send().await.expect("GET").json().await.expect("JSON");
        assert_eq!(shown["properties"]["enableRbacAuthorization"], rbac, "{name} created with {api}: {shown}");
    }
    let opted_out =
        json!({"location": "eastus", "properties": {"tenantId": "t", "sku": {"family": "A", "name": "standard"}, "enableRbacAuthorization": false}});
    let created = http.put(vault("kv-policies", "2026-05-15")).bearer_auth(TOKEN).json(&opted_out).send().await.expect("PUT");
    assert_eq!(created.status(), 201);
    let shown: Value = created.json().await.expect("JSON");
    assert_eq!(shown["properties"]["enableRbacAuthorization"], false, "asked for access policies: {shown}");
    let updated = http.put(vault("kv-new", "2026-02-01")).bearer_auth(TOKEN).json(&body).send().await.expect("PUT");
    assert_eq!(updated.status(), 200, "a PUT of a vault that exists updates it");
    let missing = http.put(vault("kv-bad", "2026-02-01")).bearer_auth(TOKEN).json(&json!({"properties": {}})).send().await.expect("PUT");
    assert_eq!(missing.status(), 400, "a new vault needs its location, tenant and SKU");
}
