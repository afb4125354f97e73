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
    match outcome {
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
