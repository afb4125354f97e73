//! Running one scenario with one strategy and measuring it.

use std::time::Duration;

use kvbind_e2e::TestNamespace;
use serde::Serialize;

use crate::operator::{Operator, OperatorArgs};
use crate::scenario::{Kind, Latencies, Scenario, critical_path_seconds, writes_lower_bound};
use crate::world;

/// kvbind as shipped, or every binding writing its own changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Batched per scale set and vault.
    Kvbind,
    /// No batching: one PATCH per binding per scale set, one vault write per binding.
    Naive,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The scenario's name.
    pub scenario: String,
    /// The strategy.
    pub strategy: Strategy,
    /// Bindings.
    pub bindings: usize,
    /// Node pools.
    pub pools: usize,
    /// Identities.
    pub identities: usize,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// ARM writes measured.
    pub writes: u64,
    /// ARM reads measured.
    pub reads: u64,
    /// The fewest writes that can do it.
    pub writes_lower_bound: u64,
    /// `writes / writes_lower_bound` (1 when both are 0).
    pub write_ratio: f64,
    /// Time from operator start (or the change) to done.
    pub seconds_to_ready: f64,
    /// The shortest time the injected latencies allow.
    pub critical_path_seconds: f64,
    /// `seconds_to_ready / critical_path_seconds`.
    pub time_ratio: f64,
    /// In steady state: reads per resync period, and the bound (one per scale set and vault).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads_per_period: Option<f64>,
    /// The operator's peak resident memory.
    pub peak_rss_mib: f64,
    /// The operator's CPU time.
    pub cpu_seconds: f64,
}

/// Settings shared by every run.
pub struct Settings {
    /// Injected latencies.
    pub latencies: Latencies,
    /// The operator's batch window.
    pub batch_window_ms: u64,
    /// The resync period in steady-state scenarios.
    pub steady_resync_seconds: u64,
    /// How many resync periods the steady state lasts.
    pub steady_periods: u64,
}

/// Runs `scenario` with `strategy` in a namespace of its own.
pub async fn run(scenario: &Scenario, strategy: Strategy, settings: &Settings) -> anyhow::Result<Measurement> {
    let ns = TestNamespace::new(&format!("bench-{}", scenario.bindings)).await;
    let client = ns.client.clone();
    let sim = world::simulator(scenario.pools, &settings.latencies).await?;
    for p in 0..scenario.pools {
        world::nodes(&client, &ns.name, p, scenario.nodes_per_pool).await?;
    }
    world::bindings(&client, &ns.name, scenario).await?;

    let kubeconfig = kvbind_e2e::control_plane().kubeconfig.clone();
    let resync_seconds = if scenario.kind == Kind::SteadyState { settings.steady_resync_seconds } else { 3600 };
    let operator = Operator::start(&OperatorArgs {
        arm_endpoint: &sim.url,
        kubeconfig: &kubeconfig,
        namespace: &ns.name,
        batch_window_ms: settings.batch_window_ms,
        resync_seconds,
        naive: strategy == Strategy::Naive,
    })?;
    let bound = critical_path_seconds(scenario, &settings.latencies);
    let deadline = Duration::from_secs_f64((bound * 40.0).max(300.0));
    let all = scenario.bindings;
    let converged = world::until_bindings(&client, &ns.name, all, deadline, world::is_ready).await?;

    let (seconds, counters, reads_per_period) = match scenario.kind {
        Kind::Converge => (converged.as_secs_f64(), sim.counters(), None),
        Kind::SteadyState => {
            // Steady state starts one period after the last binding turned Ready, so a read
            // that still belongs to convergence is not counted in it; the resync's reads come
            // at most once a period per scale set and vault.
            tokio::time::sleep(Duration::from_secs(settings.steady_resync_seconds)).await;
            sim.reset_counters();
            let period = Duration::from_secs(settings.steady_resync_seconds * settings.steady_periods);
            tokio::time::sleep(period).await;
            let counters = sim.counters();
            eprintln!("  steady state, per operation over {} periods: {:?}", settings.steady_periods, counters.by_operation);
            let per_period = counters.reads as f64 / settings.steady_periods as f64;
            (converged.as_secs_f64(), counters, Some(per_period))
        }
        Kind::ScaleOut => {
            sim.reset_counters();
            let new_pool = scenario.pools;
            let target = world::pool(new_pool);
            // The new pool's scale set exists in Azure before its first node joins.
            sim.seed(&kvbind_arm_sim::Seed::from_yaml(&format!(
                "subscriptions:\n  - id: {}\n    resourceGroups:\n      - name: {}\n        scaleSets:\n          - {{name: {target}, systemAssigned: true}}\n",
                kvbind_e2e::operator::SUBSCRIPTION,
                kvbind_e2e::operator::NODE_GROUP
            ))?);
            let started = tokio::time::Instant::now();
            world::nodes(&client, &ns.name, new_pool, 1).await?;
            // Done when every binding is Ready again and records the new pool: kvbind
            // records an attachment once the scale set's long-running PATCH has ended.
            let on_new_pool = |b: &kvbind_api::IdentityBinding| {
                world::is_ready(b)
                    && b.status.as_ref().is_some_and(|s| s.attachments.iter().any(|a| a.resource_id.to_ascii_lowercase().ends_with(&format!("/{target}"))))
            };
            world::until_bindings(&client, &ns.name, all, deadline, on_new_pool).await?;
            (started.elapsed().as_secs_f64(), sim.counters(), None)
        }
    };
    let measurement = Measurement {
        scenario: scenario.name.clone(),
        strategy,
        bindings: scenario.bindings,
        pools: scenario.pools,
        identities: scenario.identities(),
        nodes: scenario.pools * scenario.nodes_per_pool,
        writes: counters.writes,
        reads: counters.reads,
        writes_lower_bound: writes_lower_bound(scenario),
        write_ratio: ratio(counters.writes as f64, writes_lower_bound(scenario) as f64),
        seconds_to_ready: seconds,
        critical_path_seconds: bound,
        time_ratio: ratio(seconds, bound),
        reads_per_period,
        peak_rss_mib: operator.peak_rss_mib(),
        cpu_seconds: operator.cpu_seconds(),
    };
    operator.stop().await;
    let _ = ns.kubectl(&["delete", "nodes", "-l", &format!("kvbind.io/test={}", ns.name), "--wait=false"]);
    Ok(measurement)
}

fn ratio(measured: f64, bound: f64) -> f64 {
    if bound == 0.0 { if measured == 0.0 { 1.0 } else { f64::INFINITY } } else { measured / bound }
}
