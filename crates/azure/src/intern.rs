//! Shared copies of resource IDs that recur by the thousand.
//!
//! A thousand identities on twenty pools are twenty thousand identity IDs in the pools'
//! identity blocks, and twenty pool IDs recorded per binding are twenty thousand more; they
//! are the same thousand and the same twenty strings. Each distinct string is kept once and
//! shared.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

/// Strings interned since the last sweep after which a sweep drops those no one holds.
const SWEEP_EVERY: usize = 4096;

struct Interned {
    strings: HashSet<Arc<str>>,
    since_sweep: usize,
}

static INTERNED: LazyLock<Mutex<Interned>> = LazyLock::new(|| Mutex::new(Interned { strings: HashSet::new(), since_sweep: 0 }));

/// The shared copy of `s`.
pub fn intern(s: &str) -> Arc<str> {
    let mut interned = INTERNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(shared) = interned.strings.get(s) {
        return shared.clone();
    }
    interned.since_sweep += 1;
    if interned.since_sweep >= SWEEP_EVERY {
        // Identities come and go over an operator's life; their IDs need not stay.
        interned.strings.retain(|shared| Arc::strong_count(shared) > 1);
        interned.since_sweep = 0;
    }
    let shared: Arc<str> = Arc::from(s);
    interned.strings.insert(shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy_and_unheld_ones_are_swept() {
        let a = intern("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/pool-a");
        let b = intern(&String::from("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/pool-a"));
        assert!(Arc::ptr_eq(&a, &b));
        drop(intern("held by no one"));
        // Enough new strings for at least one sweep.
        for i in 0..SWEEP_EVERY {
            let _ = intern(&format!("churn-{i}"));
        }
        assert!(!INTERNED.lock().expect("lock").strings.contains("held by no one"), "a string no one holds is swept");
        assert!(Arc::ptr_eq(&a, &intern(&a)), "a held string stays shared");
    }
}
