//! The cost of attaching one more identity to a pool.
//!
//! Once a VM scale set carries more than one user-assigned identity, IMDS cannot pick one
//! for a SecretProviderClass that sets `useVMManagedIdentity` without
//! `userAssignedIdentityID`, and its mounts fail with "multiple user assigned identities
//! exist". kvbind still attaches (the binding asks for it), but it names those classes in a
//! condition on the binding and an Event on each class, instead of breaking them silently.

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use kvbind_api::IdentityBinding;
use kvbind_api::secret_provider_class::AzureParameters;
use kvbind_azure::ComputeId;

use super::inputs::ClassInput;
use super::status::Progress;
use crate::context::Context;
use crate::event_queue::Repeats;

/// The condition type set while unpinned classes are at risk.
pub const CONDITION: &str = "UnpinnedClassesAtRisk";

/// Adds the condition, and Events on the classes when kvbind just made a pool crowded.
pub fn report(ctx: &Context, binding: &IdentityBinding, own: &[ClassInput], crowded: &[ComputeId], newly_crowded: &[ComputeId], progress: &mut Progress) {
    if crowded.is_empty() {
        return;
    }
    let unpinned: Vec<_> = ctx
        .classes
        .state()
        .into_iter()
        .filter(|c| c.spec.0.provider.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("azure")))
        .filter(|c| !(c.namespace() == binding.namespace() && own.iter().any(|o| o.name == c.name_any())))
        .filter(|c| {
            let p = AzureParameters::read(&c.spec.0.parameters);
            p.use_vm_managed_identity && p.user_assigned_identity_id.is_none()
        })
        .collect();
    if unpinned.is_empty() {
        return;
    }
    let pools: Vec<&str> = crowded.iter().map(|t| t.name.as_str()).collect();
    let names: Vec<String> = unpinned.iter().map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())).collect();
    progress.notices.push((
        CONDITION,
        "MultipleIdentitiesOnPool",
        format!(
            "{} carry more than one user-assigned identity; SecretProviderClasses that set useVMManagedIdentity without userAssignedIdentityID cannot mount there: {}",
            pools.join(", "),
            names.join(", ")
        ),
    ));
    if newly_crowded.is_empty() {
        return;
    }
    let note = format!(
        "kvbind attached identity for IdentityBinding {}/{} to {}, which now carries more than one user-assigned identity; set userAssignedIdentityID here or mounts on that pool fail",
        binding.namespace().unwrap_or_default(),
        binding.name_any(),
        newly_crowded.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    for class in unpinned {
        let event = Event {
            type_: EventType::Warning,
            reason: "MultipleIdentitiesOnPool".into(),
            note: Some(note.clone()),
            action: "AttachIdentity".into(),
            secondary: None,
        };
        ctx.events.send(event, class.object_ref(&()), Repeats::Folded);
    }
}
