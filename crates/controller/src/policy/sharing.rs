//! The other bindings that serve the same identity, class or store, as policy sees them: a
//! binding no policy allows shares nothing and conflicts with nobody.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_azure::IdentityId;

use super::{Judge, admits};
use crate::context::Context;
use crate::error::BindingError;
use crate::needs::{ClassInput, StoreInput, identity_of, selects_class};

/// The other live bindings of `binding`'s namespace.
fn neighbours<'a>(binding: &'a IdentityBinding, ctx: &Context) -> impl Iterator<Item = Arc<IdentityBinding>> + 'a {
    let live = ctx.index.bindings.state().into_iter();
    live.filter(|b| b.metadata.namespace == binding.metadata.namespace && b.metadata.name != binding.metadata.name && b.metadata.deletion_timestamp.is_none())
}

/// Fails when another live binding of the namespace, one a policy allows, serves one of
/// `classes` with another identity or mode: the two would write the class in turn for
/// ever. Bindings no policy allows write no class, so they conflict with nobody.
pub fn check_class_conflicts(binding: &IdentityBinding, identity: &IdentityId, classes: &[Arc<ClassInput>], judge: &Judge<'_>) -> Result<(), BindingError> {
    let ctx = judge.ctx;
    let namespace = binding.namespace().unwrap_or_default();
    for class in classes {
        let Some(cached) = ctx.index.classes.get(&ObjectRef::new(&class.name).within(&namespace)) else {
            continue;
        };
        let other = neighbours(binding, ctx)
            .filter(|b| selects_class(b, &class.name, cached.labels()))
            .filter(|b| b.spec.mode != binding.spec.mode || identity_of(&b.spec.identity, &ctx.config).ok().is_none_or(|(id, _)| &id != identity))
            .find(|b| admits(b, judge));
        if let Some(other) = other {
            return Err(BindingError::ClassConflict { class: class.name.clone(), other: format!("{namespace}/{}", other.name_any()) });
        }
    }
    Ok(())
}

/// The other live binding of the namespace that names the SecretStore `store`, if any.
pub fn other_binding_naming_store(binding: &IdentityBinding, store: &str, ctx: &Context) -> Option<Arc<IdentityBinding>> {
    neighbours(binding, ctx).find(|b| b.spec.secret_stores.iter().flat_map(|s| s.names.iter()).any(|n| n == store))
}

/// As [`check_class_conflicts`], for External Secrets stores: a store carries one identity.
pub fn check_store_conflicts(binding: &IdentityBinding, identity: &IdentityId, stores: &[StoreInput], judge: &Judge<'_>) -> Result<(), BindingError> {
    let ctx = judge.ctx;
    let namespace = binding.namespace().unwrap_or_default();
    for store in stores {
        let other = neighbours(binding, ctx)
            .filter(|b| b.spec.secret_stores.iter().flat_map(|s| s.names.iter()).any(|n| n == &store.name))
            .filter(|b| {
                b.spec.mode != binding.spec.mode
                    || b.spec.service_account != binding.spec.service_account
                    || identity_of(&b.spec.identity, &ctx.config).ok().is_none_or(|(id, _)| &id != identity)
            })
            .find(|b| admits(b, judge));
        if let Some(other) = other {
            return Err(BindingError::SecretStoreShared { store: store.name.clone(), other: format!("{namespace}/{}", other.name_any()) });
        }
    }
    Ok(())
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

/// The other live bindings that share the identity: those a policy allows, so that a
/// refused binding never widens what its identity is granted through another.
pub fn sharing_identity(binding: &IdentityBinding, identity: &IdentityId, judge: &Judge<'_>) -> Vec<Arc<IdentityBinding>> {
    claiming_identity(binding, identity, judge).into_iter().filter(|b| admits(b, judge)).collect()
}
