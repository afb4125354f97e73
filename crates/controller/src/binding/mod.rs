//! The IdentityBinding reconciler. It reads like the manual page it replaces:
//! create the identity, attach it to the node pools, grant it get on the vault, and write
//! its client ID into the SecretProviderClass; then say so in status and Events.

mod absent;
mod aks_identity_binding;
mod azure_sync;
mod blast_radius;
mod class_lint;
mod converge;
mod demand;
mod events;
pub mod finalizer;
pub(crate) mod imds_egress;
pub mod inputs;
mod names;
pub mod plan;
mod reach;
mod status;
mod undo;
mod workload_identity;
mod write_back;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use rand::Rng;

use self::converge::converge;
use self::converge::write_classes;
use self::events::publish;
use self::finalizer::Phase;
use self::inputs::needs_of;
use self::status::{Progress, conditions, patch_if_changed};
use self::undo::cleanup;
use crate::context::Context;
use crate::desks::handoff::Waiting;
use crate::error::{BindingError, ReconcileError, Retry};
use crate::needs::identity_of;

/// When a binding waiting on handed-off writes is looked at again if no write wakes it.
/// The writers wake it as soon as its writes land; this only covers a writer that died.
const HANDED_OFF_RECHECK: Duration = Duration::from_secs(300);

/// Reconciles one IdentityBinding, in a span that names it.
#[tracing::instrument(skip_all, fields(binding = %key(&binding)))]
pub async fn reconcile(binding: Arc<IdentityBinding>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = binding.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<IdentityBinding> = Api::namespaced(ctx.kube.client.clone(), &namespace);
    // Judging a binding against half-listed caches would report classes or nodes as missing.
    let _ = ctx.index.ready.clone().wait_for(|ready| *ready).await;
    // The turn comes first: a thousand bindings queued for theirs hold only this small
    // future, not the steps' state.
    let turn = Turn::take(&ctx, &binding).await;
    match finalizer::hold(&api, &binding).await? {
        Phase::Apply => Box::pin(apply(&api, &binding, &ctx, turn)).await,
        Phase::Cleanup => {
            let _turn = turn;
            let action = Box::pin(cleanup(&binding, &ctx)).await?;
            finalizer::release(&api, &binding).await?;
            wake_the_refused(&ctx, &binding);
            Ok(action)
        }
        Phase::Gone => Ok(Action::await_change()),
    }
}

/// What a reconcile waits for before it starts.
enum Turn<'a> {
    /// One of the turns for Azure steps ([`crate::context::AZURE_STEPS_AT_ONCE`]), taken
    /// after the turn of the binding's identity: the bindings sharing an identity wait for
    /// the one creating it without holding Azure turns, so a hundred shared identities are
    /// created at once, not a dozen.
    Azure(Option<tokio::sync::OwnedMutexGuard<()>>, Option<tokio::sync::SemaphorePermit<'a>>),
    /// One of the turns for Kubernetes writes: a binding woken by landed writes has little
    /// left to do in Azure but read caches, then writes its status, and one PATCH wakes a
    /// thousand of them at once.
    Writing(Option<tokio::sync::SemaphorePermit<'a>>),
}

impl<'a> Turn<'a> {
    async fn take(ctx: &'a Context, binding: &IdentityBinding) -> Turn<'a> {
        if ctx.azure.handoffs.has_landed(&ObjectRef::from_obj(binding)) {
            return Turn::Writing(ctx.kube.writes.acquire().await.ok());
        }
        let identity = match identity_of(&binding.spec.identity, &ctx.config) {
            Ok((id, _)) => Some(ctx.azure.identities.turn(&id).lock_owned().await),
            Err(_) => None,
        };
        Turn::Azure(identity, ctx.azure.steps.acquire().await.ok())
    }
}

/// What the controller does when a reconcile fails outside the binding's own steps.
pub fn error_policy(binding: Arc<IdentityBinding>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    tracing::warn!(binding = %key(&binding), %error, "reconcile failed");
    Action::requeue(backoff(&ctx, &key(&binding)))
}

fn key(binding: &IdentityBinding) -> String {
    names::key(binding)
}

/// Exponential backoff with jitter, from 2 s to 5 min, per binding.
fn backoff(ctx: &Context, key: &str) -> Duration {
    let mut failures = ctx.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = failures.entry(key.to_owned()).or_default();
    *n = n.saturating_add(1);
    let base = 2u64.saturating_pow((*n).min(8)).min(300);
    Duration::from_millis(base * 1000 + rand::rng().random_range(0..=base * 250))
}

async fn apply(api: &Api<IdentityBinding>, binding: &IdentityBinding, ctx: &Context, turn: Turn<'_>) -> Result<Action, ReconcileError> {
    let started = std::time::Instant::now();
    ctx.metrics.in_flight(1);
    let action = apply_and_report(api, binding, ctx, turn).await;
    ctx.metrics.in_flight(-1);
    let result = match &action {
        Ok((_, Ended::Converged)) => "converged",
        Ok((_, Ended::InProgress)) => "in_progress",
        Ok((_, Ended::Failed { stalled: true })) => "stalled",
        _ => "retrying",
    };
    ctx.metrics.reconciled(result, started.elapsed().as_secs_f64());
    action.map(|(a, _)| a)
}

/// How a reconcile ended.
enum Ended {
    /// Everything is in place.
    Converged,
    /// Writes handed off are still to land.
    InProgress,
    /// It failed; `stalled` when only a change (not time) can fix it.
    Failed { stalled: bool },
}

/// Converges, writes status and Events, and says when to come back and how it ended.
async fn apply_and_report(api: &Api<IdentityBinding>, binding: &IdentityBinding, ctx: &Context, turn: Turn<'_>) -> Result<(Action, Ended), ReconcileError> {
    // A proof of the pod's path, when one is due, sees Azure before kvbind repairs it.
    let proven = match prove(ctx, binding).await {
        Some(crate::verify::Check::Pending) => return Ok((Action::requeue(crate::verify::PROBE_RECHECK), Ended::InProgress)),
        Some(crate::verify::Check::Done(verdict)) => Some(verdict),
        None => None,
    };
    let mut progress = Progress { stores_named: binding.spec.secret_stores.is_some(), ..Progress::default() };
    let mut changes = Vec::new();
    let waiter = Arc::new(ObjectRef::from_obj(binding));
    let (landed, unreported) = ctx.azure.handoffs.take(&waiter);
    let (identity_turn, azure_turn, woken_turn) = match turn {
        Turn::Azure(identity, permit) => (identity, permit, None),
        Turn::Writing(permit) => (None, None, permit),
    };
    let waiting = Waiting::HandOff { binding: &waiter, landed: &landed };
    let converged = Box::pin(converge(binding, ctx, waiting, identity_turn, &mut progress, &mut changes)).await;
    drop(azure_turn);
    // Then the Kubernetes writes, a few reconciles at a time: one PATCH often serves a
    // thousand bindings whose reconciles all end at once, and the API server takes their
    // writes a few at a time anyway; waiting, they hold no more than their status.
    let _writing = match woken_turn {
        Some(turn) => Some(turn),
        None => ctx.kube.writes.acquire().await.ok(),
    };
    let outcome = match converged {
        Ok(classes) => {
            let client_id = classes.client_id.clone();
            let written = Box::pin(write_classes(ctx, binding, classes, &mut progress, &mut changes)).await;
            if binding.spec.verify_access && written.is_ok() && progress.waiting.is_empty() {
                ctx.verification.converged(binding, &client_id, !changes.is_empty() || !unreported.is_empty());
            }
            written
        }
        Err(e) => Err(e),
    };
    if binding.spec.verify_access {
        progress.access = Some(proven.unwrap_or_else(|| crate::verify::kept_verdict(&ctx.verification, binding)));
    }
    // One Event when the binding's progress ends (converged or failed), naming every
    // change since it began, rather than one per reconcile on the way.
    changes.splice(0..0, unreported);
    if outcome.is_ok() && !progress.waiting.is_empty() {
        ctx.azure.handoffs.defer(&waiter, std::mem::take(&mut changes));
    }
    if let Err(BindingError::ClassConflict { other, .. } | BindingError::SecretStoreShared { other, .. }) = &outcome {
        tell_the_other(ctx, other);
    }
    ctx.writes.spend_changes(&binding.namespace().unwrap_or_default(), &changes, tokio::time::Instant::now());
    publish(ctx, binding, &changes, outcome.as_ref().err());
    let mut status = progress.status.clone();
    status.observed_generation = binding.metadata.generation;
    status.conditions = conditions(binding.metadata.generation, &progress, outcome.as_ref().map(|_| ()));
    Box::pin(patch_if_changed(api, binding, status)).await?;
    let key = key(binding);
    let ended = match &outcome {
        Ok(()) if progress.waiting.is_empty() => Ended::Converged,
        Ok(()) => Ended::InProgress,
        Err(e) => Ended::Failed { stalled: e.is_stalled() },
    };
    let action = match outcome.as_ref().map_err(BindingError::retry) {
        // Not a success yet: a handed-off write that fails keeps the binding's backoff.
        Ok(()) if !progress.waiting.is_empty() => Action::requeue(HANDED_OFF_RECHECK),
        Ok(()) if binding.spec.verify_access && ctx.verification.unproven(binding) => Action::requeue(crate::verify::PROBE_RECHECK),
        Ok(()) => {
            ctx.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
            Action::requeue(ctx.config.resync)
        }
        Err(Retry::After(delay)) => Action::requeue(delay + Duration::from_millis(rand::rng().random_range(0..500))),
        Err(Retry::Backoff) => Action::requeue(backoff(ctx, &key)),
        // Nothing will change without an edit; the watches bring that, the resync covers
        // fixes made in Azure.
        Err(Retry::OnChange) => Action::requeue(ctx.config.resync),
    };
    Ok((action, ended))
}

/// Proves the path a pod of `binding` takes, when it asks for that and a proof is due.
async fn prove(ctx: &Context, binding: &IdentityBinding) -> Option<crate::verify::Check> {
    if !binding.spec.verify_access {
        return None;
    }
    let client_id = ctx.verification.due(binding, ctx.config.resync, tokio::time::Instant::now())?;
    // Bad input is the reconcile's to report.
    let needs = ctx.index.needs_memo.get_or_read(binding, || needs_of(binding, ctx)).ok()?;
    let check = crate::verify::check(&ctx.prover(), binding, &client_id, &crate::verify::Wanted::of(&needs.classes)).await;
    if let crate::verify::Check::Done(verdict) = &check {
        ctx.verification.probed(binding, tokio::time::Instant::now(), verdict);
    }
    Some(check)
}

/// Wakes the namespace's bindings that a policy refused: a quota the deleted binding
/// counted against may let one in now, and nothing else would tell them.
fn wake_the_refused(ctx: &Context, gone: &IdentityBinding) {
    for binding in ctx.index.bindings.state() {
        let refused = ready_reason(&binding) == Some("NotAllowedByPolicy");
        if refused && binding.metadata.namespace == gone.metadata.namespace && binding.metadata.name != gone.metadata.name {
            ctx.azure.handoffs.wake(ObjectRef::from_obj(binding.as_ref()));
        }
    }
}

/// Wakes the other side of a class conflict unless its status already names it: its
/// reconcile then stops writing the class too, and says so. Nothing else would wake it,
/// since neither writes the class any more; and two bindings that both know are left alone.
fn tell_the_other(ctx: &Context, other: &str) {
    let Some((namespace, name)) = other.split_once('/') else { return };
    let reference = ObjectRef::<IdentityBinding>::new(name).within(namespace);
    let knows = ctx.index.bindings.get(&reference).is_some_and(|b| ready_reason(&b) == Some("SecretProviderClassConflict"));
    if !knows {
        ctx.azure.handoffs.wake(reference);
    }
}

/// The reason of a cached binding's `Ready` condition: only a hint of whom to wake, as the
/// tenant may write status too.
fn ready_reason(binding: &IdentityBinding) -> Option<&str> {
    binding.status.as_ref().and_then(|s| kvbind_api::condition::find(&s.conditions, kvbind_api::condition::READY)).map(|c| c.reason.as_str())
}
