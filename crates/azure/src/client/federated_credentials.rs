//! Federated identity credentials of user-assigned identities, through azure_mgmt_msi as
//! generated; only the delete goes through `.send()`, because the generated call cannot
//! tell the 200 of a deletion from the 204 of an absent credential.

use azure_mgmt_msi::package_2023_01_31::models;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::ids::IdentityId;
use crate::model::FederatedCredential;

impl ArmClient {
    pub(super) async fn read_federated_credential(&self, identity: &IdentityId, name: &str) -> Result<Option<FederatedCredential>, AzureError> {
        let result = self.msi.federated_identity_credentials_client().get(&identity.subscription, &identity.resource_group, &identity.name, name).await;
        match result {
            Ok(found) => Ok(Some(to_credential(name, found))),
            Err(e) => match classify(&e, "GetFederatedCredential", &credential_id(identity, name)) {
                AzureError::NotFound { code, .. } if code != "ResourceGroupNotFound" => Ok(None),
                other => Err(other),
            },
        }
    }

    pub(super) async fn write_federated_credential(&self, identity: &IdentityId, credential: &FederatedCredential) -> Result<(), AzureError> {
        let body = models::FederatedIdentityCredential {
            properties: Some(models::FederatedIdentityCredentialProperties::new(
                credential.issuer.clone(),
                credential.subject.clone(),
                credential.audiences.clone(),
            )),
            ..models::FederatedIdentityCredential::new()
        };
        self.msi
            .federated_identity_credentials_client()
            .create_or_update(&identity.subscription, &identity.resource_group, &identity.name, &credential.name, body)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, "PutFederatedCredential", &credential_id(identity, &credential.name)))
    }

    pub(super) async fn remove_federated_credential(&self, identity: &IdentityId, name: &str) -> Result<(), AzureError> {
        let result =
            self.msi.federated_identity_credentials_client().delete(&identity.subscription, &identity.resource_group, &identity.name, name).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match classify(&e, "DeleteFederatedCredential", &credential_id(identity, name)) {
                AzureError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

fn credential_id(identity: &IdentityId, name: &str) -> String {
    format!("{identity}/federatedIdentityCredentials/{name}")
}

fn to_credential(name: &str, found: models::FederatedIdentityCredential) -> FederatedCredential {
    let properties = found.properties;
    FederatedCredential {
        name: found.proxy_resource.resource.name.unwrap_or_else(|| name.to_owned()),
        issuer: properties.as_ref().map(|p| p.issuer.clone()).unwrap_or_default(),
        subject: properties.as_ref().map(|p| p.subject.clone()).unwrap_or_default(),
        audiences: properties.map(|p| p.audiences).unwrap_or_default(),
    }
}
