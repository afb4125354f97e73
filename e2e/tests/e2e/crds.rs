//! The generated CRDs on a real API server: installed, validated by the server, explained.

use kvbind_e2e::{TestNamespace, control_plane};

fn binding(identity: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: kvbind.io/v1alpha1
kind: IdentityBinding
metadata:
  name: b
spec:
  identity:
{identity}
  secretProviderClasses:
    names: [spc]
{extra}"#
    )
}

#[track_caller]
fn assert_rejected(ns: &TestNamespace, yaml: &str, words: &[&str]) {
    let out = ns.kubectl_apply(yaml);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the server accepted:\n{yaml}");
    for word in words {
        assert!(stderr.contains(word), "rejection should mention {word:?}:\n{stderr}");
    }
}

#[tokio::test]
async fn a_valid_binding_is_accepted_with_defaults() {
    let ns = TestNamespace::new("crd-valid").await;
    let out = ns.kubectl_apply(&binding("    name: app-reader\n    resourceGroup: rg-id", ""));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ns.kubectl(&["get", "ib", "b", "-o", "jsonpath={.spec.deletionPolicy}/{.spec.rbacScope}"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Delete/Object");
}

#[tokio::test]
async fn an_adopted_identity_is_accepted() {
    let ns = TestNamespace::new("crd-adopt").await;
    let id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x";
    let out = ns.kubectl_apply(&binding(&format!("    resourceId: {id}"), "  deletionPolicy: Retain\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn the_server_rejects_invalid_bindings_naming_the_field() {
    let ns = TestNamespace::new("crd-invalid").await;
    let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x";
    assert_rejected(
        &ns,
        &binding(&format!("    name: app\n    resourceGroup: rg\n    resourceId: {id}"), ""),
        &["spec.identity", "exactly one of identity.name, identity.resourceId and identity.addon"],
    );
    assert_rejected(&ns, &binding("    name: app\n    resourceGroup: rg\n    addon: azureKeyvaultSecretsProvider", ""), &["spec.identity", "exactly one"]);
    assert_rejected(
        &ns,
        &binding("    addon: azureKeyvaultSecretsProvider", "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n"),
        &["spec", "spec.identity.addon works only in mode VMManagedIdentity"],
    );
    assert_rejected(
        &ns,
        &binding("    name: app\n    resourceGroup: rg", "  mode: AKSIdentityBinding\n"),
        &["spec", "spec.serviceAccount is required with modes WorkloadIdentity and AKSIdentityBinding"],
    );
    assert_rejected(
        &ns,
        &binding("    name: app\n    resourceGroup: rg", "  mode: AKSIdentityBinding\n  serviceAccount: {name: app}\n  secretStores: {names: [store]}\n"),
        &["spec", "spec.secretStores does not work with mode AKSIdentityBinding"],
    );
    assert_rejected(&ns, &binding("    resourceGroup: rg", ""), &["spec.identity", "exactly one"]);
    assert_rejected(&ns, &binding("    name: app", ""), &["spec.identity", "resourceGroup is required"]);
    assert_rejected(&ns, &binding("    name: -bad/name\n    resourceGroup: rg", ""), &["spec.identity.name", "should match"]);
    assert_rejected(&ns, &binding("    name: ab\n    resourceGroup: rg", ""), &["spec.identity.name", "at least 3"]);
    assert_rejected(
        &ns,
        &binding("    name: app\n    resourceGroup: rg", "  deletionPolicy: Orphan\n"),
        &["spec.deletionPolicy", "Unsupported value: \"Orphan\""],
    );
    assert_rejected(&ns, &binding("    name: app\n    resourceGroup: rg\n    subscriptionId: not-a-guid", ""), &["spec.identity.subscriptionId"]);
    assert_rejected(
        &ns,
        &binding("    name: app\n    resourceGroup: rg", "  keyVault:\n    resourceId: /subscriptions/s/vaults/x\n"),
        &["spec.keyVault.resourceId"],
    );
    let nodes = |expression: &str| binding("    name: app\n    resourceGroup: rg", &format!("  nodes:\n    matchExpressions:\n      - {expression}\n"));
    assert_rejected(&ns, &nodes("{key: pool, operator: Matches, values: [a]}"), &["spec.nodes.matchExpressions[0].operator", "Unsupported value"]);
    assert_rejected(&ns, &nodes("{key: pool, operator: In}"), &["spec.nodes.matchExpressions[0]", "values must be non-empty for In"]);
    assert_rejected(&ns, &nodes("{key: pool, operator: Exists, values: [a]}"), &["spec.nodes.matchExpressions[0]", "empty for Exists"]);
    assert_rejected(&ns, &nodes("{key: 'bad key!', operator: Exists}"), &["spec.nodes.matchExpressions[0].key", "should match"]);
}

#[tokio::test]
async fn a_tenant_cannot_make_a_binding_larger_than_its_limits() {
    let ns = TestNamespace::new("crd-limits").await;
    let many_classes = binding("    name: app\n    resourceGroup: rg", "").replace("names: [spc]", &format!("names: [{}]", vec!["c"; 65].join(", ")));
    assert_rejected(&ns, &many_classes, &["spec.secretProviderClasses.names", "must have at most 64 items"]);
    let tags: Vec<String> = (0..17).map(|i| format!("t{i}: v")).collect();
    assert_rejected(
        &ns,
        &binding(&format!("    name: app\n    resourceGroup: rg\n    tags: {{{}}}", tags.join(", ")), ""),
        &["spec.identity.tags", "at most 16"],
    );
    let long_value = format!("    name: app\n    resourceGroup: rg\n    tags: {{t: {}}}", "v".repeat(257));
    assert_rejected(&ns, &binding(&long_value, ""), &["spec.identity.tags.t", "may not be more than 256"]);
    let labels: Vec<String> = (0..33).map(|i| format!("l{i}: v")).collect();
    let selector = binding("    name: app\n    resourceGroup: rg", &format!("  nodes:\n    matchLabels: {{{}}}\n", labels.join(", ")));
    assert_rejected(&ns, &selector, &["spec.nodes.matchLabels", "at most 32"]);
}

#[tokio::test]
async fn kubectl_explain_prints_the_doc_comments() {
    let out = control_plane().kubectl_ok(&["explain", "identitybinding.spec"]).expect("explain works");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Gives the pods that mount some SecretProviderClasses"), "{text}");
    assert!(text.contains("deletionPolicy"), "{text}");
    let out = control_plane().kubectl_ok(&["explain", "identitybinding.spec.identity.resourceId"]).expect("explain works");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("never\n    deletes an adopted identity")
            || String::from_utf8_lossy(&out.stdout).contains("never deletes")
    );
}

#[tokio::test]
async fn printer_columns_show_in_kubectl_get() {
    let ns = TestNamespace::new("crd-columns").await;
    let out = ns.kubectl_apply(&binding("    name: app-reader\n    resourceGroup: rg-id", ""));
    assert!(out.status.success());
    let out = ns.kubectl(&["get", "identitybindings"]);
    let header = String::from_utf8_lossy(&out.stdout);
    let first = header.lines().next().unwrap_or_default();
    for column in ["NAME", "READY", "IDENTITY", "CLIENT ID", "AGE"] {
        assert!(first.contains(column), "{first}");
    }
}
