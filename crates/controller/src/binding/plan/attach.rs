//! Where the identity goes: the step for each scale set or VM it should be on, and the
//! ones to take it off.

use std::collections::BTreeSet;
use std::sync::Arc;

use kvbind_azure::model::ComputeIdentity;
use kvbind_azure::{ComputeId, IdentityId};

/// What to do on one scale set or VM the identity should be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachStep {
    /// It is there already.
    Keep {
        /// kvbind attached it (its record says so, or kvbind made the identity), rather
        /// than found it there: only then is it kvbind's to detach.
        ours: bool,
    },
    /// Attach it.
    Attach {
        /// The user-assigned identities the target will carry.
        count: usize,
    },
    /// Azure would refuse the update.
    OverLimit {
        /// The user-assigned identities the target would carry, past its limit.
        count: usize,
    },
}

/// The step for one target that carries `carried` user-assigned identities, `present`
/// among them or not. `recorded` says kvbind's ledger holds the attachment; `owned` that
/// kvbind made the identity, so any attachment of it is kvbind's.
pub fn attach_step(present: bool, carried: usize, owned: bool, recorded: bool) -> AttachStep {
    if present {
        return AttachStep::Keep { ours: owned || recorded };
    }
    let count = carried + 1;
    if count > kvbind_azure::model::MAX_USER_ASSIGNED_PER_COMPUTE { AttachStep::OverLimit { count } } else { AttachStep::Attach { count } }
}

/// The targets to detach the identity from: those kvbind's records say it attached that
/// no binding wants any more, and only when every sharer's input read (`may_remove`): a
/// sharer whose input is broken may still need them.
pub fn detachments<'a>(recorded: &'a BTreeSet<ComputeId>, desired: &BTreeSet<ComputeId>, may_remove: bool) -> Vec<&'a ComputeId> {
    if !may_remove {
        return Vec::new();
    }
    recorded.iter().filter(|target| !desired.contains(*target)).collect()
}

/// Step 2 in VM mode, decided: what to do on each scale set or VM the identity should be
/// on, and which to take it off.
#[derive(Debug, PartialEq, Eq)]
pub struct AttachPlan<'a> {
    /// One step per desired target, in the order given.
    pub steps: Vec<(&'a ComputeId, AttachStep)>,
    /// The targets to detach it from.
    pub detach: Vec<&'a ComputeId>,
}

/// Plans step 2 from each desired target's identity block as read (`observed`, in
/// `desired`'s order), what kvbind's records say it attached, whether kvbind made the
/// identity (`owned`), and whether every sharer's input read (`may_remove`).
pub fn plan_attachments<'a>(
    identity: &IdentityId,
    desired: &'a BTreeSet<ComputeId>,
    observed: &[Arc<ComputeIdentity>],
    recorded: &'a BTreeSet<ComputeId>,
    owned: bool,
    may_remove: bool,
) -> AttachPlan<'a> {
    let steps = desired
        .iter()
        .zip(observed)
        .map(|(target, block)| (target, attach_step(block.has(identity), block.user_assigned().len(), owned, recorded.contains(target))))
        .collect();
    AttachPlan { steps, detach: detachments(recorded, desired, may_remove) }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn an_attachment_is_kept_made_or_refused_by_what_the_target_carries_and_the_records() {
        let limit = kvbind_azure::model::MAX_USER_ASSIGNED_PER_COMPUTE;
        let table = [
            // (present, carried, owned, recorded) -> step
            ((true, 3, false, false), AttachStep::Keep { ours: false }),
            ((true, 3, false, true), AttachStep::Keep { ours: true }),
            ((true, 3, true, false), AttachStep::Keep { ours: true }),
            ((false, 0, false, false), AttachStep::Attach { count: 1 }),
            ((false, limit - 1, true, false), AttachStep::Attach { count: limit }),
            ((false, limit, true, false), AttachStep::OverLimit { count: limit + 1 }),
            ((true, limit, false, true), AttachStep::Keep { ours: true }),
        ];
        for ((present, carried, owned, recorded), step) in table {
            assert_eq!(attach_step(present, carried, owned, recorded), step, "present {present}, carried {carried}, owned {owned}, recorded {recorded}");
        }
    }

    #[test]
    fn only_recorded_attachments_no_one_wants_are_detached_and_none_while_a_sharer_is_broken() {
        let pool = |name: &str| ComputeId::new(kvbind_azure::ResourceKind::VirtualMachineScaleSet, "sub", "MC_nodes", name).expect("id");
        let set = |names: &[&str]| names.iter().map(|n| pool(n)).collect::<BTreeSet<ComputeId>>();
        let recorded = set(&["pool-a", "pool-b", "pool-c"]);
        let desired: BTreeSet<ComputeId> =
            [ComputeId::new(kvbind_azure::ResourceKind::VirtualMachineScaleSet, "SUB", "mc_NODES", "POOL-A").expect("id"), pool("pool-d")].into();
        let names: Vec<&str> = detachments(&recorded, &desired, true).into_iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["pool-b", "pool-c"], "pool-a is wanted, however ARM cased its ID");
        assert!(detachments(&recorded, &desired, false).is_empty());
        assert!(detachments(&set(&[]), &desired, true).is_empty(), "found attachments are never recorded, so never detached");
    }

    #[test]
    fn the_attachment_plan_keeps_what_is_there_attaches_within_the_limit_and_detaches_only_kvbinds() {
        use kvbind_azure::ResourceKind;
        use kvbind_azure::model::MAX_USER_ASSIGNED_PER_COMPUTE as LIMIT;

        let pool = |name: &str| ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "MC_nodes", name).expect("id");
        let identity = IdentityId::new(ResourceKind::UserAssignedIdentity, "sub", "ids", "app").expect("id");
        let others = |n: usize| {
            (0..n)
                .map(|i| (format!("/subscriptions/sub/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other-{i}"), String::new()))
        };
        let carrying = |n: usize, with_it: bool| {
            let mine = with_it.then(|| (identity.to_string(), "principal".to_owned()));
            Arc::new(ComputeIdentity::new(false, others(n).chain(mine).collect()))
        };
        // found: there before kvbind; kept: kvbind's by its records; new: room left; full: none.
        let desired: BTreeSet<ComputeId> = ["found", "kept", "new", "full"].iter().map(|n| pool(n)).collect();
        let by_name = |name: &str| match name {
            "found" => carrying(2, true),
            "kept" => carrying(0, true),
            "new" => carrying(3, false),
            _ => carrying(LIMIT, false),
        };
        let observed: Vec<Arc<ComputeIdentity>> = desired.iter().map(|t| by_name(&t.name)).collect();
        let recorded: BTreeSet<ComputeId> = [pool("kept"), pool("gone")].into();
        let step = |plan: &AttachPlan<'_>, name: &str| plan.steps.iter().find(|(t, _)| t.name == name).map(|(_, s)| *s);
        let detached = |plan: &AttachPlan<'_>| plan.detach.iter().map(|t| t.name.clone()).collect::<Vec<_>>();

        let plan = plan_attachments(&identity, &desired, &observed, &recorded, false, true);
        assert_eq!(step(&plan, "found"), Some(AttachStep::Keep { ours: false }), "found there: never kvbind's to detach");
        assert_eq!(step(&plan, "kept"), Some(AttachStep::Keep { ours: true }));
        assert_eq!(step(&plan, "new"), Some(AttachStep::Attach { count: 4 }));
        assert_eq!(step(&plan, "full"), Some(AttachStep::OverLimit { count: LIMIT + 1 }), "refused by name before Azure refuses the PATCH");
        assert_eq!(detached(&plan), ["gone"], "only a recorded target no binding wants");

        let created = plan_attachments(&identity, &desired, &observed, &recorded, true, true);
        assert_eq!(step(&created, "found"), Some(AttachStep::Keep { ours: true }), "an identity kvbind made was attached by nobody else");
        let held = plan_attachments(&identity, &desired, &observed, &recorded, false, false);
        assert!(held.detach.is_empty(), "nothing detached while a sharer's input does not read");
    }
}
