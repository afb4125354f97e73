//! What a binding asks for, gathered from the cluster caches only (no Azure call): its
//! SecretProviderClasses and External Secrets stores with their objects, and the VM scale
//! sets and VMs of its nodes, each parsed and checked by [`crate::needs`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::external_secrets::{ExternalSecret, objects_read_through, reads_through};
use kvbind_api::secret_provider_class::SecretProviderClass;
use kvbind_api::{IdentityBinding, KeyVaultObject};
use kvbind_azure::ComputeId;

use crate::context::Context;
use crate::error::BindingError;
use crate::needs::{ClassInput, Needs, StoreInput, class_input, store_input};
use crate::selector::matches;

/// The SecretProviderClasses a binding selects, validated, and the names of those it
/// names that do not exist: a missing class needs nothing, so its grants go, but the binding
/// says it is missing.
pub fn classes_of(binding: &IdentityBinding, ctx: &Context) -> Result<(Vec<Arc<ClassInput>>, Vec<String>), BindingError> {
    let namespace = binding.namespace().unwrap_or_default();
    let selector = &binding.spec.secret_provider_classes;
    let mut found: Vec<Arc<SecretProviderClass>> = Vec::new();
    let mut missing = Vec::new();
    // Named classes are looked up, not searched for: every binding sharing an identity
    // reads every other's classes on each reconcile.
    for name in selector.names.iter().flatten() {
        match ctx.index.classes.get(&ObjectRef::new(name).within(&namespace)) {
            Some(class) => found.push(class),
            None => missing.push(name.clone()),
        }
    }
    if let Some(sel) = &selector.selector {
        let mut matched: Vec<_> = ctx
            .index
            .classes
            .state()
            .into_iter()
            .filter(|c| c.metadata.namespace.as_deref() == Some(namespace.as_str()) && matches(sel, Some(c.labels())))
            .collect();
        matched.sort_by_key(|c| c.name_any());
        found.extend(matched);
    }
    let mode = binding.spec.mode;
    let classes = found
        .iter()
        .map(|c| ctx.index.parsed_classes.get_or_parse(c, mode, || ctx.index.classes.state().len(), || class_input(c, mode, &ctx.config.cloud)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((classes, missing))
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
    match ctx.index.node_targets.of(&ctx.index.nodes, &binding.spec.nodes) {
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
    let eso = ctx.index.external_secrets.as_ref().ok_or(BindingError::SecretStoresNotServed)?;
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
