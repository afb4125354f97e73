//! A reconcile's changes as Events: one per reason, however many resources it touched.
//!
//! A new binding on twenty pools attaches its identity twenty times; twenty Events would be
//! twenty API writes per binding and, at a thousand bindings, tens of thousands of objects
//! in etcd and in the recorder's cache. One `IdentityAttached` Event that names them all
//! says the same.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kvbind_api::IdentityBinding;

use super::azure_sync::Change;
use crate::context::Context;
use crate::error::BindingError;

/// The API server refuses an Event note longer than this (events.k8s.io/v1).
const MAX_NOTE_BYTES: usize = 1024;

/// Publishes `changes` (folded per reason) and `error` as Events on the binding.
///
/// A warning repeats while a binding keeps failing, and the shared recorder folds repeats
/// into one Event with a count. Changes are each new, so they go out through a recorder of
/// their own: the shared one keeps every Event it sent for minutes and walks them all on
/// each send, which at a thousand new bindings is thousands of Events held for nothing.
pub async fn publish(ctx: &Context, binding: &IdentityBinding, changes: &[Change], error: Option<&BindingError>) {
    let reference = binding.object_ref(&());
    let folded = fold(changes);
    if !folded.is_empty() {
        let recorder = Recorder::new(ctx.client.clone(), Reporter { controller: ctx.config.reporter.clone(), instance: None });
        for (reason, note) in folded {
            let event = Event { type_: EventType::Normal, reason: reason.to_owned(), note: Some(note), action: "Reconcile".to_owned(), secondary: None };
            send(&recorder, &event, &reference).await;
        }
    }
    if let Some(e) = error {
        let event =
            Event { type_: EventType::Warning, reason: e.reason().to_owned(), note: Some(e.to_string()), action: "Reconcile".to_owned(), secondary: None };
        send(&ctx.recorder, &event, &reference).await;
    }
}

async fn send(recorder: &Recorder, event: &Event, reference: &ObjectReference) {
    if let Err(e) = recorder.publish(event, reference).await {
        tracing::debug!(error = %e, "publishing an event failed");
    }
}

/// One note per reason, in the order the reasons first appear; notes of one reason are
/// joined, and cut to what an Event may carry.
pub fn fold(changes: &[Change]) -> Vec<(&'static str, String)> {
    let mut folded: Vec<(&'static str, Vec<&str>)> = Vec::new();
    for (reason, note) in changes {
        match folded.iter_mut().find(|(r, _)| r == reason) {
            Some((_, notes)) => notes.push(note),
            None => folded.push((reason, vec![note])),
        }
    }
    folded.into_iter().map(|(reason, notes)| (reason, joined(&notes))).collect()
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
    fn one_event_per_reason_in_order_of_first_appearance() {
        let changes: Vec<Change> = vec![
            ("IdentityCreated", "created identity a".into()),
            ("IdentityAttached", "attached the identity to pool-1".into()),
            ("AccessGranted", "granted get on vault v".into()),
            ("IdentityAttached", "attached the identity to pool-2".into()),
        ];
        let folded = fold(&changes);
        assert_eq!(
            folded,
            vec![
                ("IdentityCreated", "created identity a".to_owned()),
                ("IdentityAttached", "attached the identity to pool-1; attached the identity to pool-2".to_owned()),
                ("AccessGranted", "granted get on vault v".to_owned()),
            ]
        );
    }

    #[test]
    fn a_long_note_is_cut_to_what_the_api_server_accepts_and_says_how_many() {
        let changes: Vec<Change> = (0..40).map(|i| ("IdentityAttached", format!("attached the identity to pool-{i}-é"))).collect();
        let (_, note) = &fold(&changes)[0];
        assert!(note.len() <= MAX_NOTE_BYTES, "{} bytes", note.len());
        assert!(note.starts_with("attached the identity to pool-0-é; "));
        assert!(note.ends_with(" … (40 changes)"), "{note}");
    }
}
