//! The IdentityBinding reconciler. It reads like the manual page it replaces:
//! create the identity, attach it to the node pools, grant it get on the vault, and write
//! its client ID into the SecretProviderClass; then say so in status and Events.

mod absent;
mod aks_identity_binding;
mod azure_sync;
mod blast_radius;
mod class_lint;
mod events;
pub mod finalizer;
pub(crate) mod imds_egress;
pub mod inputs;
pub mod plan;
mod status;
mod workload_identity;
mod write_back;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kvbind_api::IdentityBinding;
use kvbind_api::identity_binding::{
    AttachmentStatus, DeletionPolicy, IdentityBindingStatus, IdentityMode, IdentityStatus, SecretProviderClassStatus, SecretStoreStatus, VaultGrantStatus,
};
use rand::Rng;

use self::azure_sync::Change;
pub use self::azure_sync::Records;
use self::events::publish;
use self::finalizer::Phase;
use self::inputs::needs_of;
use crate::needs::{Needs, identity_of};
use crate::policy::sharing::sharing_identity;
use self::status::{Progress, conditions, patch_if_changed};
use crate::context::Context;
use crate::error::{BindingError, ReconcileError, Retry, Step};
use crate::policy::{self, Judge, Verdict};
use crate::writers::handoff::Waiting;

/// When a binding waiting on handed-off writes is looked at again if no write wakes it.
/// The writers wake it as soon as its writes land; this only covers a writer that died.
const HANDED_OFF_RECHECK: Duration = Duration::from_secs(300);

pub use self::finalizer::FINALIZER;

/// Reconciles one IdentityBinding, in a span that names it.
#[tracing::instrument(skip_all, fields(binding = %key(&binding)))]
pub async fn reconcile(binding: Arc<IdentityBinding>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = binding.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<IdentityBinding> = Api::namespaced(ctx.client.clone(), &namespace);
    // Judging a binding against half-listed caches would report classes or nodes as missing.
    let _ = ctx.caches_ready.clone().wait_for(|ready| *ready).await;
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
        if ctx.handoffs.has_landed(&ObjectRef::from_obj(binding)) {
            return Turn::Writing(ctx.api_writes.acquire().await.ok());
        }
        let identity = match identity_of(&binding.spec.identity, &ctx.config) {
            Ok((id, _)) => Some(ctx.identity_turns.turn(&id.key()).lock_owned().await),
            Err(_) => None,
        };
        Turn::Azure(identity, ctx.azure_steps.acquire().await.ok())
    }
}

/// What the controller does when a reconcile fails outside the binding's own steps.
pub fn error_policy(binding: Arc<IdentityBinding>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    tracing::warn!(binding = %key(&binding), %error, "reconcile failed");
    Action::requeue(backoff(&ctx, &key(&binding)))
}

fn key(binding: &IdentityBinding) -> String {
    format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any())
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
    let (landed, unreported) = ctx.handoffs.take(&waiter);
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
        None => ctx.api_writes.acquire().await.ok(),
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
        progress.access = Some(proven.unwrap_or_else(|| crate::verify::kept_verdict(binding)));
    }
    // One Event when the binding's progress ends (converged or failed), naming every
    // change since it began, rather than one per reconcile on the way.
    changes.splice(0..0, unreported);
    if outcome.is_ok() && !progress.waiting.is_empty() {
        ctx.handoffs.defer(&waiter, std::mem::take(&mut changes));
    }
    if let Err(BindingError::ClassConflict { other, .. } | BindingError::SecretStoreShared { other, .. }) = &outcome {
        tell_the_other(ctx, other);
    }
    spend_writes(ctx, binding, &changes);
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
    let needs = needs_of(binding, ctx).ok()?;
    let mut wanted = crate::verify::Wanted::default();
    for class in &needs.classes {
        wanted.add(&class.tenant_id, &class.vault_name, &class.objects);
    }
    let check = crate::verify::check(&prover(ctx), binding, &client_id, &wanted).await;
    if matches!(check, crate::verify::Check::Done(_)) {
        ctx.verification.probed(binding, tokio::time::Instant::now());
    }
    Some(check)
}

/// What proving a path needs of the context.
fn prover(ctx: &Context) -> crate::verify::Prover<'_> {
    crate::verify::Prover { client: &ctx.client, config: &ctx.config, http: &ctx.probe_http, nodes: &ctx.nodes, node_targets: &ctx.node_targets }
}

/// Counts the Azure writes among `changes`, reported now, against the binding's namespace
/// (`maxAzureWritesPerHour`).
fn spend_writes(ctx: &Context, binding: &IdentityBinding, changes: &[Change]) {
    let count = crate::policy::write_quota::azure_writes(changes.iter().map(|(reason, _)| *reason));
    ctx.writes.spend(&binding.namespace().unwrap_or_default(), count, tokio::time::Instant::now());
}

/// Wakes the namespace's bindings that a policy refused: a quota the deleted binding
/// counted against may let one in now, and nothing else would tell them.
fn wake_the_refused(ctx: &Context, gone: &IdentityBinding) {
    for binding in ctx.bindings.state() {
        let refused = ready_reason(&binding) == Some("NotAllowedByPolicy");
        if refused && binding.metadata.namespace == gone.metadata.namespace && binding.metadata.name != gone.metadata.name {
            ctx.handoffs.wake(ObjectRef::from_obj(binding.as_ref()));
        }
    }
}

/// Wakes the other side of a class conflict unless its status already names it: its
/// reconcile then stops writing the class too, and says so. Nothing else would wake it,
/// since neither writes the class any more; and two bindings that both know are left alone.
fn tell_the_other(ctx: &Context, other: &str) {
    let Some((namespace, name)) = other.split_once('/') else { return };
    let reference = ObjectRef::<IdentityBinding>::new(name).within(namespace);
    let knows = ctx.bindings.get(&reference).is_some_and(|b| ready_reason(&b) == Some("SecretProviderClassConflict"));
    if !knows {
        ctx.handoffs.wake(reference);
    }
}

/// The reason of a cached binding's `Ready` condition: only a hint of whom to wake, as the
/// tenant may write status too.
fn ready_reason(binding: &IdentityBinding) -> Option<&str> {
    binding.status.as_ref().and_then(|s| kvbind_api::condition::find(&s.conditions, kvbind_api::condition::READY)).map(|c| c.reason.as_str())
}

/// The first ten of `names` joined by commas, then how many more there are: a condition's
/// message stays readable however many there are.
fn first_ten<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
    let total = names.len();
    let listed: Vec<&str> = names.take(10).map(String::as_str).collect();
    let more = if total > listed.len() { format!(" and {} more", total - listed.len()) } else { String::new() };
    format!("{}{more}", listed.join(", "))
}

/// Everything the binding's identity needs across all bindings that share it.
struct Demand {
    needs: Needs,
    vaults: BTreeMap<String, (String, Vec<kvbind_api::KeyVaultObject>)>,
    targets: BTreeSet<kvbind_azure::ComputeId>,
    may_remove: bool,
    records: Records,
    users: Vec<String>,
    /// The other bindings sharing the identity whose input reads, with their verdicts:
    /// each must pass its own policies on the vaults found for it before it adds to the
    /// group's demand ([`Demand::only_allowed_vaults`]).
    members: Vec<(Arc<IdentityBinding>, Arc<Verdict>)>,
}

fn demand(binding: &IdentityBinding, identity: &kvbind_azure::IdentityId, own: Option<Needs>, judge: &Judge<'_>) -> Demand {
    let ctx = judge.ctx;
    let group = sharing_identity(binding, identity, judge);
    let needs = own.clone().unwrap_or_default();
    let mut may_remove = true;
    let mut users: Vec<String> = own.is_some().then(|| key(binding)).into_iter().collect();
    let mut members = Vec::new();
    for member in &group {
        users.push(key(member));
        let verdict = judge.verdict(member);
        match verdict.needs {
            Some(_) => members.push((member.clone(), verdict)),
            // Keep what a broken member may still need until it is fixed.
            None => may_remove = false,
        }
    }
    users.sort();
    // What kvbind did comes from its own ledger, never from a status: a tenant who may
    // patch `identitybindings/status` could otherwise name anything as kvbind's to undo.
    let mut records = Records::default();
    ctx.ledger.add_to(&identity.key(), &mut records);
    let mut demand = Demand { needs, vaults: BTreeMap::new(), targets: BTreeSet::new(), may_remove, records, users, members };
    demand.sum();
    demand
}

impl Demand {
    /// The namespaces of the bindings the identity serves.
    fn namespaces(&self) -> BTreeSet<String> {
        self.users.iter().filter_map(|user| user.split_once('/')).map(|(namespace, _)| namespace.to_owned()).collect()
    }

    /// The group's vaults and targets: the binding's own needs and every member's.
    fn sum(&mut self) {
        self.vaults = self.needs.vaults.clone();
        self.targets = self.needs.targets.clone();
        for n in self.members.iter().filter_map(|(_, verdict)| verdict.needs.as_ref()) {
            self.targets.extend(n.targets.iter().cloned());
            for (vault, (tenant, objects)) in &n.vaults {
                self.vaults.entry(vault.clone()).or_insert_with(|| (tenant.clone(), Vec::new())).1.extend(objects.iter().cloned());
            }
        }
    }

    /// Drops the members whose vaults, now found by name, none of their own policies
    /// allows by full ID: a policy checks a `keyvaultName` only loosely before the vault is
    /// found, and a member refused on its vault must not have the shared identity granted
    /// on it through this binding. Returns the vaults the group still needs, keeping those
    /// where kvbind granted before (their grants are revoked).
    fn only_allowed_vaults(
        &mut self,
        vaults: BTreeMap<String, Arc<kvbind_azure::model::Vault>>,
        judge: &Judge<'_>,
    ) -> BTreeMap<String, Arc<kvbind_azure::model::Vault>> {
        let before = self.members.len();
        self.members.retain(|(member, verdict)| {
            let names = verdict.needs.iter().flat_map(|needs| needs.vaults.keys());
            let ids: Vec<kvbind_azure::VaultId> = names.filter_map(|name| vaults.get(name)).map(|v| v.id.clone()).collect();
            policy::allows_vaults(member, &ids, judge)
        });
        if self.members.len() != before {
            self.sum();
        }
        vaults.into_iter().filter(|(name, vault)| self.vaults.contains_key(name) || self.records.granted.contains_key(&vault.id.key())).collect()
    }
}

async fn converge(
    binding: &IdentityBinding,
    ctx: &Context,
    waiting: Waiting<'_>,
    identity_turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    progress: &mut Progress,
    changes: &mut Vec<Change>,
) -> Result<ClassWrite, BindingError> {
    // Read and check everything first: bad input and what no policy allows stop here,
    // before any write.
    let judge = Judge::new(ctx);
    let (identity_id, adopt) = identity_of(&binding.spec.identity, &ctx.config)?;
    let needs = needs_of(binding, ctx)?;
    class_lint::report(ctx, binding, &needs.classes, progress);
    let allowing = match policy::check(binding, &identity_id, adopt, &needs, &judge) {
        Ok(allowing) => allowing,
        Err(denial) => return Err(refuse(binding, ctx, progress, changes, denial).await),
    };
    crate::policy::sharing::check_class_conflicts(binding, &identity_id, &needs.classes, &judge)?;
    crate::policy::sharing::check_store_conflicts(binding, &identity_id, &needs.stores, &judge)?;
    let mut demand = demand(binding, &identity_id, Some(needs), &judge);
    let explicit = binding.spec.key_vault.as_ref().map(|k| k.resource_id.as_str());
    let vaults = azure_sync::resolve_vaults(ctx, &demand.vaults, explicit, &demand.needs.origins()).await?;
    let vaults = demand.only_allowed_vaults(vaults, &judge);
    let own_vaults: Vec<kvbind_azure::VaultId> =
        vaults.iter().filter(|(name, _)| demand.needs.vaults.contains_key(*name) || explicit.is_some()).map(|(_, v)| v.id.clone()).collect();
    if let Err(denial) = policy::check_vaults(&allowing, &own_vaults, ctx) {
        return Err(refuse(binding, ctx, progress, changes, denial).await);
    }
    let namespace = binding.namespace().unwrap_or_default();
    if let Some((max, policy)) = policy::write_quota(&allowing, ctx)
        && let Some((spent, resume)) = ctx.writes.spent(&namespace, max, tokio::time::Instant::now())
    {
        return Err(BindingError::AzureWriteQuota { namespace, spent, max, policy, resume });
    }
    progress.done.push((Step::Policy, "Allowed", format!("allowed by BindingPolicy {}", allowing.join(", "))));
    if binding.spec.mode == IdentityMode::AksIdentityBinding && ctx.config.managed_cluster.is_none() {
        return Err(BindingError::NoManagedCluster);
    }

    // 1. The identity.
    let may_adopt = policy::allows_adoption(&allowing, &identity_id, ctx);
    let (identity, created) = azure_sync::ensure_identity(
        ctx,
        &identity_id,
        adopt,
        may_adopt,
        &namespace,
        &binding.spec.identity,
        &demand.users,
        demand.targets.first(),
        identity_turn,
        changes,
    )
    .await?;
    progress.status.identity = Some(IdentityStatus {
        name: identity.id.name.clone(),
        resource_id: identity.id.to_string(),
        client_id: Some(identity.client_id.clone()),
        principal_id: Some(identity.principal_id.clone()),
        created_by_kvbind: created,
    });
    let how = if adopt {
        "adopted"
    } else if created {
        "managed by kvbind"
    } else {
        "found"
    };
    progress.done.push((Step::Identity, "IdentityAvailable", format!("identity {} ({how}) has client ID {}", identity.id.name, identity.client_id)));

    // 2 and 3, side by side: where its tokens can be had (the node pools, or one
    // ServiceAccount) and what they can read. Neither needs the other. Azure's slowest work,
    // a scale set's long-running PATCH and a vault's queue of writes, is handed to their
    // writers, which wake the binding when it lands.
    let (mut reach_changes, mut access_changes) = (Vec::new(), Vec::new());
    let (reached, granted) = tokio::join!(
        reach(&judge, binding, &identity, created, &demand, waiting, &mut reach_changes),
        access(ctx, binding, &identity, created, &demand, vaults, waiting, &mut access_changes),
    );
    changes.append(&mut reach_changes);
    changes.append(&mut access_changes);
    // Whatever either step did is recorded even when the other failed: it is kvbind's to
    // undo.
    if let Ok(grants) = &granted {
        let summary: Vec<String> = grants.status.iter().map(|g| format!("{} ({:?})", g.vault_id.rsplit('/').next().unwrap_or_default(), g.model)).collect();
        remember_grants(ctx, &identity.id, &grants.status);
        progress.status.grants = grants.status.clone();
        if grants.pending.is_empty() {
            progress.done.push((Step::Access, "Granted", format!("read access granted on {}", summary.join(", "))));
        } else {
            progress.waiting.push((Step::Access, format!("waiting for vault {} to take the access policy", grants.pending.join(", "))));
        }
    }
    match reached {
        Ok(reached) => {
            blast_radius::report(ctx, binding, &demand.needs.classes, &reached.crowded, &reached.newly_crowded, progress);
            remember_attachments(ctx, &identity.id, &reached.attachments);
            // Handed off and not landed yet, they are kvbind's all the same.
            for target in &reached.pending {
                ctx.ledger.note_attached(&identity.id.key(), &target.key());
            }
            if !created {
                azure_sync::keep_adoption_record(ctx, &identity.id.key()).await?;
            }
            progress.status.attachments = reached.attachments;
            progress.status.workload_identity = reached.federation;
            progress.status.aks_identity_binding = reached.aks_binding;
            progress.notices.extend(reached.notices);
            if reached.pending.is_empty() {
                progress.done.push((Step::Nodes, reached.reason, reached.message));
            } else {
                let names: Vec<&str> = reached.pending.iter().map(|t| t.name.as_str()).collect();
                progress.waiting.push((Step::Nodes, format!("waiting for {} to take the identity", names.join(", "))));
            }
        }
        Err(e) => return Err(e),
    }
    granted?;

    // 4 comes once the Azure steps' turn is over: the SecretProviderClasses.
    let Needs { classes, missing, stores, .. } = demand.needs;
    Ok(ClassWrite { classes, stores, client_id: identity.client_id, missing: missing.into_iter().next() })
}

/// Step 4's work: the classes and stores to name the identity in.
struct ClassWrite {
    classes: Vec<crate::needs::ClassInput>,
    stores: Vec<crate::needs::StoreInput>,
    client_id: String,
    /// A named class that does not exist.
    missing: Option<String>,
}

/// Step 4: the SecretProviderClasses name the identity. They can while its attachment and
/// grants are still landing (a pod mounting meanwhile fails and is retried either way).
async fn write_classes(
    ctx: &Context,
    binding: &IdentityBinding,
    w: ClassWrite,
    progress: &mut Progress,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let namespace = binding.namespace().unwrap_or_default();
    // Published before the class names it, so that kvbind's own write passes the policy.
    if let Some(bound) = &ctx.bound {
        bound
            .bind(&w.client_id, &namespace)
            .await
            .map_err(|source| BindingError::Kube { action: "publishing the identity's namespace for the admission policy", source })?;
    }
    write_back::write_identity(ctx, &namespace, &w.classes, &w.client_id, binding.spec.mode, changes).await?;
    imds_egress::keep(ctx, &namespace, policy::denies_imds(&namespace, ctx), changes).await?;
    progress.status.secret_provider_classes = w.classes.iter().map(|c| SecretProviderClassStatus { name: c.name.clone(), updated: true }).collect();
    progress.done.push((Step::Classes, "Updated", format!("{} SecretProviderClass(es) carry client ID {}", w.classes.len(), w.client_id)));
    if binding.spec.secret_stores.is_some() {
        let account = binding.spec.service_account.as_ref().map(|s| s.name.as_str());
        write_back::write_store_identity(ctx, &namespace, &w.stores, &w.client_id, binding.spec.mode, account, changes).await?;
        progress.status.secret_stores = w.stores.iter().map(|s| SecretStoreStatus { name: s.name.clone(), updated: true }).collect();
        progress.done.push((Step::Stores, "Updated", format!("{} SecretStore(s) carry the identity (client ID {})", w.stores.len(), w.client_id)));
    }
    match w.missing {
        Some(name) => Err(BindingError::ClassNotFound(name)),
        None => Ok(()),
    }
}

/// Where a binding's identity can be reached from, after step 2.
struct Reach {
    attachments: Vec<AttachmentStatus>,
    pending: Vec<kvbind_azure::ComputeId>,
    crowded: Vec<kvbind_azure::ComputeId>,
    newly_crowded: Vec<kvbind_azure::ComputeId>,
    federation: Option<kvbind_api::identity_binding::WorkloadIdentityStatus>,
    aks_binding: Option<kvbind_api::identity_binding::AksIdentityBindingStatus>,
    notices: Vec<(&'static str, &'static str, String)>,
    reason: &'static str,
    message: String,
}

/// Step 2: the identity on the node pools that the bindings sharing it need, and in mode
/// `WorkloadIdentity` federated with the binding's ServiceAccount instead.
async fn reach(
    judge: &Judge<'_>,
    binding: &IdentityBinding,
    identity: &kvbind_azure::model::Identity,
    created: bool,
    demand: &Demand,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<Reach, BindingError> {
    let ctx = judge.ctx;
    if binding.spec.identity.addon.is_some() {
        return Ok(attached_by_aks());
    }
    let changes_before = changes.len();
    let azure_sync::Attachments { status: attachments, crowded, newly_crowded, pending } =
        azure_sync::sync_attachments(ctx, &identity.id, created, &demand.targets, &demand.records, demand.may_remove, waiting, changes).await?;
    let names: Vec<String> = attachments.iter().map(|a| a.resource_id.rsplit('/').next().unwrap_or_default().to_owned()).collect();
    let namespace = binding.namespace().unwrap_or_default();
    let previous = binding.status.as_ref().and_then(|s| s.workload_identity.clone());
    let service_account = binding.spec.service_account.as_ref().filter(|_| binding.spec.mode == IdentityMode::WorkloadIdentity).map(|s| s.name.as_str());
    if let Some(old) = previous.as_ref().filter(|old| Some(old.service_account.as_str()) != service_account) {
        workload_identity::unfederate(ctx, &namespace, &identity.id, &old.service_account, changes).await?;
    }
    let mut reach = Reach {
        attachments,
        pending,
        crowded,
        newly_crowded,
        federation: None,
        aks_binding: None,
        notices: Vec::new(),
        reason: "Attached",
        message: String::new(),
    };
    let bound_account = binding.spec.service_account.as_ref().filter(|_| binding.spec.mode == IdentityMode::AksIdentityBinding).map(|s| s.name.as_str());
    if let Some(old) = binding.status.as_ref().and_then(|s| s.aks_identity_binding.as_ref()).filter(|old| Some(old.service_account.as_str()) != bound_account) {
        // Still in the mode with another ServiceAccount, the cluster's binding stays.
        let cluster_too = bound_account.is_none();
        release_aks_binding(judge, binding, &identity.id, &identity.client_id, &old.service_account, cluster_too, created, changes).await?;
    }
    if let Some(account) = bound_account {
        let bound = aks_identity_binding::bind(ctx, &namespace, account, identity, changes).await?;
        reach.message = format!(
            "bound to the cluster by AKS identity binding {}; ServiceAccount {account} may use it through AKS's token proxy (ClusterRole {}); attached to no node pool",
            bound.resource_id.rsplit('/').next().unwrap_or_default(),
            bound.cluster_role
        );
        reach.reason = "BoundByAKS";
        reach.aks_binding = Some(bound);
        return Ok(reach);
    }
    if service_account.is_none() {
        let skipped = ctx.node_targets.auto_provisioned(&ctx.nodes, &binding.spec.nodes);
        if !skipped.is_empty() {
            reach.notices.push((
                "AutoProvisionedNodes",
                "NodeAutoProvisioning",
                format!(
                    "nodes {} were made by node auto-provisioning, whose VMs cannot carry user-assigned identities, so kvbind leaves them alone and pods there cannot use this identity: select other nodes with spec.nodes, or use mode WorkloadIdentity",
                    first_ten(skipped.iter())
                ),
            ));
        }
    }
    match service_account {
        Some(account) => {
            let federation = workload_identity::federate(ctx, &namespace, account, identity, previous.as_ref(), changes).await?;
            reach.message = format!("federated with ServiceAccount {account} (credential {}); attached to no node pool", federation.federated_credential);
            reach.reason = "Federated";
            reach.federation = Some(federation);
        }
        None if names.is_empty() => {
            reach.reason = "NoMatchingNodes";
            reach.message = "no node matches spec.nodes yet; the identity is attached as nodes appear".to_owned();
        }
        None => {
            // From kvbind's own ledger, never from statuses a tenant can write.
            let newcomer = ctx.ledger.used_by(&identity.id.key(), &namespace, &binding.name_any());
            let pools: BTreeSet<Arc<str>> = reach.attachments.iter().map(|a| Arc::from(a.resource_id.to_ascii_lowercase())).collect();
            let neighbours = ctx.ledger.sharing(&pools, &namespace);
            // The bindings already on these pools learn of this namespace: their notices
            // name it after their next reconcile, which this asks for when it is news.
            if newcomer || changes.len() > changes_before {
                for (ns, name) in &neighbours {
                    ctx.handoffs.wake(ObjectRef::new(name).within(ns));
                }
            }
            let sharing: BTreeSet<String> = neighbours.into_iter().map(|(ns, _)| ns).collect();
            let others = if sharing.is_empty() {
                String::new()
            } else {
                format!(
                    "; identities of namespaces {} are on these pools too, so their pods there can get this identity's tokens, and this namespace's pods theirs",
                    first_ten(sharing.iter())
                )
            };
            reach.notices.push((
                "NodeWideAccess",
                if sharing.is_empty() { "ReachableFromEveryPodOnPools" } else { "SharedWithOtherNamespaces" },
                format!(
                    "every pod on {} can get this identity's tokens from IMDS{others}; mode WorkloadIdentity limits them to one ServiceAccount",
                    names.join(", ")
                ),
            ));
            reach.message = format!("attached to {}", names.join(", "));
        }
    }
    Ok(reach)
}

/// Where the add-on's identity is: AKS put it on every node pool and keeps it there, so
/// kvbind attaches and detaches nothing and says what that means.
fn attached_by_aks() -> Reach {
    Reach {
        attachments: Vec::new(),
        pending: Vec::new(),
        crowded: Vec::new(),
        newly_crowded: Vec::new(),
        federation: None,
        aks_binding: None,
        notices: vec![(
            "NodeWideAccess",
            "AddonIdentityOnEveryPool",
            "AKS attaches the Key Vault add-on's identity to every node pool, so every pod of the cluster can get its tokens from IMDS; mode WorkloadIdentity limits an identity to one ServiceAccount".to_owned(),
        )],
        reason: "AttachedByAKS",
        message: "AKS attaches the add-on's identity to every node pool; kvbind attaches and detaches nothing".to_owned(),
    }
}

/// Step 3: exactly the grants the objects need, on every vault of the bindings sharing the
/// identity.
#[allow(clippy::too_many_arguments)]
async fn access(
    ctx: &Context,
    binding: &IdentityBinding,
    identity: &kvbind_azure::model::Identity,
    created: bool,
    demand: &Demand,
    vaults: BTreeMap<String, Arc<kvbind_azure::model::Vault>>,
    waiting: Waiting<'_>,
    changes: &mut Vec<Change>,
) -> Result<azure_sync::Grants, BindingError> {
    let mut granted_on = BTreeMap::new();
    for (name, vault) in vaults {
        let objects = demand.vaults.get(&name).map(|(_, o)| o.clone()).unwrap_or_default();
        granted_on.insert(vault.id.key(), (vault, objects));
    }
    azure_sync::sync_grants(
        ctx,
        &demand.namespaces(),
        &identity.id,
        &identity.principal_id,
        created,
        &granted_on,
        &demand.records,
        binding.spec.rbac_scope,
        demand.may_remove,
        waiting,
        changes,
    )
    .await
}

/// A binding no policy allows keeps nothing it had: what kvbind did for it is undone as
/// its deletion policy says. A binding that never got that far costs no Azure call. Returns
/// the error to report: the denial, or what stopped the undo.
async fn refuse(binding: &IdentityBinding, ctx: &Context, progress: &mut Progress, changes: &mut Vec<Change>, denial: BindingError) -> BindingError {
    let had = binding.status.as_ref().is_some_and(|s| {
        s.identity.is_some() || !s.attachments.is_empty() || !s.grants.is_empty() || s.workload_identity.is_some() || s.aks_identity_binding.is_some()
    });
    if had && binding.spec.deletion_policy == DeletionPolicy::Delete {
        if let Err(e) = undo(binding, ctx, changes).await {
            // Keep the records until the undo is complete.
            let mut kept = binding.status.clone().unwrap_or_default();
            kept.conditions.clear();
            progress.status = kept;
            return e;
        }
        changes.push(("AccessRevoked", "no BindingPolicy allows this binding any more: removed what kvbind had set up for it".to_owned()));
    }
    denial
}

/// Takes back what mode AKSIdentityBinding gave `account` of the binding's namespace,
/// unless another live binding there still gives it the identity; and, with `cluster_too`
/// once no other live binding uses the identity in that mode, the cluster's ARM identity
/// binding (with the credential AKS left, when `owned`).
#[allow(clippy::too_many_arguments)]
async fn release_aks_binding(
    judge: &Judge<'_>,
    binding: &IdentityBinding,
    identity: &kvbind_azure::IdentityId,
    client_id: &str,
    account: &str,
    cluster_too: bool,
    owned: bool,
    changes: &mut Vec<Change>,
) -> Result<(), BindingError> {
    let ctx = judge.ctx;
    let namespace = binding.namespace().unwrap_or_default();
    let others = sharing_identity(binding, identity, judge);
    let in_mode: Vec<&Arc<IdentityBinding>> = others.iter().filter(|b| b.spec.mode == IdentityMode::AksIdentityBinding).collect();
    let same_account =
        in_mode.iter().any(|b| b.namespace().as_deref() == Some(namespace.as_str()) && b.spec.service_account.as_ref().is_some_and(|s| s.name == account));
    if !same_account {
        aks_identity_binding::disallow(ctx, &namespace, account, client_id, changes).await?;
    }
    if cluster_too && in_mode.is_empty() {
        aks_identity_binding::unbind(ctx, identity, owned, changes).await?;
    }
    Ok(())
}

/// Records in the ledger which attachments of `identity` kvbind made.
fn remember_attachments(ctx: &Context, identity: &kvbind_azure::IdentityId, attachments: &[AttachmentStatus]) {
    let status = IdentityBindingStatus { attachments: attachments.to_vec(), ..IdentityBindingStatus::default() };
    let attached = Records::from_statuses([&status]).attached;
    ctx.ledger.set_attached(&identity.key(), &attached);
}

/// Records in the ledger which access-policy permissions kvbind granted `identity`.
fn remember_grants(ctx: &Context, identity: &kvbind_azure::IdentityId, grants: &[VaultGrantStatus]) {
    let status = IdentityBindingStatus { grants: grants.to_vec(), ..IdentityBindingStatus::default() };
    let granted = Records::from_statuses([&status]).granted;
    ctx.ledger.set_granted(&identity.key(), &granted);
}

/// Undoes what kvbind did for a deleted binding, keeping what other bindings need.
async fn cleanup(binding: &IdentityBinding, ctx: &Context) -> Result<Action, ReconcileError> {
    ctx.verification.forget(binding);
    crate::verify::forget(&prover(ctx), binding).await;
    if binding.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Action::await_change());
    }
    // Whatever was handed off for it has landed or will land unread.
    ctx.handoffs.forget(&ObjectRef::from_obj(binding));
    let mut changes = Vec::new();
    let result = undo(binding, ctx, &mut changes).await;
    spend_writes(ctx, binding, &changes);
    publish(ctx, binding, &changes, result.as_ref().err());
    result.map_err(ReconcileError::Cleanup)?;
    Ok(Action::await_change())
}

async fn undo(binding: &IdentityBinding, ctx: &Context, changes: &mut Vec<Change>) -> Result<(), BindingError> {
    // An identity that never validated was never touched.
    let Ok((identity_id, adopt)) = identity_of(&binding.spec.identity, &ctx.config) else {
        return Ok(());
    };
    let judge = Judge::new(ctx);
    let mut demand = demand(binding, &identity_id, None, &judge);
    let namespace = binding.namespace().unwrap_or_default();
    let sharers = sharing_identity(binding, &identity_id, &judge);
    // The sharers of this namespace keep the classes, the federation and the namespace's
    // place in the admission policy that they use too.
    let sharers_here: Vec<&Arc<IdentityBinding>> = sharers.iter().filter(|b| b.namespace().as_deref() == Some(namespace.as_str())).collect();
    let shared_classes: BTreeSet<String> = sharers_here
        .iter()
        .filter_map(|b| b.status.as_ref())
        .flat_map(|s| s.secret_provider_classes.iter().map(|c| c.name.clone()))
        .collect();
    let found = ctx.arm.get_identity(&identity_id).await.map_err(BindingError::azure(Step::Identity, "reading the identity"))?;
    // An identity adopted by ID is never kvbind's, whoever tagged it; one named is only when
    // this installation made it for this namespace (`ensure_identity`).
    let owned = found.as_ref().is_some_and(|i| !adopt && azure_sync::made_here(i, ctx) && azure_sync::ours_to_join(i, &namespace, &[key(binding)]));
    // Nothing is undone for a binding kvbind has no evidence of having served: no policy
    // allows it, the identity is not this installation's, and the ledger knows nothing of
    // it. Its status may say anything; the tenant writes that.
    if !owned && !ctx.ledger.knows(&identity_id.key()) && !policy::admits(binding, &judge) {
        return Ok(());
    }
    if let Some(federation) = binding.status.as_ref().and_then(|s| s.workload_identity.as_ref()) {
        let shared = sharers_here
            .iter()
            .any(|b| b.status.as_ref().and_then(|s| s.workload_identity.as_ref()).is_some_and(|w| w.service_account == federation.service_account));
        if !shared {
            workload_identity::unfederate(ctx, &namespace, &identity_id, &federation.service_account, changes).await?;
        }
    }
    let client_id = found.as_ref().map(|i| i.client_id.clone());
    if let Some(identity) = found {
        // The ServiceAccounts the spec and the status name: every name removed is derived
        // from this namespace, so a status can at most point kvbind at its own namespace's.
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        if binding.spec.mode == IdentityMode::AksIdentityBinding {
            accounts.extend(binding.spec.service_account.as_ref().map(|s| s.name.as_str()));
        }
        accounts.extend(binding.status.as_ref().and_then(|s| s.aks_identity_binding.as_ref()).map(|b| b.service_account.as_str()));
        for account in accounts {
            release_aks_binding(&judge, binding, &identity.id, &identity.client_id, account, true, owned, changes).await?;
        }
        let mut records = demand.records.clone();
        if owned {
            // Pools this binding reaches may carry the identity without a record of it (a
            // crash between the PATCH and the status write); they are kvbind's to clean.
            if let Ok(targets) = inputs::targets_of(binding, ctx) {
                records.attached.extend(targets.iter().map(|target| kvbind_azure::intern::intern(&target.key())));
            }
        }
        let attachments =
            azure_sync::sync_attachments(ctx, &identity.id, owned, &demand.targets, &records, demand.may_remove, Waiting::InPlace, changes).await?.status;
        remember_attachments(ctx, &identity.id, &attachments);
        // Every vault this binding touched, with what the remaining bindings still need.
        let explicit = binding.spec.key_vault.as_ref().map(|k| k.resource_id.as_str());
        let mut vaults = BTreeMap::new();
        let resolved = azure_sync::resolve_vaults(ctx, &demand.vaults, explicit, &BTreeMap::new()).await?;
        for (name, vault) in demand.only_allowed_vaults(resolved, &judge) {
            let objects = demand.vaults.get(&name).map(|(_, o)| o.clone()).unwrap_or_default();
            vaults.insert(vault.id.key(), (vault, objects));
        }
        for grant in binding.status.iter().flat_map(|s| s.grants.iter()) {
            let Ok(id) = kvbind_azure::VaultId::parse(&grant.vault_id) else {
                continue;
            };
            if vaults.contains_key(&id.key()) {
                continue;
            }
            match ctx.arm.get_vault(&id).await {
                Ok(vault) => {
                    vaults.insert(id.key(), (Arc::new(vault), Vec::new()));
                }
                Err(kvbind_azure::AzureError::NotFound { .. }) => {}
                Err(e) => return Err(BindingError::azure(Step::Access, "reading the vault")(e)),
            }
        }
        let grants = azure_sync::sync_grants(
            ctx,
            &demand.namespaces(),
            &identity.id,
            &identity.principal_id,
            owned,
            &vaults,
            &records,
            binding.spec.rbac_scope,
            demand.may_remove,
            Waiting::InPlace,
            changes,
        )
        .await?;
        remember_grants(ctx, &identity.id, &grants.status);
        if !owned {
            azure_sync::keep_adoption_record(ctx, &identity.id.key()).await?;
        }
        if demand.users.is_empty() && owned {
            azure_sync::delete_identity(ctx, &identity.id, changes).await?;
            ctx.ledger.forget(&identity.id.key());
        }
    }
    for class in binding.status.iter().flat_map(|s| s.secret_provider_classes.iter()) {
        if !shared_classes.contains(&class.name) {
            write_back::forget_identity(ctx, &namespace, &class.name).await?;
        }
    }
    // Only kvbind's own fields go, and only in the binding's namespace, so the names may
    // come from the spec and status; a store another live binding names keeps them.
    if ctx.external_secrets.is_some() {
        let mut stores: BTreeSet<&str> = binding.spec.secret_stores.iter().flat_map(|s| s.names.iter().map(String::as_str)).collect();
        stores.extend(binding.status.iter().flat_map(|s| s.secret_stores.iter().map(|s| s.name.as_str())));
        for store in stores {
            if crate::policy::sharing::other_binding_naming_store(binding, store, ctx).is_none() {
                write_back::forget_store_identity(ctx, &namespace, store).await?;
            }
        }
    }
    // The namespace's last binding takes its NetworkPolicy with it.
    let others_here = ctx
        .bindings
        .state()
        .into_iter()
        .any(|b| b.namespace().as_deref() == Some(namespace.as_str()) && b.name_any() != binding.name_any() && b.metadata.deletion_timestamp.is_none());
    if !others_here {
        imds_egress::keep(ctx, &namespace, false, changes).await?;
    }
    if let (Some(bound), Some(client_id), true) = (&ctx.bound, client_id, sharers_here.is_empty()) {
        bound
            .unbind(&client_id, &namespace)
            .await
            .map_err(|source| BindingError::Kube { action: "withdrawing the identity's namespace from the admission policy", source })?;
    }
    Ok(())
}
