//! The benchmark's scenarios and the lower bounds they are measured against.

use serde::Serialize;

/// How a scenario is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Bindings applied at once, timed to all Ready.
    Converge,
    /// Converged bindings left alone for several resync periods: what it costs to watch.
    SteadyState,
    /// A new node pool appears under converged bindings.
    ScaleOut,
}

/// One scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// A short name for tables and files.
    pub name: String,
    /// What is measured.
    pub kind: Kind,
    /// IdentityBindings (and as many SecretProviderClasses).
    pub bindings: usize,
    /// Node pools (VM scale sets).
    pub pools: usize,
    /// Nodes per pool.
    pub nodes_per_pool: usize,
    /// Bindings per identity: 1 for distinct identities, more for shared ones.
    pub per_identity: usize,
}

impl Scenario {
    fn new(kind: Kind, bindings: usize, pools: usize, per_identity: usize, nodes_per_pool: usize) -> Scenario {
        let sharing = if per_identity > 1 { "shared" } else { "distinct" };
        let what = match kind {
            Kind::Converge => String::new(),
            Kind::SteadyState => "steady-".to_owned(),
            Kind::ScaleOut => "scale-out-".to_owned(),
        };
        let nodes = if nodes_per_pool > 2 { format!("-{}n", pools * nodes_per_pool) } else { String::new() };
        Scenario { name: format!("{what}{bindings}b-{pools}p-{sharing}{nodes}"), kind, bindings, pools, nodes_per_pool, per_identity }
    }

    /// The identities the bindings use.
    pub fn identities(&self) -> usize {
        self.bindings.div_ceil(self.per_identity)
    }
}

/// The scenarios of a full run, or of a quick one.
pub fn all(quick: bool) -> Vec<Scenario> {
    use Kind::*;
    if quick {
        return vec![Scenario::new(Converge, 1, 1, 1, 1), Scenario::new(Converge, 10, 5, 1, 1), Scenario::new(SteadyState, 10, 5, 1, 1)];
    }
    vec![
        Scenario::new(Converge, 1, 5, 1, 2),
        Scenario::new(Converge, 10, 5, 1, 2),
        Scenario::new(Converge, 100, 5, 1, 2),
        Scenario::new(Converge, 1000, 5, 1, 2),
        Scenario::new(Converge, 100, 1, 1, 2),
        Scenario::new(Converge, 100, 20, 1, 2),
        Scenario::new(Converge, 100, 20, 10, 2),
        Scenario::new(Converge, 1000, 20, 10, 2),
        // The memory target: 1,000 bindings and classes, 2,000 nodes in the caches.
        Scenario::new(Converge, 1000, 20, 1, 100),
        Scenario::new(SteadyState, 1000, 20, 1, 2),
        Scenario::new(ScaleOut, 1000, 20, 1, 2),
    ]
}

/// Injected ARM latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latencies {
    /// `UserAssignedIdentities_CreateOrUpdate`.
    pub identity_put_ms: u64,
    /// A VM scale set PATCH, start to end of its long-running operation.
    pub vmss_patch_ms: u64,
    /// `Vaults_UpdateAccessPolicy`.
    pub access_policy_ms: u64,
    /// `RoleAssignments_Create`.
    pub role_assignment_ms: u64,
}

impl Latencies {
    /// The latencies the issue names (identity 1 s, PATCH 20 s, access policy 0.5 s,
    /// role assignment 1 s), times `scale`.
    pub fn scaled(scale: f64) -> Latencies {
        let ms = |base: f64| (base * scale).round().max(1.0) as u64;
        Latencies { identity_put_ms: ms(1000.0), vmss_patch_ms: ms(20_000.0), access_policy_ms: ms(500.0), role_assignment_ms: ms(1000.0) }
    }
}

/// ARM allows at most this many access-policy entries in one request.
const ENTRIES_PER_REQUEST: usize = 16;

/// The fewest ARM writes that can converge `scenario` from nothing: one PUT per new
/// identity, one PATCH per scale set, and the access-policy writes of one vault (16 entries
/// to a request is the REST spec's maximum). In steady state: none. For a scale-out: one
/// PATCH on the new scale set.
pub fn writes_lower_bound(scenario: &Scenario) -> u64 {
    match scenario.kind {
        Kind::Converge => (scenario.identities() + scenario.pools + scenario.identities().div_ceil(ENTRIES_PER_REQUEST)) as u64,
        Kind::SteadyState => 0,
        Kind::ScaleOut => 1,
    }
}

/// The shortest time to all Ready that the injected latencies allow: an identity must
/// exist before a scale set can carry it and before a vault can grant it, and one vault
/// takes its access-policy writes one at a time. For a scale-out: one PATCH.
pub fn critical_path_seconds(scenario: &Scenario, latencies: &Latencies) -> f64 {
    let ms = match scenario.kind {
        Kind::Converge | Kind::SteadyState => {
            let vault = scenario.identities().div_ceil(ENTRIES_PER_REQUEST) as u64 * latencies.access_policy_ms;
            latencies.identity_put_ms + latencies.vmss_patch_ms.max(vault)
        }
        Kind::ScaleOut => latencies.vmss_patch_ms,
    };
    ms as f64 / 1000.0
}
