//! Azure writes per namespace per hour (BindingPolicy `maxAzureWritesPerHour`).
//!
//! A tenant who may edit bindings can make kvbind write to Azure as often as they edit:
//! flip a binding's nodes and every flip is a scale set PATCH; create and delete it and
//! every round is an identity, an attachment and a grant made and undone. ARM's write
//! budget is the subscription's, shared with every other tenant and the platform team, so
//! one namespace could throttle everyone. Each Azure change kvbind reports for a binding
//! counts once against its namespace; once a namespace has spent its hour's quota its
//! bindings' reconciles stop before any Azure write and say until when. Undoing (a deleted
//! or refused binding) is never held: it only takes access away, and it counts all the same.
//!
//! The log lives in the operator's memory: a restart forgets it, which no tenant can cause.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The window a quota counts writes over.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// The change reasons that are Azure writes (see [`crate::binding`]'s Events): the
/// Kubernetes ones (classes, ServiceAccounts, NetworkPolicies) are not counted.
const AZURE_CHANGES: [&str; 10] = [
    "IdentityCreated",
    "IdentityDeleted",
    "IdentityAttached",
    "IdentityDetached",
    "AccessGranted",
    "AccessRevoked",
    "FederatedCredentialCreated",
    "FederatedCredentialDeleted",
    "AKSIdentityBindingCreated",
    "AKSIdentityBindingDeleted",
];

/// How many of `reasons` are Azure writes.
pub fn azure_writes<'a>(reasons: impl IntoIterator<Item = &'a str>) -> usize {
    reasons.into_iter().filter(|r| AZURE_CHANGES.contains(r)).count()
}

/// When each namespace's recent Azure writes were made.
#[derive(Debug, Default)]
pub struct WriteLog {
    by_namespace: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl WriteLog {
    /// Counts the Azure writes among `changes`, reported now, against `namespace`.
    pub fn spend_changes(&self, namespace: &str, changes: &[crate::desks::handoff::Change], now: Instant) {
        self.spend(namespace, azure_writes(changes.iter().map(|(reason, _)| *reason)), now);
    }

    /// Notes `count` Azure writes made for `namespace` at `now`.
    pub fn spend(&self, namespace: &str, count: usize, now: Instant) {
        if count == 0 {
            return;
        }
        let mut log = self.by_namespace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let writes = log.entry(namespace.to_owned()).or_default();
        forget_before(writes, now);
        writes.extend(std::iter::repeat_n(now, count));
    }

    /// `None` while `namespace` has made fewer than `max` writes in the window before `now`;
    /// otherwise how many it made and how long until one leaves the window.
    pub fn spent(&self, namespace: &str, max: u32, now: Instant) -> Option<(usize, Duration)> {
        let mut log = self.by_namespace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let writes = log.get_mut(namespace)?;
        forget_before(writes, now);
        // The writes past `max` must leave the window too before there is room for one.
        let over = writes.len().checked_sub(max as usize)?;
        let frees = writes.get(over).map_or(Duration::ZERO, |t| (*t + WINDOW).saturating_duration_since(now));
        Some((writes.len(), frees))
    }
}

fn forget_before(writes: &mut VecDeque<Instant>, now: Instant) {
    while writes.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
        writes.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_at_its_quota_waits_until_its_oldest_write_leaves_the_hour() {
        let log = WriteLog::default();
        let start = Instant::now();
        assert_eq!(log.spent("a", 3, start), None, "nothing spent yet");
        log.spend("a", 2, start);
        log.spend("a", 1, start + Duration::from_secs(600));
        log.spend("b", 5, start);
        assert_eq!(log.spent("a", 4, start + Duration::from_secs(601)), None, "3 of 4");
        assert_eq!(log.spent("a", 3, start + Duration::from_secs(601)), Some((3, Duration::from_secs(2999))), "the first two leave at 3600 s");
        assert_eq!(log.spent("a", 1, start + Duration::from_secs(601)), Some((3, Duration::from_secs(3599))), "room for one only when the third leaves");
        assert_eq!(log.spent("a", 3, start + WINDOW), None, "the first two have left");
        assert_eq!(log.spent("c", 0, start), None, "a namespace that wrote nothing is never held");
    }

    #[test]
    fn only_azure_writes_count() {
        assert_eq!(azure_writes(["IdentityCreated", "IdentityAttached", "AccessGranted", "SecretProviderClassUpdated", "ServiceAccountAnnotated"]), 3);
    }
}
