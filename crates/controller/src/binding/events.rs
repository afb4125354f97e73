//! A binding's changes as one Event.
//!
//! A new binding creates its identity, attaches it to every pool, grants it on the vault
//! and writes its client ID into its classes: one Event per change would be two dozen API
//! writes per binding on twenty pools and, at a thousand new bindings, most of the API
//! server's work and of the time to Ready. One Event names every change instead, under the
//! reason of the most significant of them (see [`SIGNIFICANCE`]), when the binding's
//! progress ends: the reconciles that hand writes off keep their changes for it
//! ([`crate::desks::handoff::Handoffs::defer`]).

use kube::Resource;
use kube::runtime::events::{Event, EventType};
use kvbind_api::IdentityBinding;

use super::azure_sync::Change;
use crate::context::Context;
use crate::error::BindingError;
use crate::event_queue::Repeats;

/// The API server refuses an Event note longer than this (events.k8s.io/v1).
const MAX_NOTE_BYTES: usize = 1024;

/// Change reasons, most significant first: a reconcile's Event takes the first of these
/// among its changes, so `kubectl get events --field-selector reason=IdentityCreated` still
/// finds every new binding and `reason=AccessRevoked` every revocation.
pub const SIGNIFICANCE: [&str; 16] = [
    "AccessRevoked",
    "IdentityDeleted",
    "IdentityCreated",
    "FederatedCredentialDeleted",
    "FederatedCredentialCreated",
    "AKSIdentityBindingDeleted",
    "AKSIdentityBindingCreated",
    "IdentityDetached",
    "IdentityAttached",
    "AccessGranted",
    "ServiceAccountDisallowed",
    "ServiceAccountAllowed",
    "ServiceAccountAnnotated",
    "ImdsEgressAllowed",
    "ImdsEgressDenied",
    "SecretProviderClassUpdated",
];

/// Queues `changes` (as one Event) and `error` as Events on the binding.
pub fn publish(ctx: &Context, binding: &IdentityBinding, changes: &[Change], error: Option<&BindingError>) {
    if let Some((reason, note)) = fold(changes) {
        let event = Event { type_: EventType::Normal, reason: reason.to_owned(), note: Some(note), action: "Reconcile".to_owned(), secondary: None };
        ctx.kube.events.send(event, binding.object_ref(&()), Repeats::Never);
    }
    if let Some(e) = error {
        let event =
            Event { type_: EventType::Warning, reason: e.reason().to_owned(), note: Some(e.to_string()), action: "Reconcile".to_owned(), secondary: None };
        ctx.kube.events.send(event, binding.object_ref(&()), Repeats::Folded);
    }
}

/// The reason and note of one Event for `changes`: the most significant change's reason,
/// and every note, joined in order and cut to what an Event may carry.
pub fn fold(changes: &[Change]) -> Option<(&'static str, String)> {
    let rank = |reason: &str| SIGNIFICANCE.iter().position(|r| *r == reason).unwrap_or(SIGNIFICANCE.len());
    let (reason, _) = changes.iter().min_by_key(|(reason, _)| rank(reason))?;
    let notes: Vec<&str> = changes.iter().map(|(_, note)| note.as_str()).collect();
    Some((reason, joined(&notes)))
}

fn joined(notes: &[&str]) -> String {
    let all = notes.join("; ");
    if all.len() <= MAX_NOTE_BYTES {
        return all;
    }
    let tail = format!(" … ({} changes)", notes.len());
    let mut cut = MAX_NOTE_BYTES - tail.len();
    while !all.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &all[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_names_every_change_under_the_most_significant_reason() {
        assert_eq!(fold(&[]), None);
        let detached: Vec<Change> =
            vec![("IdentityDetached", "detached the identity from pool-1".into()), ("IdentityDetached", "detached the identity from pool-2".into())];
        assert_eq!(fold(&detached), Some(("IdentityDetached", "detached the identity from pool-1; detached the identity from pool-2".to_owned())));
        let new_binding: Vec<Change> = vec![
            ("IdentityCreated", "created identity a".into()),
            ("IdentityAttached", "attached the identity to pool-1".into()),
            ("AccessGranted", "granted get on vault v".into()),
        ];
        let revoked: Vec<Change> = vec![
            ("IdentityDetached", "detached the identity from VM scale set pool-1".into()),
            ("AccessRevoked", "no BindingPolicy allows this binding any more".into()),
        ];
        assert_eq!(fold(&revoked).map(|(reason, _)| reason), Some("AccessRevoked"));
        assert_eq!(fold(&new_binding), Some(("IdentityCreated", "created identity a; attached the identity to pool-1; granted get on vault v".to_owned())));
    }

    #[test]
    fn a_long_note_is_cut_to_what_the_api_server_accepts_and_says_how_many() {
        let changes: Vec<Change> = (0..40).map(|i| ("IdentityAttached", format!("attached the identity to pool-{i}-é"))).collect();
        let (_, note) = fold(&changes).expect("an event");
        assert!(note.len() <= MAX_NOTE_BYTES, "{} bytes", note.len());
        assert!(note.starts_with("attached the identity to pool-0-é; "));
        assert!(note.ends_with(" … (40 changes)"), "{note}");
    }
}
