//! Convergence through faults: with ARM throttling, failing, conflicting and slow, the end
//! state equals the fault-free run's, nothing is duplicated, and no scale set ever loses
//! its system-assigned or foreign identity on the way.

use kvbind_arm_sim::{Counters, Fault, FaultRule, Simulator};
use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster, key, uami};
use serde_json::{Value, json};

/// What a run binds: how many bindings, how many of them share one identity, on which
/// scale sets, and whether the vault uses Azure RBAC.
struct Shape {
    bindings: usize,
    sharing: usize,
    pools: &'static [&'static str],
    rbac: bool,
}

/// The seed's shape: a handful of apps on two pools, two sharing an identity.
const SMALL: Shape = Shape { bindings: 5, sharing: 2, pools: &["pool-a-vmss", "pool-b-vmss"], rbac: false };
/// Twenty apps on three pools with an RBAC vault, four sharing an identity.
const TWENTY: Shape = Shape { bindings: 20, sharing: 4, pools: &["pool-a-vmss", "pool-b-vmss", "pool-c-vmss"], rbac: true };

fn rule(operation: &str, fault: Fault, count: u32) -> FaultRule {
    FaultRule { operation: operation.into(), path_contains: None, fault, count: Some(count) }
}

/// Runs the shape's bindings to Ready and returns the simulator's final state with
/// generated IDs blanked, so runs can be compared, and its counters.
async fn converge(prefix: &str, shape: &Shape, faults: Vec<FaultRule>) -> (Value, Counters) {
    let s = Scenario::start(prefix, seed(&cluster(shape.pools, &[], shape.rbac))).await;
    s.sim.set_faults(faults);
    for pool in shape.pools {
        s.node(pool, &Scenario::vmss_node(pool, 0), &[]).await;
    }
    let mut all = String::new();
    for i in 0..shape.bindings {
        let identity = if i < shape.sharing { "shared-reader".to_owned() } else { format!("app-{i}-reader") };
        all.push_str(&class(&format!("app-{i}"), &[("db-password", "secret", 0), (&format!("key-{i}"), "key", 0)]));
        all.push_str("\n---\n");
        all.push_str(&binding(&format!("app-{i}"), &identity, &[&format!("app-{i}")], ""));
        all.push_str("\n---\n");
    }
    s.apply(&all);
    s.wait_all("Ready").await;
    check_history(&s.sim);
    let (state, counters) = (normalized(&s.sim), s.sim.counters());
    println!("{prefix}: {} faults injected, {} ARM writes, {} reads", counters.faults_injected, counters.writes, counters.reads);
    s.stop().await;
    (state, counters)
}

/// The state without the values that differ between runs (generated GUIDs, timestamps).
fn normalized(sim: &Simulator) -> Value {
    let mut state = sim.snapshot();
    let mut principals = std::collections::BTreeMap::new();
    if let Some(ids) = state["identities"].as_object_mut() {
        for identity in ids.values_mut() {
            principals.insert(identity["principalId"].as_str().unwrap_or_default().to_owned(), identity["name"].as_str().unwrap_or_default().to_owned());
            identity["clientId"] = Value::Null;
            identity["principalId"] = Value::Null;
            // The owners tag names bindings as namespace/name; each run has its namespace.
            if let Some(owners) = identity["tags"]["kvbind.io-bindings"].as_str() {
                let names: Vec<&str> = owners.split(',').map(|o| o.rsplit('/').next().unwrap_or_default()).collect();
                identity["tags"]["kvbind.io-bindings"] = Value::String(names.join(","));
            }
        }
    }
    let rename = |p: &str| principals.get(p).cloned().unwrap_or_else(|| p.to_owned());
    if let Some(vaults) = state["vaults"].as_object_mut() {
        for vault in vaults.values_mut() {
            if let Some(policies) = vault["accessPolicies"].as_array_mut() {
                for p in policies.iter_mut() {
                    p["objectId"] = Value::String(rename(p["objectId"].as_str().unwrap_or_default()));
                    for kind in ["secrets", "keys", "certificates", "storage"] {
                        // No permission of a kind reads the same absent or as [].
                        match p["permissions"][kind].as_array_mut() {
                            Some(list) if !list.is_empty() => list.sort_by_key(|v| v.as_str().unwrap_or_default().to_owned()),
                            _ => p["permissions"][kind] = Value::Null,
                        }
                    }
                }
                policies.sort_by_key(|p| p["objectId"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    // Assignment names derive from the principal, so they differ between runs too.
    let assignments: Vec<Value> = {
        let mut list: Vec<Value> = state["roleAssignments"]
            .as_object()
            .map(|all| {
                all.values()
                    .map(|a| json!({"scope": a["scope"], "role": a["roleDefinitionId"], "principal": rename(a["principalId"].as_str().unwrap_or_default())}))
                    .collect()
            })
            .unwrap_or_default();
        list.sort_by_key(|a| a.to_string());
        list
    };
    state["roleAssignments"] = Value::Array(assignments);
    if let Some(compute) = state["compute"].as_object_mut() {
        for c in compute.values_mut() {
            c["systemPrincipal"] = Value::Bool(c["systemPrincipal"].is_string());
        }
    }
    state
}

/// No scale set was ever without its system-assigned or foreign identity.
fn check_history(sim: &Simulator) {
    let foreign = key(&uami("rg-identities", "team-foreign"));
    for state in sim.history() {
        assert!(state.system_assigned, "{} lost its system-assigned identity: {state:?}", state.resource);
        assert!(state.user_assigned.contains(&foreign), "{} lost the foreign identity: {state:?}", state.resource);
    }
}

/// Every kind of fault the matrix covers, `scale` times over; each rule hits a few
/// requests and is then spent, so convergence must get past all of them.
fn every_fault(scale: u32) -> Vec<FaultRule> {
    vec![
        rule("UserAssignedIdentities_CreateOrUpdate", Fault::Throttle { retry_after_seconds: 1 }, 2 * scale),
        rule("UserAssignedIdentities_CreateOrUpdate", Fault::ResponseLost, scale),
        rule("UserAssignedIdentities_Get", Fault::Error { status: 500, code: "InternalServerError".into() }, 2 * scale),
        rule("UserAssignedIdentities_Get", Fault::Reset, scale),
        rule("VirtualMachineScaleSets_Update", Fault::Conflict, 2 * scale),
        rule("VirtualMachineScaleSets_Update", Fault::LroFail, scale),
        rule("VirtualMachineScaleSets_Update", Fault::LroNeverEnds, 1),
        rule("VirtualMachineScaleSets_Get", Fault::Error { status: 503, code: "ServiceUnavailable".into() }, 2 * scale),
        rule("VirtualMachineScaleSets_Get", Fault::ResponseLost, scale),
        rule("Vaults_UpdateAccessPolicy", Fault::Throttle { retry_after_seconds: 1 }, 2 * scale),
        rule("Vaults_UpdateAccessPolicy", Fault::ResponseLost, scale),
        rule("RoleAssignments_Create", Fault::ResponseLost, scale),
        rule("RoleAssignments_Create", Fault::Throttle { retry_after_seconds: 1 }, scale),
        rule("Vaults_Get", Fault::Latency { min_ms: 50, max_ms: 300 }, 10 * scale),
        // Longer than the client's request timeout: the call times out.
        rule("Vaults_Get", Fault::Latency { min_ms: 6_000, max_ms: 6_000 }, 1),
        rule("*", Fault::PrincipalReplicationDelay { seconds: 3 }, scale),
    ]
}

async fn faults_change_the_path_but_not_the_destination(shape: &Shape, name: &str, scale: u32) {
    let (clean, _) = converge(&format!("{name}-clean"), shape, Vec::new()).await;
    let (faulty, counters) = converge(&format!("{name}-faulty"), shape, every_fault(scale)).await;
    assert!(counters.faults_injected >= u64::from(12 * scale), "{counters:?}");
    assert_eq!(faulty, clean, "the end state differs from the fault-free run's");
    let identities = faulty["identities"].as_object().map(|m| m.len()).unwrap_or(0);
    let kvbinds = shape.bindings - shape.sharing + 1;
    assert_eq!(identities, 1 + kvbinds, "the foreign identity and {kvbinds} of kvbind's, none twice");
    if shape.rbac {
        let assignments = faulty["roleAssignments"].as_array().map(Vec::len).unwrap_or(0);
        // One per object per identity: each binding's secret and key, and the sharing
        // bindings' common secret once.
        let expected = 2 * (shape.bindings - shape.sharing) + 1 + shape.sharing;
        assert_eq!(assignments, expected, "no assignment twice, none missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_shape_converges_through_every_fault() {
    faults_change_the_path_but_not_the_destination(&SMALL, "faults-small", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_bindings_converge_through_every_fault() {
    faults_change_the_path_but_not_the_destination(&TWENTY, "faults-twenty", 2).await;
}
