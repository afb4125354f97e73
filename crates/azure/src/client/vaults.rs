//! Key Vaults and their access policies, through azure_mgmt_keyvault as generated
//! (api-version 2019-09-01 of the hybrid profile, the only stable one in 0.21).

use std::collections::BTreeSet;

use azure_mgmt_keyvault::profile_hybrid_2020_09_01::models;
use futures::StreamExt;

use super::ArmClient;
use super::transport::classify;
use crate::error::AzureError;
use crate::ids::VaultId;
use crate::model::{AccessPolicy, AccessPolicyOp, Permissions, Vault};

impl ArmClient {
    pub(super) async fn read_vault(&self, id: &VaultId) -> Result<Vault, AzureError> {
        let vault =
            self.keyvault.vaults_client().get(&id.resource_group, &id.name, &id.subscription).await.map_err(|e| classify(&e, "GetVault", &id.to_string()))?;
        let properties = vault.properties;
        Ok(Vault {
            id: id.clone(),
            tenant_id: properties.tenant_id,
            // Absent means access policies for api-versions before 2026-02-01.
            rbac_authorization: properties.enable_rbac_authorization.unwrap_or(false),
            vault_uri: properties.vault_uri,
            access_policies: properties.access_policies.into_iter().map(from_entry).collect(),
        })
    }

    pub(super) async fn search_vault(&self, subscription: &str, name: &str) -> Result<Option<VaultId>, AzureError> {
        let scope = format!("/subscriptions/{subscription}");
        let mut pages = self.keyvault.vaults_client().list_by_subscription(subscription).into_stream();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e, "ListVaults", &scope))?;
            for vault in page.value {
                let matches = vault.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name));
                if let (true, Some(id)) = (matches, vault.id.as_deref()) {
                    return Ok(VaultId::parse(id).ok());
                }
            }
        }
        Ok(None)
    }

    pub(super) async fn change_access_policy(&self, vault: &VaultId, op: AccessPolicyOp, entries: &[AccessPolicy]) -> Result<(), AzureError> {
        let parameters = models::VaultAccessPolicyParameters::new(models::VaultAccessPolicyProperties::new(entries.iter().map(to_entry).collect()));
        self.keyvault
            .vaults_client()
            .update_access_policy(&vault.resource_group, &vault.name, op.as_str(), parameters, &vault.subscription)
            .await
            .map_err(|e| classify(&e, "UpdateAccessPolicy", &vault.to_string()))?;
        Ok(())
    }
}

fn set(values: Vec<String>) -> BTreeSet<String> {
    values.into_iter().map(|v| v.to_ascii_lowercase()).collect()
}

fn from_entry(entry: models::AccessPolicyEntry) -> AccessPolicy {
    AccessPolicy {
        tenant_id: entry.tenant_id,
        object_id: entry.object_id,
        permissions: Permissions {
            secrets: set(entry.permissions.secrets),
            keys: set(entry.permissions.keys),
            certificates: set(entry.permissions.certificates),
            storage: set(entry.permissions.storage),
        },
    }
}

fn to_entry(policy: &AccessPolicy) -> models::AccessPolicyEntry {
    let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    let mut permissions = models::Permissions::new();
    permissions.secrets = list(&policy.permissions.secrets);
    permissions.keys = list(&policy.permissions.keys);
    permissions.certificates = list(&policy.permissions.certificates);
    permissions.storage = list(&policy.permissions.storage);
    models::AccessPolicyEntry::new(policy.tenant_id.clone(), policy.object_id.clone(), permissions)
}
