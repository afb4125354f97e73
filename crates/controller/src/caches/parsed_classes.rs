//! Each SecretProviderClass read once per version.
//!
//! A reconcile reads the classes of every binding that shares its identity, so with k
//! bindings on one identity each class was parsed (its `objects` YAML, the lint) k times a
//! round of reconciles. The parse depends only on the class as stored and the binding's
//! mode, so it is kept per class UID and mode until the class's resourceVersion moves on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::ResourceExt;
use kvbind_api::identity_binding::IdentityMode;
use kvbind_api::secret_provider_class::SecretProviderClass;

use crate::error::BindingError;
use crate::needs::ClassInput;

/// Entries kept past the number of classes in the cache before the memo starts afresh:
/// deleted classes' entries go then, and a tenant's churn cannot grow it without bound.
const SLACK: usize = 64;

/// A class's UID and the mode it was read in.
type ClassKey = (String, IdentityMode);

/// Parsed classes by UID and mode, with the resourceVersion they were parsed at. Every
/// binding's needs share the one parse of each class rather than hold a copy.
#[derive(Debug, Default)]
pub struct ParsedClasses {
    parsed: Mutex<HashMap<ClassKey, (String, Arc<ClassInput>)>>,
}

impl ParsedClasses {
    /// `class` as `parse` reads it in `mode`: from the memo when the class has not changed
    /// since. Failures are not kept: they are rare, and their messages are made anew.
    /// `cached` counts the classes the cache holds, asked only when an entry is added.
    pub fn get_or_parse(
        &self,
        class: &SecretProviderClass,
        mode: IdentityMode,
        cached: impl FnOnce() -> usize,
        parse: impl FnOnce() -> Result<ClassInput, BindingError>,
    ) -> Result<Arc<ClassInput>, BindingError> {
        let (Some(uid), Some(version)) = (class.uid(), class.resource_version()) else {
            return parse().map(Arc::new);
        };
        let key = (uid, mode);
        if let Some((at, input)) = self.parsed.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
            && *at == version
        {
            return Ok(input.clone());
        }
        let input = Arc::new(parse()?);
        let bound = 2 * cached() + SLACK;
        let mut parsed = self.parsed.lock().unwrap_or_else(PoisonError::into_inner);
        if parsed.len() > bound {
            parsed.clear();
        }
        parsed.insert(key, (version, input.clone()));
        Ok(input)
    }
}
