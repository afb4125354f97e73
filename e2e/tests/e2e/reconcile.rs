//! The mission, end to end: IdentityBinding and SecretProviderClass in, Azure as the manual
//! steps would leave it out, against the real API server and the ARM simulator.

use kvbind_e2e::operator::{NODE_GROUP, SUBSCRIPTION, Scenario, seed};

use kvbind_e2e::world::{binding, class, cluster, identities_on, key, perms, policy_of, uami};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_scenario_leaves_azure_as_the_manual_steps_would() {
    let s = Scenario::start("seed", seed(&cluster(&["aks-system-vmss", "aks-apps-vmss"], &[], false))).await;
    s.node("system-0", &Scenario::vmss_node("aks-system-vmss", 0), &[]).await;
    s.node("apps-0", &Scenario::vmss_node("aks-apps-vmss", 0), &[]).await;
    s.apply(
        &std::fs::read_to_string(kvbind_e2e::repo_root().join("examples/seed/secretproviderclass.yaml"))
            .expect("example")
            .replace("kvname\"", "kvname\"\n    somethingElse: \"kept\""),
    );
    s.apply(&binding("kvname-reader", "kvname-reader", &["azure-kvname-user-msi"], ""));
    s.wait_condition("kvname-reader", "Ready").await;

    let client_id = s.jsonpath("identitybinding/kvname-reader", "{.status.identity.clientId}");
    let principal = s.jsonpath("identitybinding/kvname-reader", "{.status.identity.principalId}");
    assert!(!client_id.is_empty() && !principal.is_empty());

    for vmss in ["aks-system-vmss", "aks-apps-vmss"] {
        let ids = identities_on(&s.sim, vmss);
        assert!(ids.contains(&key(&uami("rg-identities", "kvname-reader"))), "{vmss} carries the identity: {ids:?}");
        assert!(ids.contains(&key(&uami("rg-identities", "team-foreign"))), "{vmss} kept the foreign identity");
        assert!(kvbind_e2e::world::compute(&s.sim, vmss)["systemPrincipal"].is_string(), "{vmss} kept its system-assigned identity");
    }
    let ours = policy_of(&s.sim, &principal);
    assert_eq!(perms(&ours, "secrets"), ["get"]);
    assert_eq!(perms(&ours, "keys"), ["get"]);
    assert!(perms(&ours, "certificates").is_empty(), "no cert grant: {ours:?}");
    assert!(policy_of(&s.sim, "11111111-2222-3333-4444-555555555555").is_some(), "the other entry is untouched");

    let spc = "secretproviderclass/azure-kvname-user-msi";
    assert_eq!(s.jsonpath(spc, "{.spec.parameters.userAssignedIdentityID}"), client_id);
    assert_eq!(s.jsonpath(spc, "{.spec.parameters.useVMManagedIdentity}"), "true");
    assert_eq!(s.jsonpath(spc, "{.spec.parameters.somethingElse}"), "kept");
    for condition in ["IdentityReady", "NodesAssigned", "AccessGranted", "SecretProviderClassesUpdated"] {
        assert_eq!(s.jsonpath("identitybinding/kvname-reader", &format!("{{.status.conditions[?(@.type==\"{condition}\")].status}}")), "True", "{condition}");
    }
    assert_eq!(
        s.jsonpath("identitybinding/kvname-reader", "{.status.observedGeneration}"),
        s.jsonpath("identitybinding/kvname-reader", "{.metadata.generation}")
    );
    assert_eq!(s.jsonpath("identitybinding/kvname-reader", "{.status.attachments[*].origin}"), "Attached Attached");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_set_nodes_and_an_rbac_vault_get_object_scoped_roles() {
    let s = Scenario::start("avset-rbac", seed(&cluster(&[], &["aks-agentpool-0", "aks-agentpool-1"], true))).await;
    for vm in ["aks-agentpool-0", "aks-agentpool-1"] {
        let provider_id = format!("azure:///subscriptions/{SUBSCRIPTION}/resourceGroups/{NODE_GROUP}/providers/Microsoft.Compute/virtualMachines/{vm}");
        s.node(vm, &provider_id, &[]).await;
    }
    s.apply(&class("app", &[("db-password", "secret", 0), ("signing", "key", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;

    for vm in ["aks-agentpool-0", "aks-agentpool-1"] {
        assert_eq!(identities_on(&s.sim, vm), vec![key(&uami("rg-identities", "app-reader"))], "{vm}");
        assert!(kvbind_e2e::world::compute(&s.sim, vm)["systemPrincipal"].is_null(), "{vm} had no system identity and got none");
    }
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    let snapshot = s.sim.snapshot();
    let assignments: Vec<(String, String)> = snapshot["roleAssignments"]
        .as_object()
        .expect("map")
        .values()
        .filter(|a| a["principalId"] == principal.as_str())
        .map(|a| {
            (
                a["scope"].as_str().unwrap_or_default().to_owned(),
                a["roleDefinitionId"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(assignments.len(), 2, "{assignments:?}");
    assert!(
        assignments.iter().any(|(scope, role)| scope.ends_with("/vaults/kvname/secrets/db-password") && role == kvbind_azure::roles::KEY_VAULT_SECRETS_USER)
    );
    assert!(assignments.iter().any(|(scope, role)| scope.ends_with("/vaults/kvname/keys/signing") && role == kvbind_azure::roles::KEY_VAULT_READER));
    assert!(policy_of(&s.sim, &principal).is_none(), "no access policy on an RBAC vault");
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.grants[0].model}"), "Rbac");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_history_adds_list_for_that_object_type_only() {
    let s = Scenario::start("history", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 3), ("signing", "key", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;
    let principal = s.jsonpath("identitybinding/app", "{.status.identity.principalId}");
    let ours = policy_of(&s.sim, &principal);
    assert_eq!(perms(&ours, "secrets"), ["get", "list"]);
    assert_eq!(perms(&ours, "keys"), ["get"]);
    let reason = s.jsonpath("identitybinding/app", "{.status.grants[0].listReason}");
    assert!(reason.contains("db-password") && !reason.contains("signing"), "{reason}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_for_as_long_as_arm_asks() {
    use kvbind_arm_sim::{Fault, FaultRule};
    let s = Scenario::start("throttled", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.sim.set_faults(vec![FaultRule {
        operation: "VirtualMachineScaleSets_Update".into(),
        path_contains: None,
        fault: Fault::Throttle { retry_after_seconds: 2 },
        count: Some(2),
    }]);
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    // In progress while the PATCH is handed off, then throttled once it comes back 429.
    s.wait_condition("app", "Reconciling").await;
    s.eventually("the throttled PATCH named in NodesAssigned", |s| {
        s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"NodesAssigned\")].reason}") == "AzureThrottled"
    })
    .await;
    s.wait_condition("app", "Ready").await;
    let patches: Vec<_> = s.sim.requests().into_iter().filter(|r| r.operation == "VirtualMachineScaleSets_Update").collect();
    assert_eq!(patches.iter().map(|r| r.status).collect::<Vec<_>>(), vec![429, 429, 200], "{patches:?}");
    for pair in patches.windows(2) {
        assert!(pair[1].at_ms >= pair[0].at_ms + 2000, "a retry came {} ms after a 429 that asked for 2 s", pair[1].at_ms - pair[0].at_ms);
    }
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"Reconciling\")].status}"), "", "Reconciling goes once converged");
    s.stop().await;
}
