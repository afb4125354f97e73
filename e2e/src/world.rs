//! The simulated Azure and cluster objects the scenarios share.

use crate::operator::{NODE_GROUP, SUBSCRIPTION, TENANT};
use kvbind_arm_sim::Simulator;
use serde_json::Value;

/// A user-assigned identity's ID.
pub fn uami(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

/// The simulator's key for an ID (lowercase, no leading slash).
pub fn key(id: &str) -> String {
    id.trim_start_matches('/').to_ascii_lowercase()
}

/// An AKS cluster's Azure side: `pools` VM scale sets that carry a system-assigned and a
/// foreign identity, `vms` availability-set VMs, and vault `kvname` (RBAC or access policies)
/// with someone else's access policy.
pub fn cluster(pools: &[&str], vms: &[&str], vault_rbac: bool) -> String {
    let foreign = uami("rg-identities", "team-foreign");
    let mut text = format!(
        "subscriptions:\n  - id: {SUBSCRIPTION}\n    resourceGroups:\n      - name: rg-identities\n        identities: [{{name: team-foreign}}]\n      - name: {NODE_GROUP}\n        scaleSets:\n"
    );
    for p in pools {
        text.push_str(&format!("          - {{name: {p}, systemAssigned: true, userAssigned: [\"{foreign}\"]}}\n"));
    }
    text.push_str("        virtualMachines:\n");
    for v in vms {
        text.push_str(&format!("          - {{name: {v}}}\n"));
    }
    text.push_str(&format!(
        "      - name: rg-vaults\n        vaults:\n          - name: kvname\n            rbac: {vault_rbac}\n            accessPolicies:\n              - {{tenantId: {TENANT}, objectId: 11111111-2222-3333-4444-555555555555, permissions: {{secrets: [get, list, set, delete]}}}}\n"
    ));
    text
}

/// Like [`cluster`], vault `kvname` holding the secrets `secrets` (for the data plane).
pub fn cluster_with_secrets(pools: &[&str], vault_rbac: bool, secrets: &[&str]) -> String {
    let vault = format!("            rbac: {vault_rbac}\n");
    cluster(pools, &[], vault_rbac).replacen(&vault, &format!("{vault}            secrets: [{}]\n", secrets.join(", ")), 1)
}

/// A SecretProviderClass for vault `kvname` with `objects` (each `(name, type, history)`).
pub fn class(name: &str, objects: &[(&str, &str, u32)]) -> String {
    let mut entries = String::new();
    for (object, kind, history) in objects {
        entries.push_str(&format!("        - |\n          objectName: {object}\n          objectType: {kind}\n          objectVersionHistory: {history}\n"));
    }
    format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: {name}\nspec:\n  provider: azure\n  parameters:\n    keyvaultName: kvname\n    tenantId: {TENANT}\n    objects: |\n      array:\n{entries}"
    )
}

/// An IdentityBinding that creates identity `identity` for classes `classes`, with extra
/// spec lines.
pub fn binding(name: &str, identity: &str, classes: &[&str], extra: &str) -> String {
    format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: {name}\nspec:\n  identity:\n    name: {identity}\n    resourceGroup: rg-identities\n  secretProviderClasses:\n    names: [{}]\n{extra}",
        classes.join(", ")
    )
}

/// A VM scale set's or VM's state in the simulator.
pub fn compute(sim: &Simulator, name: &str) -> Value {
    sim.snapshot()["compute"]
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| k.ends_with(&format!("/{}", name.to_ascii_lowercase()))).map(|(_, v)| v.clone()))
        .unwrap_or(Value::Null)
}

/// The user-assigned identity keys on a VM scale set or VM.
pub fn identities_on(sim: &Simulator, name: &str) -> Vec<String> {
    compute(sim, name)["userAssigned"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The access-policy entry of `principal` on vault `kvname`.
pub fn policy_of(sim: &Simulator, principal: &str) -> Option<Value> {
    let snapshot = sim.snapshot();
    let vault = snapshot["vaults"].as_object()?.values().find(|v| v["name"] == "kvname")?.clone();
    vault["accessPolicies"].as_array()?.iter().find(|p| p["objectId"] == principal).cloned()
}

/// The permissions of one kind in an access-policy entry, sorted.
pub fn perms(entry: &Option<Value>, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = entry
        .as_ref()
        .and_then(|e| e["permissions"][kind].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// The name AKS gives the Key Vault secrets provider add-on's identity of cluster `aks`.
pub const ADDON_IDENTITY: &str = "azurekeyvaultsecretsprovider-aks";

/// The ARM ID of the simulated AKS cluster of [`cluster_with_addon`].
pub fn managed_cluster_id() -> String {
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-aks/providers/Microsoft.ContainerService/managedClusters/aks")
}

/// [`cluster`] as AKS leaves it with the Key Vault secrets provider add-on on: managed
/// cluster `aks` in `rg-aks`, and the add-on's identity in the node resource group,
/// attached by AKS to every pool.
pub fn cluster_with_addon(pools: &[&str]) -> String {
    let addon = uami(NODE_GROUP, ADDON_IDENTITY);
    let foreign = uami("rg-identities", "team-foreign");
    let mut text =
        cluster(pools, &[], false).replace(&format!("userAssigned: [\"{foreign}\"]"), &format!("userAssigned: [\"{foreign}\", \"{addon}\"]")).replace(
            &format!("- name: {NODE_GROUP}\n        scaleSets:"),
            &format!("- name: {NODE_GROUP}\n        identities: [{{name: {ADDON_IDENTITY}}}]\n        scaleSets:"),
        );
    text.push_str(&format!(
        "      - name: rg-aks\n        managedClusters:\n          - {{name: aks, nodeResourceGroup: {NODE_GROUP}, keyVaultSecretsProvider: {ADDON_IDENTITY}}}\n"
    ));
    text
}

/// A BindingPolicy named `name` that selects only namespace `namespace`, with `spec`'s
/// further lines (indented two spaces, each ending in a newline).
pub fn namespace_policy(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: kvbind.io/v1alpha1\nkind: BindingPolicy\nmetadata:\n  name: {name}\nspec:\n  namespaceSelector:\n    matchLabels:\n      kubernetes.io/metadata.name: {namespace}\n{spec}"
    )
}
