//! The binding's status: domain conditions per step, the kstatus trio, and the record of
//! what kvbind did. Written with server-side apply, and only when it changed.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kvbind_api::condition::{Condition, ConditionStatus, READY, RECONCILING, STALLED, merge_conditions};
use kvbind_api::identity_binding::IdentityBindingStatus;
use kvbind_api::{FIELD_MANAGER, IdentityBinding};
use serde_json::json;

use crate::error::{BindingError, ReconcileError, Step};

/// How far a reconcile got.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The status fields filled so far.
    pub status: IdentityBindingStatus,
    /// Success messages per step.
    pub done: Vec<(Step, &'static str, String)>,
    /// Steps whose writes were handed off and have not landed yet, with what they wait for.
    pub waiting: Vec<(Step, String)>,
    /// Informational conditions: `(type, reason, message)`, present while they hold.
    pub notices: Vec<(&'static str, &'static str, String)>,
    /// The binding names External Secrets stores, so `SecretStoresUpdated` is reported.
    pub stores_named: bool,
    /// `AccessVerified`, when the binding asks for it and its changes are in place.
    pub access: Option<crate::verify::verdict::Verdict>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The reason while handed-off writes are still to land.
pub const IN_PROGRESS: &str = "InProgress";

/// The conditions for a reconcile that ended with `outcome`.
pub fn conditions(generation: Option<i64>, progress: &Progress, outcome: Result<(), &BindingError>) -> Vec<Condition> {
    let at = now();
    let cond = |t: &str, s: ConditionStatus, reason: &str, message: String| Condition::new(t, s, reason, message, generation, &at);
    let mut out = Vec::new();
    let failed_step = outcome.err().map(BindingError::step);
    for step in Step::ALL.into_iter().filter(|s| *s != Step::Stores || progress.stores_named) {
        let done = progress.done.iter().find(|(s, _, _)| *s == step);
        let waiting = progress.waiting.iter().find(|(s, _)| *s == step);
        let c = match (done, outcome, failed_step) {
            (_, _, f) if f != Some(step) && waiting.is_some() => {
                cond(step.condition(), ConditionStatus::Unknown, IN_PROGRESS, waiting.map(|(_, m)| m.clone()).unwrap_or_default())
            }
            (Some((_, reason, message)), _, f) if f != Some(step) => cond(step.condition(), ConditionStatus::True, reason, message.clone()),
            (_, Err(e), Some(f)) if f == step => cond(step.condition(), ConditionStatus::False, e.reason(), e.to_string()),
            (_, Err(_), Some(f)) => cond(step.condition(), ConditionStatus::Unknown, "Waiting", format!("waiting for {}", f.condition())),
            _ => cond(step.condition(), ConditionStatus::Unknown, "Waiting", "not reached yet".to_owned()),
        };
        out.push(c);
    }
    for (t, reason, message) in &progress.notices {
        out.push(cond(t, ConditionStatus::True, reason, message.clone()));
    }
    if let Some((status, reason, message)) = &progress.access {
        out.push(cond(crate::verify::CONDITION, *status, reason, message.clone()));
    }
    match outcome {
        // Opted in, Ready means a pod can read its objects: a failed proof is worked on
        // (grants replicate, a pool gains a node), not a stall.
        Ok(()) if progress.waiting.is_empty() && progress.access.as_ref().is_some_and(|(s, _, _)| *s == ConditionStatus::False) => {
            let message = progress.access.as_ref().map(|(_, _, m)| format!("a pod's path to its objects fails: {m}")).unwrap_or_default();
            out.push(cond(READY, ConditionStatus::False, "AccessNotVerified", message.clone()));
            out.push(cond(RECONCILING, ConditionStatus::True, "AccessNotVerified", message));
        }
        Ok(()) if !progress.waiting.is_empty() => {
            let message = progress.waiting.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
            out.push(cond(READY, ConditionStatus::False, IN_PROGRESS, message.clone()));
            out.push(cond(RECONCILING, ConditionStatus::True, IN_PROGRESS, message));
        }
        Ok(()) => {
            out.push(cond(READY, ConditionStatus::True, "Converged", "the identity is attached, granted and written into every SecretProviderClass".to_owned()))
        }
        Err(e) => {
            out.push(cond(READY, ConditionStatus::False, e.reason(), e.to_string()));
            let trio = if e.is_stalled() { STALLED } else { RECONCILING };
            out.push(cond(trio, ConditionStatus::True, e.reason(), e.to_string()));
        }
    }
    out
}

/// Writes `status` unless it says the same as what the binding has.
pub async fn patch_if_changed(api: &Api<IdentityBinding>, binding: &IdentityBinding, mut status: IdentityBindingStatus) -> Result<bool, ReconcileError> {
    let old = binding.status.clone().unwrap_or_default();
    status.conditions = merge_conditions(&old.conditions, status.conditions);
    if status == old {
        return Ok(false);
    }
    let patch = json!({"apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding", "status": status});
    api.patch_status(&binding.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::PatchStatus { binding: format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any()), source })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use kvbind_api::condition::find;

    use super::*;

    /// `(type, status, reason)` of each condition, for a table.
    fn summary(conditions: &[Condition]) -> Vec<(String, ConditionStatus, String)> {
        conditions.iter().map(|c| (c.r#type.clone(), c.status, c.reason.clone())).collect()
    }

    fn status_of(conditions: &[Condition], t: &str) -> Option<(ConditionStatus, String)> {
        find(conditions, t).map(|c| (c.status, c.reason.clone()))
    }

    fn all_done() -> Progress {
        let done = |step, reason: &'static str| (step, reason, format!("{reason} message"));
        Progress {
            done: vec![
                done(Step::Policy, "Allowed"),
                done(Step::Identity, "IdentityAvailable"),
                done(Step::Nodes, "Attached"),
                done(Step::Access, "Granted"),
                done(Step::Classes, "Updated"),
            ],
            ..Progress::default()
        }
    }

    #[test]
    fn a_converged_binding_is_ready_with_every_step_true_and_no_store_condition_unless_it_names_stores() {
        let conditions = conditions(Some(3), &all_done(), Ok(()));
        assert!(conditions.iter().all(|c| c.observed_generation == Some(3)), "every condition says which generation it is of");
        assert_eq!(status_of(&conditions, READY), Some((ConditionStatus::True, "Converged".into())));
        assert_eq!(status_of(&conditions, RECONCILING), None, "kstatus: Current means neither Reconciling nor Stalled");
        assert_eq!(status_of(&conditions, STALLED), None);
        assert_eq!(status_of(&conditions, "SecretStoresUpdated"), None);
        assert_eq!(status_of(&conditions, "NodesAssigned"), Some((ConditionStatus::True, "Attached".into())));
        let stores = conditions_with_stores();
        assert_eq!(status_of(&stores, "SecretStoresUpdated"), Some((ConditionStatus::Unknown, "Waiting".into())));
    }

    fn conditions_with_stores() -> Vec<Condition> {
        conditions(Some(1), &Progress { stores_named: true, ..all_done() }, Ok(()))
    }

    #[test]
    fn handed_off_writes_leave_the_binding_reconciling_with_the_waiting_step_unknown() {
        let mut progress = all_done();
        progress.done.retain(|(step, _, _)| *step != Step::Nodes);
        progress.waiting.push((Step::Nodes, "waiting for pool-a to take the identity".into()));
        let conditions = conditions(Some(1), &progress, Ok(()));
        assert_eq!(status_of(&conditions, "NodesAssigned"), Some((ConditionStatus::Unknown, IN_PROGRESS.into())));
        assert_eq!(status_of(&conditions, READY), Some((ConditionStatus::False, IN_PROGRESS.into())));
        assert_eq!(status_of(&conditions, RECONCILING), Some((ConditionStatus::True, IN_PROGRESS.into())));
        assert_eq!(status_of(&conditions, STALLED), None);
    }

    #[test]
    fn a_failure_is_false_on_its_own_step_and_stalled_only_when_time_cannot_fix_it() {
        let progress = Progress { done: all_done().done.into_iter().take(1).collect(), ..Progress::default() };
        let refused = BindingError::ClassNotFound("app".into());
        let refused = conditions(Some(2), &progress, Err(&refused));
        let table = summary(&refused);
        assert!(table.contains(&("AllowedByPolicy".into(), ConditionStatus::True, "Allowed".into())), "steps before it stay true: {table:?}");
        assert!(table.contains(&("SecretProviderClassesUpdated".into(), ConditionStatus::False, "SecretProviderClassNotFound".into())));
        assert_eq!(status_of(&refused, STALLED), Some((ConditionStatus::True, "SecretProviderClassNotFound".into())));
        assert_eq!(status_of(&refused, RECONCILING), None);

        let held = BindingError::AzureWriteQuota { namespace: "a".into(), spent: 3, max: 3, policy: "p".into(), resume: std::time::Duration::from_secs(60) };
        let held = conditions(Some(2), &Progress::default(), Err(&held));
        assert_eq!(status_of(&held, "AllowedByPolicy"), Some((ConditionStatus::False, "AzureWriteQuotaReached".into())));
        assert_eq!(status_of(&held, "IdentityReady"), Some((ConditionStatus::Unknown, "Waiting".into())), "later steps wait on it");
        assert_eq!(status_of(&held, RECONCILING), Some((ConditionStatus::True, "AzureWriteQuotaReached".into())), "an hour ends it");
        assert_eq!(status_of(&held, STALLED), None);
    }

    #[test]
    fn notices_are_conditions_while_they_hold() {
        let progress = Progress { notices: vec![("NodeWideAccess", "ReachableFromEveryPodOnPools", "every pod on pool-a".into())], ..all_done() };
        let conditions = conditions(None, &progress, Ok(()));
        assert_eq!(status_of(&conditions, "NodeWideAccess"), Some((ConditionStatus::True, "ReachableFromEveryPodOnPools".into())));
        assert_eq!(status_of(&conditions, READY), Some((ConditionStatus::True, "Converged".into())), "a notice does not hold Ready back");
    }

    #[test]
    fn opted_in_ready_means_a_pod_can_read_and_a_failed_proof_is_worked_on_not_stalled() {
        let proven = |status, reason: &'static str| Progress { access: Some((status, reason, format!("{reason} message"))), ..all_done() };
        let verified = conditions(None, &proven(ConditionStatus::True, "Verified"), Ok(()));
        assert_eq!(status_of(&verified, crate::verify::CONDITION), Some((ConditionStatus::True, "Verified".into())));
        assert_eq!(status_of(&verified, READY), Some((ConditionStatus::True, "Converged".into())));
        let refused = conditions(None, &proven(ConditionStatus::False, "ObjectNotReadable"), Ok(()));
        assert_eq!(status_of(&refused, READY), Some((ConditionStatus::False, "AccessNotVerified".into())));
        assert!(find(&refused, READY).is_some_and(|c| c.message.contains("ObjectNotReadable message")), "Ready says what fails");
        assert_eq!(status_of(&refused, RECONCILING), Some((ConditionStatus::True, "AccessNotVerified".into())));
        assert_eq!(status_of(&refused, STALLED), None);
        let unproven = conditions(None, &proven(ConditionStatus::Unknown, "Probing"), Ok(()));
        assert_eq!(status_of(&unproven, READY), Some((ConditionStatus::True, "Converged".into())), "not yet proven is not a failure");
        assert_eq!(status_of(&conditions(None, &all_done(), Ok(())), crate::verify::CONDITION), None, "only when asked for");
    }
}
