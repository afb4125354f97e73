//! Step 2 in VM mode: the identity on exactly the scale sets and VMs that need it.

use std::collections::BTreeSet;
use std::sync::Arc;

use kvbind_api::identity_binding::{AttachmentOrigin, AttachmentStatus};
use kvbind_azure::intern::intern;
use kvbind_azure::model::ComputeIdentity;
use kvbind_azure::{ComputeId, IdentityId};

use super::records::record_ahead;
use crate::binding::plan::{self, AttachStep};
use crate::context::Context;
use crate::desks::compute::Attachment;
use crate::desks::handoff::{Change, Waiting};
use crate::error::{BindingError, Step};
use crate::records::Records;

/// The attachments, and the targets that carry more than one user-assigned identity (where
/// a SecretProviderClass that names no identity cannot mount), split by whether kvbind just
/// made them so.
#[derive(Debug, Default)]
pub struct Attachments {
    /// One entry per desired target.
    pub status: Vec<AttachmentStatus>,
    /// Targets with several user-assigned identities.
    pub crowded: Vec<ComputeId>,
    /// Targets that kvbind's attachment just took from one identity to two.
    pub newly_crowded: Vec<ComputeId>,
    /// Targets whose attachment was handed to their writer and has not landed yet.
    pub pending: Vec<ComputeId>,
}

/// Attaches the identity to every desired target and detaches it from targets kvbind
/// attached that no binding needs any more. Targets that carried the identity before
/// kvbind looked are recorded as found and never detached.
///
/// An identity kvbind created (`owned`) was attached by nobody else, so every attachment
/// of it is kvbind's: that holds even when kvbind was killed between a PATCH and the status
/// write that records it. For adopted identities the records are the only evidence.
///
/// Observe, plan, act: every target's identity block is read first (a read that fails
/// stops the step before any write), [`plan::plan_attachments`] decides, and the writes
/// follow.
#[allow(clippy::too_many_arguments)]
pub async fn sync_attachments(
    ctx: &Context,
    identity: &IdentityId,
    owned: bool,
    desired: &BTreeSet<ComputeId>,
    records: &Records,
    may_remove: bool,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<Attachments, BindingError> {
    let read = futures::future::join_all(desired.iter().map(|target| ctx.azure.compute.read(target))).await;
    let observed: Vec<Arc<ComputeIdentity>> =
        read.into_iter().collect::<Result<_, _>>().map_err(BindingError::azure(Step::Nodes, "reading the VM scale set's identities"))?;
    let plan = plan::plan_attachments(identity, desired, &observed, &records.attached, owned, may_remove);

    // Every scale set at once: each has its own writer, and a binding on twenty pools
    // should wait for one PATCH, not twenty in a row. They share one copy of the ID.
    let shared = Arc::new(identity.clone());
    let steps = plan.steps.iter().zip(observed).map(|((target, step), current)| attach(ctx, &shared, owned, target, *step, current, waiting));
    let attached = futures::future::join_all(steps).await;
    let mut out = Attachments::default();
    for (target, result) in desired.iter().zip(attached) {
        let Some((origin, after, newly_crowded, change)) = result? else {
            out.pending.push(target.clone());
            continue;
        };
        changes.extend(change);
        if newly_crowded {
            out.newly_crowded.push(target.clone());
        }
        if after.user_assigned().len() > 1 {
            out.crowded.push(target.clone());
        }
        out.status.push(AttachmentStatus { resource_id: intern(&target.to_string()), origin });
    }
    for target in plan.detach {
        match ctx.azure.compute.write_in_place(target, Attachment::Detach(Arc::new(identity.clone()))).await {
            Ok(_) => changes.push(("IdentityDetached", format!("detached the identity from {} {}", target.kind().describe(), target.name))),
            // A pool that is gone took the identity with it.
            Err(kvbind_azure::AzureError::NotFound { .. }) => {}
            Err(e) => {
                return Err(BindingError::azure(Step::Nodes, "detaching the identity")(e));
            }
        }
    }
    Ok(out)
}

/// One scale set or VM, as planned: attached already (by kvbind or someone else), or
/// attached now, or (`None`) handed to its writer. Returns who attached it, its identity
/// block after, whether kvbind just gave it its second identity, and the change made.
pub(super) async fn attach(
    ctx: &Context,
    identity: &Arc<IdentityId>,
    owned: bool,
    target: &ComputeId,
    step: AttachStep,
    current: Arc<ComputeIdentity>,
    waiting: Waiting<'_>,
) -> Result<Option<(AttachmentOrigin, Arc<ComputeIdentity>, bool, Option<Change>)>, BindingError> {
    let attached_now = |before: usize, after| {
        let change = ("IdentityAttached", format!("attached the identity to {} {}", target.kind().describe(), target.name));
        Some((AttachmentOrigin::Attached, after, before == 1, Some(change)))
    };
    match step {
        AttachStep::Keep { ours } => {
            // An attachment handed off before that has landed since is this reconcile's news.
            if let Waiting::HandOff { landed, .. } = waiting
                && let Some(Ok(before)) = landed.of(target)
            {
                return Ok(attached_now(*before, current));
            }
            let origin = if ours { AttachmentOrigin::Attached } else { AttachmentOrigin::Found };
            return Ok(Some((origin, current, false, None)));
        }
        // Azure refuses an update that would leave more than 150 user-assigned identities
        // on a scale set or VM; refused here, by name, the pool's other writes go on.
        AttachStep::OverLimit { count } => {
            return Err(BindingError::PoolIdentityLimit { target: target.name.clone(), count, limit: kvbind_azure::model::MAX_USER_ASSIGNED_PER_COMPUTE });
        }
        AttachStep::Attach { .. } => {}
    }
    if !owned {
        record_ahead(ctx, identity, |ledger, identity| ledger.note_attached(identity, target)).await?;
    }
    let written = ctx.azure.compute.write(target, Attachment::Attach(identity.clone()), waiting).await;
    Ok(written.map_err(BindingError::azure(Step::Nodes, "attaching the identity"))?.and_then(|w| attached_now(w.before, w.after)))
}
