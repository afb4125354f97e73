//! Pacing within Azure's published rates, so that converging many bindings spends close
//! to what the rates allow with few or no 429s, and leaves a share of each budget to the
//! other clients that spend it: the cluster autoscaler and AKS's upgrades update the same
//! scale sets, and other tools write to the same subscription.
//!
//! kvbind keeps its own token bucket per budget, sized to the share it may use, and takes
//! a token before each request that spends one; when the bucket is empty, the request waits
//! for the refill instead of being sent to be refused. ARM's `x-ms-ratelimit-remaining-*`
//! answers correct the bucket downwards (someone else spent the budget too). Budgets:
//! ARM reads, writes and deletes per subscription (ARM counts them per subscription and
//! principal; kvbind is one principal; a thousand bindings starting at once read far more
//! than the read burst), updates of each scale set or VM (Compute's
//! per-resource bucket), and identity creates and identities assigned to resources per
//! subscription (Managed Identity's, per subscription and region, taken here as one per
//! subscription: the stricter reading). An update that attaches many identities at once
//! spends one assignment each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One budget as Azure publishes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests when full (the burst).
    pub size: f64,
    /// Requests refilled a second.
    pub per_second: f64,
}

/// What kvbind paces itself to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacingSettings {
    /// Pace at all.
    pub enabled: bool,
    /// The share of every budget left to everything else, 0 to 0.9.
    pub reserve: f64,
    /// ARM reads per subscription and principal (250, 25 a second).
    pub reads: Budget,
    /// ARM writes per subscription and principal (200, 10 a second).
    pub writes: Budget,
    /// ARM deletes per subscription and principal (200, 10 a second).
    pub deletes: Budget,
    /// Updates of one scale set or VM (12, 4 a minute).
    pub compute_updates: Budget,
    /// Identity creates per subscription and region (80 per 20 seconds).
    pub identity_creates: Budget,
    /// Identities assigned to resources per subscription and region (300 per 20 seconds).
    pub identity_assignments: Budget,
}

/// The share of each budget kvbind leaves to others unless told otherwise.
pub const DEFAULT_RESERVE: f64 = 0.25;

impl Default for PacingSettings {
    fn default() -> Self {
        PacingSettings {
            enabled: true,
            reserve: DEFAULT_RESERVE,
            reads: Budget { size: 250.0, per_second: 25.0 },
            writes: Budget { size: 200.0, per_second: 10.0 },
            deletes: Budget { size: 200.0, per_second: 10.0 },
            compute_updates: Budget { size: 12.0, per_second: 4.0 / 60.0 },
            identity_creates: Budget { size: 80.0, per_second: 4.0 },
            identity_assignments: Budget { size: 300.0, per_second: 15.0 },
        }
    }
}

/// Which of the budgets a request spends, each paced to its [`PacingSettings`] field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// [`PacingSettings::reads`], keyed by subscription.
    Reads,
    /// [`PacingSettings::writes`], keyed by subscription.
    Writes,
    /// [`PacingSettings::deletes`], keyed by subscription.
    Deletes,
    /// [`PacingSettings::compute_updates`], keyed by the scale set's or VM's path.
    ComputeUpdates,
    /// [`PacingSettings::identity_creates`], keyed by subscription.
    IdentityCreates,
    /// [`PacingSettings::identity_assignments`], keyed by subscription.
    IdentityAssignments,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// kvbind's side of Azure's budgets.
#[derive(Debug)]
pub struct Pacer {
    settings: PacingSettings,
    buckets: Mutex<HashMap<(Kind, String), Bucket>>,
}

/// The budgets a request spends: `(kind, key, tokens)`; `assigned` is how many identities
/// a scale set or VM update attaches.
fn budgets(method: &str, lowercase_path: &str, assigned: usize) -> Vec<(Kind, String, f64)> {
    let subscription = lowercase_path.split('/').filter(|p| !p.is_empty()).take(2).collect::<Vec<_>>().join("/");
    if !subscription.starts_with("subscriptions/") {
        return Vec::new();
    }
    match method {
        "GET" | "HEAD" => vec![(Kind::Reads, subscription, 1.0)],
        "DELETE" => vec![(Kind::Deletes, subscription, 1.0)],
        _ => {
            let mut spent = vec![(Kind::Writes, subscription.clone(), 1.0)];
            let is_compute = lowercase_path.contains("/providers/microsoft.compute/virtualmachinescalesets/")
                || lowercase_path.contains("/providers/microsoft.compute/virtualmachines/");
            if is_compute && matches!(method, "PATCH" | "PUT") && !lowercase_path.contains("/operations/") {
                spent.push((Kind::ComputeUpdates, lowercase_path.to_owned(), 1.0));
                if assigned > 0 {
                    spent.push((Kind::IdentityAssignments, subscription.clone(), assigned as f64));
                }
            }
            // kvbind PUTs an identity only to create it (it reads it first).
            if method == "PUT"
                && lowercase_path.contains("/providers/microsoft.managedidentity/userassignedidentities/")
                && !lowercase_path.contains("/federatedidentitycredentials/")
            {
                spent.push((Kind::IdentityCreates, subscription, 1.0));
            }
            spent
        }
    }
}

impl Pacer {
    /// A pacer with full buckets.
    pub fn new(settings: PacingSettings) -> Pacer {
        Pacer { settings, buckets: Mutex::default() }
    }

    /// `kind`'s budget as Azure publishes it.
    fn published(&self, kind: Kind) -> Budget {
        match kind {
            Kind::Reads => self.settings.reads,
            Kind::Writes => self.settings.writes,
            Kind::Deletes => self.settings.deletes,
            Kind::ComputeUpdates => self.settings.compute_updates,
            Kind::IdentityCreates => self.settings.identity_creates,
            Kind::IdentityAssignments => self.settings.identity_assignments,
        }
    }

    /// The share of `kind`'s budget kvbind may use.
    fn ours(&self, kind: Kind) -> Budget {
        let budget = self.published(kind);
        let share = 1.0 - self.settings.reserve.clamp(0.0, 0.9);
        Budget { size: (budget.size * share).max(1.0), per_second: budget.per_second * share }
    }

    fn refill(&self, kind: Kind, bucket: &mut Bucket, now: Instant) {
        let ours = self.ours(kind);
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * ours.per_second).min(ours.size);
        bucket.at = now;
    }

    /// Takes what the request spends from every budget and says how long to wait before
    /// sending it: zero while the buckets hold tokens, else until the refill reaches this
    /// request's turn (requests queue in the order they asked). `assigned` is how many
    /// identities a scale set or VM update attaches; more than kvbind's share of the
    /// assignment budget waits for it full, as Azure takes it.
    pub fn admit(&self, method: &str, lowercase_path: &str, assigned: usize) -> Duration {
        if !self.settings.enabled {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = Duration::ZERO;
        for (kind, key, tokens) in budgets(method, lowercase_path, assigned) {
            let ours = self.ours(kind);
            let bucket = buckets.entry((kind, key)).or_insert(Bucket { tokens: ours.size, at: now });
            self.refill(kind, bucket, now);
            bucket.tokens -= tokens.min(ours.size);
            if bucket.tokens < 0.0 && ours.per_second > 0.0 {
                wait = wait.max(Duration::from_secs_f64(-bucket.tokens / ours.per_second));
            }
        }
        wait
    }

    /// What a response said is left of a budget: `remaining` of ARM's writes or deletes
    /// (`x-ms-ratelimit-remaining-subscription-writes`/`-deletes`) or of a resource's
    /// updates (`x-ms-ratelimit-remaining-resource`). kvbind's bucket never holds more
    /// than that minus the share it leaves to others.
    pub fn observed(&self, method: &str, lowercase_path: &str, header: RemainingHeader, remaining: u64) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, key, _) in budgets(method, lowercase_path, 0) {
            let matches = matches!(
                (kind, header),
                (Kind::Reads, RemainingHeader::SubscriptionReads)
                    | (Kind::Writes, RemainingHeader::SubscriptionWrites)
                    | (Kind::Deletes, RemainingHeader::SubscriptionDeletes)
                    | (Kind::ComputeUpdates, RemainingHeader::Resource)
            );
            if !matches {
                continue;
            }
            let usable = remaining as f64 - self.published(kind).size * self.settings.reserve.clamp(0.0, 0.9);
            let ours = self.ours(kind);
            let bucket = buckets.entry((kind, key)).or_insert(Bucket { tokens: ours.size, at: now });
            self.refill(kind, bucket, now);
            bucket.tokens = bucket.tokens.min(usable);
        }
    }
}

/// Which `x-ms-ratelimit-remaining-*` header a count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemainingHeader {
    /// `…-subscription-reads`.
    SubscriptionReads,
    /// `…-subscription-writes`.
    SubscriptionWrites,
    /// `…-subscription-deletes`.
    SubscriptionDeletes,
    /// `…-resource` (Compute's per-resource policies; the smallest count is taken).
    Resource,
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMSS: &str = "/subscriptions/s/resourcegroups/mc_rg/providers/microsoft.compute/virtualmachinescalesets/pool";
    const IDENTITY: &str = "/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/app";

    /// Within a tenth of a second of `seconds` (the buckets refill while the test runs).
    fn about(wait: Duration, seconds: f64) -> bool {
        (wait.as_secs_f64() - seconds).abs() < 0.1
    }

    fn pacer(reserve: f64) -> Pacer {
        Pacer::new(PacingSettings { reserve, ..PacingSettings::default() })
    }

    #[test]
    fn reads_keep_to_their_own_budget_less_the_reserve() {
        let pacer = pacer(0.25);
        // 250 × 0.75 = 187.5 at once, then 18.75 a second; writes are not held up by them.
        let waits: Vec<Duration> = (0..200).map(|_| pacer.admit("GET", VMSS, 0)).collect();
        assert!(waits[..187].iter().all(|w| w.is_zero()), "{:?}", &waits[180..190]);
        assert!(about(waits[199], 12.5 / 18.75), "{:?}", waits[199]);
        assert!(pacer.admit("PUT", IDENTITY, 0).is_zero(), "a write spends its own budget");
    }

    #[test]
    fn a_scale_set_takes_its_burst_less_the_reserve_then_waits_for_the_refill() {
        let pacer = pacer(0.25);
        // 12 × 0.75 = 9 at once; then one every 20 s (3 a minute).
        let waits: Vec<Duration> = (0..11).map(|_| pacer.admit("PATCH", VMSS, 0)).collect();
        assert!(waits[..9].iter().all(|w| w.is_zero()), "{waits:?}");
        assert!(about(waits[9], 20.0), "{waits:?}");
        assert!(about(waits[10], 40.0), "the next waits behind it: {waits:?}");
    }

    #[test]
    fn identity_creates_keep_to_the_published_rate_less_the_reserve() {
        let pacer = pacer(0.5);
        // 80 × 0.5 = 40 at once, then 2 a second.
        let waits: Vec<Duration> = (0..44).map(|_| pacer.admit("PUT", IDENTITY, 0)).collect();
        assert!(waits[..40].iter().all(|w| w.is_zero()));
        assert!(about(waits[43], 2.0), "the fourth past the burst: {waits:?}");
    }

    #[test]
    fn identities_attached_at_once_spend_one_assignment_each() {
        let pacer = pacer(0.25);
        // 300 × 0.75 = 225 at once, refilled at 11.25 a second; each PATCH is another
        // scale set's, so only the assignment budget binds.
        let pool = |i: usize| format!("{VMSS}-{i}");
        assert!(pacer.admit("PATCH", &pool(0), 150).is_zero());
        assert!(pacer.admit("PATCH", &pool(1), 75).is_zero(), "225 in all");
        let wait = pacer.admit("PATCH", &pool(2), 45);
        assert!(about(wait, 4.0), "45 more at 11.25 a second: {wait:?}");
        assert!(pacer.admit("PATCH", &pool(3), 0).is_zero(), "an update that attaches nothing does not wait for assignments");
    }

    #[test]
    fn an_answer_that_others_spent_the_budget_makes_kvbind_wait() {
        let pacer = pacer(0.25);
        assert!(pacer.admit("PATCH", VMSS, 0).is_zero());
        // Compute says 4 updates are left: 3 of them are the others' (12 × 0.25).
        pacer.observed("PATCH", VMSS, RemainingHeader::Resource, 4);
        assert!(pacer.admit("PATCH", VMSS, 0).is_zero(), "one is ours");
        assert!(!pacer.admit("PATCH", VMSS, 0).is_zero(), "the rest is left to the autoscaler");
    }

    #[test]
    fn turned_off_nothing_waits() {
        let pacer = Pacer::new(PacingSettings { enabled: false, ..PacingSettings::default() });
        for _ in 0..100 {
            assert!(pacer.admit("PATCH", VMSS, 0).is_zero());
        }
    }
}
