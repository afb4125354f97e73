//! Prometheus metrics of the reconciler and of its ARM calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use kvbind_azure::client::ArmObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `result` of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `converged`, `in_progress` (writes handed off, still to land), `retrying` or `stalled`.
    pub result: String,
}

/// One ARM request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ArmLabels {
    /// HTTP method.
    pub method: String,
    /// Resource type (`virtualMachineScaleSets`, `vaults`, …).
    pub resource: String,
    /// HTTP status, or `0` when no response came.
    pub status: String,
}

/// Bindings by the status of their Ready condition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `True`, `False` or `Unknown`.
    pub ready: String,
}

/// One of ARM's request budgets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    /// `subscription-writes`, `subscription-reads`, … (the `x-ms-ratelimit-remaining-` header's suffix).
    pub bucket: String,
}

/// Every metric kvbind exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    duration: Histogram,
    arm_requests: Family<ArmLabels, Counter>,
    throttled: Counter,
    in_flight: Gauge,
    bindings: Family<ReadyLabels, Gauge>,
    count_bindings: Mutex<Option<BindingCounter>>,
    leader: Gauge,
    remaining: Family<BucketLabels, Gauge>,
}

/// Counts the bindings per Ready status (`True`, `False`, `Unknown`) when scraped: counted
/// per reconcile instead, a thousand reconciles walked a thousand bindings each.
struct BindingCounter(Box<dyn Fn() -> [i64; 3] + Send + Sync>);

impl std::fmt::Debug for BindingCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BindingCounter")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kvbind");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register("reconciles", "IdentityBinding reconciles by result", reconciles.clone());
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register("reconcile_duration_seconds", "How long a reconcile took", duration.clone());
        let arm_requests = Family::<ArmLabels, Counter>::default();
        registry.register("arm_requests", "ARM requests by method, resource type and status", arm_requests.clone());
        let throttled = Counter::default();
        registry.register("arm_throttled", "ARM requests answered 429; the binding is requeued after Retry-After", throttled.clone());
        let in_flight = Gauge::default();
        registry.register("reconciles_in_flight", "Reconciles running now", in_flight.clone());
        let bindings = Family::<ReadyLabels, Gauge>::default();
        registry.register("bindings", "IdentityBindings by Ready status", bindings.clone());
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        let remaining = Family::<BucketLabels, Gauge>::default();
        registry.register(
            "arm_ratelimit_remaining",
            "What ARM's last response said is left of each request budget (x-ms-ratelimit-remaining-*)",
            remaining.clone(),
        );
        Metrics { registry, reconciles, duration, arm_requests, throttled, in_flight, bindings, count_bindings: Mutex::default(), leader, remaining }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        if let Some(count) = self.count_bindings.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            let [true_, false_, unknown] = (count.0)();
            for (ready, n) in [("True", true_), ("False", false_), ("Unknown", unknown)] {
                self.bindings.get_or_create(&ReadyLabels { ready: ready.to_owned() }).set(n);
            }
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a finished reconcile.
    pub fn reconciled(&self, result: &str, seconds: f64) {
        self.reconciles.get_or_create(&ResultLabels { result: result.to_owned() }).inc();
        self.duration.observe(seconds);
    }

    /// A reconcile started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// Has each scrape count the bindings per Ready status (`True`, `False`, `Unknown`)
    /// with `count`, which replaces the last one given (a new term as leader has new caches).
    pub fn count_bindings_with(&self, count: impl Fn() -> [i64; 3] + Send + Sync + 'static) {
        *self.count_bindings.lock().unwrap_or_else(PoisonError::into_inner) = Some(BindingCounter(Box::new(count)));
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

impl ArmObserver for Metrics {
    fn observe(&self, method: &str, resource: &'static str, status: u16, _seconds: f64) {
        self.arm_requests.get_or_create(&ArmLabels { method: method.to_owned(), resource: resource.to_owned(), status: status.to_string() }).inc();
        if status == 429 {
            self.throttled.inc();
        }
    }

    fn remaining(&self, bucket: &'static str, remaining: u64) {
        self.remaining.get_or_create(&BucketLabels { bucket: bucket.to_owned() }).set(i64::try_from(remaining).unwrap_or(i64::MAX));
    }
}

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Health {
    /// The informer caches have listed everything once.
    pub caches_synced: AtomicBool,
    /// This replica holds the leader lease (or runs without election).
    pub leading: AtomicBool,
    /// The last token request for the Azure credential succeeded.
    pub credential_ok: AtomicBool,
}

impl Health {
    /// Ready when standing by, or when leading with synced caches and a working credential.
    pub fn ready(&self) -> bool {
        !self.leading.load(Ordering::Relaxed) || (self.caches_synced.load(Ordering::Relaxed) && self.credential_ok.load(Ordering::Relaxed))
    }
}
