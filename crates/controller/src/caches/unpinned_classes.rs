//! The SecretProviderClasses that would break on a pool with several identities.
//!
//! A class that sets `useVMManagedIdentity` without `userAssignedIdentityID` leaves IMDS to
//! pick the identity, which it cannot once a pool carries more than one. Every reconcile of
//! a binding on such a pool asks which classes those are; with a thousand of each, reading
//! every class's parameters per reconcile was a fifth of the controller's work, though the
//! answer only changes when a class does. So it is kept and dropped whenever the class
//! watch reports a change.

use std::sync::Arc;

use kube::runtime::reflector::{ObjectRef, Store};
use kvbind_api::secret_provider_class::{AzureParameters, SecretProviderClass};

use super::stamped::Stamped;

/// References to classes, shared by every reconcile that reads them.
pub type ClassRefs = Arc<[ObjectRef<SecretProviderClass>]>;

/// The unpinned Azure classes, as of the last class change.
#[derive(Default)]
pub struct UnpinnedClasses {
    memo: Stamped<(), ClassRefs>,
}

impl UnpinnedClasses {
    /// Notes that the class store has changed.
    pub fn classes_changed(&self) {
        self.memo.changed();
    }

    /// The classes in `classes` served by the Azure provider that use the VM's identity
    /// without naming one.
    pub fn of(&self, classes: &Store<SecretProviderClass>) -> ClassRefs {
        self.memo.get_or_make((), || classes.state().iter().filter(|c| is_unpinned(c)).map(|c| ObjectRef::from_obj(c.as_ref())).collect())
    }
}

fn is_unpinned(class: &SecretProviderClass) -> bool {
    let azure = class.spec.0.provider.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("azure"));
    let parameters = AzureParameters::read(&class.spec.0.parameters);
    azure && parameters.use_vm_managed_identity && parameters.user_assigned_identity_id.is_none()
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn class(name: &str, parameters: serde_json::Value) -> SecretProviderClass {
        serde_json::from_value(json!({
            "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"provider": "azure", "parameters": parameters},
        }))
        .expect("class")
    }

    fn names(unpinned: &[ObjectRef<SecretProviderClass>]) -> Vec<String> {
        unpinned.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn only_classes_that_leave_the_choice_to_imds_are_unpinned() {
        let mut writer = Writer::<SecretProviderClass>::default();
        writer.apply_watcher_event(&Event::Apply(class("unpinned", json!({"useVMManagedIdentity": "true"}))));
        writer.apply_watcher_event(&Event::Apply(class("pinned", json!({"useVMManagedIdentity": "true", "userAssignedIdentityID": "c"}))));
        writer.apply_watcher_event(&Event::Apply(class("workload", json!({"clientID": "c"}))));
        let unpinned = UnpinnedClasses::default();
        assert_eq!(names(&unpinned.of(&writer.as_reader())), ["unpinned"]);
    }

    #[test]
    fn the_answer_is_kept_until_a_class_changes() {
        let mut writer = Writer::<SecretProviderClass>::default();
        writer.apply_watcher_event(&Event::Apply(class("a", json!({"useVMManagedIdentity": "true"}))));
        let unpinned = UnpinnedClasses::default();
        let store = writer.as_reader();
        assert_eq!(names(&unpinned.of(&store)), ["a"]);

        writer.apply_watcher_event(&Event::Apply(class("a", json!({"useVMManagedIdentity": "true", "userAssignedIdentityID": "c"}))));
        assert_eq!(names(&unpinned.of(&store)), ["a"], "not told of the change yet");
        unpinned.classes_changed();
        assert!(unpinned.of(&store).is_empty());
    }
}
