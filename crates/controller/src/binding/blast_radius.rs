//! The cost of attaching one more identity to a pool.
//!
//! Once a VM scale set carries more than one user-assigned identity, IMDS cannot pick one
//! for a SecretProviderClass that sets `useVMManagedIdentity` without
//! `userAssignedIdentityID`, and its mounts fail with "multiple user assigned identities
//! exist". kvbind still attaches (the binding asks for it), but it names those classes in a
//! condition on the binding and an Event on each class, instead of breaking them silently.

use std::sync::Arc;

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use kvbind_api::IdentityBinding;
use kvbind_azure::ComputeId;

use super::status::Progress;
use crate::context::Context;
use crate::event_queue::Repeats;
use crate::needs::ClassInput;

/// The condition type set while unpinned classes are at risk.
pub const CONDITION: &str = "UnpinnedClassesAtRisk";

/// Classes the condition names; it counts the rest, so its message stays readable.
const LISTED: usize = 10;

/// Adds the condition, and Events on the classes when kvbind just made a pool crowded.
pub fn report(ctx: &Context, binding: &IdentityBinding, own: &[Arc<ClassInput>], crowded: &[ComputeId], newly_crowded: &[ComputeId], progress: &mut Progress) {
    if crowded.is_empty() {
        return;
    }
    let namespace = binding.metadata.namespace.as_deref();
    let unpinned: Vec<_> = ctx
        .index
        .unpinned_classes
        .of(&ctx.index.classes)
        .iter()
        .filter(|c| !(c.namespace.as_deref() == namespace && own.iter().any(|o| o.name == c.name)))
        .cloned()
        .collect();
    if unpinned.is_empty() {
        return;
    }
    let pools: Vec<&str> = crowded.iter().map(|t| t.name.as_str()).collect();
    let mut names: Vec<String> = unpinned.iter().take(LISTED).map(|c| format!("{}/{}", c.namespace.as_deref().unwrap_or_default(), c.name)).collect();
    if unpinned.len() > LISTED {
        names.push(format!("and {} more", unpinned.len() - LISTED));
    }
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
    for class in unpinned.iter().filter_map(|c| ctx.index.classes.get(c)) {
        let event = Event {
            type_: EventType::Warning,
            reason: "MultipleIdentitiesOnPool".into(),
            note: Some(note.clone()),
            action: "AttachIdentity".into(),
            secondary: None,
        };
        ctx.kube.events.send(event, class.object_ref(&()), Repeats::Folded);
    }
}
