use serde_json::json;

use super::managed_clusters::SHARED_CREDENTIAL;
use super::*;
use crate::seed::Seed;

const SUB: &str = "00000000-0000-0000-0000-000000000001";

/// A world of one subscription whose resource groups are `groups`, a YAML list.
fn world_of(groups: &str) -> World {
    let seed = Seed::from_yaml(&format!("subscriptions:\n  - id: {SUB}\n    resourceGroups:\n{groups}")).expect("seed");
    World::from_seed(&seed)
}

fn world() -> World {
    world_of(&format!(
        r#"      - name: rg
        identities: [{{name: foreign}}, {{name: mine}}]
        scaleSets:
          - name: pool
            systemAssigned: true
            userAssigned: ["/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/foreign"]
        vaults: [{{name: kv}}]
"#
    ))
}

fn pool() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool")
}

fn uami(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

#[test]
fn patch_merges_identities_and_keeps_system_assigned() {
    let mut w = world();
    let body = json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uami("mine"): {}}}});
    w.patch_compute(&pool(), &body, false, false).expect("patch");
    let c = &w.compute[&key(&pool())];
    assert!(c.system_principal.is_some());
    assert_eq!(c.user_assigned.len(), 2);
}

#[test]
fn user_assigned_type_drops_the_system_identity_as_arm_does() {
    let mut w = world();
    let body = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {uami("mine"): {}}}});
    w.patch_compute(&pool(), &body, false, false).expect("patch");
    assert!(w.compute[&key(&pool())].system_principal.is_none());
}

#[test]
fn unknown_identity_is_refused_and_nothing_changes() {
    let mut w = world();
    let body = json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uami("ghost"): {}}}});
    let err = w.patch_compute(&pool(), &body, false, false).expect_err("ghost");
    assert_eq!(err.code, "FailedIdentityOperation");
    assert_eq!(w.compute[&key(&pool())].user_assigned.len(), 1);
}

#[test]
fn a_second_write_during_an_operation_conflicts() {
    let mut w = world();
    w.lro.duration_ms = 60_000;
    let body = json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uami("mine"): {}}}});
    w.patch_compute(&pool(), &body, false, false).expect("first");
    let err = w.patch_compute(&pool(), &body, false, false).expect_err("second");
    assert_eq!((err.status, err.code.as_str()), (409, "Conflict"));
}

#[test]
fn access_policies_add_replace_remove() {
    let mut w = world();
    let entry = |perms: serde_json::Value| json!({"properties": {"accessPolicies": [{"tenantId": "t", "objectId": "O", "permissions": perms}]}});
    w.update_access_policy(SUB, "rg", "kv", "add", &entry(json!({"secrets": ["get"]}))).expect("add");
    w.update_access_policy(SUB, "rg", "kv", "add", &entry(json!({"keys": ["get"]}))).expect("add");
    let v = &w.vaults[&key(&format!("subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"))];
    assert_eq!(v.access_policies.len(), 1);
    assert_eq!(v.access_policies[0]["permissions"]["keys"], json!(["get"]));
    assert_eq!(v.access_policies[0]["permissions"]["secrets"], json!(["get"]));
    w.update_access_policy(SUB, "rg", "kv", "remove", &entry(json!({"secrets": ["get"], "keys": ["get"]}))).expect("remove");
    let v = &w.vaults[&key(&format!("subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"))];
    assert!(v.access_policies.is_empty());
}

#[test]
fn role_assignment_rules() {
    let mut w = world();
    let scope = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv");
    let body = |p: &str| json!({"properties": {"roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6", "principalId": p}});
    let name = "11111111-1111-1111-1111-111111111111";
    assert_eq!(w.put_role_assignment(&scope, name, &body("p1")).expect("create").0, 201);
    assert_eq!(w.put_role_assignment(&scope, name, &body("p1")).expect("again").0, 200);
    assert_eq!(w.put_role_assignment(&scope, name, &body("p2")).expect_err("other principal").code, "RoleAssignmentUpdateNotPermitted");
    let other = "22222222-2222-2222-2222-222222222222";
    assert_eq!(w.put_role_assignment(&scope, other, &body("p1")).expect_err("duplicate").code, "RoleAssignmentExists");
    assert_eq!(w.list_role_assignments(&format!("{scope}/secrets/db"), Some("P1")).len(), 1, "assignments above the scope are listed");
    assert_eq!(w.delete_role_assignment(&scope, name).0, 200);
    assert_eq!(w.delete_role_assignment(&scope, name).0, 204);
}

#[test]
fn a_managed_cluster_shows_its_key_vault_add_on_identity_as_aks_does() {
    let w = world_of(
        r#"      - name: rg-aks
        managedClusters:
          - {name: prod, nodeResourceGroup: MC_prod, keyVaultSecretsProvider: azurekeyvaultsecretsprovider-prod}
          - {name: bare, nodeResourceGroup: MC_bare}
      - name: MC_prod
        identities: [{name: azurekeyvaultsecretsprovider-prod, clientId: 0000000a-0000-0000-0000-000000000000}]
      - name: MC_bare
"#,
    );
    let cluster = w.get_managed_cluster(SUB, "rg-aks", "prod").expect("cluster");
    let identity = &cluster["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]["identity"];
    assert_eq!(identity["clientId"], "0000000a-0000-0000-0000-000000000000");
    assert!(identity["resourceId"].as_str().is_some_and(|id| {
        id.ends_with("/resourcegroups/MC_prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azurekeyvaultsecretsprovider-prod")
    }));
    assert_eq!(cluster["properties"]["nodeResourceGroup"], "MC_prod");
    let bare = w.get_managed_cluster(SUB, "rg-aks", "bare").expect("cluster");
    assert_eq!(bare["properties"]["addonProfiles"], json!({}), "no add-on, no profile");
    assert_eq!(w.get_managed_cluster(SUB, "rg-aks", "gone").expect_err("missing").status, 404);
}

#[test]
fn an_identity_binding_gives_the_identity_one_shared_credential_that_outlives_it() {
    let mut w = world_of(
        r#"      - name: rg-aks
        managedClusters: [{name: prod, nodeResourceGroup: MC_prod}, {name: test, nodeResourceGroup: MC_test}]
      - name: rg-ids
        identities: [{name: app, clientId: 0000000b-0000-0000-0000-000000000000}]
"#,
    );
    let identity = format!("/subscriptions/{SUB}/resourceGroups/rg-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app");
    let body = json!({"properties": {"managedIdentity": {"resourceId": identity}}});
    let (status, created, _) = w.put_identity_binding(SUB, "rg-aks", "prod", "app-binding", &body).expect("created");
    assert_eq!((status, created["properties"]["provisioningState"].as_str()), (201, Some("Creating")));
    assert_eq!(created["properties"]["managedIdentity"]["clientId"], "0000000b-0000-0000-0000-000000000000");
    assert_eq!(w.put_identity_binding(SUB, "rg-aks", "prod", "app-binding", &body).expect("replaced").0, 200);
    w.put_identity_binding(SUB, "rg-aks", "test", "app-binding", &body).expect("a second cluster");
    let credentials = w.list_federated_credentials(SUB, "rg-ids", "app").expect("listed");
    assert_eq!(credentials["value"].as_array().map(Vec::len), Some(1), "one credential for every cluster: {credentials}");
    assert_eq!(credentials["value"][0]["name"], SHARED_CREDENTIAL);

    assert!(w.delete_identity_binding(SUB, "rg-aks", "prod", "app-binding").expect("deleted").is_some());
    assert!(w.delete_identity_binding(SUB, "rg-aks", "prod", "app-binding").expect("gone").is_none(), "a second delete is a 204");
    assert_eq!(w.get_identity_binding(SUB, "rg-aks", "prod", "app-binding").expect_err("gone").status, 404);
    assert!(w.get_federated_credential(SUB, "rg-ids", "app", SHARED_CREDENTIAL).is_ok(), "AKS leaves its credential behind");

    let missing = json!({"properties": {"managedIdentity": {"resourceId": identity.replace("/app", "/nobody")}}});
    assert_eq!(w.put_identity_binding(SUB, "rg-aks", "prod", "x-binding", &missing).expect_err("no identity").status, 400);
    assert_eq!(w.put_identity_binding(SUB, "rg-aks", "gone", "x-binding", &body).expect_err("no cluster").code, "ParentResourceNotFound");
}
