//! Events leave a reconcile the way client-go's recorder sends them: queued, written in
//! the background, best effort.
//!
//! A reconcile that waited for its Event wrote it before its status, so when one scale
//! set's PATCH lands for a thousand bindings, their Ready statuses queued behind a
//! thousand Events on the API server. Queued, the statuses go first and the Events follow
//! a few at a time. An Event that does not fit in the queue is dropped with a warning, as
//! client-go drops it: no reconcile waits on one.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use tokio::sync::mpsc;

/// Events waiting to be written; a thousand new bindings each queue one.
const CAPACITY: usize = 4096;

/// Events written at once: enough to keep up, few enough to leave the API server to the
/// status writes that Ready waits on.
const WRITERS: usize = 4;

/// Whether a repeat of an Event is folded into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    /// A warning that repeats while a binding keeps failing: sent through the shared
    /// recorder, which folds repeats into one Event with a count.
    Folded,
    /// A change, new each time: sent through a recorder of its own, since the shared one
    /// keeps every Event it sent for minutes and walks them all on each send.
    Never,
}

struct Queued {
    event: Event,
    regarding: ObjectReference,
    repeats: Repeats,
}

/// The queue of Events to write; its writer runs until the queue is dropped.
pub struct EventQueue {
    queue: mpsc::Sender<Queued>,
}

impl EventQueue {
    /// Starts the writer, which reports as `reporter`.
    pub fn start(client: Client, reporter: Reporter) -> Self {
        let (queue, queued) = mpsc::channel(CAPACITY);
        tokio::spawn(write_all(queued, client, reporter));
        EventQueue { queue }
    }

    /// Queues `event` about `regarding`, or drops it when the queue is full.
    pub fn send(&self, event: Event, regarding: ObjectReference, repeats: Repeats) {
        match self.queue.try_send(Queued { event, regarding, repeats }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(q)) => {
                tracing::warn!(reason = %q.event.reason, object = ?q.regarding.name, "the Event queue is full; Event dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => tracing::debug!("the Event writer has stopped"),
        }
    }
}

async fn write_all(mut queued: mpsc::Receiver<Queued>, client: Client, reporter: Reporter) {
    let folding = Recorder::new(client.clone(), reporter.clone());
    futures::stream::poll_fn(move |cx| queued.poll_recv(cx))
        .for_each_concurrent(WRITERS, |q| {
            let (folding, client, reporter) = (&folding, &client, &reporter);
            async move {
                let sent = match q.repeats {
                    Repeats::Folded => folding.publish(&q.event, &q.regarding).await,
                    Repeats::Never => Recorder::new(client.clone(), reporter.clone()).publish(&q.event, &q.regarding).await,
                };
                if let Err(e) = sent {
                    tracing::debug!(error = %e, reason = %q.event.reason, "writing an Event failed");
                }
            }
        })
        .await;
}
