//! AKS managed clusters (`Microsoft.ContainerService/managedClusters`), served only as far as
//! `ManagedClusters_Get` shows them: the node resource group and the Key Vault secrets
//! provider add-on, whose identity AKS creates in the node resource group and exposes under
//! `properties.addonProfiles.azureKeyvaultSecretsProvider.identity`.

use serde::Serialize;
use serde_json::{Value, json};

use super::{ArmError, World, identity_key, key, not_found};

/// One managed cluster.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterResource {
    /// Its subscription.
    pub subscription: String,
    /// Its resource group.
    pub resource_group: String,
    /// Its name.
    pub name: String,
    /// Its region.
    pub location: String,
    /// The node resource group (`MC_…`).
    pub node_resource_group: String,
    /// The name of the add-on's identity in the node resource group, when the add-on is on.
    pub key_vault_secrets_provider: Option<String>,
}

/// The key of a managed cluster.
pub fn cluster_key(sub: &str, rg: &str, name: &str) -> String {
    key(&format!("subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"))
}

impl World {
    /// `ManagedClusters_Get`.
    pub fn get_managed_cluster(&self, sub: &str, rg: &str, name: &str) -> Result<Value, ArmError> {
        self.require_group(sub, rg)?;
        let cluster =
            self.managed_clusters.get(&cluster_key(sub, rg, name)).ok_or_else(|| not_found("Microsoft.ContainerService/managedClusters", name, rg))?;
        let id = format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{}", cluster.name);
        let mut addons = serde_json::Map::new();
        if let Some(identity) = &cluster.key_vault_secrets_provider {
            let resource_id = format!(
                "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity}",
                cluster.subscription, cluster.node_resource_group
            );
            // AKS reports the identity it made; deleting it by hand leaves the profile naming it.
            let found = self.identities.get(&identity_key(&cluster.subscription, &cluster.node_resource_group, identity));
            let mut profile = json!({"enabled": true, "config": {"enableSecretRotation": "false", "rotationPollInterval": "2m"}});
            profile["identity"] = json!({
                "resourceId": resource_id,
                "clientId": found.map(|i| i.client_id.clone()),
                "objectId": found.map(|i| i.principal_id.clone()),
            });
            addons.insert("azureKeyvaultSecretsProvider".to_owned(), profile);
        }
        Ok(json!({
            "id": id,
            "name": cluster.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "location": cluster.location,
            "properties": {
                "provisioningState": "Succeeded",
                "nodeResourceGroup": cluster.node_resource_group,
                "addonProfiles": addons,
            },
        }))
    }
}
