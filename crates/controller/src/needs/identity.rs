//! The identity a binding names: created by kvbind, adopted by ID, or the AKS add-on's.

use kvbind_api::identity_binding::IdentitySpec;
use kvbind_azure::{IdentityId, ResourceKind};

use crate::addon::AddonLookup;
use crate::config::ControllerConfig;
use crate::error::BindingError;

/// The identity a binding uses, and whether it adopts it (rather than creating it).
pub fn identity_of(spec: &IdentitySpec, config: &ControllerConfig) -> Result<(IdentityId, bool), BindingError> {
    if spec.addon.is_some() {
        return match config.addon_identity.current() {
            AddonLookup::Found(addon) => Ok((addon.id, true)),
            AddonLookup::NotConfigured => Err(BindingError::InvalidIdentity(
                "addon: the operator was given no managed cluster ID (--managed-cluster-id, chart value controller.managedClusterId)".to_owned(),
            )),
            AddonLookup::NotEnabled => Err(BindingError::InvalidIdentity(format!(
                "addon: managed cluster {} has no azureKeyvaultSecretsProvider identity; enable the add-on (az aks enable-addons --addons azure-keyvault-secrets-provider) and kvbind sees it within one resync",
                config.managed_cluster.as_deref().unwrap_or_default()
            ))),
            AddonLookup::Unreadable(why) => Err(BindingError::InvalidIdentity(format!("addon: the managed cluster could not be read: {why}"))),
        };
    }
    if let Some(id) = &spec.resource_id {
        let id = IdentityId::parse(id).map_err(|e| BindingError::InvalidIdentity(e.to_string()))?;
        return Ok((id, true));
    }
    let name = spec.name.as_deref().ok_or_else(|| BindingError::InvalidIdentity("set name or resourceId".to_owned()))?;
    let valid = (3..=128).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(BindingError::InvalidIdentity(format!(
            "name {name:?} is not a valid identity name (3-128 letters, digits, hyphens and underscores, starting with a letter or digit)"
        )));
    }
    let group = spec.resource_group.as_deref().ok_or_else(|| BindingError::InvalidIdentity("resourceGroup is required with name".to_owned()))?;
    let subscription = spec
        .subscription_id
        .as_deref()
        .or(config.subscriptions.first().map(String::as_str))
        .ok_or_else(|| BindingError::InvalidIdentity("subscriptionId is required: the operator has no default subscription".to_owned()))?;
    let id = IdentityId::new(ResourceKind::UserAssignedIdentity, subscription, group, name).map_err(|e| BindingError::InvalidIdentity(e.to_string()))?;
    Ok((id, false))
}

/// A cheap first look, before parsing: every binding checks every other binding, so with a
/// thousand bindings this decides most pairs without building a resource ID.
pub fn names_identity(spec: &IdentitySpec, name: &str) -> bool {
    match (&spec.name, &spec.resource_id) {
        (Some(own), _) => own.eq_ignore_ascii_case(name),
        (None, Some(id)) => id.rsplit('/').next().is_some_and(|last| last.eq_ignore_ascii_case(name)),
        // The add-on's identity is known by its ID alone; identity_of decides.
        (None, None) => spec.addon.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use kvbind_api::identity_binding::AddonIdentity;
    use kvbind_azure::model::AddonIdentity as FoundAddon;

    use super::*;
    use crate::addon::AddonIdentitySource;

    fn addon_spec() -> IdentitySpec {
        IdentitySpec { addon: Some(AddonIdentity::AzureKeyvaultSecretsProvider), ..IdentitySpec::default() }
    }

    fn config(lookup: AddonLookup) -> ControllerConfig {
        ControllerConfig {
            managed_cluster: Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks".to_owned()),
            addon_identity: AddonIdentitySource::fixed(lookup),
            ..ControllerConfig::default()
        }
    }

    #[test]
    fn the_add_on_identity_is_adopted_as_the_cluster_shows_it_or_refused_naming_why() {
        let id = IdentityId::parse(
            "/subscriptions/s/resourceGroups/MC_rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/azurekeyvaultsecretsprovider-aks",
        )
        .expect("valid");
        let found = FoundAddon { id: id.clone(), client_id: "c".into(), principal_id: "p".into() };
        assert_eq!(identity_of(&addon_spec(), &config(AddonLookup::Found(found))).expect("found"), (id, true), "always adoption");
        let refusal = |lookup| identity_of(&addon_spec(), &config(lookup)).expect_err("refused").to_string();
        assert!(refusal(AddonLookup::NotEnabled).contains("az aks enable-addons"));
        assert!(refusal(AddonLookup::Unreadable("403 AuthorizationFailed".into())).contains("403 AuthorizationFailed"));
        let unset = identity_of(&addon_spec(), &ControllerConfig::default()).expect_err("refused").to_string();
        assert!(unset.contains("--managed-cluster-id"), "{unset}");
    }
}
