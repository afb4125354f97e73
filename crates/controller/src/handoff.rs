//! Writes a reconcile hands to a batching writer instead of waiting for them.
//!
//! A scale set's PATCH runs for tens of seconds and a vault takes its writes one at a time.
//! A thousand bindings each waiting for them would hold a thousand reconciles open, with
//! everything they read, for the whole time. Instead a reconcile hands its attachment or
//! grant to the writer and ends, reporting the binding in progress. When the write lands,
//! the writer records here how it went and wakes the binding: its next reconcile finds the
//! change in the read cache, or the failure here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_azure::{AzureError, ComputeId, VaultId};
use tokio::sync::{mpsc, oneshot};

/// A binding waiting for a write it handed off.
pub type Waiter = Arc<ObjectRef<IdentityBinding>>;

/// Who hears of a batched write: a caller awaiting it in place, or a binding to wake.
pub enum Answer<T> {
    /// The caller awaits the result.
    Reply(oneshot::Sender<Result<T, AzureError>>),
    /// The binding is woken once it lands.
    Wake(Waiter),
}

impl<T: Clone> Answer<T> {
    /// Sends `result` to each reply and returns the bindings to wake.
    pub fn answer_all(answers: impl IntoIterator<Item = Answer<T>>, result: &Result<T, AzureError>) -> Vec<Waiter> {
        let mut woken = Vec::new();
        for answer in answers {
            match answer {
                Answer::Reply(reply) => {
                    let _ = reply.send(result.clone());
                }
                Answer::Wake(binding) => woken.push(binding),
            }
        }
        woken
    }
}

/// How a step waits for the batched writes it asks for.
#[derive(Clone, Copy)]
pub enum Waiting<'a> {
    /// It awaits them: cleaning up must see its writes done before it lets go of the
    /// records of what kvbind did.
    InPlace,
    /// It hands them off for `binding`, which is woken when they land; `landed` is what
    /// landed for it since its last reconcile.
    HandOff {
        /// The binding to wake.
        binding: &'a Waiter,
        /// Its landed writes.
        landed: &'a Landed,
    },
}

/// A batched write that landed, as the bindings that handed it off learn of it.
#[derive(Debug)]
pub enum Landing {
    /// A scale set or VM took (or refused) a batch of identity changes; `Ok` carries how
    /// many user-assigned identities it had before.
    Compute {
        /// The scale set or VM.
        target: ComputeId,
        /// How it went.
        result: Result<usize, AzureError>,
    },
    /// A vault took (or refused) a batch of access-policy entries.
    Vault {
        /// The vault.
        vault: VaultId,
        /// How it went.
        result: Result<(), AzureError>,
    },
}

/// The writes that landed for one binding since its last reconcile.
#[derive(Debug, Default)]
pub struct Landed(Vec<Arc<Landing>>);

impl Landed {
    /// How the last write handed off for `target` went, if one landed.
    pub fn compute(&self, target: &ComputeId) -> Option<&Result<usize, AzureError>> {
        self.0.iter().rev().find_map(|l| match l.as_ref() {
            Landing::Compute { target: t, result } if t == target => Some(result),
            _ => None,
        })
    }

    /// How the last write handed off for `vault` went, if one landed.
    pub fn vault(&self, vault: &VaultId) -> Option<&Result<(), AzureError>> {
        self.0.iter().rev().find_map(|l| match l.as_ref() {
            Landing::Vault { vault: v, result } if v == vault => Some(result),
            _ => None,
        })
    }
}

/// Landed writes per binding, and the channel that wakes bindings for them.
pub struct Handoffs {
    wake: mpsc::UnboundedSender<ObjectRef<IdentityBinding>>,
    landed: Mutex<HashMap<ObjectRef<IdentityBinding>, Landed>>,
}

impl Handoffs {
    /// The record, and the stream of bindings to reconcile (for the controller).
    pub fn new() -> (Handoffs, mpsc::UnboundedReceiver<ObjectRef<IdentityBinding>>) {
        let (wake, woken) = mpsc::unbounded_channel();
        (Handoffs { wake, landed: Mutex::default() }, woken)
    }

    /// Records `landing` for each of `waiters` and wakes those not already woken since
    /// their last reconcile (one reconcile reads everything that landed meanwhile).
    pub fn land(&self, landing: Landing, waiters: Vec<Waiter>) {
        if waiters.is_empty() {
            return;
        }
        let landing = Arc::new(landing);
        let mut to_wake = Vec::new();
        {
            let mut landed = self.landed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for waiter in waiters {
                let entry = landed.entry(waiter.as_ref().clone()).or_default();
                if entry.0.is_empty() {
                    to_wake.push(waiter);
                }
                entry.0.push(landing.clone());
            }
        }
        for waiter in to_wake {
            // Closed only when the controller has stopped.
            let _ = self.wake.send(waiter.as_ref().clone());
        }
    }

    /// What landed for `binding` since its last reconcile; the record is cleared.
    pub fn take(&self, binding: &ObjectRef<IdentityBinding>) -> Landed {
        self.landed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(binding).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use kvbind_azure::ResourceKind;

    use super::*;

    fn pool(name: &str) -> ComputeId {
        ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "nodes", name).expect("id")
    }

    fn binding(name: &str) -> Waiter {
        Arc::new(ObjectRef::new(name).within("apps"))
    }

    #[tokio::test]
    async fn a_binding_is_woken_once_for_everything_that_lands_before_its_reconcile() {
        let (handoffs, mut woken) = Handoffs::new();
        let (a, b) = (binding("a"), binding("b"));
        handoffs.land(Landing::Compute { target: pool("p1"), result: Ok(1) }, vec![a.clone(), b.clone()]);
        let refused = AzureError::Transient { operation: "UpdateComputeIdentity", resource: "p2".into(), message: "busy".into() };
        handoffs.land(Landing::Compute { target: pool("p2"), result: Err(refused) }, vec![a.clone()]);
        assert_eq!(woken.recv().await.as_ref(), Some(a.as_ref()));
        assert_eq!(woken.recv().await.as_ref(), Some(b.as_ref()));
        assert!(woken.try_recv().is_err(), "a is not woken a second time before it reconciles");

        let landed = handoffs.take(&a);
        assert!(matches!(landed.compute(&pool("p1")), Some(Ok(1))));
        assert!(matches!(landed.compute(&pool("p2")), Some(Err(_))));
        assert!(landed.compute(&pool("p3")).is_none());
        assert!(handoffs.take(&a).compute(&pool("p1")).is_none(), "taking clears the record");

        handoffs.land(Landing::Compute { target: pool("p1"), result: Ok(2) }, vec![a.clone()]);
        assert_eq!(woken.recv().await.as_ref(), Some(a.as_ref()), "after its reconcile, a is woken again");
    }
}
