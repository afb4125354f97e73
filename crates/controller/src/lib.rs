//! kvbind's reconcilers as a library: the IdentityBinding controller and the watches that
//! feed it (SecretProviderClasses and Nodes, mapped to the bindings they affect).
//!
//! The data's path, one reconcile of one binding:
//!
//! ```text
//! watches (bindings, classes, nodes, policies, stores) ─▶ reflector stores + caches/ (dropped by the change that stales them)
//!   ─▶ verify/   a proof of the pod's path, when due, sees Azure before anything is repaired
//!   ─▶ needs/    what the binding asks for, parsed and checked (bad input stops here)
//!   ─▶ policy/   the judge: may it, and may each binding sharing its identity (no write yet); its answers
//!                are kept in the index (policy/judged) until a watch they read from reports a change
//!   ─▶ binding/  the group's demand (binding/plan/group, pure), then the identity, then reach (pools or
//!                federation) and access (grants) side by side, each deciding in binding/plan (identity,
//!                reach, attach, federation, grants, write_back; undo for a binding that goes)
//!   ─▶ desks/    one per kind of Azure resource (scale sets and VMs, vaults, identities): its reads kept
//!                for a resync, its writes batched and serialised by one generic desk.rs, the bindings
//!                woken when they land
//!   ─▶ Azure (the ARM port), and records/ notes what kvbind did
//!   ─▶ binding/write_back: the classes and stores name the identity; status (kstatus conditions) and Events back
//! ```
//!
//! Modules import each other one way only (`tests/module_graph.rs`).

pub mod addon;
mod binding;
mod caches;
pub mod config;
mod context;
mod desks;
mod error;
mod event_queue;
mod external_secrets;
#[cfg(test)]
mod fake_compute;
mod metrics;
pub mod needs;
mod policy;
mod records;
pub mod request_limit;
pub mod role_budget;
mod selector;
#[cfg(test)]
mod test_context;
mod turns;
pub mod verify;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use caches::cache_trim::{strip_binding, strip_class, strip_node};
use caches::{needs_memo, node_targets, unpinned_classes, watch_backoff};
use desks::handoff;
use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use kvbind_api::secret_provider_class::SecretProviderClass;
use kvbind_api::{BindingPolicy, IdentityBinding};
use kvbind_azure::Arm;

pub use caches::cache_trim::MAX_OBJECTS_BYTES;
pub use caches::node_targets::AUTO_PROVISIONED_LABEL;
pub use config::ControllerConfig;
use context::Context;
pub use metrics::{Health, Metrics};

/// What about a binding calls for a reconcile: its spec (the generation) and its deletion.
/// kvbind's own writes (status, and the finalizer, which the reconcile adding it goes on
/// from) change neither, so they do not come back as a second reconcile of every binding;
/// drift in Azure, and a finalizer someone took off, are the resync's to find.
fn calls_for_reconcile(binding: &IdentityBinding) -> Option<u64> {
    let mut hasher = std::hash::DefaultHasher::new();
    (binding.metadata.generation, binding.metadata.deletion_timestamp.is_some()).hash(&mut hasher);
    Some(hasher.finish())
}

fn bindings_for_class(bindings: &Store<IdentityBinding>, class: &SecretProviderClass) -> Vec<ObjectRef<IdentityBinding>> {
    let (namespace, name) = (class.metadata.namespace.as_deref(), class.metadata.name.as_deref());
    bindings
        .state()
        .iter()
        .filter(|b| b.metadata.namespace.as_deref() == namespace)
        .filter(|b| name.is_some_and(|name| needs::selects_class(b, name, class.labels())))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

fn bindings_in_namespace(bindings: &Store<IdentityBinding>, namespace: &PartialObjectMeta<Namespace>) -> Vec<ObjectRef<IdentityBinding>> {
    let name = namespace.name_any();
    bindings.state().iter().filter(|b| b.namespace().as_deref() == Some(name.as_str())).map(|b| ObjectRef::from_obj(b.as_ref())).collect()
}

/// The bindings per Ready status: `True`, `False`, and `Unknown` for those without one yet.
fn count_by_ready(bindings: &Store<IdentityBinding>) -> [i64; 3] {
    let mut counts = [0; 3];
    for binding in bindings.state() {
        let ready = binding.status.as_ref().and_then(|s| kvbind_api::condition::find(&s.conditions, kvbind_api::condition::READY)).map(|c| c.status);
        counts[match ready {
            Some(kvbind_api::ConditionStatus::True) => 0,
            Some(kvbind_api::ConditionStatus::False) => 1,
            _ => 2,
        }] += 1;
    }
    counts
}

fn every_binding(bindings: &Store<IdentityBinding>) -> Vec<ObjectRef<IdentityBinding>> {
    bindings.state().iter().map(|b| ObjectRef::from_obj(b.as_ref())).collect()
}

fn bindings_for_node(bindings: &Store<IdentityBinding>, node: &Node) -> Vec<ObjectRef<IdentityBinding>> {
    bindings.state().iter().filter(|b| selector::matches(&b.spec.nodes, Some(node.labels()))).map(|b| ObjectRef::from_obj(b.as_ref())).collect()
}

/// The `kube-system` namespace's UID: it lives as long as the cluster, and another
/// cluster's kvbind cannot know it. Retried until the API server answers: without it kvbind
/// could not tell its own identities from anyone else's.
async fn installation_id(client: &Client) -> String {
    let namespaces = Api::<Namespace>::all(client.clone());
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match namespaces.get_metadata("kube-system").await {
            Ok(namespace) if namespace.metadata.uid.is_some() => return namespace.metadata.uid.unwrap_or_default(),
            Ok(_) => tracing::warn!("namespace kube-system has no UID yet"),
            Err(error) => tracing::warn!(%error, "reading namespace kube-system for the installation ID"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
}

/// Reconciles at once. A reconcile waits on Azure only for reads and identity writes (the
/// slow writes are handed off), so this bounds memory without slowing a large start.
pub const MAX_CONCURRENT_RECONCILES: u16 = 1024;

/// Metrics and health, shared with the admin server.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness.
    pub health: Arc<Health>,
}

/// SecretProviderClasses read per list page: the API server admits objects of about 1.5 MB,
/// so a page holds at most a few tens of megabytes before kvbind keeps only what the
/// provider reads of each.
const CLASS_LIST_PAGE: u32 = 16;

/// Runs the IdentityBinding controller until `shutdown` completes.
pub async fn run(
    client: Client,
    arm: Arc<dyn Arm>,
    mut config: ControllerConfig,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    if config.installation.is_empty() {
        config.installation = installation_id(&client).await;
    }
    tracing::info!(installation = %config.installation, "identities tagged with this installation are kvbind's own");
    // Read before any reconcile, so a binding of the add-on's identity is not refused at start.
    let addon_refresh = match config.managed_cluster.clone() {
        Some(cluster) => {
            let lookup = addon::read(arm.as_ref(), &cluster).await;
            tracing::info!(%cluster, addon = ?lookup, "the Key Vault secrets provider add-on's identity");
            config.addon_identity.set(lookup);
            let refresh = addon::keep_current(arm.clone(), cluster, config.addon_identity.clone(), config.resync);
            Some(tokio::spawn(refresh).abort_handle())
        }
        None => None,
    };
    let scoped = |namespace: &Option<String>| match namespace {
        Some(ns) => (Api::<IdentityBinding>::namespaced(client.clone(), ns), Api::<SecretProviderClass>::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (binding_api, class_api) = scoped(&config.namespace);
    let node_config = match &config.node_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let (classes, classes_writer) = reflector::store();
    let unpinned_classes = Arc::new(unpinned_classes::UnpinnedClasses::default());
    let classes_changed = unpinned_classes.clone();
    let needs_memo = Arc::new(needs_memo::NeedsMemo::default());
    // Every watch below feeds the policy verdicts; each tells the judge's kept answers.
    let judged = Arc::new(policy::judged::Judged::default());
    let (judged_of_classes, judged_of_nodes, judged_of_policies, judged_of_namespaces, judged_of_bindings) =
        (judged.clone(), judged.clone(), judged.clone(), judged.clone(), judged.clone());
    let (needs_of_classes, needs_of_nodes, needs_of_stores, needs_of_secrets) =
        (needs_memo.clone(), needs_memo.clone(), needs_memo.clone(), needs_memo.clone());
    // A class may be over a megabyte and tenants write them: a list page of 500 of those
    // would sit whole in memory before `strip_class` trims each one.
    let class_watch = watcher::Config::default().page_size(CLASS_LIST_PAGE);
    let class_events = reflector(classes_writer, watcher(class_api, class_watch).backoff(watch_backoff::watch_backoff()).modify(strip_class))
        // The reflector has stored the change by the time it passes here.
        .inspect(move |_| {
            classes_changed.classes_changed();
            needs_of_classes.inputs_changed();
            judged_of_classes.changed();
        })
        .touched_objects();
    let (nodes, nodes_writer) = reflector::store();
    let node_targets = Arc::new(node_targets::NodeTargets::default());
    let nodes_changed = node_targets.clone();
    let node_events =
        reflector(nodes_writer, watcher(Api::<Node>::all(client.clone()), node_config).backoff(watch_backoff::watch_backoff()).modify(strip_node))
            // The reflector has stored the change by the time it passes here.
            .inspect(move |_| {
                nodes_changed.nodes_changed();
                needs_of_nodes.inputs_changed();
                judged_of_nodes.changed();
            })
            .touched_objects();

    let (policies, policies_writer) = reflector::store();
    let policy_events =
        reflector(policies_writer, watcher(Api::<BindingPolicy>::all(client.clone()), watcher::Config::default()).backoff(watch_backoff::watch_backoff()))
            .inspect(move |_| judged_of_policies.changed())
            .touched_objects();
    // Only the namespace's labels matter; a namespace-scoped operator watches only its own.
    let namespace_config = match &config.namespace {
        Some(ns) => watcher::Config::default().fields(&format!("metadata.name={ns}")),
        None => watcher::Config::default(),
    };
    let (namespaces, namespaces_writer) = reflector::store();
    let namespace_events = reflector(
        namespaces_writer,
        watcher(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), namespace_config).backoff(watch_backoff::watch_backoff()),
    )
    .inspect(move |_| judged_of_namespaces.changed())
    .touched_objects();

    // ESO's objects, when the API server serves them; see `external_secrets`.
    let eso_served = external_secrets::served(&client).await;
    tracing::info!(served = eso_served, "External Secrets Operator {}", kvbind_api::external_secrets::API_VERSION);
    let (eso, eso_events) = if eso_served {
        let (stores, stores_writer) = reflector::store();
        let (secrets, secrets_writer) = reflector::store();
        let (judged_of_stores, judged_of_secrets) = (judged.clone(), judged.clone());
        let (store_api, secret_api) = match &config.namespace {
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let store_events = reflector(
            stores_writer,
            watcher(store_api, watcher::Config::default()).backoff(watch_backoff::watch_backoff()).modify(external_secrets::strip_store),
        )
        .inspect(move |_| {
            needs_of_stores.inputs_changed();
            judged_of_stores.changed();
        })
        .touched_objects();
        let secret_events = reflector(
            secrets_writer,
            watcher(secret_api, watcher::Config::default().page_size(CLASS_LIST_PAGE))
                .backoff(watch_backoff::watch_backoff())
                .modify(external_secrets::strip_external_secret),
        )
        .inspect(move |_| {
            needs_of_secrets.inputs_changed();
            judged_of_secrets.changed();
        })
        .touched_objects();
        (Some(external_secrets::EsoCaches { stores, external_secrets: secrets }), Some((store_events, secret_events)))
    } else {
        (None, None)
    };

    let binding_config = match &config.binding_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let (bindings, bindings_writer) = reflector::store();
    let binding_events = reflector(bindings_writer, watcher(binding_api, binding_config).backoff(watch_backoff::watch_backoff()).modify(strip_binding))
        // The reflector has stored the change by the time it passes here, before the
        // controller hears of it.
        .inspect(move |_| judged_of_bindings.changed())
        .applied_objects()
        .predicate_filter(calls_for_reconcile, PredicateConfig::default());
    let controller = Controller::for_stream(binding_events, bindings.clone()).trigger_backoff(watch_backoff::watch_backoff());
    let counted = bindings.clone();
    telemetry.metrics.count_bindings_with(move || count_by_ready(&counted));
    // Exactly one waiter per store: a store's readiness wakes only some of several
    // concurrent waiters, so the reconciles wait on `caches_ready` instead. The controller
    // itself waits for the bindings store before it reconciles anything.
    let (ready_tx, caches_ready) = tokio::sync::watch::channel(false);
    let synced = {
        let (classes, nodes, policies, namespaces, health) = (classes.clone(), nodes.clone(), policies.clone(), namespaces.clone(), telemetry.health.clone());
        let eso = eso.clone();
        async move {
            let _ = futures::join!(classes.wait_until_ready(), nodes.wait_until_ready(), policies.wait_until_ready(), namespaces.wait_until_ready());
            if let Some(eso) = eso {
                let _ = futures::join!(eso.stores.wait_until_ready(), eso.external_secrets.wait_until_ready());
            }
            health.caches_synced.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = ready_tx.send(true);
        }
    };
    tokio::spawn(synced);
    let index = context::Index {
        bindings: bindings.clone(),
        classes,
        nodes,
        policies,
        namespaces,
        external_secrets: eso,
        node_targets,
        unpinned_classes,
        needs_memo,
        judged,
        parsed_classes: caches::parsed_classes::ParsedClasses::default(),
        ready: caches_ready,
    };
    let (handoffs, woken) = handoff::Handoffs::new();
    let ctx = Context::new(client, arm, config, index, telemetry.metrics, handoffs);
    // Before any reconcile: what kvbind did to adopted identities before this start.
    if let Some(store) = &ctx.adoption {
        match store.load().await {
            Ok(records) => {
                for (identity, kept) in &records {
                    ctx.ledger.set_attached(identity, &kept.attached);
                    ctx.ledger.set_granted(identity, &kept.granted);
                }
                tracing::info!(identities = records.len(), "adoption records read");
            }
            Err(error) => {
                tracing::warn!(%error, "the adoption records could not be read: what kvbind did to adopted identities before this start stays in place")
            }
        }
    }
    let (for_classes, for_nodes, for_policies, for_namespaces) = (bindings.clone(), bindings.clone(), bindings.clone(), bindings.clone());
    let controller = match eso_events {
        Some((store_events, secret_events)) => {
            let (for_stores, for_secrets) = (bindings.clone(), bindings);
            controller
                .watches_stream(store_events, move |store| external_secrets::bindings_for_store(&for_stores, &store))
                .watches_stream(secret_events, move |secret| external_secrets::bindings_for_external_secret(&for_secrets, &secret))
        }
        None => controller,
    };
    controller
        .watches_stream(class_events, move |class| bindings_for_class(&for_classes, &class))
        .watches_stream(node_events, move |node| bindings_for_node(&for_nodes, &node))
        // A policy change can allow or refuse any binding.
        .watches_stream(policy_events, move |_| every_binding(&for_policies))
        .watches_stream(namespace_events, move |namespace| bindings_in_namespace(&for_namespaces, &namespace))
        // Bindings whose handed-off writes have landed.
        .reconcile_on(futures::stream::unfold(woken, |mut woken| async move { woken.recv().await.map(|binding| (binding, woken)) }))
        .with_config(controller::Config::default().concurrency(MAX_CONCURRENT_RECONCILES))
        .graceful_shutdown_on(shutdown)
        .run(binding::reconcile, binding::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(binding = %object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile error"),
            }
        })
        .await;
    if let Some(refresh) = addon_refresh {
        refresh.abort();
    }
}
