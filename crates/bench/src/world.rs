//! Building a scenario's world: the simulator with its latencies, and the Nodes,
//! SecretProviderClasses and IdentityBindings in the cluster.

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kvbind_api::IdentityBinding;
use kvbind_arm_sim::seed::{LimitsSeed, LroSeed};
use kvbind_arm_sim::{Fault, FaultRule, Simulator};
use kvbind_e2e::operator::{Scenario as E2e, seed};
use kvbind_e2e::world::{binding, class, cluster};

use crate::scenario::{Latencies, Scenario};

/// The scale set of pool `i`.
pub fn pool(i: usize) -> String {
    format!("pool-{i:02}-vmss")
}

/// A simulator with `pools` scale sets, one access-policy vault, and the latencies.
pub async fn simulator(pools: usize, latencies: &Latencies) -> anyhow::Result<Simulator> {
    let names: Vec<String> = (0..pools).map(pool).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut world = seed(&cluster(&refs, &[], false));
    world.lro = Some(LroSeed { duration_ms: latencies.vmss_patch_ms, retry_after_seconds: 1 });
    // The scenarios put up to a thousand distinct identities on one scale set, past the 150
    // Azure allows; until they stay within it, this world lifts that one limit (and the
    // results say so). The other limits are Azure's.
    world.limits = Some(LimitsSeed { user_assigned_per_compute: usize::MAX, ..LimitsSeed::default() });
    // Likewise Azure's request rates, until the bound the results compare against counts
    // them (the operator runs with --no-pacing to match).
    world.rates = Some(kvbind_arm_sim::rates::RatesSeed::off());
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
    let documents: Vec<(Api<DynamicObject>, String)> = (0..scenario.bindings)
        .flat_map(|i| {
            let name = format!("app-{i:04}");
            let identity = format!("reader-{:04}", i / scenario.per_identity);
            [(classes.clone(), class(&name, &[(&format!("secret-{i:04}"), "secret", 0)])), (bindings.clone(), binding(&name, &identity, &[&name], ""))]
        })
        .collect();
    futures::stream::iter(documents)
        .map(|(api, yaml)| async move {
            let object: DynamicObject = serde_json::from_value(serde_yaml_ng_value(&yaml)?)?;
            api.create(&PostParams::default(), &object).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn serde_yaml_ng_value(yaml: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_yaml_ng::from_str(yaml)?)
}

/// True when a binding's `Ready` condition is `True`.
pub fn is_ready(binding: &IdentityBinding) -> bool {
    binding
        .status
        .as_ref()
        .and_then(|s| kvbind_api::condition::find(&s.conditions, kvbind_api::condition::READY))
        .is_some_and(|c| c.status == kvbind_api::ConditionStatus::True)
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
