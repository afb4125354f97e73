//! When kvbind last made each namespace's IMDS NetworkPolicy what its policies say.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What kvbind last found or made of each namespace's NetworkPolicy, and when. Every
/// binding of a namespace asks at every reconcile; one look a resync is enough, so a
/// NetworkPolicy someone removed or changed is put back at the latest a resync later.
#[derive(Debug, Default)]
pub struct Looked(Mutex<HashMap<String, (bool, Instant)>>);

impl Looked {
    /// True when `namespace`'s NetworkPolicy was made what `deny` says less than `ttl` ago.
    pub fn fresh(&self, namespace: &str, deny: bool, ttl: Duration) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(namespace).is_some_and(|(was, at)| *was == deny && at.elapsed() < ttl)
    }

    /// Notes that `namespace`'s NetworkPolicy was made what `deny` says now.
    pub fn record(&self, namespace: &str, deny: bool) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(namespace.to_owned(), (deny, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_holds_for_its_answer_and_its_time_only() {
        let looked = Looked::default();
        let resync = Duration::from_secs(600);
        assert!(!looked.fresh("team-a", true, resync), "never looked");
        looked.record("team-a", true);
        assert!(looked.fresh("team-a", true, resync));
        assert!(!looked.fresh("team-a", false, resync), "a policy that changed its mind is acted on at once");
        assert!(!looked.fresh("team-b", true, resync), "per namespace");
        assert!(!looked.fresh("team-a", true, Duration::ZERO), "a look older than a resync is taken again");
    }
}
