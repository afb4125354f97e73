//! The desk for VM scale sets and VMs: each one's identity block as last read or written,
//! and one writer per scale set or VM.
//!
//! Every binding on a pool reads that pool's identity block, so it is kept for the resync
//! period: a converged cluster costs about one read per scale set per period instead of one
//! per binding. kvbind's own writes update it; a change made by someone else is seen at the
//! next expiry, which is when the resync promises to repair drift.
//!
//! Compute allows about four identity PATCHes per scale set per minute and answers 409 to a
//! second write while one is in flight. So attach and detach requests from every binding
//! for the same scale set are collected for a short window and sent as one PATCH, and a
//! scale set never has more than one write in flight from kvbind.
//!
//! A PATCH takes tens of seconds, so a change that just misses one waits for it to end and
//! then costs a PATCH of its own. When many bindings reconcile at once (an operator start,
//! a new pool under a thousand bindings) their changes arrive over several seconds; the
//! window therefore stays open while they keep coming, and while bindings are still
//! resolving their identities (each of them is about to ask for an attachment), up to
//! [`MAX_WINDOWS`] windows.
//!
//! A reconcile hands its attachment over and ends ([`Desk::hand_off`]); the
//! writer wakes it when the PATCH lands (see [`crate::desks::handoff`]). Detaching, which a binding
//! must see done before it lets go of its records, is awaited in place.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvbind_azure::model::{ComputeIdentity, IdentityChange, MAX_USER_ASSIGNED_PER_COMPUTE};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId};

use crate::desks::desk::{Asker, Clerk, Desk};

/// The longest a batch waits for more changes, in batch windows. A thousand new bindings
/// create their identities over twenty seconds or so; closing the batch before they are all
/// in costs a second PATCH, which takes as long again.
pub const MAX_WINDOWS: u32 = 16;

/// Who waits for a write, with the identity it asked to attach (none for a detach), so
/// that an identity the target has no room for is refused to its askers alone.
type Attacher = (Option<Arc<IdentityId>>, Asker<Written>);

#[derive(Default)]
struct Pending {
    change: IdentityChange,
    answers: Vec<Attacher>,
}

/// One target's changes: those for its next write, and the write in flight.
#[derive(Default)]
pub struct Queue {
    next: Pending,
    /// The write in flight (shared with it: a thousand identities on twenty pools are not
    /// copied). A binding that reconciles again meanwhile asks for its attachment again; it
    /// waits for that write instead of costing another.
    writing: Option<Arc<IdentityChange>>,
    /// Who joined the write in flight.
    joined: Vec<Attacher>,
}

impl Queue {
    /// The changes waiting, taken as the write in flight; `None` when none are.
    fn take_next(&mut self) -> Option<(Arc<IdentityChange>, Vec<Attacher>)> {
        if self.next.answers.is_empty() {
            return None;
        }
        let Pending { change, answers } = std::mem::take(&mut self.next);
        let change = Arc::new(change);
        self.writing = Some(change.clone());
        Some((change, answers))
    }
}

/// A scale set or VM after a batch: how many user-assigned identities it had before, and
/// its identity block after.
#[derive(Debug, Clone)]
pub struct Written {
    /// User-assigned identities before the write.
    pub before: usize,
    /// The identity block after it.
    pub after: Arc<ComputeIdentity>,
}

/// A batch as written: its result, and the identities it left out, each group with the
/// refusal its askers get: those the target had no room for, and one that ARM refused by
/// name (a Regional identity from another region, one deleted meanwhile).
struct Outcome {
    result: Result<Written, AzureError>,
    refused: Vec<(BTreeSet<Arc<IdentityId>>, AzureError)>,
}

/// The identities of `change.add` that ARM's refusal names: a 400 about one identity
/// (`FailedIdentityOperation`) names it by resource ID, and the rest of the batch is
/// not at fault.
fn named_in_refusal(error: &AzureError, change: &IdentityChange) -> BTreeSet<Arc<IdentityId>> {
    let AzureError::Invalid { message, .. } = error else { return BTreeSet::new() };
    let message = message.to_ascii_lowercase();
    let names = |id: &IdentityId| {
        let id = id.key();
        let id = id.trim_start_matches('/');
        // The whole ID: `…/app` must not match a refusal of `…/app-2`.
        message.match_indices(id).any(|(at, _)| !message[at + id.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    };
    change.add.iter().filter(|id| names(id)).cloned().collect()
}

/// The part of `change` that keeps `current` within the identities Azure lets one scale
/// set or VM carry, and the identities left out: detaches first make room, then new
/// identities take what is left in ID order (a batch's order of arrival is not kept, and
/// a stable order keeps the same identities out on every retry). Returns the count the
/// whole change would have reached.
fn within_limit(current: &ComputeIdentity, change: &IdentityChange) -> Option<(IdentityChange, BTreeSet<Arc<IdentityId>>, usize)> {
    let kept = current.user_assigned().len() - change.remove.iter().filter(|id| current.has(id)).count();
    let new: Vec<&Arc<IdentityId>> = change.add.iter().filter(|id| !current.has(id)).collect();
    let room = MAX_USER_ASSIGNED_PER_COMPUTE.saturating_sub(kept);
    if new.len() <= room {
        return None;
    }
    let refused: BTreeSet<Arc<IdentityId>> = new[room..].iter().map(|id| Arc::clone(id)).collect();
    let add = change.add.iter().filter(|id| !refused.contains(*id)).cloned().collect();
    Some((IdentityChange { add, remove: change.remove.clone() }, refused, kept + new.len()))
}

/// What one binding asks of a scale set or VM.
pub enum Attachment {
    /// Attach the identity.
    Attach(Arc<IdentityId>),
    /// Detach it.
    Detach(Arc<IdentityId>),
}

/// Identity blocks per VM scale set or VM, and their writers.
pub type ComputeDesk = Desk<ComputeClerk>;

/// What the compute desk knows of scale sets and VMs: how to read and patch their identity
/// blocks, and who is about to ask for an attachment.
pub struct ComputeClerk {
    arm: Arc<dyn Arm>,
    /// Bindings resolving their identity right now.
    resolving: Resolving,
}

/// How many bindings are resolving (reading or creating) their identity right now: each is
/// about to ask for attachments, so an open batch waits for them.
#[derive(Debug, Default)]
struct Resolving(AtomicUsize);

impl Resolving {
    fn start(&self) -> ResolvingGuard<'_> {
        self.0.fetch_add(1, Ordering::SeqCst);
        ResolvingGuard(self)
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// One binding resolving its identity; see [`ComputeDesk::resolving_identity`].
pub struct ResolvingGuard<'a>(&'a Resolving);

impl Drop for ResolvingGuard<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ComputeClerk {
    /// The clerk for scale sets and VMs behind `arm`.
    pub fn new(arm: Arc<dyn Arm>) -> Self {
        ComputeClerk { arm, resolving: Resolving::default() }
    }
}

impl ComputeDesk {
    /// Counts a binding as resolving its identity (it will soon ask for attachments) until
    /// the guard is dropped; open batches wait for it.
    pub fn resolving_identity(&self) -> ResolvingGuard<'_> {
        self.clerk.resolving.start()
    }
}

impl Clerk for ComputeClerk {
    type Id = ComputeId;
    type Value = Arc<ComputeIdentity>;
    type Request = Attachment;
    type Queue = Queue;
    type Batch = (Arc<IdentityChange>, Vec<Attacher>);
    type Done = Written;
    const OPERATION: &'static str = "UpdateComputeIdentity";

    async fn read(&self, target: &ComputeId) -> Result<Arc<ComputeIdentity>, AzureError> {
        self.arm.get_compute_identity(target).await.map(Arc::new)
    }

    /// An attachment asked for again while the write in flight carries it joins that write;
    /// any other change goes into the next, where the last word on an identity wins.
    fn queue(queue: &mut Queue, request: Attachment, asker: Asker<Written>) {
        let pending = &mut queue.next;
        let being_written = |id: &Arc<IdentityId>| queue.writing.as_ref().is_some_and(|w| w.add.contains(id));
        match request {
            Attachment::Attach(id) if being_written(&id) && !pending.change.remove.contains(&id) => queue.joined.push((Some(id), asker)),
            Attachment::Attach(id) => {
                pending.change.remove.remove(&id);
                pending.change.add.insert(id.clone());
                pending.answers.push((Some(id), asker));
            }
            Attachment::Detach(id) => {
                pending.change.add.remove(&id);
                pending.change.remove.insert(id);
                pending.answers.push((None, asker));
            }
        }
    }

    fn take(queue: &mut Queue) -> Option<Self::Batch> {
        queue.take_next()
    }

    /// Waits while changes keep arriving or bindings are resolving their identities (a
    /// quarter window with neither closes the batch), for at most [`MAX_WINDOWS`] windows.
    /// Bindings about to ask are the ones resolving, so a batch need not wait a whole
    /// window for them: it closes as soon as they are all in.
    async fn collect(&self, desk: &ComputeDesk, target: &ComputeId, _first: bool) {
        let window = desk.window.unwrap_or_default();
        let started = tokio::time::Instant::now();
        tokio::time::sleep(window / 4).await;
        // New changes, not new askers: bindings that ask again for what is queued (or share
        // an identity) add nothing to wait for.
        let arrived = || desk.queued(target, |q| q.next.change.add.len() + q.next.change.remove.len()).unwrap_or(0);
        let mut seen = arrived();
        while started.elapsed() < window * MAX_WINDOWS {
            tokio::time::sleep(window / 4).await;
            let now = arrived();
            if now == seen && !self.resolving.any() {
                return;
            }
            seen = now;
        }
    }

    async fn write(&self, desk: &ComputeDesk, target: &ComputeId, (change, answers): Self::Batch) {
        let Outcome { result, refused } = self.write_change(desk, target, &change).await;
        drop(change);
        // The write in flight ends: who joined it hears with the batch's askers.
        let joined = desk
            .queued(target, |queue| {
                queue.writing = None;
                std::mem::take(&mut queue.joined)
            })
            .unwrap_or_default();
        let mut askers: Vec<Attacher> = answers.into_iter().chain(joined).collect();
        for (identities, refusal) in refused {
            let (left_out, rest): (Vec<Attacher>, Vec<Attacher>) =
                askers.into_iter().partition(|(id, _)| id.as_ref().is_some_and(|id| identities.contains(id)));
            askers = rest;
            desk.settle(target, left_out.into_iter().map(|(_, asker)| asker), &Err(refusal));
        }
        desk.settle(target, askers.into_iter().map(|(_, asker)| asker), &result);
    }

    async fn write_alone(&self, desk: &ComputeDesk, target: &ComputeId, request: Attachment) -> Result<Written, AzureError> {
        let change = match request {
            Attachment::Attach(id) => IdentityChange { add: [id].into(), remove: Default::default() },
            Attachment::Detach(id) => IdentityChange { add: Default::default(), remove: [id].into() },
        };
        let Outcome { result, mut refused } = self.write_change(desk, target, &change).await;
        match refused.pop() {
            Some((_, refusal)) => Err(refusal),
            None => result,
        }
    }

    fn held_before(written: &Written) -> usize {
        written.before
    }
}

impl ComputeClerk {
    /// Writes `change`, less the identities `target` has no room for.
    async fn write_change(&self, desk: &ComputeDesk, target: &ComputeId, change: &IdentityChange) -> Outcome {
        // Always a fresh read before a write: the PATCH must keep what is there now.
        let current = match self.arm.get_compute_identity(target).await {
            Ok(current) => Arc::new(current),
            Err(e) => return Outcome { result: Err(e), refused: Vec::new() },
        };
        desk.reads.put(target.clone(), current.clone());
        // Azure refuses the whole update past its limit, so the batch is cut to what fits
        // and the rest is refused to its askers by name: one tenant's identity too many
        // does not fail everyone's attachment.
        let mut refused = Vec::new();
        let mut change = std::borrow::Cow::Borrowed(change);
        if let Some((within, left_out, count)) = within_limit(&current, &change) {
            refused.push((left_out, limit_refusal(target, count)));
            change = std::borrow::Cow::Owned(within);
        }
        let mut result = self.write_within(desk, target, current.clone(), &change).await;
        // One identity ARM refuses by name fails the whole update; it is refused to its
        // askers and the others are written without it, once.
        if let Err(e) = &result {
            let named = named_in_refusal(e, &change);
            if !named.is_empty() && named.len() < change.add.len() {
                tracing::warn!(target = %target, refused = named.len(), "{e}");
                let rest = IdentityChange { add: change.add.iter().filter(|id| !named.contains(*id)).cloned().collect(), remove: change.remove.clone() };
                refused.push((named, e.clone()));
                result = self.write_within(desk, target, current, &rest).await;
            }
        }
        Outcome { result, refused }
    }

    async fn write_within(
        &self,
        desk: &ComputeDesk,
        target: &ComputeId,
        current: Arc<ComputeIdentity>,
        change: &IdentityChange,
    ) -> Result<Written, AzureError> {
        let before = current.user_assigned().len();
        let needed = change.add.iter().any(|id| !current.has(id)) || change.remove.iter().any(|id| current.has(id));
        if !needed {
            return Ok(Written { before, after: current });
        }
        tracing::info!(target = %target, add = change.add.len(), remove = change.remove.len(), "updating identities");
        let after = Arc::new(self.arm.update_compute_identities(target, &current, change).await?);
        desk.reads.put(target.clone(), after.clone());
        Ok(Written { before, after })
    }
}

/// The refusal of identities past Azure's limit on `target`.
fn limit_refusal(target: &ComputeId, count: usize) -> AzureError {
    let refusal = AzureError::LimitReached {
        operation: "UpdateComputeIdentity",
        resource: target.to_string(),
        limit: "PoolIdentityLimit",
        message: crate::error::pool_identity_limit(&target.name, count, MAX_USER_ASSIGNED_PER_COMPUTE),
    };
    tracing::warn!(target = %target, "{refusal}");
    refusal
}

#[cfg(test)]
mod tests;
