//! The vaults a binding's classes name, found by name in the configured subscriptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use kvbind_api::KeyVaultObject;
use kvbind_azure::VaultId;
use kvbind_azure::model::Vault;

use crate::context::Context;
use crate::error::{BindingError, Step};

/// Finds each vault by name (or the binding's explicit vault) and reads it, checking its
/// tenant against the classes'.
pub async fn resolve_vaults(
    ctx: &Context,
    wanted: &BTreeMap<String, (String, Vec<KeyVaultObject>)>,
    explicit: Option<&str>,
    origins: &BTreeMap<String, crate::error::VaultOrigin>,
) -> Result<BTreeMap<String, Arc<Vault>>, BindingError> {
    let mut out = BTreeMap::new();
    for (name, (tenant, _)) in wanted {
        let origin = origins.get(name).cloned().unwrap_or_else(|| crate::error::VaultOrigin::Class(String::new()));
        let not_found = || BindingError::VaultNotFound { origin: origin.clone(), vault: name.clone(), subscriptions: ctx.config.subscriptions.join(", ") };
        let mut id = match explicit {
            Some(raw) => VaultId::parse(raw).map_err(|e| BindingError::Azure {
                step: Step::Access,
                action: "reading spec.keyVault.resourceId",
                source: kvbind_azure::AzureError::Invalid {
                    operation: "ParseVaultId",
                    resource: raw.to_owned(),
                    code: "InvalidResourceId".into(),
                    message: e.to_string(),
                },
            })?,
            None => find_vault(ctx, name).await?.ok_or_else(not_found)?,
        };
        let vault = match ctx.azure.vaults.read(&id).await {
            // The vault found by this name is gone (deleted, or made again elsewhere): the
            // name is searched for again.
            Err(kvbind_azure::AzureError::NotFound { .. }) if explicit.is_none() => {
                ctx.azure.vaults.forget_name(name);
                id = find_vault(ctx, name).await?.ok_or_else(not_found)?;
                ctx.azure.vaults.read(&id).await
            }
            read => read,
        }
        .map_err(BindingError::azure(Step::Access, "reading the vault"))?;
        if !tenant.is_empty() && !vault.tenant_id.eq_ignore_ascii_case(tenant) {
            return Err(BindingError::TenantMismatch { origin, vault: id.to_string(), expected: tenant.clone(), found: vault.tenant_id.clone() });
        }
        out.insert(name.clone(), vault);
    }
    Ok(out)
}

/// The vault a name stands for, searched for in each configured subscription once and
/// kept until its vault answers 404 (see [`resolve_vaults`]): a converged cluster lists no
/// vaults, and every binding of a new vault name asking at once costs one search.
pub(super) async fn find_vault(ctx: &Context, name: &str) -> Result<Option<VaultId>, BindingError> {
    let search = async {
        for subscription in &ctx.config.subscriptions {
            if let Some(id) = ctx.azure.arm.find_vault(subscription, name).await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    };
    ctx.azure.vaults.named(name, search).await.map_err(BindingError::azure(Step::Access, "searching for the vault"))
}
