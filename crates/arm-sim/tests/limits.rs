//! Azure's hard limits, answered as ARM answers them (`shared/azure/LIMITS-AND-CLIENTS.md`
//! §1), on by default and shrinkable in the seed; and a refused write changes nothing.

use kvbind_arm_sim::Seed;
use kvbind_arm_sim::world::World;
use serde_json::{Value, json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn world(identities: usize, limits: &str) -> World {
    let names: Vec<String> = (0..identities).map(|i| format!("{{name: id-{i}}}")).collect();
    let seed = format!(
        "tenantId: {TENANT}\n{limits}subscriptions:\n  - id: {SUB}\n    resourceGroups:\n      - name: rg\n        identities: [{}]\n        scaleSets: [{{name: pool}}]\n        vaults: [{{name: kv}}]\n",
        names.join(", ")
    );
    World::from_seed(&Seed::from_yaml(&seed).expect("seed"))
}

fn identity_id(i: usize) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{i}")
}

const POOL: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool";

fn attach(world: &mut World, ids: std::ops::Range<usize>) -> Result<(Value, String), kvbind_arm_sim::world::ArmError> {
    let entries: serde_json::Map<String, Value> = ids.map(|i| (identity_id(i), json!({}))).collect();
    world.patch_compute(POOL, &json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": entries}}), false, false)
}

#[test]
fn a_scale_set_takes_at_most_150_user_assigned_identities() {
    let mut world = world(151, "");
    attach(&mut world, 0..150).expect("150 fit");
    // The first update is still running; a later one waits for it in Azure too.
    world.compute.values_mut().for_each(|c| c.busy_until = None);
    let err = attach(&mut world, 150..151).expect_err("the 151st does not");
    assert_eq!((err.status, err.code.as_str()), (400, "BadRequest"));
    assert_eq!(err.message, "User Assigned Identities Number '151' Assign exceed limit '150' in one request.");
    assert_eq!(world.compute.values().next().map(|c| c.user_assigned.len()), Some(150), "nothing changed");
}

#[test]
fn a_vault_takes_at_most_its_access_policy_entries_and_a_refused_write_adds_none() {
    let mut world = world(0, "limits: {accessPoliciesPerVault: 3}\n");
    let entry = |i: usize| json!({"tenantId": TENANT, "objectId": format!("00000000-0000-0000-0000-00000000000{i}"), "permissions": {"secrets": ["get"]}});
    world.update_access_policy(SUB, "rg", "kv", "add", &json!({"properties": {"accessPolicies": [entry(1), entry(2)]}})).expect("two fit");
    let err = world.update_access_policy(SUB, "rg", "kv", "add", &json!({"properties": {"accessPolicies": [entry(3), entry(4)]}})).expect_err("four do not");
    assert_eq!((err.status, err.code.as_str()), (400, "AccessPolicyLimitExceeded"));
    assert!(err.message.contains("at most 3"), "{}", err.message);
    assert_eq!(world.vaults.values().next().map(|v| v.access_policies.len()), Some(2), "all or nothing");
    world.update_access_policy(SUB, "rg", "kv", "add", &json!({"properties": {"accessPolicies": [entry(1)]}})).expect("an existing entry adds nothing");
}

#[test]
fn a_subscription_takes_at_most_its_role_assignments() {
    let mut world = world(0, "limits: {roleAssignmentsPerSubscription: 2}\n");
    let scope = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/secrets/s");
    let assignment = |principal: &str| json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"), "principalId": principal}});
    let name = |i: u8| format!("00000000-0000-0000-0000-0000000000{i:02}");
    world.put_role_assignment(&scope, &name(1), &assignment("p1")).expect("one");
    world.put_role_assignment(&scope, &name(2), &assignment("p2")).expect("two");
    let err = world.put_role_assignment(&scope, &name(3), &assignment("p3")).expect_err("three");
    assert_eq!((err.status, err.code.as_str(), err.message.as_str()), (400, "RoleAssignmentLimitExceeded", "No more role assignments can be created."));
    assert_eq!(world.put_role_assignment(&scope, &name(1), &assignment("p1")).map(|(status, _)| status).ok(), Some(200), "the same again is no new one");
}

#[test]
fn azures_numbers_are_the_default() {
    let world = world(0, "");
    assert_eq!(
        (world.limits.user_assigned_per_compute, world.limits.access_policies_per_vault, world.limits.role_assignments_per_subscription),
        (150, 1024, 4000)
    );
}
