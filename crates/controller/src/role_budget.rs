//! The role assignments a subscription may still take.
//!
//! Azure allows 4,000 role assignments per subscription, at every scope in it, and the
//! number cannot be raised; per-object grants on RBAC vaults spend one each. Past the limit
//! ARM refuses each create, so a binding that needs three would be left with one or two:
//! half a grant. kvbind therefore reserves a binding's whole need before it creates any,
//! against a count it reads from ARM (once per [`COUNT_TTL`] per subscription) plus what it
//! created since, and refuses the binding by name when the need does not fit.
//! Reservations are taken under one lock per subscription, so two bindings cannot both take
//! the last room. Counting needs `Microsoft.Authorization/roleAssignments/read` on the
//! subscription (Reader has it); without it the count is unknown, nothing is refused
//! here, and ARM's own refusal is what stops a binding (as `RoleAssignmentLimit` still).

use std::collections::HashMap;
use std::time::Duration;

use kvbind_azure::{Arm, AzureError};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The role assignments Azure allows in one subscription.
pub const AZURE_ROLE_ASSIGNMENT_LIMIT: usize = 4000;

/// How long a count read from ARM stands before it is read again: others create and
/// delete role assignments too, and a count of thousands is several pages to read.
pub const COUNT_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Count {
    /// `None` when kvbind may not read the subscription's role assignments.
    held: Option<usize>,
    read_at: Instant,
}

/// Role assignment counts per subscription, with kvbind's reservations in them.
#[derive(Debug)]
pub struct RoleAssignmentBudget {
    limit: usize,
    counts: Mutex<HashMap<String, Count>>,
}

impl RoleAssignmentBudget {
    /// A budget that lets a subscription reach `limit` role assignments.
    pub fn new(limit: usize) -> Self {
        RoleAssignmentBudget { limit, counts: Mutex::default() }
    }

    /// Takes room for `needed` new role assignments in `subscription`, or refuses with the
    /// limit, the count and the way out; nothing is taken then.
    pub async fn reserve(&self, arm: &dyn Arm, subscription: &str, needed: usize) -> Result<(), AzureError> {
        if needed == 0 {
            return Ok(());
        }
        let key = subscription.to_ascii_lowercase();
        let mut counts = self.counts.lock().await;
        let fresh = counts.get(&key).is_some_and(|c| c.read_at.elapsed() < COUNT_TTL);
        if !fresh {
            let held = match arm.count_role_assignments(subscription).await {
                Ok(held) => Some(held),
                Err(AzureError::Forbidden { message, .. }) => {
                    tracing::warn!(subscription, "cannot count the subscription's role assignments, so ARM's refusal is what enforces its limit: {message}");
                    None
                }
                Err(e) => return Err(e),
            };
            counts.insert(key.clone(), Count { held, read_at: Instant::now() });
        }
        let Some(count) = counts.get_mut(&key) else { return Ok(()) };
        let Some(held) = count.held.as_mut() else { return Ok(()) };
        if *held + needed > self.limit {
            return Err(AzureError::LimitReached {
                operation: "CreateRoleAssignment",
                resource: format!("/subscriptions/{subscription}"),
                limit: "RoleAssignmentLimit",
                message: format!(
                    "subscription {subscription} holds {held} role assignments, and the {needed} this binding needs would take it past {}{}. Use rbacScope: Vault (one role assignment per identity and vault), share an identity between bindings, or grant with a vault that uses access policies",
                    self.limit,
                    if self.limit == AZURE_ROLE_ASSIGNMENT_LIMIT { ", Azure's limit" } else { ", the limit kvbind is configured with" },
                ),
            });
        }
        *held += needed;
        Ok(())
    }

    /// Gives back room for `removed` role assignments kvbind deleted.
    pub async fn release(&self, subscription: &str, removed: usize) {
        if let Some(held) = self.counts.lock().await.get_mut(&subscription.to_ascii_lowercase()).and_then(|c| c.held.as_mut()) {
            *held = held.saturating_sub(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::fake_compute::FakeCompute;

    /// A subscription holding `held` role assignments.
    fn arm(held: usize) -> FakeCompute {
        FakeCompute::holding_role_assignments(held)
    }

    fn asked(arm: &FakeCompute) -> usize {
        arm.role_assignment_counts.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_need_that_does_not_fit_is_refused_whole_and_takes_nothing() {
        let arm = arm(3997);
        let budget = RoleAssignmentBudget::new(AZURE_ROLE_ASSIGNMENT_LIMIT);
        let refused = budget.reserve(&arm, "sub", 4).await.expect_err("3997 + 4 > 4000");
        let AzureError::LimitReached { limit, message, .. } = &refused else { panic!("{refused:?}") };
        assert_eq!(*limit, "RoleAssignmentLimit");
        assert!(message.contains("holds 3997 role assignments, and the 4 this binding needs would take it past 4000, Azure's limit"), "{message}");
        assert!(message.contains("rbacScope: Vault"), "the way out: {message}");
        budget.reserve(&arm, "sub", 3).await.expect("the refusal took nothing: 3 fit");
        budget.reserve(&arm, "sub", 1).await.expect_err("the last room is taken");
        budget.release("sub", 1).await;
        budget.reserve(&arm, "sub", 1).await.expect("a deletion gives room back");
        assert_eq!(asked(&arm), 1, "one count read for all of it");
    }

    #[tokio::test(start_paused = true)]
    async fn without_permission_to_count_nothing_is_refused_here() {
        let arm = FakeCompute::forbidding_role_assignment_counts();
        let budget = RoleAssignmentBudget::new(AZURE_ROLE_ASSIGNMENT_LIMIT);
        budget.reserve(&arm, "sub", 5000).await.expect("ARM's own refusal is what stops it");
        budget.reserve(&arm, "sub", 1).await.expect("still unknown");
        assert_eq!(asked(&arm), 1, "asked once per TTL, not per binding");
    }

    #[tokio::test(start_paused = true)]
    async fn the_count_is_read_again_after_its_ttl() {
        let arm = arm(10);
        let budget = RoleAssignmentBudget::new(20);
        budget.reserve(&arm, "sub", 10).await.expect("10 + 10 fit in 20");
        budget.reserve(&arm, "sub", 1).await.expect_err("full, as kvbind counts");
        // Others deleted theirs meanwhile: ARM says 10 again once the count is stale.
        tokio::time::advance(COUNT_TTL).await;
        budget.reserve(&arm, "sub", 1).await.expect("read again");
        assert_eq!(asked(&arm), 2);
    }
}
