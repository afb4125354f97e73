//! Writes a reconcile hands to a batching writer instead of waiting for them.
//!
//! A scale set's PATCH runs for tens of seconds and a vault takes its writes one at a time.
//! A thousand bindings each waiting for them would hold a thousand reconciles open, with
//! everything they read, for the whole time. Instead a reconcile hands its attachment or
//! grant to the writer and ends, reporting the binding in progress. When the write lands,
//! the writer records here how it went and wakes the binding: its next reconcile finds the
//! change in the desk's kept read, or the failure here.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_azure::{AzureError, GroupResourceId};
use tokio::sync::mpsc;

/// A binding waiting for a write it handed off.
pub type Waiter = Arc<ObjectRef<IdentityBinding>>;

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
struct Landing {
    /// The resource written.
    resource: GroupResourceId,
    /// How it went: `Ok` carries what the resource held before (the user-assigned
    /// identities of a scale set or VM, the access-policy entries of a vault).
    result: Result<usize, AzureError>,
}

/// The writes that landed for one binding since its last reconcile.
#[derive(Debug, Default)]
pub struct Landed(Vec<Arc<Landing>>);

impl Landed {
    /// True when nothing landed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How the last write handed off for `resource` went, if one landed.
    pub fn of(&self, resource: &GroupResourceId) -> Option<&Result<usize, AzureError>> {
        self.0.iter().rev().find(|l| l.resource == *resource).map(|l| &l.result)
    }
}

/// Something kvbind changed, for the binding's Event: a reason and a note.
pub type Change = (&'static str, String);

/// One binding's handed-off writes.
#[derive(Default)]
struct Handed {
    /// The resources (hashes of their keys) whose write it waits for.
    outstanding: HashSet<u64>,
    /// What landed since its last reconcile.
    landed: Landed,
    /// Woken since its last reconcile.
    woken: bool,
    /// Changes its reconciles made while it was in progress, for one Event when it ends.
    unreported: Vec<Change>,
}

/// Handed-off writes per binding, and the channel that wakes bindings when theirs land.
pub struct Handoffs {
    wake: mpsc::UnboundedSender<ObjectRef<IdentityBinding>>,
    bindings: Mutex<HashMap<ObjectRef<IdentityBinding>, Handed>>,
}

fn resource_hash(id: &GroupResourceId) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

impl Handoffs {
    /// The record, and the stream of bindings to reconcile (for the controller).
    pub fn new() -> (Handoffs, mpsc::UnboundedReceiver<ObjectRef<IdentityBinding>>) {
        let (wake, woken) = mpsc::unbounded_channel();
        (Handoffs { wake, bindings: Mutex::default() }, woken)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<IdentityBinding>, Handed>> {
        self.bindings.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that `binding` handed off a write to `resource` and waits for it.
    pub fn expect(&self, binding: &Waiter, resource: &GroupResourceId) {
        self.lock().entry(binding.as_ref().clone()).or_default().outstanding.insert(resource_hash(resource));
    }

    /// Records how a write to `resource` went for each of `waiters`, and wakes those with nothing else
    /// outstanding (or for whom it failed), once per reconcile: a binding waiting for a
    /// vault and twenty pools reconciles once when the last of them lands, not 21 times.
    pub fn land(&self, resource: &GroupResourceId, result: Result<usize, AzureError>, waiters: Vec<Waiter>) {
        if waiters.is_empty() {
            return;
        }
        let failed = result.is_err();
        let landing = Arc::new(Landing { resource: resource.clone(), result });
        let resource = resource_hash(resource);
        let mut to_wake = Vec::new();
        {
            let mut bindings = self.lock();
            for waiter in waiters {
                let handed = bindings.entry(waiter.as_ref().clone()).or_default();
                handed.outstanding.remove(&resource);
                handed.landed.0.push(landing.clone());
                if !handed.woken && (failed || handed.outstanding.is_empty()) {
                    handed.woken = true;
                    to_wake.push(waiter);
                }
            }
        }
        for waiter in to_wake {
            // Closed only when the controller has stopped.
            let _ = self.wake.send(waiter.as_ref().clone());
        }
    }

    /// What landed for `binding` since its last reconcile, and the changes its earlier
    /// reconciles left unreported; both are cleared.
    pub fn take(&self, binding: &ObjectRef<IdentityBinding>) -> (Landed, Vec<Change>) {
        let mut bindings = self.lock();
        let Some(handed) = bindings.get_mut(binding) else {
            return (Landed::default(), Vec::new());
        };
        handed.woken = false;
        let taken = (std::mem::take(&mut handed.landed), std::mem::take(&mut handed.unreported));
        if handed.outstanding.is_empty() {
            bindings.remove(binding);
        }
        taken
    }

    /// True when something landed for `binding` since its last reconcile.
    pub fn has_landed(&self, binding: &ObjectRef<IdentityBinding>) -> bool {
        self.lock().get(binding).is_some_and(|handed| !handed.landed.is_empty())
    }

    /// Keeps `changes` for the Event of the reconcile that ends `binding`'s progress.
    pub fn defer(&self, binding: &ObjectRef<IdentityBinding>, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.lock().entry(binding.clone()).or_default().unreported.extend(changes);
        }
    }

    /// Asks for a reconcile of `binding` now, through the channel landed writes use.
    pub fn wake(&self, binding: ObjectRef<IdentityBinding>) {
        let _ = self.wake.send(binding);
    }

    /// Forgets `binding` (it is being deleted).
    pub fn forget(&self, binding: &ObjectRef<IdentityBinding>) {
        self.lock().remove(binding);
    }
}

#[cfg(test)]
mod tests {
    use kvbind_azure::{ComputeId, ResourceKind};

    use super::*;

    fn pool(name: &str) -> ComputeId {
        ComputeId::new(ResourceKind::VirtualMachineScaleSet, "sub", "nodes", name).expect("id")
    }

    fn binding(name: &str) -> Waiter {
        Arc::new(ObjectRef::new(name).within("apps"))
    }

    #[tokio::test]
    async fn a_binding_is_woken_once_when_the_last_of_its_writes_lands() {
        let (handoffs, mut woken) = Handoffs::new();
        let (a, b) = (binding("a"), binding("b"));
        for p in ["p1", "p2"] {
            handoffs.expect(&a, &pool(p));
        }
        handoffs.expect(&b, &pool("p1"));
        handoffs.land(&pool("p1"), Ok(1), vec![a.clone(), b.clone()]);
        assert_eq!(woken.recv().await.as_ref(), Some(b.as_ref()), "b waited only for p1");
        assert!(woken.try_recv().is_err(), "a still waits for p2");
        handoffs.land(&pool("p2"), Ok(0), vec![a.clone()]);
        assert_eq!(woken.recv().await.as_ref(), Some(a.as_ref()));

        let (landed, _) = handoffs.take(&a);
        assert!(matches!(landed.of(&pool("p1")), Some(Ok(1))));
        assert!(matches!(landed.of(&pool("p2")), Some(Ok(0))));
        assert!(landed.of(&pool("p3")).is_none());
        assert!(handoffs.take(&a).0.of(&pool("p1")).is_none(), "taking clears the record");
    }

    #[tokio::test]
    async fn a_failed_write_wakes_its_binding_at_once_and_only_once_per_reconcile() {
        let (handoffs, mut woken) = Handoffs::new();
        let a = binding("a");
        for p in ["p1", "p2", "p3"] {
            handoffs.expect(&a, &pool(p));
        }
        let refused = || AzureError::Transient { operation: "UpdateComputeIdentity", resource: "p".into(), message: "busy".into() };
        handoffs.land(&pool("p1"), Err(refused()), vec![a.clone()]);
        handoffs.land(&pool("p2"), Err(refused()), vec![a.clone()]);
        assert_eq!(woken.recv().await.as_ref(), Some(a.as_ref()));
        assert!(woken.try_recv().is_err(), "one wake until a reconciles");
        handoffs.defer(&a, vec![("IdentityCreated", "created".to_owned())]);
        let (landed, unreported) = handoffs.take(&a);
        assert!(matches!(landed.of(&pool("p2")), Some(Err(_))));
        assert_eq!(unreported.len(), 1, "changes kept for the Event that ends its progress");
        handoffs.land(&pool("p3"), Ok(0), vec![a.clone()]);
        assert_eq!(woken.recv().await.as_ref(), Some(a.as_ref()), "after its reconcile, a is woken again");
    }
}
