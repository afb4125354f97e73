//! `kvbind status` (also `kubectl kvbind status` when installed as `kubectl-kvbind`): one
//! tree per binding, from identity to node pools to vault grants to SecretProviderClasses,
//! with every condition that is not as it should be shown inline.

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use kvbind_api::condition::{CLASS_LINT, READY, RECONCILING, STALLED};
use kvbind_api::identity_binding::{AttachmentOrigin, VaultAccessModel};
use kvbind_api::{ConditionStatus, IdentityBinding};

/// The tree for one binding.
pub fn render(binding: &IdentityBinding) -> String {
    let status = binding.status.clone().unwrap_or_default();
    let conditions = &status.conditions;
    let ready = kvbind_api::condition::find(conditions, READY);
    let headline = match ready {
        Some(c) => format!("Ready={:?} ({})", c.status, c.reason),
        None => "not reconciled yet".to_owned(),
    };
    let mut out = format!("{}/{}  {headline}\n", binding.namespace().unwrap_or_default(), binding.name_any());
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();

    let identity = match &status.identity {
        Some(i) => format!(
            "identity {}  client ID {}  ({})",
            i.name,
            i.client_id.as_deref().unwrap_or("?"),
            if i.created_by_kvbind { "managed by kvbind" } else { "adopted or found" }
        ),
        None => "identity (not known yet)".to_owned(),
    };
    sections.push((identity, Vec::new()));
    sections.push((
        "node pools".to_owned(),
        status
            .attachments
            .iter()
            .map(|a| {
                let name = a.resource_id.rsplit('/').next().unwrap_or_default();
                let how = match a.origin {
                    AttachmentOrigin::Attached => "attached by kvbind",
                    AttachmentOrigin::Found => "found attached",
                };
                format!("{name}  {how}")
            })
            .collect(),
    ));
    if let Some(w) = &status.workload_identity {
        sections.push((
            "workload identity".to_owned(),
            vec![format!("ServiceAccount {}  federated credential {}", w.service_account, w.federated_credential), format!("issuer {}", w.issuer)],
        ));
    }
    if let Some(b) = &status.aks_identity_binding {
        sections.push((
            "AKS identity binding".to_owned(),
            vec![
                format!("ServiceAccount {}  ClusterRole {}", b.service_account, b.cluster_role),
                format!("{}  issuer {}", b.resource_id.rsplit('/').next().unwrap_or_default(), b.oidc_issuer),
            ],
        ));
    }
    sections.push((
        "vault grants".to_owned(),
        status
            .grants
            .iter()
            .map(|g| {
                let name = g.vault_id.rsplit('/').next().unwrap_or_default();
                let model = match g.model {
                    VaultAccessModel::AccessPolicy => "access policy",
                    VaultAccessModel::Rbac => "RBAC",
                };
                let mut parts = Vec::new();
                for (kind, perms) in [("secrets", &g.secrets), ("keys", &g.keys), ("certificates", &g.certificates)] {
                    if !perms.is_empty() {
                        parts.push(format!("{kind}: {}", perms.join("+")));
                    }
                }
                if !g.role_assignments.is_empty() {
                    parts.push(format!("{} role assignment(s)", g.role_assignments.len()));
                }
                format!("{name} ({model})  {}", parts.join("  "))
            })
            .collect(),
    ));
    sections.push((
        "SecretProviderClasses".to_owned(),
        status.secret_provider_classes.iter().map(|c| format!("{}  {}", c.name, if c.updated { "carries the client ID" } else { "not updated" })).collect(),
    ));
    if !status.secret_stores.is_empty() {
        sections.push((
            "SecretStores".to_owned(),
            status.secret_stores.iter().map(|s| format!("{}  {}", s.name, if s.updated { "carries the identity" } else { "not updated" })).collect(),
        ));
    }
    let problems: Vec<String> = conditions
        .iter()
        .filter(|c| c.r#type != READY)
        .filter(|c| match c.r#type.as_str() {
            RECONCILING | STALLED | CLASS_LINT => c.status == ConditionStatus::True,
            _ => c.status != ConditionStatus::True,
        })
        .map(|c| format!("{} {:?} {}: {}", c.r#type, c.status, c.reason, c.message))
        .collect();
    if !problems.is_empty() {
        sections.push(("attention".to_owned(), problems));
    }

    let last = sections.len() - 1;
    for (i, (title, items)) in sections.iter().enumerate() {
        let (branch, stem) = if i == last { ("└─", "   ") } else { ("├─", "│  ") };
        out.push_str(&format!("{branch} {title}\n"));
        for (j, item) in items.iter().enumerate() {
            let leaf = if j + 1 == items.len() { "└─" } else { "├─" };
            out.push_str(&format!("{stem}{leaf} {item}\n"));
        }
    }
    out
}

/// Prints the tree of every binding in `namespace` (all namespaces when `None`).
pub async fn status(namespace: Option<&str>) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let api: Api<IdentityBinding> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let bindings = api.list(&ListParams::default()).await?;
    if bindings.items.is_empty() {
        println!("no IdentityBindings");
    }
    for binding in &bindings.items {
        println!("{}", render(binding));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kvbind_api::Condition;
    use kvbind_api::identity_binding::{AttachmentStatus, IdentityBindingStatus, IdentityStatus, SecretStoreStatus, VaultGrantStatus};

    use super::*;

    #[test]
    fn the_tree_shows_each_part_and_the_failing_condition_inline() {
        let mut binding: IdentityBinding = serde_json::from_value(serde_json::json!({
            "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
            "metadata": {"name": "app", "namespace": "team-a"},
            "spec": {"identity": {"name": "app-reader", "resourceGroup": "rg"}, "secretProviderClasses": {"names": ["app"]}}
        }))
        .expect("binding");
        let at = "2026-01-01T00:00:00Z";
        binding.status = Some(IdentityBindingStatus {
            identity: Some(IdentityStatus {
                name: "app-reader".into(),
                resource_id: "/x".into(),
                client_id: Some("cid".into()),
                principal_id: None,
                created_by_kvbind: true,
            }),
            attachments: vec![AttachmentStatus { resource_id: "/s/vmss/pool-a".into(), origin: AttachmentOrigin::Attached }],
            grants: vec![VaultGrantStatus {
                vault_id: "/v/kv".into(),
                model: VaultAccessModel::AccessPolicy,
                secrets: vec!["get".into()],
                keys: vec![],
                certificates: vec![],
                role_assignments: vec![],
                list_reason: None,
            }],
            secret_stores: vec![SecretStoreStatus { name: "billing-vault".into(), updated: true }],
            aks_identity_binding: Some(kvbind_api::identity_binding::AksIdentityBindingStatus {
                resource_id: "/c/identityBindings/kvbind-app-reader-0123".into(),
                oidc_issuer: "https://issuer/".into(),
                cluster_role: "kvbind-use-team-a-app-1".into(),
                service_account: "app".into(),
            }),
            conditions: vec![
                Condition::new("Ready", ConditionStatus::False, "AzureThrottled", "throttled", Some(1), at),
                Condition::new("AccessGranted", ConditionStatus::False, "AzureThrottled", "vault kv: retry in 7s", Some(1), at),
                Condition::new("Reconciling", ConditionStatus::True, "AzureThrottled", "throttled", Some(1), at),
                Condition::new("ClassLint", ConditionStatus::True, "NearMissParameterKey", "SecretProviderClass app: spec.parameters.clientId", Some(1), at),
                Condition::new("NodeWideAccess", ConditionStatus::True, "ReachableFromEveryPodOnPools", "every pod", Some(1), at),
            ],
            ..IdentityBindingStatus::default()
        });
        let tree = render(&binding);
        assert!(tree.starts_with("team-a/app  Ready=False (AzureThrottled)"), "{tree}");
        assert!(tree.contains("identity app-reader  client ID cid  (managed by kvbind)"), "{tree}");
        assert!(tree.contains("pool-a  attached by kvbind"), "{tree}");
        assert!(tree.contains("ServiceAccount app  ClusterRole kvbind-use-team-a-app-1"), "{tree}");
        assert!(tree.contains("kvbind-app-reader-0123  issuer https://issuer/"), "{tree}");
        assert!(tree.contains("kv (access policy)  secrets: get"), "{tree}");
        assert!(tree.contains("├─ SecretStores\n│  └─ billing-vault  carries the identity"), "{tree}");
        assert!(tree.contains("AccessGranted False AzureThrottled: vault kv: retry in 7s"), "{tree}");
        assert!(tree.contains("└─ attention"), "{tree}");
        assert!(tree.contains("ClassLint True NearMissParameterKey: SecretProviderClass app: spec.parameters.clientId"), "the lint's warnings: {tree}");
        assert!(!tree.contains("NodeWideAccess"), "a notice that only informs is not for attention: {tree}");
    }
}
