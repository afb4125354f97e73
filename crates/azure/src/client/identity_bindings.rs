//! AKS identity bindings (`Microsoft.ContainerService/managedClusters/identityBindings`, a
//! preview child resource of the managed cluster): one user-assigned identity made usable in
//! one cluster through AKS's token proxy. No azure_mgmt crate has it, so the requests are
//! made by hand at the preview api-version and followed by [`super::lro`].

use azure_core::Method;
use serde_json::{Value, json};

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::ids::IdentityId;
use crate::model::ClusterIdentityBinding;

/// The api-version of the identity bindings preview kvbind speaks.
pub const IDENTITY_BINDINGS_API_VERSION: &str = "2025-10-02-preview";

/// The ARM ID of identity binding `name` under managed cluster `cluster`.
pub fn binding_id(cluster: &str, name: &str) -> String {
    format!("{}/identityBindings/{name}", cluster.trim_end_matches('/'))
}

impl ArmClient {
    pub(super) async fn read_cluster_identity_binding(&self, cluster: &str, name: &str) -> Result<Option<ClusterIdentityBinding>, AzureError> {
        let operation = "GetIdentityBinding";
        let id = binding_id(cluster, name);
        let url = self.raw.url(&id, IDENTITY_BINDINGS_API_VERSION).map_err(|e| classify(&e, operation, &id))?;
        match self.raw.send(Method::Get, url, None).await {
            Ok(response) => read_binding(&response.json()).map(Some).map_err(|message| invalid(operation, &id, message)),
            Err(e) => match classify(&e, operation, &id) {
                // The cluster's absence is an error to report, not an absent binding.
                AzureError::NotFound { code, .. } if code != "ResourceGroupNotFound" && code != "ParentResourceNotFound" => Ok(None),
                other => Err(other),
            },
        }
    }

    pub(super) async fn write_cluster_identity_binding(&self, cluster: &str, name: &str, identity: &IdentityId) -> Result<ClusterIdentityBinding, AzureError> {
        let operation = "PutIdentityBinding";
        let id = binding_id(cluster, name);
        let url = self.raw.url(&id, IDENTITY_BINDINGS_API_VERSION).map_err(|e| classify(&e, operation, &id))?;
        let body = json!({"properties": {"managedIdentity": {"resourceId": identity.to_string()}}});
        let first = self.raw.send(Method::Put, url.clone(), Some(&body)).await.map_err(|e| classify(&e, operation, &id))?;
        super::lro::follow(&self.raw, first, url, self.lro, operation, &id).await?;
        self.read_cluster_identity_binding(cluster, name).await?.ok_or_else(|| AzureError::Transient {
            operation,
            resource: id.clone(),
            message: "the identity binding was not there after its creation succeeded".to_owned(),
        })
    }

    pub(super) async fn remove_cluster_identity_binding(&self, cluster: &str, name: &str) -> Result<(), AzureError> {
        let operation = "DeleteIdentityBinding";
        let id = binding_id(cluster, name);
        let url = self.raw.url(&id, IDENTITY_BINDINGS_API_VERSION).map_err(|e| classify(&e, operation, &id))?;
        match self.raw.send(Method::Delete, url.clone(), None).await {
            Ok(first) => super::lro::follow(&self.raw, first, url, self.lro, operation, &id).await,
            Err(e) => match classify(&e, operation, &id) {
                AzureError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

fn invalid(operation: &'static str, id: &str, message: String) -> AzureError {
    AzureError::Invalid { operation, resource: id.to_owned(), code: "UnreadableIdentityBinding".into(), message }
}

/// An identity binding's body, as far as kvbind reads it.
pub fn read_binding(body: &Value) -> Result<ClusterIdentityBinding, String> {
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let id = text("/id").ok_or("no id")?;
    let identity = text("/properties/managedIdentity/resourceId").ok_or("no properties.managedIdentity.resourceId")?;
    let identity = IdentityId::parse(&identity).map_err(|e| format!("properties.managedIdentity.resourceId: {e}"))?;
    Ok(ClusterIdentityBinding {
        id,
        identity,
        client_id: text("/properties/managedIdentity/clientId"),
        oidc_issuer: text("/properties/oidcIssuer/oidcIssuerUrl"),
        provisioning_state: text("/properties/provisioningState").unwrap_or_else(|| "Succeeded".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_binding_reads_as_the_rest_spec_example_shows_it() {
        let identity =
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/identity1";
        let body = json!({
            "id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1/identityBindings/identitybinding1",
            "properties": {
                "managedIdentity": {"clientId": "c", "objectId": "o", "resourceId": identity, "tenantId": "t"},
                "oidcIssuer": {"oidcIssuerUrl": "https://oidc-endpoint"},
                "provisioningState": "Succeeded"
            }
        });
        let read = read_binding(&body).expect("readable");
        assert_eq!(read.identity.name, "identity1");
        assert_eq!((read.client_id.as_deref(), read.oidc_issuer.as_deref()), (Some("c"), Some("https://oidc-endpoint")));
        assert!(read_binding(&json!({"id": "x", "properties": {}})).is_err(), "an identity binding names its identity");
        assert_eq!(binding_id("/c/", "b"), "/c/identityBindings/b");
    }
}
