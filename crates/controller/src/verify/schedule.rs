//! When each binding's path is proven: once a resync, and again soon after kvbind changed
//! something for it, so the condition reports what pods see, not what kvbind meant.
//!
//! The proof comes first in a reconcile, before kvbind repairs anything: a grant someone
//! removed in Azure is reported False, naming the objects, in the resync that restores
//! it, and proven True again a moment later. The identity probed is the one kvbind last
//! converged to, and the verdict shown between proofs is the last one found, both kept
//! here rather than read from the binding's status, which a tenant with status rights
//! could rewrite.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::ResourceExt;
use kvbind_api::identity_binding::IdentityBinding;
use tokio::time::Instant;

use super::verdict::Verdict;

/// Per binding (by UID): the identity it converged to, for which generation, and when its
/// path was last proven, with what verdict.
#[derive(Default)]
pub struct Schedule {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    client_id: String,
    generation: Option<i64>,
    probed: Option<Instant>,
    verdict: Option<Verdict>,
}

impl Schedule {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The client ID to prove the path of now, when a proof is due: the binding converged
    /// at this generation, and was never proven since, or not for `period`.
    pub fn due(&self, binding: &IdentityBinding, period: Duration, now: Instant) -> Option<String> {
        let entries = self.entries();
        let entry = entries.get(&binding.uid()?)?;
        let stale = entry.probed.is_none_or(|at| now.duration_since(at) >= period);
        (entry.generation == binding.metadata.generation && stale).then(|| entry.client_id.clone())
    }

    /// The path was proven now, coming to `verdict`.
    pub fn probed(&self, binding: &IdentityBinding, now: Instant, verdict: &Verdict) {
        if let Some(uid) = binding.uid()
            && let Some(entry) = self.entries().get_mut(&uid)
        {
            entry.probed = Some(now);
            entry.verdict = Some(verdict.clone());
        }
    }

    /// The last verdict on the binding at its current generation.
    pub fn verdict(&self, binding: &IdentityBinding) -> Option<Verdict> {
        let entries = self.entries();
        let entry = entries.get(&binding.uid()?)?;
        entry.verdict.clone().filter(|_| entry.generation == binding.metadata.generation)
    }

    /// The binding converged to `client_id`; `changed` when kvbind wrote anything for it,
    /// which makes the last proof stale.
    pub fn converged(&self, binding: &IdentityBinding, client_id: &str, changed: bool) {
        let Some(uid) = binding.uid() else { return };
        let mut entries = self.entries();
        let entry = entries.entry(uid).or_insert_with(|| Entry {
            client_id: client_id.to_owned(),
            generation: binding.metadata.generation,
            probed: None,
            verdict: None,
        });
        let moved = entry.client_id != client_id || entry.generation != binding.metadata.generation;
        if moved {
            entry.verdict = None;
        }
        if changed || moved {
            entry.probed = None;
        }
        entry.client_id = client_id.to_owned();
        entry.generation = binding.metadata.generation;
    }

    /// Whether the binding waits for its first proof since it last changed.
    pub fn unproven(&self, binding: &IdentityBinding) -> bool {
        binding.uid().and_then(|uid| self.entries().get(&uid).map(|e| e.probed.is_none())).unwrap_or(false)
    }

    /// The binding is gone.
    pub fn forget(&self, binding: &IdentityBinding) {
        if let Some(uid) = binding.uid() {
            self.entries().remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(generation: i64) -> IdentityBinding {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kvbind.io/v1alpha1", "kind": "IdentityBinding",
            "metadata": {"name": "app", "namespace": "team-a", "uid": "u-1", "generation": generation},
            "spec": {"identity": {"name": "app", "resourceGroup": "rg"}, "secretProviderClasses": {"names": ["app"]}},
        }))
        .expect("binding")
    }

    #[test]
    fn a_proof_is_due_after_converging_after_a_change_and_once_a_period() {
        let period = Duration::from_secs(60);
        let schedule = Schedule::default();
        let t0 = Instant::now();
        let b = binding(1);
        assert_eq!(schedule.due(&b, period, t0), None, "never converged: nothing to prove");
        schedule.converged(&b, "client-1", true);
        assert!(schedule.unproven(&b));
        assert_eq!(schedule.due(&b, period, t0).as_deref(), Some("client-1"));
        let verified: Verdict = (kvbind_api::condition::ConditionStatus::True, "Verified", "2 reads".to_owned());
        schedule.probed(&b, t0, &verified);
        assert!(!schedule.unproven(&b));
        assert_eq!(schedule.verdict(&b), Some(verified.clone()), "kept between proofs");
        schedule.converged(&b, "client-1", false);
        assert_eq!(schedule.due(&b, period, t0 + Duration::from_secs(59)), None, "proven within the period");
        assert!(schedule.due(&b, period, t0 + period).is_some(), "due again a period on");
        schedule.converged(&b, "client-1", true);
        assert!(schedule.due(&b, period, t0 + Duration::from_secs(1)).is_some(), "a change makes the proof stale");
        assert_eq!(schedule.verdict(&b), Some(verified.clone()), "and the last verdict stands until the next");
        schedule.probed(&b, t0, &verified);
        assert_eq!(schedule.due(&binding(2), period, t0 + period), None, "an edited binding converges before it is proven");
        assert_eq!(schedule.verdict(&binding(2)), None, "a verdict is of its generation only");
        schedule.forget(&b);
        assert_eq!(schedule.due(&b, period, t0 + period), None);
    }
}
