//! The judge's answers kept across reconciles, until a watch reports a change.
//!
//! A verdict reads the bindings, the policies, the namespaces, the nodes and what a
//! binding's needs are read from (classes, stores, ExternalSecrets). Each of those watches
//! calls [`Judged::changed`] once the change is in its cache, which makes every answer kept
//! so far stale (see [`Stamped`]). A binding's verdict is kept by its UID and
//! resourceVersion, so a reconcile holding an older copy of a binding never works out an
//! answer that a newer copy's reconcile then takes for its own.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kvbind_api::BindingPolicy;
use kvbind_api::IdentityBinding;
use kvbind_azure::IdentityId;

use super::answers::{Eldest, Exposed, NamespaceAges, Verdict};
use crate::caches::stamped::Stamped;

/// The key of a binding's kept verdict: its UID and resourceVersion.
pub type VerdictKey = (String, String);

/// The judge's answers, shared by every reconcile until the next change.
#[derive(Default)]
pub struct Judged {
    pub(super) selecting: Stamped<String, Arc<[Arc<BindingPolicy>]>>,
    pub(super) claimants: Stamped<IdentityId, Arc<[Arc<IdentityBinding>]>>,
    pub(super) eldest: Stamped<IdentityId, Arc<[Eldest]>>,
    pub(super) ages: Stamped<String, Arc<NamespaceAges>>,
    pub(super) exposed: Stamped<String, Exposed>,
    pub(super) outside: Stamped<String, Option<Arc<Node>>>,
    pub(super) verdicts: Stamped<VerdictKey, Arc<Verdict>>,
}

impl Judged {
    /// Notes a change in a cache the answers are read from: all of them are stale.
    pub fn changed(&self) {
        self.selecting.changed();
        self.claimants.changed();
        self.eldest.changed();
        self.ages.changed();
        self.exposed.changed();
        self.outside.changed();
        self.verdicts.changed();
    }

    /// The key `binding`'s verdict is kept by, when it has one (a binding the API server
    /// has not stored yet has neither UID nor resourceVersion).
    pub(super) fn verdict_key(binding: &IdentityBinding) -> Option<VerdictKey> {
        Some((binding.metadata.uid.clone()?, binding.metadata.resource_version.clone()?))
    }
}
