//! AKS identity bindings (preview): instead of one federated credential per ServiceAccount,
//! an ARM identity binding maps the identity to this cluster once (AKS puts one shared
//! credential, `aks-identity-binding`, on the identity for every cluster), and a ClusterRole
//! with verb `use-managed-identity` on the identity's client ID, bound to the binding's
//! ServiceAccount, lets only that ServiceAccount's pods get tokens through AKS's proxy.
//!
//! Every name here is derived (the ARM binding from the installation and the identity, the
//! RBAC objects from the namespace, ServiceAccount and client ID), so what kvbind removes is
//! what it would have made, whatever a status says.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kvbind_api::FIELD_MANAGER;
use kvbind_api::identity_binding::AksIdentityBindingStatus;
use kvbind_azure::IdentityId;
use kvbind_azure::model::Identity;
use serde_json::json;

use super::absent::delete_if_present;
use super::azure_sync::Change;
use super::plan::federation::{API_GROUP, VERB, aks_binding_current, aks_rbac_current};
use crate::context::Context;
use crate::error::{BindingError, Step};

/// The federated credential AKS puts on an identity for all its identity bindings.
pub const SHARED_CREDENTIAL: &str = "aks-identity-binding";

fn digest(text: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, text.as_bytes()).simple().to_string()
}

/// Keeps letters, digits and hyphens, lowercased, within `room` characters.
fn readable(text: &str, room: usize) -> String {
    let kept: String = text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    kept[..kept.len().min(room)].to_owned()
}

/// The ARM identity binding's name for `identity` in this installation: one per identity and
/// cluster, ending in a digest of both so that two identities of one name in different
/// groups, or two clusters' operators, never share one.
pub fn arm_binding_name(installation: &str, identity: &IdentityId) -> String {
    let digest = &digest(&format!("{installation}/{}", identity.key()))[..12];
    format!("kvbind-{}-{digest}", readable(&identity.name, 63 - "kvbind--".len() - digest.len()))
}

/// The ClusterRole's (and its ClusterRoleBinding's) name for one ServiceAccount of one
/// namespace using one identity.
pub fn rbac_name(namespace: &str, service_account: &str, client_id: &str) -> String {
    let digest = &digest(&format!("{namespace}/{service_account}/{client_id}"))[..12];
    format!("kvbind-use-{}-{digest}", readable(&format!("{namespace}-{service_account}"), 200))
}

/// The ClusterRole that lets its subjects use identity `client_id` through AKS's proxy.
fn cluster_role(name: &str, namespace: &str, client_id: &str) -> serde_json::Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kvbind", "kvbind.io/namespace": namespace}},
        "rules": [{"apiGroups": [API_GROUP], "resources": [client_id], "verbs": [VERB]}],
    })
}

/// Its ClusterRoleBinding to the one ServiceAccount.
fn cluster_role_binding(name: &str, namespace: &str, service_account: &str) -> serde_json::Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kvbind", "kvbind.io/namespace": namespace}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    })
}

/// Binds `identity` to the cluster and lets `service_account` of `namespace` use it,
/// writing only what differs.
pub async fn bind(
    ctx: &Context,
    namespace: &str,
    service_account: &str,
    identity: &Identity,
    changes: &mut Vec<Change>,
) -> Result<AksIdentityBindingStatus, BindingError> {
    let cluster = ctx.config.managed_cluster.as_deref().ok_or(BindingError::NoManagedCluster)?;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(ctx.kube.client.clone(), namespace);
    accounts
        .get_opt(service_account)
        .await
        .map_err(|source| BindingError::Kube { action: "reading the ServiceAccount", source })?
        .ok_or_else(|| BindingError::ServiceAccountNotFound(service_account.to_owned()))?;

    let name = arm_binding_name(&ctx.config.installation, &identity.id);
    let found = match ctx.azure.identities.aks_binding(&name) {
        Some(known) => Some(known),
        None => {
            ctx.azure.arm.get_cluster_identity_binding(cluster, &name).await.map_err(BindingError::azure(Step::Nodes, "reading the AKS identity binding"))?
        }
    };
    let bound = match found {
        Some(found) if aks_binding_current(Some(&found), &identity.id) => found,
        _ => {
            let made = ctx
                .azure
                .arm
                .put_cluster_identity_binding(cluster, &name, &identity.id)
                .await
                .map_err(BindingError::azure(Step::Nodes, "creating the AKS identity binding"))?;
            changes.push(("AKSIdentityBindingCreated", format!("bound identity {} to the cluster (AKS identity binding {name})", identity.id.name)));
            made
        }
    };
    ctx.azure.identities.put_aks_binding(&name, &bound);

    let role = rbac_name(namespace, service_account, &identity.client_id);
    let roles: Api<ClusterRole> = Api::all(ctx.kube.client.clone());
    let role_bindings: Api<ClusterRoleBinding> = Api::all(ctx.kube.client.clone());
    let current_role = roles.get_opt(&role).await.map_err(|source| BindingError::Kube { action: "reading the ClusterRole", source })?;
    let current_binding = role_bindings.get_opt(&role).await.map_err(|source| BindingError::Kube { action: "reading the ClusterRoleBinding", source })?;
    if !aks_rbac_current(current_role.as_ref(), current_binding.as_ref(), &role, namespace, service_account, &identity.client_id) {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        roles
            .patch(&role, &apply, &Patch::Apply(cluster_role(&role, namespace, &identity.client_id)))
            .await
            .map_err(|source| BindingError::Kube { action: "applying the ClusterRole that lets the ServiceAccount use the identity", source })?;
        role_bindings
            .patch(&role, &apply, &Patch::Apply(cluster_role_binding(&role, namespace, service_account)))
            .await
            .map_err(|source| BindingError::Kube { action: "binding the ClusterRole to the ServiceAccount", source })?;
        changes.push((
            "ServiceAccountAllowed",
            format!("let ServiceAccount {service_account} use identity {} through AKS's token proxy (ClusterRole {role})", identity.id.name),
        ));
    }
    Ok(AksIdentityBindingStatus {
        resource_id: bound.id,
        oidc_issuer: bound.oidc_issuer.unwrap_or_default(),
        cluster_role: role,
        service_account: service_account.to_owned(),
    })
}

/// Removes the ClusterRole and ClusterRoleBinding that let `service_account` of `namespace`
/// use identity `client_id`; absent ones are success.
pub async fn disallow(ctx: &Context, namespace: &str, service_account: &str, client_id: &str, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    let name = rbac_name(namespace, service_account, client_id);
    let role_bindings: Api<ClusterRoleBinding> = Api::all(ctx.kube.client.clone());
    let unbound = delete_if_present(&role_bindings, &name).await.map_err(|source| BindingError::Kube { action: "deleting the ClusterRoleBinding", source })?;
    let roles: Api<ClusterRole> = Api::all(ctx.kube.client.clone());
    let removed = delete_if_present(&roles, &name).await.map_err(|source| BindingError::Kube { action: "deleting the ClusterRole", source })?;
    if unbound || removed {
        changes.push(("ServiceAccountDisallowed", format!("ServiceAccount {service_account} may no longer use the identity (ClusterRole {name} removed)")));
    }
    Ok(())
}

/// Removes this installation's ARM identity binding of `identity`, and, when kvbind made the
/// identity (`owned`), the shared credential AKS left on it: no other cluster's binding can
/// be using an identity this installation made for its own namespaces. On an adopted
/// identity the credential stays, as another cluster's binding may share it.
pub async fn unbind(ctx: &Context, identity: &IdentityId, owned: bool, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    let Some(cluster) = ctx.config.managed_cluster.as_deref() else {
        return Ok(());
    };
    let name = arm_binding_name(&ctx.config.installation, identity);
    let found =
        ctx.azure.arm.get_cluster_identity_binding(cluster, &name).await.map_err(BindingError::azure(Step::Nodes, "reading the AKS identity binding"))?;
    if found.is_some() {
        ctx.azure.arm.delete_cluster_identity_binding(cluster, &name).await.map_err(BindingError::azure(Step::Nodes, "deleting the AKS identity binding"))?;
        changes.push(("AKSIdentityBindingDeleted", format!("removed AKS identity binding {name} of identity {}", identity.name)));
    }
    ctx.azure.identities.forget_aks_binding(&name);
    if owned {
        ctx.azure
            .arm
            .delete_federated_credential(identity, SHARED_CREDENTIAL)
            .await
            .map_err(BindingError::azure(Step::Nodes, "deleting the credential AKS left on the identity"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn names_are_derived_valid_and_apart() {
        let id = |rg: &str, name: &str| {
            IdentityId::parse(&format!("/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"))
                .expect("valid")
        };
        let one = arm_binding_name("cluster-1", &id("rg-a", "Orders_Reader"));
        assert!(one.starts_with("kvbind-orders-reader-") && one.len() <= 63, "{one}");
        assert_ne!(one, arm_binding_name("cluster-1", &id("rg-b", "Orders_Reader")), "another group's identity of the same name");
        assert_ne!(one, arm_binding_name("cluster-2", &id("rg-a", "Orders_Reader")), "another cluster");
        assert_eq!(one, arm_binding_name("cluster-1", &id("RG-A", "orders_reader")), "ARM IDs are case-blind");
        let long = arm_binding_name("c", &id("rg", &"x".repeat(128)));
        assert!(long.len() <= 63 && long.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{long}");

        assert_ne!(rbac_name("team", "a-app", "c"), rbac_name("team-a", "app", "c"), "the split between namespace and ServiceAccount counts");
        assert_ne!(rbac_name("team", "app", "c1"), rbac_name("team", "app", "c2"));
        assert!(rbac_name("ns", &"s".repeat(253), "c").len() <= 253);
    }

    #[test]
    fn the_role_allows_only_the_identity_and_the_binding_only_the_service_account() {
        let role = cluster_role("r", "team-a", "client-1");
        assert_eq!(role["rules"], json!([{"apiGroups": [API_GROUP], "resources": ["client-1"], "verbs": [VERB]}]));
        let binding = cluster_role_binding("r", "team-a", "app");
        assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": "app", "namespace": "team-a"}]));
        assert_eq!(binding["roleRef"]["name"], "r");
    }
}
