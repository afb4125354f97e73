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

/// One AKS identity binding (`managedClusters/{cluster}/identityBindings/{name}`, preview).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityBindingResource {
    /// Its name as created.
    pub name: String,
    /// The managed cluster's key.
    pub cluster: String,
    /// The identity's key.
    pub identity: String,
    /// The issuer of the identity's shared credential.
    pub oidc_issuer: String,
}

/// The name AKS gives the one federated credential it puts on an identity for all its
/// identity bindings, in every cluster; AKS never removes it.
pub const SHARED_CREDENTIAL: &str = "aks-identity-binding";

/// The subject of AKS's shared credential. The public documents name the credential but
/// not its subject; this one is the simulator's.
pub const SHARED_SUBJECT: &str = "system:serviceaccount:kube-system:aks-identity-binding";

const BINDING_TYPE: &str = "Microsoft.ContainerService/managedClusters/identityBindings";

fn binding_key(cluster_key: &str, name: &str) -> String {
    format!("{cluster_key}/identitybindings/{}", name.to_ascii_lowercase())
}

impl World {
    fn cluster_of(&self, sub: &str, rg: &str, cluster: &str) -> Result<(String, &ManagedClusterResource), ArmError> {
        self.require_group(sub, rg)?;
        let k = cluster_key(sub, rg, cluster);
        let found = self.managed_clusters.get(&k).ok_or_else(|| {
            ArmError::new(
                404,
                "ParentResourceNotFound",
                format!("Can not perform requested operation on nested resource. Parent resource '{cluster}' not found."),
            )
        })?;
        Ok((k, found))
    }

    /// The region of a managed cluster (where its operations are polled), or `eastus`.
    pub fn managed_cluster_location(&self, sub: &str, rg: &str, cluster: &str) -> String {
        self.managed_clusters.get(&cluster_key(sub, rg, cluster)).map_or_else(|| "eastus".to_owned(), |c| c.location.clone())
    }

    /// `IdentityBindings_Get`.
    pub fn get_identity_binding(&self, sub: &str, rg: &str, cluster: &str, name: &str) -> Result<Value, ArmError> {
        let (k, _) = self.cluster_of(sub, rg, cluster)?;
        let binding = self.identity_bindings.get(&binding_key(&k, name)).ok_or_else(|| not_found(BINDING_TYPE, &format!("{cluster}/{name}"), rg))?;
        Ok(self.identity_binding_json(sub, rg, cluster, binding, "Succeeded"))
    }

    /// `IdentityBindings_CreateOrUpdate`, a long-running operation: 201 when created, 200
    /// when replaced, with the operation to poll. The identity gets AKS's shared federated
    /// credential, made once per identity whatever the cluster.
    pub fn put_identity_binding(&mut self, sub: &str, rg: &str, cluster: &str, name: &str, body: &Value) -> Result<(u16, Value, String), ArmError> {
        let (k, found) = self.cluster_of(sub, rg, cluster)?;
        let location = found.location.clone();
        super::check_name(name, 63)?;
        let invalid = |message: String| ArmError::new(400, "InvalidParameter", message);
        let resource_id = body.pointer("/properties/managedIdentity/resourceId").and_then(Value::as_str).unwrap_or_default();
        let parts: Vec<&str> = resource_id.split('/').filter(|p| !p.is_empty()).collect();
        let [_, id_sub, _, id_rg, _, provider, kind, id_name] = parts.as_slice() else {
            return Err(invalid(format!("properties.managedIdentity.resourceId '{resource_id}' is not a user-assigned identity's resource ID.")));
        };
        if !provider.eq_ignore_ascii_case("Microsoft.ManagedIdentity") || !kind.eq_ignore_ascii_case("userAssignedIdentities") {
            return Err(invalid(format!("properties.managedIdentity.resourceId '{resource_id}' is not a user-assigned identity's resource ID.")));
        }
        let identity = identity_key(id_sub, id_rg, id_name);
        let Some(target) = self.identities.get_mut(&identity) else {
            return Err(invalid(format!("The managed identity '{resource_id}' was not found.")));
        };
        let issuer = format!("https://{location}.oic.prod-aks.azure.com/{}/{}/", self.tenant_id, target.principal_id);
        target.federated_credentials.entry(SHARED_CREDENTIAL.to_owned()).or_insert_with(|| super::federated::FederatedCredentialResource {
            name: SHARED_CREDENTIAL.to_owned(),
            issuer: issuer.clone(),
            subject: SHARED_SUBJECT.to_owned(),
            audiences: vec!["api://AzureADTokenExchange".to_owned()],
        });
        let key = binding_key(&k, name);
        let existed = self.identity_bindings.contains_key(&key);
        let binding = IdentityBindingResource { name: name.to_owned(), cluster: k, identity, oidc_issuer: issuer };
        self.identity_bindings.insert(key, binding.clone());
        let op = self.start_operation();
        let state = if existed { "Updating" } else { "Creating" };
        Ok((if existed { 200 } else { 201 }, self.identity_binding_json(sub, rg, cluster, &binding, state), op))
    }

    /// `IdentityBindings_Delete`, a long-running operation: 202 with the operation, or 204
    /// when there is none. AKS's shared credential stays on the identity.
    pub fn delete_identity_binding(&mut self, sub: &str, rg: &str, cluster: &str, name: &str) -> Result<Option<String>, ArmError> {
        let (k, _) = self.cluster_of(sub, rg, cluster)?;
        Ok(self.identity_bindings.remove(&binding_key(&k, name)).map(|_| self.start_operation()))
    }

    fn identity_binding_json(&self, sub: &str, rg: &str, cluster: &str, binding: &IdentityBindingResource, state: &str) -> Value {
        let identity = self.identities.get(&binding.identity);
        json!({
            "id": format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{cluster}/identityBindings/{}", binding.name),
            "name": binding.name,
            "type": BINDING_TYPE,
            "properties": {
                "managedIdentity": {
                    "resourceId": identity.map(|i| format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}", i.subscription, i.resource_group, i.name)),
                    "clientId": identity.map(|i| i.client_id.clone()),
                    "objectId": identity.map(|i| i.principal_id.clone()),
                    "tenantId": self.tenant_id,
                },
                "oidcIssuer": {"oidcIssuerUrl": binding.oidc_issuer},
                "provisioningState": state,
            },
        })
    }
}
