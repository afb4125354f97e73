//! Convergence through faults: with ARM throttling, failing, conflicting and slow, the end
//! state equals the fault-free run's, nothing is duplicated, and no scale set ever loses
//! its system-assigned or foreign identity on the way.

use kvbind_arm_sim::{Counters, Fault, FaultRule, Simulator};
use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster, key, uami};
use serde_json::Value;

const POOLS: [&str; 2] = ["pool-a-vmss", "pool-b-vmss"];

fn rule(operation: &str, fault: Fault, count: u32) -> FaultRule {
    FaultRule { operation: operation.into(), path_contains: None, fault, count: Some(count) }
}

/// Runs five bindings (two sharing an identity) to Ready and returns the simulator's
/// final state with generated IDs blanked, so runs can be compared, and its counters.
async fn converge(prefix: &str, faults: Vec<FaultRule>) -> (Value, Counters) {
    let s = Scenario::start(prefix, seed(&cluster(&POOLS, &[], false))).await;
    s.sim.set_faults(faults);
    for pool in POOLS {
        s.node(pool, &Scenario::vmss_node(pool, 0), &[]).await;
    }
    let mut all = String::new();
    for i in 0..5 {
        let identity = if i < 2 { "shared-reader".to_owned() } else { format!("app-{i}-reader") };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_change_the_path_but_not_the_destination() {
    let (clean, _) = converge("faults-none", Vec::new()).await;
    let faults = vec![
        rule("UserAssignedIdentities_CreateOrUpdate", Fault::Throttle { retry_after_seconds: 1 }, 2),
        rule("UserAssignedIdentities_Get", Fault::Error { status: 500, code: "InternalServerError".into() }, 2),
        rule("VirtualMachineScaleSets_Update", Fault::Conflict, 2),
        rule("VirtualMachineScaleSets_Update", Fault::LroFail, 1),
        rule("VirtualMachineScaleSets_Get", Fault::Error { status: 503, code: "ServiceUnavailable".into() }, 2),
        rule("Vaults_UpdateAccessPolicy", Fault::Throttle { retry_after_seconds: 1 }, 2),
        rule("Vaults_Get", Fault::Latency { min_ms: 50, max_ms: 300 }, 20),
        rule("*", Fault::PrincipalReplicationDelay { seconds: 3 }, 1),
    ];
    let (faulty, counters) = converge("faults-many", faults).await;
    assert!(counters.faults_injected >= 10, "{counters:?}");
    assert_eq!(faulty, clean, "the end state differs from the fault-free run's");
    let identities = faulty["identities"].as_object().map(|m| m.len()).unwrap_or(0);
    assert_eq!(identities, 1 + 4, "the foreign identity and four of kvbind's, none twice");
}
