//! One writer per VM scale set or VM.
//!
//! Compute allows about four identity PATCHes per scale set per minute and answers 409 to a
//! second write while one is in flight. So attach and detach requests from every binding
//! for the same scale set are collected for a short window and sent as one PATCH, and a
//! scale set never has more than one write in flight from kvbind.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::model::{ComputeIdentity, IdentityChange};
use kvbind_azure::{Arm, AzureError, ComputeId, IdentityId};
use tokio::sync::oneshot;

use crate::context::Turns;
use crate::read_cache::ReadCache;
use crate::write_queue::{WriteQueues, next_batch};

type Reply = oneshot::Sender<Result<Arc<ComputeIdentity>, AzureError>>;

#[derive(Default)]
struct Pending {
    add: BTreeSet<IdentityId>,
    remove: BTreeSet<IdentityId>,
    replies: Vec<Reply>,
}

/// Batches identity changes per VM scale set or VM.
#[derive(Clone)]
pub struct ComputeBatcher {
    arm: Arc<dyn Arm>,
    cache: Arc<ReadCache>,
    window: Option<Duration>,
    queues: Arc<WriteQueues<ComputeId, Pending>>,
    /// Without batching: one lock per target, so single writes still never overlap.
    single: Arc<Turns>,
}

impl ComputeBatcher {
    /// A batcher that collects changes for `window` before writing; `None` writes each
    /// change on its own, one at a time per target (the naive strategy, for comparison).
    pub fn new(arm: Arc<dyn Arm>, cache: Arc<ReadCache>, window: Option<Duration>) -> Self {
        ComputeBatcher { arm, cache, window, queues: Arc::default(), single: Arc::default() }
    }

    /// Attaches `add` and detaches `remove` on `target`, together with whatever else is
    /// asked for the same target in the same window. Returns the identity block after the
    /// write (or as it was, when nothing needed to change).
    pub async fn change(&self, target: &ComputeId, add: Option<&IdentityId>, remove: Option<&IdentityId>) -> Result<Arc<ComputeIdentity>, AzureError> {
        if self.window.is_none() {
            let turn = self.single.turn(&target.key());
            let _turn = turn.lock().await;
            let pending = Pending { add: add.into_iter().cloned().collect(), remove: remove.into_iter().cloned().collect(), replies: Vec::new() };
            return self.write(target, &pending).await;
        }
        let (reply, answer) = oneshot::channel();
        let start_writer = {
            let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = target.key();
            let start = !queues.contains_key(&key);
            let (_, pending) = queues.entry(key).or_insert_with(|| (target.clone(), Pending::default()));
            if let Some(id) = add {
                pending.remove.remove(id);
                pending.add.insert(id.clone());
            }
            if let Some(id) = remove {
                pending.add.remove(id);
                pending.remove.insert(id.clone());
            }
            pending.replies.push(reply);
            start
        };
        if start_writer {
            tokio::spawn(self.clone().write_loop(target.key()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(AzureError::Transient {
                operation: "UpdateComputeIdentity",
                resource: target.to_string(),
                message: "the writer for this resource stopped".to_owned(),
            })
        })
    }

    /// Writes batches for one target until no more changes arrive.
    async fn write_loop(self, key: String) {
        let window = self.window.unwrap_or_default();
        loop {
            tokio::time::sleep(window).await;
            let batch = next_batch(&self.queues, &key, |p: &Pending| p.replies.is_empty());
            let Some((target, pending)) = batch else {
                return;
            };
            let result = self.write(&target, &pending).await;
            for reply in pending.replies {
                let _ = reply.send(result.clone());
            }
        }
    }

    async fn write(&self, target: &ComputeId, pending: &Pending) -> Result<Arc<ComputeIdentity>, AzureError> {
        // Always a fresh read before a write: the PATCH must keep what is there now.
        let current = Arc::new(self.arm.get_compute_identity(target).await?);
        self.cache.put_compute(target, current.clone());
        let change = IdentityChange { add: pending.add.clone(), remove: pending.remove.clone() };
        let needed = change.add.iter().any(|id| !current.has(id)) || change.remove.iter().any(|id| current.has(id));
        if !needed {
            return Ok(current);
        }
        tracing::info!(target = %target, add = change.add.len(), remove = change.remove.len(), "updating identities");
        let after = Arc::new(self.arm.update_compute_identities(target, &current, &change).await?);
        self.cache.put_compute(target, after.clone());
        Ok(after)
    }
}
