//! Running one scenario with one strategy and measuring it.

use std::time::Duration;

use kvbind_api::IdentityBinding;
use kvbind_e2e::TestNamespace;
use serde::Serialize;

use crate::operator::{Operator, OperatorArgs};
use crate::scenario::{Kind, Latencies, Mode, Rates, Scenario, bound_seconds, writes_lower_bound};
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
    /// How its bindings reach their identities.
    pub mode: Mode,
    /// Bindings.
    pub bindings: usize,
    /// Node pools.
    pub pools: usize,
    /// Identities.
    pub identities: usize,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// ARM writes measured (admitted; 429s are counted apart).
    pub writes: u64,
    /// ARM reads measured (admitted).
    pub reads: u64,
    /// Requests ARM answered 429.
    pub throttled: u64,
    /// Writes ARM refused for anything but its rates (a limit it enforced, say): each is a
    /// write kvbind should not have sent.
    pub refused_writes: u64,
    /// Bindings a limit refused, by name, as the scenario expects.
    pub refused_bindings: usize,
    /// The share of the subscription's write budget (one principal's: 200, then 10 a
    /// second) the writes used over the time they took.
    pub write_budget_share: f64,
    /// The fewest writes that can do it.
    pub writes_lower_bound: u64,
    /// `writes / writes_lower_bound` (1 when both are 0).
    pub write_ratio: f64,
    /// Time from operator start (or the change) to done.
    pub seconds_to_ready: f64,
    /// The shortest time the injected latencies allow.
    pub critical_path_seconds: f64,
    /// The shortest time Azure's rates allow (less the share kvbind leaves to others).
    pub rate_bound_seconds: f64,
    /// `seconds_to_ready` over the larger of the two bounds.
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
    /// The share of Azure's budgets the operator leaves to others (`--arm-reserve`).
    pub reserve: f64,
}

/// Runs `scenario` with `strategy` in a namespace of its own.
pub async fn run(scenario: &Scenario, strategy: Strategy, settings: &Settings) -> anyhow::Result<Measurement> {
    let ns = TestNamespace::new(&format!("bench-{}", scenario.bindings)).await;
    let client = ns.client.clone();
    let sim = world::simulator(scenario, &settings.latencies).await?;
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
        reserve: settings.reserve,
        role_assignment_limit: scenario.role_assignment_limit,
        managed_cluster: (scenario.mode == crate::scenario::Mode::AksIdentityBinding).then(kvbind_e2e::world::managed_cluster_id),
    })?;
    let bound = bound_seconds(scenario, &settings.latencies, &Rates::published(settings.reserve));
    let deadline = Duration::from_secs_f64((bound.seconds * 40.0).max(300.0));
    let all = scenario.bindings;
    // Done when every binding is Ready or refused for the limit the scenario passes.
    let settled = |b: &IdentityBinding| world::is_ready(b) || scenario.refusal.is_some_and(|r| world::is_refused_for(b, r.reason));
    let converged = world::until_bindings(&client, &ns.name, all, deadline, settled).await?;
    let refused_bindings = world::refused(&client, &ns.name, scenario).await?;

    let (seconds, counters, reads_per_period) = match scenario.kind {
        Kind::Converge => (converged.as_secs_f64(), Requests::of(&sim), None),
        Kind::SteadyState => {
            // Steady state starts one period after the last binding turned Ready, so a read
            // that still belongs to convergence is not counted in it; the resync's reads come
            // at most once a period per scale set and vault.
            tokio::time::sleep(Duration::from_secs(settings.steady_resync_seconds)).await;
            sim.reset_counters();
            let period = Duration::from_secs(settings.steady_resync_seconds * settings.steady_periods);
            tokio::time::sleep(period).await;
            eprintln!("  steady state, per operation over {} periods: {:?}", settings.steady_periods, sim.counters().by_operation);
            let counters = Requests::of(&sim);
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
            let on_new_pool = |b: &IdentityBinding| {
                world::is_ready(b)
                    && b.status.as_ref().is_some_and(|s| s.attachments.iter().any(|a| a.resource_id.to_ascii_lowercase().ends_with(&format!("/{target}"))))
            };
            world::until_bindings(&client, &ns.name, all, deadline, on_new_pool).await?;
            (started.elapsed().as_secs_f64(), Requests::of(&sim), None)
        }
    };
    let measurement = Measurement {
        scenario: scenario.name.clone(),
        strategy,
        mode: scenario.mode,
        bindings: scenario.bindings,
        pools: scenario.pools,
        identities: scenario.identities(),
        nodes: scenario.pools * scenario.nodes_per_pool,
        writes: counters.writes,
        reads: counters.reads,
        throttled: counters.throttled,
        refused_writes: counters.refused_writes,
        refused_bindings,
        write_budget_share: counters.writes as f64 / (200.0 + 10.0 * seconds),
        writes_lower_bound: writes_lower_bound(scenario),
        write_ratio: ratio(counters.writes as f64, writes_lower_bound(scenario) as f64),
        seconds_to_ready: seconds,
        critical_path_seconds: bound.latency,
        rate_bound_seconds: bound.rate,
        time_ratio: ratio(seconds, bound.seconds),
        reads_per_period,
        peak_rss_mib: operator.peak_rss_mib(),
        cpu_seconds: operator.cpu_seconds(),
    };
    if measurement.throttled > 0 || measurement.refused_writes > 0 || measurement.write_ratio > 1.05 {
        // Where the extra requests went, to read beside the row.
        let by_status: Vec<String> = sim.counters().by_status.iter().filter(|(k, _)| !k.ends_with(" 200")).map(|(k, n)| format!("{k}: {n}")).collect();
        eprintln!("  answers other than 200: {}", by_status.join(", "));
    }
    operator.stop().await;
    let _ = ns.kubectl(&["delete", "nodes", "-l", &format!("kvbind.io/test={}", ns.name), "--wait=false"]);
    Ok(measurement)
}

/// What the simulator was asked, sorted by its answer.
struct Requests {
    writes: u64,
    reads: u64,
    throttled: u64,
    refused_writes: u64,
}

impl Requests {
    fn of(sim: &kvbind_arm_sim::Simulator) -> Requests {
        let mut r = Requests { writes: 0, reads: 0, throttled: 0, refused_writes: 0 };
        for request in sim.requests().iter().filter(|r| r.operation != "Token") {
            let write = request.method != "GET";
            match request.status {
                429 => r.throttled += 1,
                // A refused write changed nothing; one that a limit refused is a bug kvbind
                // would have shown in Azure.
                400..=499 if write && request.status != 404 => r.refused_writes += 1,
                _ if write => r.writes += 1,
                _ => r.reads += 1,
            }
        }
        r
    }
}

fn ratio(measured: f64, bound: f64) -> f64 {
    if bound == 0.0 { if measured == 0.0 { 1.0 } else { f64::INFINITY } } else { measured / bound }
}
