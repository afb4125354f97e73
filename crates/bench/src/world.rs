//! Building a scenario's world: the simulator with its latencies, and the Nodes,
//! SecretProviderClasses and IdentityBindings in the cluster.

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kvbind_api::IdentityBinding;
use kvbind_arm_sim::seed::LroSeed;
use kvbind_arm_sim::{Fault, FaultRule, Simulator};
use kvbind_e2e::operator::{Scenario as E2e, seed};
use kvbind_e2e::world::{binding, class, cluster};

use crate::scenario::{Latencies, Mode, Scenario};

/// The scale set of pool `i`.
pub fn pool(i: usize) -> String {
    format!("pool-{i:02}-vmss")
}

/// The issuer the operator federates workload identity ServiceAccounts with.
pub const ISSUER: &str = "https://oidc.bench.test/issuer/";

/// A simulator with the scenario's scale sets, one access-policy vault holding the
/// scenario's foreign entries, and the latencies. Azure's limits and request rates are
/// the simulator's defaults: Azure's own.
pub async fn simulator(scenario: &Scenario, latencies: &Latencies) -> anyhow::Result<Simulator> {
    let names: Vec<String> = (0..scenario.pools).map(pool).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    // `cluster` ends with the vault's access policies, holding one foreign entry.
    let mut text = cluster(&refs, &[], scenario.role_assignment_limit.is_some());
    for i in 1..scenario.vault_entries_held {
        text.push_str(&format!(
            "              - {{tenantId: {}, objectId: 00000000-0000-0000-0000-{i:012}, permissions: {{secrets: [get]}}}}\n",
            kvbind_e2e::operator::TENANT
        ));
    }
    if scenario.mode == Mode::AksIdentityBinding {
        text.push_str(&format!(
            "      - name: rg-aks\n        managedClusters:\n          - {{name: aks, nodeResourceGroup: {}}}\n",
            kvbind_e2e::operator::NODE_GROUP
        ));
    }
    let mut world = seed(&text);
    if let Some(limit) = scenario.role_assignment_limit {
        world.limits = Some(kvbind_arm_sim::seed::LimitsSeed { role_assignments_per_subscription: limit, ..Default::default() });
    }
    world.lro = Some(LroSeed { duration_ms: latencies.vmss_patch_ms, retry_after_seconds: 1 });
    let slow = |operation: &str, ms: u64| FaultRule {
        operation: operation.into(),
        path_contains: None,
        fault: Fault::Latency { min_ms: ms, max_ms: ms },
        count: None,
    };
    world.faults = vec![
        slow("UserAssignedIdentities_CreateOrUpdate", latencies.identity_put_ms),
        slow("Vaults_UpdateAccessPolicy", latencies.access_policy_ms),
        slow("RoleAssignments_Create", latencies.role_assignment_ms),
    ];
    Ok(Simulator::start(&world, "127.0.0.1:0".parse()?).await?)
}

/// Creates `count` nodes on pool `index`, labelled for the namespace's operator.
pub async fn nodes(client: &kube::Client, namespace: &str, index: usize, count: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..count)
        .map(|n| {
            let api = api.clone();
            let node: Node = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{namespace}-p{index:02}-{n:03}"), "labels": {"kvbind.io/test": namespace}},
                "spec": {"providerID": E2e::vmss_node(&pool(index), n as u32)},
            }))
            .expect("node literal");
            async move { api.create(&PostParams::default(), &node).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Creates the scenario's classes and bindings, many at a time.
pub async fn bindings(client: &kube::Client, namespace: &str, scenario: &Scenario) -> anyhow::Result<()> {
    let resource =
        |group: &str, version: &str, kind: &str, plural: &str| ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let classes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass", "secretproviderclasses"));
    let bindings: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("kvbind.io", "v1alpha1", "IdentityBinding", "identitybindings"));
    let accounts: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource("", "v1", "ServiceAccount", "serviceaccounts"));
    let documents: Vec<(Api<DynamicObject>, String)> = (0..scenario.bindings)
        .flat_map(|i| {
            let name = format!("app-{i:04}");
            let identity = format!("reader-{:04}", i / scenario.per_identity);
            let (secret, key, cert) = (format!("secret-{i:04}"), format!("key-{i:04}"), format!("cert-{i:04}"));
            let objects = [(secret.as_str(), "secret", 0), (key.as_str(), "key", 0), (cert.as_str(), "cert", 0)];
            let (account, extra) = match scenario.mode {
                Mode::Vm => (None, String::new()),
                Mode::WorkloadIdentity => (
                    Some((accounts.clone(), format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n"))),
                    format!("  mode: WorkloadIdentity\n  serviceAccount: {{name: {name}}}\n"),
                ),
                Mode::AksIdentityBinding => (
                    Some((accounts.clone(), format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n"))),
                    format!("  mode: AKSIdentityBinding\n  serviceAccount: {{name: {name}}}\n"),
                ),
            };
            account.into_iter().chain([
                (classes.clone(), class(&name, &objects[..scenario.objects_per_class()])),
                (bindings.clone(), binding(&name, &identity, &[&name], &extra)),
            ])
        })
        .collect();
    // Classes no binding names, of about 1 MB each: half in a parameter the provider does
    // not read, half in an `objects` list far past what kvbind caches.
    let padding = "x".repeat(1 << 20);
    let big: Vec<(Api<DynamicObject>, String)> = (0..scenario.big_classes)
        .map(|i| {
            let parameter = if i % 2 == 0 { "padding" } else { "objects" };
            (
                classes.clone(),
                format!(
                    "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: big-{i:04}\nspec:\n  provider: azure\n  parameters:\n    keyvaultName: kvname\n    {parameter}: {padding}\n"
                ),
            )
        })
        .collect();
    // One at a time: each is a megabyte for the API server and etcd to take.
    create_all(big, 1).await?;
    create_all(documents, 16).await
}

/// Creates each YAML document with its API, `at_once` at a time.
async fn create_all(documents: Vec<(Api<DynamicObject>, String)>, at_once: usize) -> anyhow::Result<()> {
    futures::stream::iter(documents)
        .map(|(api, yaml)| async move {
            let object: DynamicObject = serde_json::from_value(serde_yaml_ng::from_str::<serde_json::Value>(&yaml)?)?;
            api.create(&PostParams::default(), &object).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(at_once)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// True when a binding's `Ready` condition is `True`.
pub fn is_ready(binding: &IdentityBinding) -> bool {
    ready_condition(binding).is_some_and(|c| c.status == kvbind_api::ConditionStatus::True)
}

/// True when a binding's `Ready` condition is `False` for `reason`.
pub fn is_refused_for(binding: &IdentityBinding, reason: &str) -> bool {
    ready_condition(binding).is_some_and(|c| c.status == kvbind_api::ConditionStatus::False && c.reason == reason)
}

fn ready_condition(binding: &IdentityBinding) -> Option<&kvbind_api::Condition> {
    binding.status.as_ref().and_then(|s| kvbind_api::condition::find(&s.conditions, kvbind_api::condition::READY))
}

/// How many bindings are refused for the limit `scenario` passes; an error when any
/// binding is neither Ready nor refused for it, or when the count is not the scenario's.
pub async fn refused(client: &kube::Client, namespace: &str, scenario: &Scenario) -> anyhow::Result<usize> {
    let Some(refusal) = scenario.refusal else { return Ok(0) };
    let api: Api<IdentityBinding> = Api::namespaced(client.clone(), namespace);
    let bindings = api.list(&Default::default()).await?;
    let refused: Vec<String> = bindings.items.iter().filter(|b| is_refused_for(b, refusal.reason)).filter_map(|b| b.metadata.name.clone()).collect();
    anyhow::ensure!(refused.len() == refusal.bindings, "{} refused for {}, expected {}: {refused:?}", refused.len(), refusal.reason, refusal.bindings);
    Ok(refused.len())
}

/// Waits, by watching the namespace's bindings, until `count` of them satisfy `done`;
/// returns how long that took. A watch sees each change once, where polling a list of a
/// thousand bindings would load the API server that is being measured.
pub async fn until_bindings(
    client: &kube::Client,
    namespace: &str,
    count: usize,
    deadline: Duration,
    done: impl Fn(&IdentityBinding) -> bool,
) -> anyhow::Result<Duration> {
    let started = tokio::time::Instant::now();
    let api: Api<IdentityBinding> = Api::namespaced(client.clone(), namespace);
    let mut done_names = HashSet::new();
    let mut changes = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    let watch = async {
        while let Some(binding) = changes.try_next().await? {
            let name = binding.metadata.name.clone().unwrap_or_default();
            if done(&binding) {
                done_names.insert(name);
            } else {
                done_names.remove(&name);
            }
            if done_names.len() >= count {
                return anyhow::Ok(started.elapsed());
            }
        }
        anyhow::bail!("the watch of {namespace}'s bindings ended")
    };
    tokio::time::timeout(deadline, watch).await.map_err(|_| anyhow::anyhow!("not done after {deadline:?}"))?
}
