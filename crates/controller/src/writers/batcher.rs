//! One writer per VM scale set or VM.
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
//! A reconcile hands its attachment over and ends ([`ComputeBatcher::hand_off`]); the
//! writer wakes it when the PATCH lands (see [`crate::writers::handoff`]). Detaching, which a binding
//! must see done before it lets go of its records, is awaited in place.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kvbind_azure::model::{ComputeIdentity, IdentityChange, MAX_USER_ASSIGNED_PER_COMPUTE};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId};
use tokio::sync::oneshot;

use crate::caches::read_cache::ReadCache;
use crate::turns::Turns;
use crate::writers::handoff::{Answer, Handoffs, Landing, Waiter};
use crate::writers::write_queue::{WriteQueues, next_batch};

/// The longest a batch waits for more changes, in batch windows. A thousand new bindings
/// create their identities over twenty seconds or so; closing the batch before they are all
/// in costs a second PATCH, which takes as long again.
pub const MAX_WINDOWS: u32 = 16;

/// Who waits for a write: an answer, with the identity it asked to attach (none for a
/// detach), so that an identity the target has no room for is refused to its askers alone.
type Asker = (Option<Arc<IdentityId>>, Answer<Written>);

#[derive(Default)]
struct Pending {
    change: IdentityChange,
    answers: Vec<Asker>,
}

/// One target's changes: those for its next write, and the write in flight.
#[derive(Default)]
struct Queue {
    next: Pending,
    /// The write in flight (shared with it: a thousand identities on twenty pools are not
    /// copied). A binding that reconciles again meanwhile asks for its attachment again; it
    /// waits for that write instead of costing another.
    writing: Option<Arc<IdentityChange>>,
    /// Who joined the write in flight.
    joined: Vec<Asker>,
}

impl Queue {
    /// The changes waiting, taken as the write in flight; `None` when none are.
    fn take_next(&mut self) -> Option<(Arc<IdentityChange>, Vec<Asker>)> {
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

/// Batches identity changes per VM scale set or VM.
#[derive(Clone)]
pub struct ComputeBatcher {
    arm: Arc<dyn Arm>,
    cache: Arc<ReadCache>,
    window: Option<Duration>,
    queues: Arc<WriteQueues<ComputeId, Queue>>,
    /// Without batching: one lock per target, so single writes still never overlap.
    single: Arc<Turns>,
    /// Bindings resolving their identity right now.
    resolving: Arc<Resolving>,
    /// Where handed-off changes land.
    handoffs: Arc<Handoffs>,
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

/// One binding resolving its identity; see [`ComputeBatcher::resolving_identity`].
pub struct ResolvingGuard<'a>(&'a Resolving);

impl Drop for ResolvingGuard<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ComputeBatcher {
    /// A batcher that collects changes for `window` before writing; `None` writes each
    /// change on its own, one at a time per target (the naive strategy, for comparison).
    pub fn new(arm: Arc<dyn Arm>, cache: Arc<ReadCache>, window: Option<Duration>, handoffs: Arc<Handoffs>) -> Self {
        ComputeBatcher { arm, cache, window, queues: Arc::default(), single: Arc::default(), resolving: Arc::default(), handoffs }
    }

    /// Counts a binding as resolving its identity (it will soon ask for attachments) until
    /// the guard is dropped; open batches wait for it.
    pub fn resolving_identity(&self) -> ResolvingGuard<'_> {
        self.resolving.start()
    }

    /// Attaches `add` and detaches `remove` on `target`, together with whatever else is
    /// asked for the same target in the same window, and waits for the write. Returns the
    /// identity block after it (or as it was, when nothing needed to change).
    pub async fn change(&self, target: &ComputeId, add: Option<&IdentityId>, remove: Option<&IdentityId>) -> Result<Written, AzureError> {
        let (add, remove) = (add.map(|id| Arc::new(id.clone())), remove.map(|id| Arc::new(id.clone())));
        let (add, remove) = (add.as_ref(), remove.as_ref());
        if self.window.is_none() {
            return self.write_alone(target, add, remove).await;
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(target, add, remove, Answer::Reply(reply));
        answer.await.unwrap_or_else(|_| {
            Err(AzureError::Transient {
                operation: "UpdateComputeIdentity",
                resource: target.to_string(),
                message: "the writer for this resource stopped".to_owned(),
            })
        })
    }

    /// Attaches `identity` to `target` with the next batch, and wakes `binding` when that
    /// lands instead of waiting for it.
    pub fn hand_off(&self, target: &ComputeId, identity: &Arc<IdentityId>, binding: Waiter) {
        self.handoffs.expect(&binding, target);
        if self.window.is_some() {
            self.enqueue(target, Some(identity), None, Answer::Wake(binding));
            return;
        }
        let (this, target, identity) = (self.clone(), target.clone(), identity.clone());
        tokio::spawn(async move {
            let result = this.write_alone(&target, Some(&identity), None).await;
            this.handoffs.land(Landing::Compute { result: result.map(|w| w.before), target }, vec![binding]);
        });
    }

    /// Without batching: one write per change, one at a time per target.
    async fn write_alone(&self, target: &ComputeId, add: Option<&Arc<IdentityId>>, remove: Option<&Arc<IdentityId>>) -> Result<Written, AzureError> {
        let turn = self.single.turn(&target.key());
        let _turn = turn.lock().await;
        let change = IdentityChange { add: add.into_iter().cloned().collect(), remove: remove.into_iter().cloned().collect() };
        let Outcome { result, mut refused } = self.write(target, &change).await;
        match refused.pop() {
            Some((_, refusal)) => Err(refusal),
            None => result,
        }
    }

    fn enqueue(&self, target: &ComputeId, add: Option<&Arc<IdentityId>>, remove: Option<&Arc<IdentityId>>, answer: Answer<Written>) {
        let start_writer = {
            let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = target.key();
            let start = !queues.contains_key(&key);
            let (_, queue) = queues.entry(key).or_insert_with(|| (target.clone(), Queue::default()));
            let pending = &mut queue.next;
            let being_written = |id: &Arc<IdentityId>| queue.writing.as_ref().is_some_and(|w| w.add.contains(id));
            let asker = (add.cloned(), answer);
            match (add, remove) {
                (Some(id), None) if being_written(id) && !pending.change.remove.contains(id) => queue.joined.push(asker),
                _ => {
                    if let Some(id) = add {
                        pending.change.remove.remove(id);
                        pending.change.add.insert(id.clone());
                    }
                    if let Some(id) = remove {
                        pending.change.add.remove(id);
                        pending.change.remove.insert(id.clone());
                    }
                    pending.answers.push(asker);
                }
            }
            start
        };
        if start_writer {
            tokio::spawn(self.clone().write_loop(target.key()));
        }
    }

    /// Writes batches for one target until no more changes arrive.
    async fn write_loop(self, key: String) {
        let window = self.window.unwrap_or_default();
        loop {
            self.collect(&key, window).await;
            let Some((target, (change, answers))) = next_batch(&self.queues, &key, Queue::take_next) else {
                return;
            };
            let Outcome { result, refused } = self.write(&target, &change).await;
            drop(change);
            let mut askers: Vec<Asker> = answers.into_iter().chain(self.finish_batch(&key)).collect();
            for (identities, refusal) in refused {
                let (left_out, rest) = askers.into_iter().partition(|(id, _)| id.as_ref().is_some_and(|id| identities.contains(id)));
                askers = rest;
                let refusal = Err(refusal);
                let woken = Answer::answer_all(left_out.into_iter().map(|(_, answer): Asker| answer), &refusal);
                self.handoffs.land(Landing::Compute { target: target.clone(), result: refusal.map(|w: Written| w.before) }, woken);
            }
            let woken = Answer::answer_all(askers.into_iter().map(|(_, answer)| answer), &result);
            self.handoffs.land(Landing::Compute { target, result: result.map(|w| w.before) }, woken);
        }
    }

    /// Ends the write in flight for `key`: who joined it.
    fn finish_batch(&self, key: &str) -> Vec<Asker> {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((_, queue)) = queues.get_mut(key) else {
            return Vec::new();
        };
        queue.writing = None;
        std::mem::take(&mut queue.joined)
    }

    /// Waits while changes keep arriving or bindings are resolving their identities (a
    /// quarter window with neither closes the batch), for at most [`MAX_WINDOWS`] windows.
    /// Bindings about to ask are the ones resolving, so a batch need not wait a whole
    /// window for them: it closes as soon as they are all in.
    async fn collect(&self, key: &str, window: Duration) {
        let started = tokio::time::Instant::now();
        tokio::time::sleep(window / 4).await;
        // New changes, not new askers: bindings that ask again for what is queued (or share
        // an identity) add nothing to wait for.
        let arrived = || {
            self.queues
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .map_or(0, |(_, q)| q.next.change.add.len() + q.next.change.remove.len())
        };
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

    /// Writes `change`, less the identities `target` has no room for.
    async fn write(&self, target: &ComputeId, change: &IdentityChange) -> Outcome {
        // Always a fresh read before a write: the PATCH must keep what is there now.
        let current = match self.arm.get_compute_identity(target).await {
            Ok(current) => Arc::new(current),
            Err(e) => return Outcome { result: Err(e), refused: Vec::new() },
        };
        self.cache.put_compute(target, current.clone());
        // Azure refuses the whole update past its limit, so the batch is cut to what fits
        // and the rest is refused to its askers by name: one tenant's identity too many
        // does not fail everyone's attachment.
        let mut refused = Vec::new();
        let mut change = std::borrow::Cow::Borrowed(change);
        if let Some((within, left_out, count)) = within_limit(&current, &change) {
            refused.push((left_out, self.limit_refusal(target, count)));
            change = std::borrow::Cow::Owned(within);
        }
        let mut result = self.write_within(target, current.clone(), &change).await;
        // One identity ARM refuses by name fails the whole update; it is refused to its
        // askers and the others are written without it, once.
        if let Err(e) = &result {
            let named = named_in_refusal(e, &change);
            if !named.is_empty() && named.len() < change.add.len() {
                tracing::warn!(target = %target, refused = named.len(), "{e}");
                let rest = IdentityChange { add: change.add.iter().filter(|id| !named.contains(*id)).cloned().collect(), remove: change.remove.clone() };
                refused.push((named, e.clone()));
                result = self.write_within(target, current, &rest).await;
            }
        }
        Outcome { result, refused }
    }

    /// The refusal of identities past Azure's limit on `target`.
    fn limit_refusal(&self, target: &ComputeId, count: usize) -> AzureError {
        let refusal = AzureError::LimitReached {
            operation: "UpdateComputeIdentity",
            resource: target.to_string(),
            limit: "PoolIdentityLimit",
            message: crate::error::pool_identity_limit(&target.name, count, MAX_USER_ASSIGNED_PER_COMPUTE),
        };
        tracing::warn!(target = %target, "{refusal}");
        refusal
    }

    async fn write_within(&self, target: &ComputeId, current: Arc<ComputeIdentity>, change: &IdentityChange) -> Result<Written, AzureError> {
        let before = current.user_assigned().len();
        let needed = change.add.iter().any(|id| !current.has(id)) || change.remove.iter().any(|id| current.has(id));
        if !needed {
            return Ok(Written { before, after: current });
        }
        tracing::info!(target = %target, add = change.add.len(), remove = change.remove.len(), "updating identities");
        let after = Arc::new(self.arm.update_compute_identities(target, &current, change).await?);
        self.cache.put_compute(target, after.clone());
        Ok(Written { before, after })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kvbind_azure::ResourceKind;

    use super::*;
    use crate::fake_compute::FakeCompute;

    const WINDOW: Duration = Duration::from_secs(2);

    fn pool() -> ComputeId {
        ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "nodes", "pool-a").expect("id")
    }

    fn identity(i: usize) -> IdentityId {
        IdentityId::new(ResourceKind::UserAssignedIdentity, "sub", "ids", &format!("id-{i}")).expect("id")
    }

    fn batcher_for(arm: &Arc<FakeCompute>) -> ComputeBatcher {
        ComputeBatcher::new(arm.clone(), Arc::new(ReadCache::new(Duration::from_secs(600))), Some(WINDOW), Arc::new(Handoffs::new().0))
    }

    /// Attaches identity `i`, `after` from now.
    fn attach_later(batcher: &ComputeBatcher, i: usize, after: Duration) -> tokio::task::JoinHandle<Result<Written, AzureError>> {
        let batcher = batcher.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            batcher.change(&pool(), Some(&identity(i)), None).await
        })
    }

    #[tokio::test(start_paused = true)]
    async fn changes_that_keep_arriving_past_the_window_join_one_write() {
        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let batcher = batcher_for(&arm);
        // A change every 300 ms for six seconds: three windows, never a quarter window apart.
        let changes: Vec<_> = (0..20).map(|i| attach_later(&batcher, i, Duration::from_millis(300) * i as u32)).collect();
        for change in changes {
            let after = change.await.expect("task").expect("attached");
            assert!(after.after.has(&identity(0)));
        }
        assert_eq!(arm.writes(), 1, "one PATCH for changes arriving in one burst");
        assert_eq!(*arm.added.lock().expect("lock"), vec![20]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_closes_after_a_quiet_quarter_window_and_after_at_most_max_windows() {
        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let batcher = batcher_for(&arm);
        // Two changes a second apart, then one well after a quiet spell: two writes.
        let first = [attach_later(&batcher, 0, Duration::ZERO), attach_later(&batcher, 1, Duration::from_secs(1))];
        let late = attach_later(&batcher, 2, WINDOW * 2);
        for change in first {
            change.await.expect("task").expect("attached");
        }
        late.await.expect("task").expect("attached");
        assert_eq!(*arm.added.lock().expect("lock"), vec![2, 1], "the quiet quarter window closed the first batch");

        // A change every 400 ms without end still gets written after MAX_WINDOWS windows.
        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let batcher = batcher_for(&arm);
        let started = tokio::time::Instant::now();
        let endless: Vec<_> = (0..200).map(|i| attach_later(&batcher, i, Duration::from_millis(400) * i as u32)).collect();
        endless.into_iter().next().expect("first").await.expect("task").expect("attached");
        // The batch's fresh read and its PATCH take 20 s each.
        let waited = started.elapsed() - Duration::from_secs(40);
        assert!(waited <= WINDOW * MAX_WINDOWS + WINDOW / 4, "the first batch waited {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_bindings_still_resolving_their_identities() {
        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let batcher = batcher_for(&arm);
        // One binding attaches at once; another is still creating its identity for almost
        // three windows (a long quiet spell) and attaches right after: one write for both.
        let creating = batcher.resolving_identity();
        let first = attach_later(&batcher, 0, Duration::ZERO);
        tokio::time::sleep(WINDOW * 3 - Duration::from_millis(200)).await;
        drop(creating);
        let second = attach_later(&batcher, 1, Duration::from_millis(100));
        first.await.expect("task").expect("attached");
        second.await.expect("task").expect("attached");
        assert_eq!(*arm.added.lock().expect("lock"), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn handed_off_attachments_land_in_one_write_and_wake_their_bindings() {
        use kube::runtime::reflector::ObjectRef;

        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let (handoffs, mut woken) = Handoffs::new();
        let handoffs = Arc::new(handoffs);
        let batcher = ComputeBatcher::new(arm.clone(), Arc::new(ReadCache::new(Duration::from_secs(600))), Some(WINDOW), handoffs.clone());
        let bindings: Vec<_> = (0..3).map(|i| Arc::new(ObjectRef::new(&format!("b{i}")).within("apps"))).collect();
        for (i, binding) in bindings.iter().enumerate() {
            batcher.hand_off(&pool(), &Arc::new(identity(i)), binding.clone());
        }
        // Handing off returns at once; the bindings hear when the PATCH has landed.
        let mut heard = Vec::new();
        for _ in &bindings {
            heard.push(woken.recv().await.expect("woken"));
        }
        assert_eq!(heard, bindings.iter().map(|b| b.as_ref().clone()).collect::<Vec<_>>());
        assert_eq!(*arm.added.lock().expect("lock"), vec![3], "one PATCH for the three");
        for binding in &bindings {
            assert!(matches!(handoffs.take(binding).0.compute(&pool()), Some(Ok(0))), "landed, on a pool that had no identity before");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn identities_past_azures_limit_are_refused_to_their_askers_and_the_rest_of_the_batch_lands() {
        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let batcher = batcher_for(&arm);
        // 152 new identities for an empty scale set in one window: Azure takes 150.
        let changes: Vec<_> = (0..152).map(|i| attach_later(&batcher, i, Duration::ZERO)).collect();
        let mut refused = Vec::new();
        for (i, change) in changes.into_iter().enumerate() {
            match change.await.expect("task") {
                Ok(written) => assert!(written.after.has(&identity(i))),
                Err(AzureError::LimitReached { limit, message, .. }) => {
                    assert_eq!(limit, "PoolIdentityLimit");
                    assert!(message.contains("pool-a would carry 152 user-assigned identities; Azure allows 150"), "{message}");
                    refused.push(i);
                }
                Err(e) => panic!("identity {i}: {e}"),
            }
        }
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert_eq!(*arm.added.lock().expect("lock"), vec![150], "one PATCH with what fits, none past the limit");

        // A detach in the same batch makes room for one more.
        let detach = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.change(&pool(), None, Some(&identity(0))).await })
        };
        let more = [attach_later(&batcher, refused[0], Duration::ZERO), attach_later(&batcher, refused[1], Duration::ZERO)];
        detach.await.expect("task").expect("detached");
        let landed: Vec<bool> = futures::future::join_all(more).await.into_iter().map(|r| r.expect("task").is_ok()).collect();
        assert_eq!(landed.iter().filter(|ok| **ok).count(), 1, "{landed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_identity_arm_refuses_by_name_is_refused_to_its_askers_and_the_others_are_written_without_it() {
        // `id-1` and `id-10` differ only by a suffix: only the named one is left out.
        let arm = Arc::new(FakeCompute::refusing_identity(Duration::from_secs(20), identity(1)));
        let batcher = batcher_for(&arm);
        let changes: Vec<_> = [0, 1, 10].into_iter().map(|i| attach_later(&batcher, i, Duration::ZERO)).collect();
        let results: Vec<Result<Written, AzureError>> = futures::future::join_all(changes).await.into_iter().map(|r| r.expect("task")).collect();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let refused = results[1].as_ref().expect_err("named by ARM");
        assert!(refused.to_string().contains("isolationScope"), "{refused}");
        assert_eq!(*arm.added.lock().expect("lock"), vec![3, 2], "the batch, then the batch without the refused identity");
    }

    #[tokio::test(start_paused = true)]
    async fn asking_again_for_an_attachment_being_written_joins_that_write() {
        use kube::runtime::reflector::ObjectRef;

        let arm = Arc::new(FakeCompute::new(Duration::from_secs(20)));
        let (handoffs, mut woken) = Handoffs::new();
        let batcher = ComputeBatcher::new(arm.clone(), Arc::new(ReadCache::new(Duration::from_secs(600))), Some(WINDOW), Arc::new(handoffs));
        let binding = Arc::new(ObjectRef::new("b").within("apps"));
        batcher.hand_off(&pool(), &Arc::new(identity(0)), binding.clone());
        // The window has closed and the batch's read is under way: the binding, reconciled
        // again meanwhile, asks once more.
        tokio::time::sleep(WINDOW * 2).await;
        assert_eq!(arm.reads(), 1, "the write is in flight");
        batcher.hand_off(&pool(), &Arc::new(identity(0)), binding.clone());
        assert!(woken.recv().await.is_some());
        // Long enough for a second batch to have been read and written, had there been one.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!((arm.reads(), arm.writes()), (1, 1), "one read and one PATCH");
    }
}
