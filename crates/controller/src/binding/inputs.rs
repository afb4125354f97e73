//! What a binding asks for, read from the cluster caches only (no Azure call): its
//! identity, its SecretProviderClasses and their objects, and the VM scale sets and VMs of
//! its nodes. Bad input fails here, before anything is written anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::class_lint::{Finding, Severity, lint};
use kvbind_api::external_secrets::{ExternalSecret, SecretStore, fields, objects_read_through, reads_through, vault_name_of};
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::identity_binding::IdentitySpec;
use kvbind_api::secret_provider_class::{AzureParameters, SecretProviderClass, keys};
use kvbind_api::{IdentityBinding, KeyVaultObject};
use kvbind_azure::{Cloud, ComputeId, IdentityId, ResourceKind};

use crate::addon::AddonLookup;
use crate::caches::cache_trim::kvbind_owns_parameter;
use crate::config::ControllerConfig;
use crate::context::Context;
use crate::error::{BindingError, VaultOrigin};
use crate::external_secrets::kvbind_owns_field;
use crate::policy::Judge;
use crate::selector::matches;

/// One SecretProviderClass a binding serves.
#[derive(Debug, Clone)]
pub struct ClassInput {
    /// Its name.
    pub name: String,
    /// `keyvaultName`.
    pub vault_name: String,
    /// `tenantID` (or `tenantId`).
    pub tenant_id: String,
    /// The parsed objects.
    pub objects: Vec<KeyVaultObject>,
    /// `userAssignedIdentityID` as it is now.
    pub identity_id: Option<String>,
    /// `useVMManagedIdentity` is already true.
    pub uses_vm_identity: bool,
    /// `useAzureTokenProxy` is already true.
    pub uses_token_proxy: bool,
    /// `clientID` (workload identity) as it is now.
    pub client_id: Option<String>,
    /// What the lint found that misleads but does not stop the mount.
    pub warnings: Vec<Finding>,
}

/// One External Secrets SecretStore a binding serves.
#[derive(Debug, Clone)]
pub struct StoreInput {
    /// Its name.
    pub name: String,
    /// The vault of `spec.provider.azurekv.vaultUrl` (lowercase).
    pub vault_name: String,
    /// `spec.provider.azurekv.tenantId`, or empty.
    pub tenant_id: String,
    /// The objects the namespace's ExternalSecrets read through it.
    pub objects: Vec<KeyVaultObject>,
    /// `authType` as it is now.
    pub auth_type: Option<String>,
    /// `identityId` as it is now.
    pub identity_id: Option<String>,
    /// `serviceAccountRef.name` as it is now.
    pub service_account: Option<String>,
}

/// Everything one binding needs from Azure.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// The VM scale sets and VMs of the selected nodes.
    pub targets: BTreeSet<ComputeId>,
    /// Objects per vault name (lowercase), with the tenant the classes name.
    pub vaults: BTreeMap<String, (String, Vec<KeyVaultObject>)>,
    /// The classes, for write-back.
    pub classes: Vec<ClassInput>,
    /// Classes named in the spec that do not exist (any more).
    pub missing: Vec<String>,
    /// The External Secrets stores, for write-back.
    pub stores: Vec<StoreInput>,
}

impl Needs {
    /// The class or store that names each vault, for messages: the first of each.
    pub fn origins(&self) -> BTreeMap<String, VaultOrigin> {
        let mut out = BTreeMap::new();
        for store in self.stores.iter().rev() {
            out.insert(store.vault_name.clone(), VaultOrigin::Store(store.name.clone()));
        }
        for class in self.classes.iter().rev() {
            out.insert(class.vault_name.clone(), VaultOrigin::Class(class.name.clone()));
        }
        out
    }
}

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

/// The SecretProviderClasses a binding selects, validated, and the names of those it
/// names that do not exist: a missing class needs nothing, so its grants go, but the binding
/// says it is missing.
pub fn classes_of(binding: &IdentityBinding, ctx: &Context) -> Result<(Vec<ClassInput>, Vec<String>), BindingError> {
    let namespace = binding.namespace().unwrap_or_default();
    let selector = &binding.spec.secret_provider_classes;
    let mut found: Vec<Arc<SecretProviderClass>> = Vec::new();
    let mut missing = Vec::new();
    // Named classes are looked up, not searched for: every binding sharing an identity
    // reads every other's classes on each reconcile.
    for name in selector.names.iter().flatten() {
        match ctx.classes.get(&ObjectRef::new(name).within(&namespace)) {
            Some(class) => found.push(class),
            None => missing.push(name.clone()),
        }
    }
    if let Some(sel) = &selector.selector {
        let mut matched: Vec<_> =
            ctx.classes.state().into_iter().filter(|c| c.metadata.namespace.as_deref() == Some(namespace.as_str()) && matches(sel, Some(c.labels()))).collect();
        matched.sort_by_key(|c| c.name_any());
        found.extend(matched);
    }
    let mode = binding.spec.mode;
    let classes = found
        .iter()
        .map(|c| ctx.parsed_classes.get_or_parse(c, mode, || ctx.classes.state().len(), || class_input(c, mode, &ctx.config.cloud)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((classes, missing))
}

/// Whether `binding` serves the class `name` with `labels`: it names it, or selects it.
pub fn selects_class(binding: &IdentityBinding, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let s = &binding.spec.secret_provider_classes;
    s.names.as_ref().is_some_and(|n| n.iter().any(|n| n == name)) || s.selector.as_ref().is_some_and(|sel| matches(sel, Some(labels)))
}

/// Fails when another live binding of the namespace, one a policy allows, serves one of
/// `classes` with another identity or mode: the two would write the class in turn for
/// ever. Bindings no policy allows write no class, so they conflict with nobody.
pub fn check_class_conflicts(binding: &IdentityBinding, identity: &IdentityId, classes: &[ClassInput], judge: &Judge<'_>) -> Result<(), BindingError> {
    let ctx = judge.ctx;
    let namespace = binding.namespace().unwrap_or_default();
    for class in classes {
        let Some(cached) = ctx.classes.get(&ObjectRef::new(&class.name).within(&namespace)) else {
            continue;
        };
        let other = ctx
            .bindings
            .state()
            .into_iter()
            .filter(|b| b.metadata.namespace == binding.metadata.namespace && b.metadata.name != binding.metadata.name)
            .filter(|b| b.metadata.deletion_timestamp.is_none() && selects_class(b, &class.name, cached.labels()))
            .filter(|b| b.spec.mode != binding.spec.mode || identity_of(&b.spec.identity, &ctx.config).ok().is_none_or(|(id, _)| &id != identity))
            .find(|b| crate::policy::admits(b, judge));
        if let Some(other) = other {
            return Err(BindingError::ClassConflict { class: class.name.clone(), other: format!("{namespace}/{}", other.name_any()) });
        }
    }
    Ok(())
}

/// The other live binding of the namespace that names the SecretStore `store`, if any.
pub fn other_binding_naming_store(binding: &IdentityBinding, store: &str, ctx: &Context) -> Option<Arc<IdentityBinding>> {
    ctx.bindings
        .state()
        .into_iter()
        .filter(|b| b.metadata.namespace == binding.metadata.namespace && b.metadata.name != binding.metadata.name)
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .find(|b| b.spec.secret_stores.iter().flat_map(|s| s.names.iter()).any(|n| n == store))
}

/// As [`check_class_conflicts`], for External Secrets stores: a store carries one identity.
pub fn check_store_conflicts(binding: &IdentityBinding, identity: &IdentityId, stores: &[StoreInput], judge: &Judge<'_>) -> Result<(), BindingError> {
    let ctx = judge.ctx;
    let namespace = binding.namespace().unwrap_or_default();
    for store in stores {
        let other = ctx
            .bindings
            .state()
            .into_iter()
            .filter(|b| b.metadata.namespace == binding.metadata.namespace && b.metadata.name != binding.metadata.name)
            .filter(|b| b.metadata.deletion_timestamp.is_none())
            .filter(|b| b.spec.secret_stores.iter().flat_map(|s| s.names.iter()).any(|n| n == &store.name))
            .filter(|b| {
                b.spec.mode != binding.spec.mode
                    || b.spec.service_account != binding.spec.service_account
                    || identity_of(&b.spec.identity, &ctx.config).ok().is_none_or(|(id, _)| &id != identity)
            })
            .find(|b| crate::policy::admits(b, judge));
        if let Some(other) = other {
            return Err(BindingError::SecretStoreShared { store: store.name.clone(), other: format!("{namespace}/{}", other.name_any()) });
        }
    }
    Ok(())
}

fn class_input(class: &SecretProviderClass, mode: IdentityMode, cloud: &Cloud) -> Result<ClassInput, BindingError> {
    let name = class.name_any();
    let spec = &class.spec.0;
    let provider = spec.provider.clone().unwrap_or_default();
    if !provider.eq_ignore_ascii_case("azure") {
        return Err(BindingError::NotAzure { name, provider });
    }
    if let Some(bytes) = crate::caches::cache_trim::objects_too_long(class) {
        return Err(BindingError::ObjectsTooLong { name, bytes, limit: crate::caches::cache_trim::MAX_OBJECTS_BYTES });
    }
    // The lint comes first: a near miss of a required key is why it is missing.
    let (errors, warnings): (Vec<Finding>, Vec<Finding>) =
        lint(&spec.parameters, mode, |key| kvbind_owns_parameter(class, key)).into_iter().partition(|f| f.severity() == Severity::Error);
    if let Some(finding) = errors.into_iter().next() {
        return Err(BindingError::ClassLint { name, finding });
    }
    let params = AzureParameters::read(&spec.parameters);
    let objects = params.validate().map_err(|source| BindingError::InvalidClass { name: name.clone(), source })?;
    if let Some(cloud_name) = params.cloud_name {
        let same = Cloud::by_name(cloud_name, Some(cloud)).is_ok_and(|c| c.name.eq_ignore_ascii_case(&cloud.name));
        if !same {
            return Err(BindingError::CloudMismatch { name, cloud: cloud_name.to_owned(), ours: cloud.name.clone() });
        }
    }
    let identity_id = params.user_assigned_identity_id.map(str::to_owned);
    let client_id = params.client_id.map(str::to_owned);
    for (parameter, found) in [(keys::USER_ASSIGNED_IDENTITY_ID, &identity_id), (keys::CLIENT_ID, &client_id)] {
        if let Some(found) = found
            && !kvbind_owns_parameter(class, parameter)
        {
            return Err(BindingError::IdentityConflict { name, parameter, found: found.clone() });
        }
    }
    Ok(ClassInput {
        name,
        vault_name: params.keyvault_name.unwrap_or_default().to_ascii_lowercase(),
        tenant_id: params.tenant_id.unwrap_or_default().to_owned(),
        objects,
        identity_id,
        uses_vm_identity: params.use_vm_managed_identity,
        uses_token_proxy: params.use_azure_token_proxy,
        client_id,
        warnings,
    })
}

/// The VM scale sets and VMs that run the nodes a binding selects; none in the modes that
/// give the tokens to a ServiceAccount, nor for the AKS add-on's identity. Nodes without a providerID (not yet initialised, or virtual) are
/// skipped.
pub fn targets_of(binding: &IdentityBinding, ctx: &Context) -> Result<BTreeSet<ComputeId>, BindingError> {
    // The add-on's identity is where AKS puts it: kvbind attaches it nowhere, even for a
    // sharer's sake.
    if binding.spec.mode.uses_service_account() || binding.spec.identity.addon.is_some() {
        return Ok(BTreeSet::new());
    }
    match ctx.node_targets.of(&ctx.nodes, &binding.spec.nodes) {
        Ok(targets) => Ok(targets.as_ref().clone()),
        Err((node, source)) => Err(BindingError::InvalidNode { node, source }),
    }
}

/// The External Secrets stores a binding names, validated, each with the objects that the
/// namespace's ExternalSecrets read through it. A store that does not exist fails the
/// binding (unlike a class, nothing else tells kvbind which objects it would read).
pub fn stores_of(binding: &IdentityBinding, ctx: &Context) -> Result<Vec<StoreInput>, BindingError> {
    let Some(selector) = &binding.spec.secret_stores else {
        return Ok(Vec::new());
    };
    let eso = ctx.external_secrets.as_ref().ok_or(BindingError::SecretStoresNotServed)?;
    let namespace = binding.namespace().unwrap_or_default();
    let mut secrets: Vec<Arc<ExternalSecret>> =
        eso.external_secrets.state().into_iter().filter(|s| s.metadata.namespace.as_deref() == Some(namespace.as_str())).collect();
    secrets.sort_by_key(|s| s.name_any());
    let mut stores = Vec::new();
    for name in &selector.names {
        let store = eso.stores.get(&ObjectRef::new(name).within(&namespace)).ok_or_else(|| BindingError::SecretStoreNotFound(name.clone()))?;
        let mut objects = Vec::new();
        for secret in secrets.iter().filter(|s| reads_through(&s.spec, name)) {
            let read = objects_read_through(&secret.spec, name).map_err(|source| BindingError::InvalidExternalSecret {
                name: secret.name_any(),
                store: name.clone(),
                source,
            })?;
            objects.extend(read);
        }
        stores.push(store_input(&store, objects, binding, &ctx.config.cloud)?);
    }
    Ok(stores)
}

fn store_input(store: &SecretStore, objects: Vec<KeyVaultObject>, binding: &IdentityBinding, cloud: &Cloud) -> Result<StoreInput, BindingError> {
    let name = store.name_any();
    let invalid = |problem: String| BindingError::InvalidSecretStore { name: name.clone(), problem };
    let azure = store
        .spec
        .provider
        .as_ref()
        .and_then(|p| p.azurekv.as_ref())
        .ok_or_else(|| invalid("spec.provider.azurekv is not set: kvbind serves only Azure Key Vault stores".to_owned()))?;
    let vault_name = vault_name_of(azure.vault_url.as_deref(), &cloud.key_vault_suffix).map_err(|e| invalid(e.to_string()))?;
    let service_account = azure.service_account_ref.as_ref().map(|r| r.name.clone()).filter(|n| !n.is_empty());
    let wanted_auth = store_auth_type(binding.spec.mode);
    let wanted_account = binding.spec.service_account.as_ref().map(|s| s.name.as_str());
    // What kvbind would overwrite, when someone else set it to something else.
    let foreign = |field: &'static str, found: Option<&str>, wanted: Option<&str>| match found {
        Some(found) if Some(found) != wanted && !kvbind_owns_field(store, field) => {
            Err(BindingError::SecretStoreConflict { name: name.clone(), field, found: found.to_owned() })
        }
        _ => Ok(()),
    };
    foreign(fields::AUTH_TYPE, azure.auth_type_chosen(), Some(wanted_auth))?;
    foreign(fields::IDENTITY_ID, azure.identity_id.as_deref().filter(|i| !i.is_empty()), None)?;
    foreign(fields::SERVICE_ACCOUNT_REF, service_account.as_deref(), wanted_account)?;
    Ok(StoreInput {
        name: name.clone(),
        vault_name,
        tenant_id: azure.tenant_id.clone().unwrap_or_default(),
        objects,
        auth_type: azure.auth_type.clone(),
        identity_id: azure.identity_id.clone().filter(|i| !i.is_empty()),
        service_account,
    })
}

/// The `authType` of ESO's Azure provider for a mode.
pub fn store_auth_type(mode: IdentityMode) -> &'static str {
    match mode {
        IdentityMode::VmManagedIdentity => "ManagedIdentity",
        IdentityMode::WorkloadIdentity | IdentityMode::AksIdentityBinding => "WorkloadIdentity",
    }
}

/// Everything `binding` needs from Azure, from the caches.
pub fn needs_of(binding: &IdentityBinding, ctx: &Context) -> Result<Needs, BindingError> {
    let (classes, missing) = classes_of(binding, ctx)?;
    let stores = stores_of(binding, ctx)?;
    let targets = targets_of(binding, ctx)?;
    let mut vaults: BTreeMap<String, (String, Vec<KeyVaultObject>)> = BTreeMap::new();
    let wanted = classes.iter().map(|c| (&c.vault_name, &c.tenant_id, &c.objects)).chain(stores.iter().map(|s| (&s.vault_name, &s.tenant_id, &s.objects)));
    for (vault, tenant, objects) in wanted {
        let entry = vaults.entry(vault.clone()).or_insert_with(|| (tenant.clone(), Vec::new()));
        // A store need not name its tenant; a class that does is checked.
        if entry.0.is_empty() {
            entry.0 = tenant.clone();
        }
        entry.1.extend(objects.iter().cloned());
    }
    Ok(Needs { targets, vaults, classes, missing, stores })
}

/// The other live bindings that use the same identity, allowed by policy or not.
pub fn claiming_identity(binding: &IdentityBinding, identity: &IdentityId, judge: &Judge<'_>) -> Vec<Arc<IdentityBinding>> {
    judge
        .claimants(identity)
        .iter()
        .filter(|b| !(b.metadata.namespace == binding.metadata.namespace && b.metadata.name == binding.metadata.name))
        .cloned()
        .collect()
}

/// A cheap first look, before parsing: every binding checks every other binding, so with a
/// thousand bindings this decides most pairs without building a resource ID.
pub(crate) fn names_identity(spec: &IdentitySpec, name: &str) -> bool {
    match (&spec.name, &spec.resource_id) {
        (Some(own), _) => own.eq_ignore_ascii_case(name),
        (None, Some(id)) => id.rsplit('/').next().is_some_and(|last| last.eq_ignore_ascii_case(name)),
        // The add-on's identity is known by its ID alone; identity_of decides.
        (None, None) => spec.addon.is_some(),
    }
}

/// The other live bindings that share the identity: those a policy allows, so that a
/// refused binding never widens what its identity is granted through another.
pub fn sharing_identity(binding: &IdentityBinding, identity: &IdentityId, judge: &Judge<'_>) -> Vec<Arc<IdentityBinding>> {
    claiming_identity(binding, identity, judge).into_iter().filter(|b| crate::policy::admits(b, judge)).collect()
}

#[cfg(test)]
mod tests {
    use kvbind_api::identity_binding::AddonIdentity;
    use kvbind_azure::model::AddonIdentity as FoundAddon;

    use super::*;
    use crate::addon::{AddonIdentitySource, AddonLookup};

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
