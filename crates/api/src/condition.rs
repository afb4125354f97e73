//! Status conditions shaped like `metav1.Condition`, and the rules that keep them
//! readable by `kubectl wait`, kstatus and Flux.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kstatus condition that says the binding has converged.
pub const READY: &str = "Ready";
/// The kstatus condition present only while kvbind is working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// The kstatus condition present only while kvbind cannot make progress without a change.
pub const STALLED: &str = "Stalled";
/// The domain condition present while the lint finds something misleading, but not fatal,
/// in the binding's SecretProviderClasses.
pub const CLASS_LINT: &str = "ClassLint";

/// One observation about a resource, as `metav1.Condition`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, in CamelCase (`Ready`, `NodesAssigned`, …).
    #[schemars(length(min = 1, max = 316))]
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// The `metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When status, reason or message last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// A CamelCase word for programs.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// A sentence for people.
    #[schemars(length(max = 32768))]
    pub message: String,
}

/// The longest message the schema allows, in characters; kept in bytes, which is stricter.
const MAX_MESSAGE: usize = 32768;

/// `message` cut to fit the schema, on a character boundary, so that a long list in it can
/// never make the API server refuse the whole status.
fn fitted(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let marker = "…";
        let mut end = MAX_MESSAGE - marker.len();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(marker);
    }
    message
}

/// The three values of a condition.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// kvbind does not know yet.
    Unknown,
}

impl Condition {
    /// A condition observed now for `generation`.
    pub fn new(r#type: &str, status: ConditionStatus, reason: &str, message: impl Into<String>, generation: Option<i64>, now: &str) -> Self {
        Self {
            r#type: r#type.to_owned(),
            status,
            observed_generation: generation,
            last_transition_time: now.to_owned(),
            reason: reason.to_owned(),
            message: fitted(message.into()),
        }
    }
}

/// Merges freshly computed conditions into the previous ones: a condition whose status,
/// reason and message did not change keeps its `lastTransitionTime`, so unchanged status
/// compares equal and need not be written.
pub fn merge_conditions(previous: &[Condition], fresh: Vec<Condition>) -> Vec<Condition> {
    fresh
        .into_iter()
        .map(|mut c| {
            if let Some(old) = previous.iter().find(|o| o.r#type == c.r#type)
                && old.status == c.status
                && old.reason == c.reason
                && old.message == c.message
            {
                c.last_transition_time.clone_from(&old.last_transition_time);
            }
            c
        })
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], r#type: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.r#type == r#type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_to_what_the_schema_allows() {
        let long = "é".repeat(MAX_MESSAGE);
        let c = Condition::new(READY, ConditionStatus::False, "R", long, None, "t");
        assert!(c.message.len() <= MAX_MESSAGE && c.message.ends_with('…'), "{} bytes", c.message.len());
        assert_eq!(Condition::new(READY, ConditionStatus::True, "R", "short", None, "t").message, "short");
    }

    fn ready(status: ConditionStatus, reason: &str, at: &str) -> Condition {
        Condition::new(READY, status, reason, "m", Some(1), at)
    }

    #[test]
    fn unchanged_condition_keeps_its_transition_time() {
        let old = vec![ready(ConditionStatus::True, "Converged", "2026-01-01T00:00:00Z")];
        let merged = merge_conditions(&old, vec![ready(ConditionStatus::True, "Converged", "2026-02-02T00:00:00Z")]);
        assert_eq!(merged, old);
    }

    #[test]
    fn changed_reason_moves_the_transition_time() {
        let old = vec![ready(ConditionStatus::False, "Throttled", "2026-01-01T00:00:00Z")];
        let merged = merge_conditions(&old, vec![ready(ConditionStatus::False, "VaultNotFound", "2026-02-02T00:00:00Z")]);
        assert_eq!(merged[0].last_transition_time, "2026-02-02T00:00:00Z");
    }
}
