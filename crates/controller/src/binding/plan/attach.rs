//! Where the identity goes: the step for each scale set or VM it should be on, and the
//! ones to take it off.

use std::collections::BTreeSet;

use kvbind_azure::ComputeId;

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
}
