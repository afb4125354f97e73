//! Bad input gets a condition and an Event that name the field, and no Azure write.

use kvbind_e2e::operator::{Scenario, TENANT, seed};

use kvbind_e2e::world::{binding, class, cluster};

fn spc(name: &str, parameters: &str) -> String {
    format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\nspec:\n  provider: azure\n  parameters:\n{parameters}"
    )
}

const OBJECTS: &str = "    objects: |\n      array:\n        - |\n          objectName: db\n          objectType: secret\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_names_its_field_and_changes_nothing_in_azure() {
    let s = Scenario::start("bad-input", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let tenant = format!("    tenantId: {TENANT}\n");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("bad-yaml", spc("bad-yaml", &format!("    keyvaultName: kvname\n{tenant}    objects: \"array: [\"\n")), "InvalidObjects", "objects is not valid YAML"),
        ("bad-type", spc("bad-type", &format!("    keyvaultName: kvname\n{tenant}    objects: |\n      array:\n        - |\n          objectName: db\n          objectType: blob\n")), "InvalidObjects", "objects.array[0].objectType"),
        ("no-vault-name", spc("no-vault-name", &format!("{tenant}{OBJECTS}")), "InvalidParameters", "spec.parameters.keyvaultName is required"),
        (
            "huge-objects",
            spc("huge-objects", &format!("    keyvaultName: kvname\n{tenant}    objects: \"{}\"\n", "x".repeat(kvbind_controller::MAX_OBJECTS_BYTES + 1))),
            "ObjectsTooLong",
            "spec.parameters.objects is 131073 bytes",
        ),
        ("no-such-vault", spc("no-such-vault", &format!("    keyvaultName: nope\n{tenant}{OBJECTS}")), "VaultNotFound", "keyvaultName \"nope\""),
        ("two-modes", spc("two-modes", &format!("    keyvaultName: kvname\n    usePodIdentity: \"true\"\n    useAzureTokenProxy: \"true\"\n{tenant}{OBJECTS}")), "ConflictingTokenMode", "spec.parameters.usePodIdentity is \"true\", set by someone else"),
        ("proxy-by-hand", spc("proxy-by-hand", &format!("    keyvaultName: kvname\n    useAzureTokenProxy: \"true\"\n{tenant}{OBJECTS}")), "ConflictingTokenMode", "useAzureTokenProxy"),
        ("near-miss", spc("near-miss", &format!("    keyVaultName: kvname\n{tenant}{OBJECTS}")), "NearMissParameterKey", "spec.parameters.keyVaultName is not a key the Azure provider reads, which ignores it (keys are case-sensitive); did you mean keyvaultName?"),
        ("other-identity", spc("other-identity", &format!("    keyvaultName: kvname\n    useVMManagedIdentity: \"true\"\n    userAssignedIdentityID: 9d1c5a4e-0000-0000-0000-000000000000\n{tenant}{OBJECTS}")), "IdentityConflict", "userAssignedIdentityID"),
        ("wrong-tenant", spc("wrong-tenant", &format!("    keyvaultName: kvname\n    tenantId: 00000000-0000-0000-0000-00000000dead\n{OBJECTS}")), "TenantMismatch", "tenantID"),
        ("wrong-cloud", spc("wrong-cloud", &format!("    keyvaultName: kvname\n    cloudName: AzureChinaCloud\n{tenant}{OBJECTS}")), "CloudMismatch", "cloudName"),
        ("not-azure", "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: not-azure\nspec:\n  provider: vault\n  parameters:\n    roleName: x\n".to_owned(), "NotAzureProvider", "spec.provider"),
    ];
    for (name, yaml, _, _) in &cases {
        s.apply(yaml);
        s.apply(&binding(name, &format!("{name}-reader"), &[name], ""));
    }
    s.wait_all("Stalled").await;

    for (name, _, reason, words) in &cases {
        let (name, reason, words) = (*name, *reason, *words);
        let b = format!("identitybinding/{name}");
        assert_eq!(s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].status}"), "False", "{name}");
        assert_eq!(s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].reason}"), reason, "{name}");
        let message = s.jsonpath(&b, "{.status.conditions[?(@.type==\"Ready\")].message}");
        assert!(message.contains(words), "{name}: {message:?} should name {words:?}");
        assert_eq!(s.jsonpath(&b, "{.status.conditions[?(@.type==\"Reconciling\")].status}"), "", "{name}: not Reconciling while Stalled");
        s.eventually(&format!("a {reason} event for {name}"), |s| s.event_reasons(name).iter().any(|r| r == reason)).await;
    }
    assert_eq!(s.sim.counters().writes, 0, "bad input must not reach Azure: {:?}", s.sim.counters());

    // A fix is picked up without a restart.
    s.apply(&spc("no-vault-name", &format!("    keyvaultName: kvname\n{tenant}{OBJECTS}")));
    s.wait_condition("no-vault-name", "Ready").await;
    assert_eq!(s.jsonpath("identitybinding/no-vault-name", "{.status.conditions[?(@.type==\"Stalled\")].status}"), "");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misleading_class_parameter_is_named_on_a_ready_binding_until_it_is_fixed() {
    let s = Scenario::start("lint", seed(&cluster(&["pool-vmss"], &[], false))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    let tenants = format!("    tenantID: {TENANT}\n    tenantId: 00000000-0000-0000-0000-00000000dead\n");
    s.apply(&spc("app", &format!("    keyvaultName: kvname\n    userAssignedIdentityId: 9d1c5a4e-0000-0000-0000-000000000000\n{tenants}{OBJECTS}")));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;

    let lint = |field: &str| s.jsonpath("identitybinding/app", &format!("{{.status.conditions[?(@.type==\"ClassLint\")].{field}}}"));
    assert_eq!((lint("status").as_str(), lint("reason").as_str()), ("True", "ParameterWarnings"));
    let message = lint("message");
    assert!(message.contains("SecretProviderClass app: spec.parameters.userAssignedIdentityId is not a key the Azure provider reads"), "{message}");
    assert!(
        message.contains("did you mean userAssignedIdentityID?") && message.contains("tenantId and spec.parameters.tenantID name different directories"),
        "{message}"
    );
    s.eventually("a ParameterWarnings event", |s| s.event_reasons("app").iter().any(|r| r == "ParameterWarnings")).await;
    assert!(s.sim.counters().writes > 0, "a warning does not stop the binding");

    // Fixed, the condition goes.
    s.apply(&spc("app", &format!("    keyvaultName: kvname\n    tenantID: {TENANT}\n{OBJECTS}")));
    s.eventually("the ClassLint condition to go", |_| lint("status").is_empty()).await;
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"Ready\")].status}"), "True");
    s.stop().await;
}

#[tokio::test]
async fn the_server_refuses_an_invalid_identity_name_before_kvbind_sees_it() {
    let ns = kvbind_e2e::TestNamespace::new("bad-name").await;
    let out = ns.kubectl_apply(&binding("x", "-not/valid", &["app"], ""));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.identity.name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_azure_permission_is_named_in_the_condition() {
    let mut seed = seed(&cluster(&["pool-vmss"], &[], true));
    seed.clients[0].actions = vec![
        "Microsoft.ManagedIdentity/*".into(),
        "Microsoft.Compute/*".into(),
        "Microsoft.KeyVault/*".into(),
        "Microsoft.Authorization/roleAssignments/read".into(),
    ];
    let s = Scenario::start("no-permission", seed).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Stalled").await;
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"AccessGranted\")].reason}"), "AzurePermissionMissing");
    let message = s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"AccessGranted\")].message}");
    assert!(message.contains("Microsoft.Authorization/roleAssignments/write"), "{message}");
    assert_eq!(s.jsonpath("identitybinding/app", "{.status.conditions[?(@.type==\"IdentityReady\")].status}"), "True");
    s.eventually("a warning event", |s| s.event_reasons("app").iter().any(|r| r == "AzurePermissionMissing")).await;
    s.stop().await;
}
