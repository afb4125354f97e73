//! The seed page's story, told by the demo: each manual step the Azure provider's
//! user-assigned identity page asks for, beside what kvbind did for it and the ARM
//! requests that took. Pure: it reads the bindings' status and the simulator's counters.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::{AttachmentOrigin, VaultAccessModel};

/// One manual step of the seed page, and the ARM operations that do its work.
struct ManualStep {
    /// The command the page has you type.
    command: &'static str,
    /// The ARM operation IDs (as the simulator counts them) that belong to this step.
    operations: &'static [&'static str],
    /// What kvbind did for one binding, one line each.
    did: fn(&IdentityBinding) -> Vec<String>,
}

const STEPS: [ManualStep; 4] = [
    ManualStep {
        command: "az identity create -g RG -n NAME",
        operations: &["UserAssignedIdentities_Get", "UserAssignedIdentities_CreateOrUpdate", "UserAssignedIdentities_Update"],
        did: identity,
    },
    ManualStep {
        command: "az vmss identity assign -g MC_RG -n POOL --identities ID  (az vm identity assign for VMs)",
        operations: &["VirtualMachineScaleSets_Get", "VirtualMachineScaleSets_Update", "VirtualMachines_Get", "VirtualMachines_Update", "Operations_Get"],
        did: attachments,
    },
    ManualStep {
        command: "az keyvault set-policy -n KV --secret-permissions get --key-permissions get --spn CLIENT_ID",
        operations: &[
            "Vaults_Get",
            "Vaults_ListBySubscription",
            "Vaults_UpdateAccessPolicy",
            "RoleAssignments_ListForScope",
            "RoleAssignments_Get",
            "RoleAssignments_Create",
        ],
        did: grants,
    },
    ManualStep { command: "copy the client ID into the SecretProviderClass's userAssignedIdentityID", operations: &[], did: classes },
];

fn identity(binding: &IdentityBinding) -> Vec<String> {
    let Some(identity) = binding.status.as_ref().and_then(|s| s.identity.as_ref()) else {
        return vec!["no identity yet".to_owned()];
    };
    let (how, note) = if identity.created_by_kvbind { ("created", "") } else { ("adopted", " (kvbind never deletes it)") };
    let group = identity.resource_id.split('/').nth(4).unwrap_or("?");
    vec![format!("{how} {} in {group}{note}, client ID {}", identity.name, identity.client_id.as_deref().unwrap_or("?"))]
}

fn attachments(binding: &IdentityBinding) -> Vec<String> {
    let status = binding.status.as_ref();
    if let Some(federation) = status.and_then(|s| s.workload_identity.as_ref()) {
        return vec![format!("attached to no pool: federated with ServiceAccount {}", federation.service_account)];
    }
    let lines: Vec<String> = status
        .into_iter()
        .flat_map(|s| s.attachments.iter())
        .map(|a| {
            let how = match a.origin {
                AttachmentOrigin::Attached => "attached to",
                AttachmentOrigin::Found => "found already on",
            };
            format!("{how} {}, keeping its other identities", a.resource_id.rsplit('/').next().unwrap_or_default())
        })
        .collect();
    if lines.is_empty() { vec!["attached to no pool".to_owned()] } else { lines }
}

fn grants(binding: &IdentityBinding) -> Vec<String> {
    binding
        .status
        .iter()
        .flat_map(|s| s.grants.iter())
        .map(|g| {
            let vault = g.vault_id.rsplit('/').next().unwrap_or_default();
            let mut parts = Vec::new();
            for (kind, permissions) in [("secrets", &g.secrets), ("keys", &g.keys), ("certificates", &g.certificates)] {
                if !permissions.is_empty() {
                    parts.push(format!("{kind} {}", permissions.join("+")));
                }
            }
            match g.model {
                VaultAccessModel::AccessPolicy => format!("{vault}: access policy, {}", parts.join(", ")),
                VaultAccessModel::Rbac => format!("{vault}: {} role assignment(s) on the objects' own scopes, {}", g.role_assignments.len(), parts.join(", ")),
            }
        })
        .collect()
}

fn classes(binding: &IdentityBinding) -> Vec<String> {
    let client_id = binding.status.as_ref().and_then(|s| s.identity.as_ref()).and_then(|i| i.client_id.as_deref()).unwrap_or("?");
    binding
        .status
        .iter()
        .flat_map(|s| s.secret_provider_classes.iter())
        .map(|c| if c.updated { format!("wrote {client_id} into {} (server-side apply)", c.name) } else { format!("{} not written yet", c.name) })
        .collect()
}

/// The four manual steps, each with what kvbind did per binding and the ARM requests
/// counted for it; then the totals.
pub fn render(bindings: &[IdentityBinding], by_operation: &BTreeMap<String, u64>, reads: u64, writes: u64) -> String {
    let mut out = String::new();
    for (number, step) in STEPS.iter().enumerate() {
        out.push_str(&format!("{}. by hand: {}\n", number + 1, step.command));
        for binding in bindings {
            for (i, line) in (step.did)(binding).iter().enumerate() {
                let label = if i == 0 { format!("{}:", binding.name_any()) } else { String::new() };
                out.push_str(&format!("   kvbind  {label:<16} {line}\n"));
            }
        }
        let counted: Vec<String> = step.operations.iter().filter_map(|op| by_operation.get(*op).map(|n| format!("{op} {n}"))).collect();
        let arm = if step.operations.is_empty() {
            "none: the client ID goes to the Kubernetes API".to_owned()
        } else if counted.is_empty() {
            "none".to_owned()
        } else {
            counted.join(", ")
        };
        out.push_str(&format!("   ARM     {arm}\n"));
    }
    out.push_str(&format!("ARM requests in all: {reads} reads, {writes} writes\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(status: serde_json::Value) -> IdentityBinding {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
            "metadata": {"name": "kvname-reader", "namespace": "default"},
            "spec": {"identity": {"name": "kvname-reader", "resourceGroup": "rg-identities"}, "secretProviderClasses": {"names": ["azure-kvname-user-msi"]}},
            "status": status,
        }))
        .expect("binding")
    }

    #[test]
    fn each_manual_step_shows_what_kvbind_did_and_its_arm_requests() {
        let b = binding(serde_json::json!({
            "identity": {"name": "kvname-reader", "resourceId": "/subscriptions/s/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kvname-reader", "clientId": "cid-1", "createdByKvbind": true},
            "attachments": [{"resourceId": "/subscriptions/s/resourceGroups/mc/providers/Microsoft.Compute/virtualMachineScaleSets/aks-apps-vmss", "origin": "Attached"}],
            "grants": [{"vaultId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kvname", "model": "AccessPolicy", "secrets": ["get"], "keys": ["get"]}],
            "secretProviderClasses": [{"name": "azure-kvname-user-msi", "updated": true}],
        }));
        let counters = BTreeMap::from([
            ("UserAssignedIdentities_CreateOrUpdate".to_owned(), 1),
            ("VirtualMachineScaleSets_Update".to_owned(), 2),
            ("Vaults_UpdateAccessPolicy".to_owned(), 1),
        ]);
        let story = render(&[b], &counters, 7, 4);
        assert!(story.contains("1. by hand: az identity create -g RG -n NAME\n"), "{story}");
        assert!(story.contains("kvname-reader:   created kvname-reader in rg-identities, client ID cid-1"), "{story}");
        assert!(story.contains("ARM     UserAssignedIdentities_CreateOrUpdate 1\n"), "{story}");
        assert!(story.contains("attached to aks-apps-vmss, keeping its other identities"), "{story}");
        assert!(story.contains("ARM     VirtualMachineScaleSets_Update 2\n"), "{story}");
        assert!(story.contains("kvname: access policy, secrets get, keys get"), "{story}");
        assert!(story.contains("wrote cid-1 into azure-kvname-user-msi"), "{story}");
        assert!(story.contains("ARM     none: the client ID goes to the Kubernetes API"), "{story}");
        assert!(story.ends_with("ARM requests in all: 7 reads, 4 writes\n"), "{story}");
    }

    #[test]
    fn a_binding_not_yet_seen_says_so_instead_of_inventing_work() {
        let b = binding(serde_json::json!({"observedGeneration": 0}));
        let story = render(&[b], &BTreeMap::new(), 0, 0);
        assert!(story.contains("no identity yet"), "{story}");
        assert!(story.contains("attached to no pool"), "{story}");
    }
}
