//! User-assigned identities, through azure_mgmt_msi as generated (its model and its
//! non-LRO calls are right for these operations).

use std::collections::BTreeMap;

use azure_mgmt_msi::package_2023_01_31::models;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::ids::IdentityId;
use crate::model::Identity;

impl ArmClient {
    pub(super) async fn read_identity(&self, id: &IdentityId) -> Result<Option<Identity>, AzureError> {
        let result = self.msi.user_assigned_identities_client().get(&id.subscription, &id.resource_group, &id.name).await;
        match result {
            Ok(identity) => Ok(Some(to_identity(id, identity))),
            Err(e) => match classify(&e, "GetIdentity", &id.to_string()) {
                AzureError::NotFound { code, .. } if code != "ResourceGroupNotFound" => Ok(None),
                other => Err(other),
            },
        }
    }

    pub(super) async fn put_identity(&self, id: &IdentityId, location: &str, tags: &BTreeMap<String, String>) -> Result<Identity, AzureError> {
        let mut tracked = models::TrackedResource::new(location.to_owned());
        tracked.tags = Some(serde_json::to_value(tags).unwrap_or_default());
        let identity = self
            .msi
            .user_assigned_identities_client()
            .create_or_update(&id.subscription, &id.resource_group, &id.name, models::Identity::new(tracked))
            .await
            .map_err(|e| classify(&e, "CreateIdentity", &id.to_string()))?;
        Ok(to_identity(id, identity))
    }

    pub(super) async fn remove_identity(&self, id: &IdentityId) -> Result<(), AzureError> {
        let result = self.msi.user_assigned_identities_client().delete(&id.subscription, &id.resource_group, &id.name).send().await;
        match result {
            // 200 deleted, 204 already gone: both are the state asked for.
            Ok(_) => Ok(()),
            Err(e) => match classify(&e, "DeleteIdentity", &id.to_string()) {
                AzureError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

fn to_identity(requested: &IdentityId, identity: models::Identity) -> Identity {
    let id = identity.tracked_resource.resource.id.as_deref().and_then(|raw| IdentityId::parse(raw).ok()).unwrap_or_else(|| requested.clone());
    let properties = identity.properties.unwrap_or_default();
    let tags = identity.tracked_resource.tags.and_then(|t| serde_json::from_value::<BTreeMap<String, String>>(t).ok()).unwrap_or_default();
    Identity {
        id,
        location: identity.tracked_resource.location,
        tags,
        client_id: properties.client_id.unwrap_or_default(),
        principal_id: properties.principal_id.unwrap_or_default(),
        tenant_id: properties.tenant_id.unwrap_or_default(),
    }
}
