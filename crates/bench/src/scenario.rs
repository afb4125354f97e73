//! The benchmark's scenarios and the lower bounds they are measured against: the latency
//! critical path, and what Azure's published request rates allow for the scenario's
//! writes, whichever is longer.

use serde::Serialize;

/// User-assigned identities someone else attached to every pool before kvbind came (the
/// world of `kvbind_e2e::world::cluster`).
pub const FOREIGN_ON_POOL: usize = 1;

/// Objects a class lists in the RBAC scenarios: a secret, a key and a certificate.
pub const OBJECTS_PER_RBAC_CLASS: usize = 3;

/// How a scenario is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Bindings applied at once, timed to all Ready (or refused, where a limit is the point).
    Converge,
    /// Converged bindings left alone for several resync periods: what it costs to watch.
    SteadyState,
    /// A new node pool appears under converged bindings.
    ScaleOut,
}

/// How the bindings reach their identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Identities attached to every pool (`mode: VMManagedIdentity`).
    Vm,
    /// A federated credential per binding's ServiceAccount; no pool touched.
    WorkloadIdentity,
    /// One AKS identity binding per identity, RBAC per ServiceAccount; no pool touched.
    AksIdentityBinding,
}

/// A limit of Azure's that a scenario runs into on purpose: how many bindings it refuses,
/// and the condition reason that names it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Refusal {
    /// Bindings refused.
    pub bindings: usize,
    /// The `Ready` condition's reason on them.
    pub reason: &'static str,
}

/// One scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// A short name for tables and files.
    pub name: String,
    /// What is measured.
    pub kind: Kind,
    /// How bindings reach their identity.
    pub mode: Mode,
    /// IdentityBindings (and as many SecretProviderClasses).
    pub bindings: usize,
    /// Node pools (VM scale sets).
    pub pools: usize,
    /// Nodes per pool.
    pub nodes_per_pool: usize,
    /// Bindings per identity: 1 for distinct identities, more for shared ones.
    pub per_identity: usize,
    /// Access-policy entries someone else holds on the vault already.
    pub vault_entries_held: usize,
    /// The bindings a limit refuses, when that is the point of the scenario.
    pub refusal: Option<Refusal>,
    /// SecretProviderClasses of about 1 MB each that no binding names, in the same
    /// namespace: a tenant trying to fill the operator's memory.
    pub big_classes: usize,
    /// An Azure RBAC vault, three objects a class (three per-object role assignments a
    /// binding), and the subscription's role assignment limit shrunk to this for the
    /// simulator and the operator alike (Azure's 4,000 would take 1,334 bindings to pass).
    pub role_assignment_limit: Option<usize>,
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
        Scenario {
            name: format!("{what}{bindings}b-{pools}p-{sharing}{nodes}"),
            kind,
            mode: Mode::Vm,
            bindings,
            pools,
            nodes_per_pool,
            per_identity,
            vault_entries_held: 1,
            refusal: None,
            big_classes: 0,
            role_assignment_limit: None,
        }
    }

    /// Per-object role assignments one binding past the subscription's limit (shrunk to
    /// 100): 33 bindings of three take 99, and the 34th is refused whole.
    fn role_limit() -> Scenario {
        let limit = 100;
        let bindings = limit / OBJECTS_PER_RBAC_CLASS + 1;
        Scenario {
            name: format!("limit-roles-{bindings}b-rbac"),
            refusal: Some(Refusal { bindings: 1, reason: "RoleAssignmentLimit" }),
            role_assignment_limit: Some(limit),
            ..Scenario::new(Kind::Converge, bindings, 1, 1, 2)
        }
    }

    /// Objects each class lists: one, or three on an RBAC vault.
    pub fn objects_per_class(&self) -> usize {
        if self.role_assignment_limit.is_some() { OBJECTS_PER_RBAC_CLASS } else { 1 }
    }

    /// `bindings` beside `classes` SecretProviderClasses of 1 MB that no binding names.
    fn beside_big_classes(bindings: usize, classes: usize) -> Scenario {
        let plain = Scenario::new(Kind::Converge, bindings, 5, 1, 2);
        Scenario { name: format!("{}-{classes}x1mb-classes", plain.name), big_classes: classes, ..plain }
    }

    /// `bindings` in workload identity mode, each with its own identity and ServiceAccount.
    fn workload_identity(bindings: usize) -> Scenario {
        Scenario { name: format!("{bindings}b-wi-distinct"), mode: Mode::WorkloadIdentity, ..Scenario::new(Kind::Converge, bindings, 1, 1, 2) }
    }

    /// `bindings` in AKS identity binding mode, `per_identity` ServiceAccounts to an
    /// identity: past workload identity's 20 federated credentials, which this mode does not
    /// spend.
    fn aks_identity_binding(bindings: usize, per_identity: usize) -> Scenario {
        let sharing = if per_identity > 1 { "shared" } else { "distinct" };
        Scenario { name: format!("{bindings}b-aib-{sharing}"), mode: Mode::AksIdentityBinding, ..Scenario::new(Kind::Converge, bindings, 1, per_identity, 2) }
    }

    /// `bindings` sharing one identity on one pool.
    fn one_identity(bindings: usize) -> Scenario {
        Scenario { name: format!("{bindings}b-1p-one-identity"), ..Scenario::new(Kind::Converge, bindings, 1, bindings, 2) }
    }

    /// One pool asked to carry one identity more than Azure's 150 (with the one someone
    /// else put there): one binding refused.
    fn pool_limit() -> Scenario {
        let bindings = kvbind_azure::model::MAX_USER_ASSIGNED_PER_COMPUTE - FOREIGN_ON_POOL + 1;
        Scenario {
            name: format!("limit-pool-{bindings}b-1p"),
            refusal: Some(Refusal { bindings: 1, reason: "PoolIdentityLimit" }),
            ..Scenario::new(Kind::Converge, bindings, 1, 1, 2)
        }
    }

    /// A vault asked for one access-policy entry more than Azure's 1,024 (workload identity
    /// mode, so the 150 per pool does not bind first): one binding refused.
    fn vault_limit() -> Scenario {
        let bindings = 1000;
        Scenario {
            name: format!("limit-vault-{bindings}b-wi"),
            vault_entries_held: 1024 - bindings + 1,
            refusal: Some(Refusal { bindings: 1, reason: "VaultAccessPolicyLimit" }),
            ..Scenario::workload_identity(bindings)
        }
    }

    /// The identities the bindings use.
    pub fn identities(&self) -> usize {
        self.bindings.div_ceil(self.per_identity)
    }

    /// Bindings that turn Ready.
    pub fn ready(&self) -> usize {
        self.bindings - self.refusal.map_or(0, |r| r.bindings)
    }

    /// Identities that reach their pools or vault.
    fn granted_identities(&self) -> usize {
        self.identities() - self.refusal.map_or(0, |r| r.bindings.div_ceil(self.per_identity))
    }
}

/// The scenarios of a full run, or of a quick one. Every one stays within Azure's hard
/// limits (at most 150 identities a pool: shared identities, or workload identity mode),
/// but for the `limit-` ones, which pass one limit by one binding.
pub fn all(quick: bool) -> Vec<Scenario> {
    use Kind::*;
    if quick {
        return vec![
            Scenario::new(Converge, 1, 1, 1, 1),
            Scenario::new(Converge, 10, 5, 1, 1),
            Scenario::new(SteadyState, 10, 5, 1, 1),
            Scenario::pool_limit(),
        ];
    }
    vec![
        Scenario::new(Converge, 1, 5, 1, 2),
        Scenario::new(Converge, 10, 5, 1, 2),
        Scenario::new(Converge, 100, 5, 1, 2),
        Scenario::new(Converge, 100, 1, 1, 2),
        Scenario::new(Converge, 100, 20, 1, 2),
        Scenario::new(Converge, 100, 20, 10, 2),
        Scenario::new(Converge, 1000, 20, 10, 2),
        Scenario::workload_identity(1000),
        Scenario::aks_identity_binding(1000, 1),
        // Fifty ServiceAccounts to an identity: workload identity would stop at twenty.
        Scenario::aks_identity_binding(1000, 50),
        // A thousand bindings on one identity: what each reconcile costs must not grow with
        // the number of bindings that share the identity.
        Scenario::one_identity(1000),
        // The memory target: 1,000 bindings and classes, 2,000 nodes in the caches.
        Scenario::new(Converge, 1000, 20, 10, 100),
        Scenario::new(SteadyState, 1000, 20, 10, 2),
        Scenario::new(ScaleOut, 1000, 20, 10, 2),
        Scenario::pool_limit(),
        Scenario::vault_limit(),
        Scenario::role_limit(),
        // The memory a tenant can make the operator spend: 200 classes of 1 MB.
        Scenario::beside_big_classes(10, 200),
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
const ENTRIES_PER_REQUEST: usize = kvbind_azure::model::MAX_ACCESS_POLICIES_PER_REQUEST;

/// The fewest ARM writes that can converge `scenario` from nothing: one PUT per new
/// identity, one PATCH per scale set (VM mode), one federated credential per binding
/// (workload identity) or one AKS identity binding per identity, and the access-policy writes of one vault (16 entries to a
/// request is the REST spec's maximum). What a limit refuses costs nothing but the
/// refused binding's own identity. In steady state: none. For a scale-out: one PATCH on
/// the new scale set.
pub fn writes_lower_bound(scenario: &Scenario) -> u64 {
    let granted = scenario.granted_identities();
    let reach = match scenario.mode {
        Mode::Vm => scenario.pools,
        Mode::WorkloadIdentity => scenario.ready(),
        Mode::AksIdentityBinding => scenario.granted_identities(),
    };
    let grants = match scenario.role_assignment_limit {
        Some(_) => scenario.ready() * scenario.objects_per_class(),
        None => granted.div_ceil(ENTRIES_PER_REQUEST),
    };
    match scenario.kind {
        Kind::Converge => (scenario.identities() + reach + grants) as u64,
        Kind::SteadyState => 0,
        Kind::ScaleOut => 1,
    }
}

/// Azure's published budgets for one principal in one subscription and region (ARM's
/// per-principal buckets, Managed Identity's create and assignment rates), as `(size,
/// refill a second)`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rates {
    /// ARM writes: 200, 10 a second.
    pub writes: (f64, f64),
    /// Identity creates: 80 per 20 s.
    pub identity_creates: (f64, f64),
    /// Identities assigned to resources: 300 per 20 s.
    pub identity_assignments: (f64, f64),
}

impl Rates {
    /// Azure's numbers, less `reserve`, the share kvbind leaves to everything else.
    pub fn published(reserve: f64) -> Rates {
        let share = 1.0 - reserve;
        let ours = |(size, per_second): (f64, f64)| (size * share, per_second * share);
        Rates { writes: ours((200.0, 10.0)), identity_creates: ours((80.0, 4.0)), identity_assignments: ours((300.0, 15.0)) }
    }
}

/// Seconds before a bucket of `(size, per_second)` has given `need` tokens.
fn drain_seconds(need: f64, (size, per_second): (f64, f64)) -> f64 {
    ((need - size) / per_second).max(0.0)
}

/// The shortest time to all Ready (or refused) that the injected latencies and the rates
/// allow. Latency: an identity must exist before a scale set can carry it and before a
/// vault can grant it, and one vault takes its access-policy writes one at a time. Rates:
/// the last identity cannot be created before the create budget has given that many, and
/// its PUT and then its pool's PATCH or its vault write follow; the assignments of every
/// identity to every pool, and every write, come from their budgets too. For a
/// scale-out: one PATCH, once the assignment budget has given one per identity.
pub fn bound_seconds(scenario: &Scenario, latencies: &Latencies, rates: &Rates) -> Bound {
    let ms = |ms: u64| ms as f64 / 1000.0;
    // What must follow an identity's PUT: its grant (vault writes of `writes` requests in a
    // row) and, in VM mode, its pool's PATCH.
    let after_identity = |writes: usize| {
        let vault = match scenario.role_assignment_limit {
            // A binding creates its role assignments one after another.
            Some(_) => ms(scenario.objects_per_class() as u64 * latencies.role_assignment_ms),
            None => ms(writes as u64 * latencies.access_policy_ms),
        };
        match scenario.mode {
            Mode::Vm => ms(latencies.vmss_patch_ms).max(vault),
            Mode::WorkloadIdentity => vault,
            // The identity binding is a long-running operation of about a scale set's.
            Mode::AksIdentityBinding => ms(latencies.vmss_patch_ms).max(vault),
        }
    };
    match scenario.kind {
        Kind::Converge | Kind::SteadyState => {
            let latency = ms(latencies.identity_put_ms) + after_identity(scenario.granted_identities().div_ceil(ENTRIES_PER_REQUEST));
            let creates = drain_seconds(scenario.identities() as f64, rates.identity_creates) + ms(latencies.identity_put_ms) + after_identity(1);
            let writes = drain_seconds(writes_lower_bound(scenario) as f64, rates.writes);
            let assignments = match scenario.mode {
                Mode::Vm => drain_seconds((scenario.granted_identities() * scenario.pools) as f64, rates.identity_assignments) + ms(latencies.vmss_patch_ms),
                Mode::WorkloadIdentity | Mode::AksIdentityBinding => 0.0,
            };
            let rate = creates.max(writes).max(assignments);
            Bound { latency, rate, seconds: latency.max(rate) }
        }
        Kind::ScaleOut => {
            let latency = ms(latencies.vmss_patch_ms);
            let rate = drain_seconds(scenario.granted_identities() as f64, rates.identity_assignments) + latency;
            Bound { latency, rate, seconds: latency.max(rate) }
        }
    }
}

/// A scenario's time bounds, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bound {
    /// The latency critical path alone.
    pub latency: f64,
    /// What the rates allow (with the latencies that must follow the last token).
    pub rate: f64,
    /// The larger: the bound the time is measured against.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_stays_within_azures_limits_but_the_limit_ones() {
        for s in all(false).into_iter().chain(all(true)) {
            let per_pool = match s.mode {
                Mode::Vm => s.identities() + FOREIGN_ON_POOL,
                Mode::WorkloadIdentity | Mode::AksIdentityBinding => 0,
            };
            let entries = s.vault_entries_held + s.identities();
            let roles = s.role_assignment_limit.is_none_or(|limit| s.bindings * s.objects_per_class() <= limit);
            let within = per_pool <= 150 && entries <= 1024 && roles;
            assert_eq!(within, s.refusal.is_none(), "{}: {per_pool} identities a pool, {entries} vault entries", s.name);
        }
    }

    #[test]
    fn a_thousand_new_identities_are_bound_by_the_create_rate_not_the_latencies() {
        let s = Scenario::workload_identity(1000);
        let bound = bound_seconds(&s, &Latencies::scaled(1.0), &Rates::published(0.0));
        // (1000 - 80) / 4 = 230 s of creates, then the last identity's PUT and its vault
        // write of half a second; the latencies alone allow the identity's PUT and the
        // vault's 63 writes in a row.
        assert!((bound.rate - (230.0 + 1.0 + 0.5)).abs() < 1e-9, "{bound:?}");
        assert!((bound.latency - 32.5).abs() < 1e-9 && bound.seconds == bound.rate, "{bound:?}");
        // Leaving a quarter of the budget to others costs a third more.
        let reserved = bound_seconds(&s, &Latencies::scaled(1.0), &Rates::published(0.25));
        assert!((reserved.rate - ((1000.0 - 60.0) / 3.0 + 1.5)).abs() < 1e-9, "{reserved:?}");
    }

    #[test]
    fn a_refused_binding_costs_its_identity_and_nothing_else() {
        let s = Scenario::pool_limit();
        assert_eq!(writes_lower_bound(&s), 150 + 1 + 10, "150 identities, one PATCH, 149 entries in 10 writes");
    }
}
