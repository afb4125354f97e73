//! Azure's request rates, as token buckets: ARM's per subscription and principal for
//! reads, writes and deletes, the global ones of each subscription (15 times a principal's,
//! shared by every principal) and the tenant's per principal for requests outside any
//! subscription; Compute's per scale set or VM for updates; Managed Identity's per
//! subscription and region, and per tenant and region, for identity creates and for
//! identities assigned to resources. A request that finds its bucket empty is answered 429 with the
//! `Retry-After` that refills it, and changes nothing; an admitted one is told, in ARM's
//! `x-ms-ratelimit-remaining-*` headers, what is left.
//!
//! The numbers are Azure's published ones (`shared/azure/ARM-NOTES.md` §8,
//! `LIMITS-AND-CLIENTS.md` §1); a seed's `rates` shrinks them for tests or turns them off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One token bucket: how many requests it holds and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSeed {
    /// Tokens when full: the burst.
    pub size: f64,
    /// Tokens added a second.
    pub per_second: f64,
}

/// The rates the simulator enforces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatesSeed {
    /// Enforce them (on unless a seed turns them off).
    #[serde(default = "RatesSeed::on")]
    pub enabled: bool,
    /// ARM reads per subscription and principal: 250, refilled at 25 a second.
    #[serde(default = "RatesSeed::arm_reads")]
    pub reads: BucketSeed,
    /// ARM writes (PUT, PATCH, POST) per subscription and principal: 200, refilled at 10 a second.
    #[serde(default = "RatesSeed::arm_writes")]
    pub writes: BucketSeed,
    /// ARM deletes per subscription and principal: 200, refilled at 10 a second.
    #[serde(default = "RatesSeed::arm_deletes")]
    pub deletes: BucketSeed,
    /// Updates of one VM scale set or VM: a burst of 12, refilled at 4 a minute.
    #[serde(default = "RatesSeed::compute_updates")]
    pub compute_updates: BucketSeed,
    /// Identity creates per subscription and region: 80 per 20 seconds.
    #[serde(default = "RatesSeed::identity_creates")]
    pub identity_creates: BucketSeed,
    /// Identities assigned to resources per subscription and region: 300 per 20 seconds.
    #[serde(default = "RatesSeed::identity_assignments")]
    pub identity_assignments: BucketSeed,
    /// A subscription's global buckets, shared by every principal, as a multiple of a
    /// principal's: 15.
    #[serde(default = "RatesSeed::global_multiple")]
    pub subscription_global_multiple: f64,
    /// ARM reads per tenant and principal (requests outside a subscription, such as the
    /// subscription list): 250, refilled at 25 a second.
    #[serde(default = "RatesSeed::arm_reads")]
    pub tenant_reads: BucketSeed,
    /// ARM writes per tenant and principal: 200, refilled at 10 a second.
    #[serde(default = "RatesSeed::arm_writes")]
    pub tenant_writes: BucketSeed,
    /// Identity creates per tenant and region: 400 per 20 seconds.
    #[serde(default = "RatesSeed::tenant_identity")]
    pub tenant_identity_creates: BucketSeed,
    /// Identities assigned to resources per tenant and region: 400 per 20 seconds.
    #[serde(default = "RatesSeed::tenant_identity")]
    pub tenant_identity_assignments: BucketSeed,
}

impl RatesSeed {
    fn on() -> bool {
        true
    }
    fn arm_reads() -> BucketSeed {
        BucketSeed { size: 250.0, per_second: 25.0 }
    }
    fn arm_writes() -> BucketSeed {
        BucketSeed { size: 200.0, per_second: 10.0 }
    }
    fn arm_deletes() -> BucketSeed {
        BucketSeed { size: 200.0, per_second: 10.0 }
    }
    fn compute_updates() -> BucketSeed {
        BucketSeed { size: 12.0, per_second: 4.0 / 60.0 }
    }
    fn identity_creates() -> BucketSeed {
        BucketSeed { size: 80.0, per_second: 4.0 }
    }
    fn identity_assignments() -> BucketSeed {
        BucketSeed { size: 300.0, per_second: 15.0 }
    }
    fn global_multiple() -> f64 {
        15.0
    }
    fn tenant_identity() -> BucketSeed {
        BucketSeed { size: 400.0, per_second: 20.0 }
    }
    fn global(&self, bucket: BucketSeed) -> BucketSeed {
        BucketSeed { size: bucket.size * self.subscription_global_multiple, per_second: bucket.per_second * self.subscription_global_multiple }
    }

    /// No rate enforced: for tests about something else that send bursts.
    pub fn off() -> RatesSeed {
        RatesSeed { enabled: false, ..RatesSeed::default() }
    }

    fn bucket(&self, kind: Rate) -> BucketSeed {
        match kind {
            Rate::Reads => self.reads,
            Rate::Writes => self.writes,
            Rate::Deletes => self.deletes,
            Rate::ComputeUpdates => self.compute_updates,
            Rate::IdentityCreates => self.identity_creates,
            Rate::IdentityAssignments => self.identity_assignments,
            Rate::GlobalReads => self.global(self.reads),
            Rate::GlobalWrites => self.global(self.writes),
            Rate::GlobalDeletes => self.global(self.deletes),
            Rate::TenantReads => self.tenant_reads,
            Rate::TenantWrites => self.tenant_writes,
            Rate::TenantIdentityCreates => self.tenant_identity_creates,
            Rate::TenantIdentityAssignments => self.tenant_identity_assignments,
        }
    }
}

impl Default for RatesSeed {
    fn default() -> Self {
        RatesSeed {
            enabled: true,
            reads: Self::arm_reads(),
            writes: Self::arm_writes(),
            deletes: Self::arm_deletes(),
            compute_updates: Self::compute_updates(),
            identity_creates: Self::identity_creates(),
            identity_assignments: Self::identity_assignments(),
            subscription_global_multiple: Self::global_multiple(),
            tenant_reads: Self::arm_reads(),
            tenant_writes: Self::arm_writes(),
            tenant_identity_creates: Self::tenant_identity(),
            tenant_identity_assignments: Self::tenant_identity(),
        }
    }
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    /// ARM reads, per subscription and principal.
    Reads,
    /// ARM writes, per subscription and principal.
    Writes,
    /// ARM deletes, per subscription and principal.
    Deletes,
    /// Updates of one scale set or VM.
    ComputeUpdates,
    /// Identity creates, per subscription and region.
    IdentityCreates,
    /// Identities assigned to resources, per subscription and region.
    IdentityAssignments,
    /// ARM reads of one subscription, every principal's.
    GlobalReads,
    /// ARM writes of one subscription, every principal's.
    GlobalWrites,
    /// ARM deletes of one subscription, every principal's.
    GlobalDeletes,
    /// ARM reads outside a subscription, per tenant and principal.
    TenantReads,
    /// ARM writes (and deletes) outside a subscription, per tenant and principal.
    TenantWrites,
    /// Identity creates, per tenant and region.
    TenantIdentityCreates,
    /// Identities assigned to resources, per tenant and region.
    TenantIdentityAssignments,
}

/// One request's cost in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The bucket's kind.
    pub rate: Rate,
    /// Whose bucket: `SUBSCRIPTION/PRINCIPAL`, `SUBSCRIPTION/REGION` or the resource's ID.
    pub key: String,
    /// Tokens it takes.
    pub tokens: f64,
}

/// The bucket that was empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    /// Its kind.
    pub rate: Rate,
    /// Its key.
    pub key: String,
    /// When it will hold enough again.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets, filled as they are first used.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    seed: RatesSeed,
    buckets: HashMap<(Rate, String), Bucket>,
}

impl Rates {
    /// Full buckets of `seed`'s sizes.
    pub fn new(seed: RatesSeed) -> Rates {
        Rates { seed, buckets: HashMap::new() }
    }

    /// The seed's settings.
    pub fn seed(&self) -> &RatesSeed {
        &self.seed
    }

    fn level(&mut self, rate: Rate, key: &str, now: Instant) -> &mut Bucket {
        let seed = self.seed.bucket(rate);
        let bucket = self.buckets.entry((rate, key.to_owned())).or_insert(Bucket { tokens: seed.size, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * seed.per_second).min(seed.size);
        bucket.at = now;
        bucket
    }

    /// Takes every charge, or none: the first bucket without enough tokens is returned
    /// with the wait that refills it. On success, what each bucket has left, in order.
    /// A charge larger than a bucket waits for the full bucket and empties it.
    pub fn take(&mut self, charges: &[Charge]) -> Result<Vec<u64>, Throttled> {
        let now = Instant::now();
        if !self.seed.enabled {
            return Ok(charges.iter().map(|c| self.seed.bucket(c.rate).size as u64).collect());
        }
        for charge in charges {
            let seed = self.seed.bucket(charge.rate);
            let need = charge.tokens.min(seed.size);
            let have = self.level(charge.rate, &charge.key, now).tokens;
            if have + 1e-9 < need {
                // Whole seconds, as ARM's Retry-After gives them.
                let seconds = ((need - have) / seed.per_second).ceil().max(1.0);
                return Err(Throttled { rate: charge.rate, key: charge.key.clone(), retry_after: Duration::from_secs_f64(seconds) });
            }
        }
        Ok(charges
            .iter()
            .map(|charge| {
                let need = charge.tokens.min(self.seed.bucket(charge.rate).size);
                let bucket = self.level(charge.rate, &charge.key, now);
                bucket.tokens = (bucket.tokens - need).max(0.0);
                bucket.tokens.floor() as u64
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(rate: Rate, tokens: f64) -> Charge {
        Charge { rate, key: "sub/principal".to_owned(), tokens }
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_asks_for_the_refill_time() {
        let mut rates = Rates::new(RatesSeed { writes: BucketSeed { size: 3.0, per_second: 0.5 }, ..RatesSeed::default() });
        let left: Vec<u64> = (0..3).map(|_| rates.take(&[charge(Rate::Writes, 1.0)]).expect("within the burst")[0]).collect();
        assert_eq!(left, [2, 1, 0]);
        let throttled = rates.take(&[charge(Rate::Writes, 1.0)]).expect_err("empty");
        assert_eq!((throttled.rate, throttled.retry_after), (Rate::Writes, Duration::from_secs(2)), "one token at half a token a second");
    }

    #[test]
    fn a_refused_request_takes_nothing_from_any_bucket() {
        let mut rates = Rates::new(RatesSeed { identity_creates: BucketSeed { size: 1.0, per_second: 0.001 }, ..RatesSeed::default() });
        rates.take(&[charge(Rate::IdentityCreates, 1.0)]).expect("the first create");
        assert!(rates.take(&[charge(Rate::Writes, 1.0), charge(Rate::IdentityCreates, 1.0)]).is_err());
        assert_eq!(rates.take(&[charge(Rate::Writes, 1.0)]).expect("writes left")[0], 199, "the refused request took no write token");
    }

    #[test]
    fn buckets_are_per_key() {
        let mut rates = Rates::new(RatesSeed { writes: BucketSeed { size: 1.0, per_second: 0.001 }, ..RatesSeed::default() });
        rates.take(&[charge(Rate::Writes, 1.0)]).expect("one");
        let other = Charge { rate: Rate::Writes, key: "sub/another-principal".to_owned(), tokens: 1.0 };
        rates.take(&[other]).expect("another principal has its own bucket");
    }

    #[test]
    fn a_charge_larger_than_the_bucket_waits_for_it_full() {
        let mut rates = Rates::new(RatesSeed { identity_assignments: BucketSeed { size: 10.0, per_second: 1.0 }, ..RatesSeed::default() });
        assert_eq!(rates.take(&[charge(Rate::IdentityAssignments, 25.0)]).expect("a full bucket")[0], 0);
        assert_eq!(rates.take(&[charge(Rate::IdentityAssignments, 25.0)]).expect_err("empty").retry_after, Duration::from_secs(10));
    }

    #[test]
    fn turned_off_nothing_is_refused() {
        let mut rates = Rates::new(RatesSeed::off());
        for _ in 0..1000 {
            rates.take(&[charge(Rate::ComputeUpdates, 1.0)]).expect("off");
        }
    }
}
