//! What every batching desk does, whatever resource it serves: it keeps each resource as
//! last read or written, and runs one writer per resource that collects the changes asked
//! for while a window is open and writes them as one batch, answering each asker with how
//! its part went. An asker is a reconcile awaiting its change in place, or a binding that
//! handed its change off and is woken when it lands ([`Waiting`]).
//!
//! What differs between resources is the [`Clerk`]'s: how changes to one resource merge,
//! when a batch closes, and how a batch is written within Azure's limits for it.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::{AzureError, GroupResourceId};
use tokio::sync::oneshot;

use crate::caches::shelf::Shelf;
use crate::desks::handoff::{Handoffs, Waiter, Waiting};
use crate::desks::queue::{WriteQueues, enqueue, next_batch};
use crate::turns::Turns;

/// Who hears how a change went: a caller awaiting it in place, or a binding to wake.
pub enum Asker<T> {
    /// The caller awaits the result.
    Reply(oneshot::Sender<Result<T, AzureError>>),
    /// The binding is woken once it lands.
    Wake(Waiter),
}

/// The knowledge of one kind of resource a [`Desk`] needs.
pub trait Clerk: Send + Sync + Sized + 'static {
    /// The resource's ID.
    type Id: Clone + Eq + Hash + Display + Deref<Target = GroupResourceId> + Send + Sync + 'static;
    /// The resource as read.
    type Value: Clone + Send + Sync + 'static;
    /// One asker's change.
    type Request: Send + 'static;
    /// Changes waiting for the next write, with their askers, and what the clerk keeps of
    /// the write in flight.
    type Queue: Default + Send + 'static;
    /// The changes one write takes.
    type Batch: Send + 'static;
    /// What an asker hears when its change landed.
    type Done: Clone + Send + 'static;
    /// The ARM operation, for a refusal.
    const OPERATION: &'static str;

    /// Reads the resource from ARM.
    fn read(&self, id: &Self::Id) -> impl Future<Output = Result<Self::Value, AzureError>> + Send;

    /// Adds `request` to the changes waiting, for `asker`.
    fn queue(queue: &mut Self::Queue, request: Self::Request, asker: Asker<Self::Done>);

    /// The changes waiting, as the next batch; `None` when none are.
    fn take(queue: &mut Self::Queue) -> Option<Self::Batch>;

    /// Waits until the next batch for `id` should close; `first` for a writer's first.
    fn collect(&self, desk: &Desk<Self>, id: &Self::Id, first: bool) -> impl Future<Output = ()> + Send;

    /// Writes `batch` and settles each of its askers ([`Desk::settle`]).
    fn write(&self, desk: &Desk<Self>, id: &Self::Id, batch: Self::Batch) -> impl Future<Output = ()> + Send;

    /// Writes one change on its own (the naive strategy, for comparison).
    fn write_alone(&self, desk: &Desk<Self>, id: &Self::Id, request: Self::Request) -> impl Future<Output = Result<Self::Done, AzureError>> + Send;

    /// What the resource held before a write, as its askers learn of it ([`Handoffs::land`]).
    fn held_before(done: &Self::Done) -> usize;
}

/// Resources of one kind as last read or written, and one writer per resource.
pub struct Desk<C: Clerk> {
    /// What is particular to the kind of resource, with its own state.
    pub clerk: Arc<C>,
    /// How long a read is trusted: the resync period.
    ttl: Duration,
    /// Each resource as last read or written.
    pub reads: Arc<Shelf<C::Id, C::Value>>,
    /// How long a batch collects changes; `None` writes each change on its own.
    pub window: Option<Duration>,
    queues: Arc<WriteQueues<C::Id, C::Queue>>,
    /// Without batching: one lock per resource, so single writes never overlap.
    single: Arc<Turns<C::Id>>,
    /// Where handed-off changes land.
    handoffs: Arc<Handoffs>,
}

impl<C: Clerk> Clone for Desk<C> {
    fn clone(&self) -> Self {
        Desk {
            clerk: self.clerk.clone(),
            ttl: self.ttl,
            reads: self.reads.clone(),
            window: self.window,
            queues: self.queues.clone(),
            single: self.single.clone(),
            handoffs: self.handoffs.clone(),
        }
    }
}

impl<C: Clerk> Desk<C> {
    /// A desk whose reads live for `ttl` and whose writers collect changes for `window`
    /// before writing; `None` writes each change on its own, one at a time per resource
    /// (the naive strategy, for comparison).
    pub fn new(clerk: C, ttl: Duration, window: Option<Duration>, handoffs: Arc<Handoffs>) -> Self {
        Desk { clerk: Arc::new(clerk), ttl, reads: Arc::default(), window, queues: Arc::default(), single: Arc::default(), handoffs }
    }

    /// The resource, read at most once a resync however many ask at once.
    pub async fn read(&self, id: &C::Id) -> Result<C::Value, AzureError> {
        self.reads.read_through(id, self.ttl, self.clerk.read(id)).await
    }

    /// Asks for `request` on `id` as `waiting` says: awaited in place (`Some` with how it
    /// went), or handed off for a binding that is woken when it lands (`None`). A write
    /// handed off before that landed with an error is that error.
    pub async fn write(&self, id: &C::Id, request: C::Request, waiting: Waiting<'_>) -> Result<Option<C::Done>, AzureError> {
        match waiting {
            Waiting::InPlace => self.write_in_place(id, request).await.map(Some),
            Waiting::HandOff { binding, landed } => {
                // A handed-off write that failed is this reconcile's error; the binding's
                // retry hands it off again.
                if let Some(Err(e)) = landed.of(id) {
                    return Err(e.clone());
                }
                self.hand_off(id, request, binding.clone());
                Ok(None)
            }
        }
    }

    /// Writes `request` on `id` with whatever else is asked for it in the same window, and
    /// waits for the write.
    pub async fn write_in_place(&self, id: &C::Id, request: C::Request) -> Result<C::Done, AzureError> {
        if self.window.is_none() {
            return self.write_alone(id, request).await;
        }
        let (reply, answer) = oneshot::channel();
        self.enqueue(id, request, Asker::Reply(reply));
        answer.await.unwrap_or_else(|_| {
            Err(AzureError::Transient { operation: C::OPERATION, resource: id.to_string(), message: "the writer for this resource stopped".to_owned() })
        })
    }

    /// Writes `request` on `id` with the next batch, and wakes `binding` when that lands
    /// instead of waiting for it.
    pub fn hand_off(&self, id: &C::Id, request: C::Request, binding: Waiter) {
        self.handoffs.expect(&binding, id);
        if self.window.is_some() {
            self.enqueue(id, request, Asker::Wake(binding));
            return;
        }
        let (this, id) = (self.clone(), id.clone());
        tokio::spawn(async move {
            let result = this.write_alone(&id, request).await;
            this.settle(&id, [Asker::Wake(binding)], &result);
        });
    }

    /// Answers each of `askers` with `result` and records it where the woken bindings find
    /// it.
    pub fn settle(&self, id: &C::Id, askers: impl IntoIterator<Item = Asker<C::Done>>, result: &Result<C::Done, AzureError>) {
        let mut woken = Vec::new();
        for asker in askers {
            match asker {
                Asker::Reply(reply) => {
                    let _ = reply.send(result.clone());
                }
                Asker::Wake(binding) => woken.push(binding),
            }
        }
        self.handoffs.land(id, result.as_ref().map(C::held_before).map_err(Clone::clone), woken);
    }

    /// What `look` finds in the changes waiting for `id` (and the write in flight), if a
    /// writer serves it.
    pub fn queued<R>(&self, id: &C::Id, look: impl FnOnce(&mut C::Queue) -> R) -> Option<R> {
        self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id).map(look)
    }

    async fn write_alone(&self, id: &C::Id, request: C::Request) -> Result<C::Done, AzureError> {
        let turn = self.single.turn(id);
        let _turn = turn.lock().await;
        self.clerk.write_alone(self, id, request).await
    }

    fn enqueue(&self, id: &C::Id, request: C::Request, asker: Asker<C::Done>) {
        if enqueue(&self.queues, id, |queue: &mut C::Queue| C::queue(queue, request, asker)) {
            tokio::spawn(self.clone().write_loop(id.clone()));
        }
    }

    /// Writes batches for one resource until no more changes arrive.
    async fn write_loop(self, id: C::Id) {
        let mut first = true;
        loop {
            self.clerk.collect(&self, &id, first).await;
            first = false;
            let Some(batch) = next_batch(&self.queues, &id, C::take) else {
                return;
            };
            self.clerk.write(&self, &id, batch).await;
        }
    }
}
