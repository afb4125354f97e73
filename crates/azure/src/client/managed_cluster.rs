//! The identity of an AKS cluster's Key Vault secrets provider add-on, read from the managed
//! cluster (`ManagedClusters_Get`). kvbind links no Container Service crate for one GET
//! (azure_mgmt_containerservice 0.21 is the retired line's, and its newest api-version
//! predates the add-on's current profile shape); the request is made by hand and only
//! `properties.addonProfiles.azureKeyvaultSecretsProvider` is read.

use azure_core::Method;
use serde_json::Value;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::ids::IdentityId;
use crate::model::AddonIdentity;

/// The api-version kvbind reads managed clusters at.
pub const MANAGED_CLUSTER_API_VERSION: &str = "2025-10-01";

impl ArmClient {
    pub(super) async fn read_addon_identity(&self, cluster: &str) -> Result<Option<AddonIdentity>, AzureError> {
        let operation = "GetManagedCluster";
        let url = self.raw.url(cluster, MANAGED_CLUSTER_API_VERSION).map_err(|e| classify(&e, operation, cluster))?;
        let body = self.raw.send(Method::Get, url, None).await.map_err(|e| classify(&e, operation, cluster))?.json();
        addon_identity(&body).map_err(|message| AzureError::Invalid { operation, resource: cluster.to_owned(), code: "UnreadableAddonProfile".into(), message })
    }
}

/// The add-on's identity in a managed cluster's body: `None` when the add-on is off or AKS
/// has not made its identity yet.
pub fn addon_identity(cluster: &Value) -> Result<Option<AddonIdentity>, String> {
    let Some(profile) = cluster.pointer("/properties/addonProfiles/azureKeyvaultSecretsProvider") else {
        return Ok(None);
    };
    if profile.get("enabled").and_then(Value::as_bool) != Some(true) {
        return Ok(None);
    }
    let identity = profile.get("identity");
    let field = |name: &str| identity.and_then(|i| i.get(name)).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let (Some(resource_id), Some(client_id), Some(principal_id)) = (field("resourceId"), field("clientId"), field("objectId")) else {
        return Ok(None);
    };
    let id = IdentityId::parse(&resource_id).map_err(|e| format!("addonProfiles.azureKeyvaultSecretsProvider.identity.resourceId: {e}"))?;
    Ok(Some(AddonIdentity { id, client_id, principal_id }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_add_on_identity_is_read_only_when_the_add_on_is_on_and_has_one() {
        let id = "/subscriptions/s/resourcegroups/MC_rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azurekeyvaultsecretsprovider-prod";
        let on = json!({"properties": {"addonProfiles": {"azureKeyvaultSecretsProvider": {"enabled": true, "identity": {"resourceId": id, "clientId": "c", "objectId": "o"}}}}});
        let found = addon_identity(&on).expect("readable").expect("an identity");
        assert_eq!((found.id.name.as_str(), found.client_id.as_str(), found.principal_id.as_str()), ("azurekeyvaultsecretsprovider-prod", "c", "o"));
        let off = json!({"properties": {"addonProfiles": {"azureKeyvaultSecretsProvider": {"enabled": false, "identity": {"resourceId": id, "clientId": "c", "objectId": "o"}}}}});
        assert_eq!(addon_identity(&off), Ok(None));
        assert_eq!(addon_identity(&json!({"properties": {"addonProfiles": {}}})), Ok(None));
        let creating = json!({"properties": {"addonProfiles": {"azureKeyvaultSecretsProvider": {"enabled": true}}}});
        assert_eq!(addon_identity(&creating), Ok(None), "AKS has not made it yet");
        let wrong = json!({"properties": {"addonProfiles": {"azureKeyvaultSecretsProvider": {"enabled": true, "identity": {"resourceId": "/x", "clientId": "c", "objectId": "o"}}}}});
        assert!(addon_identity(&wrong).is_err());
    }
}
