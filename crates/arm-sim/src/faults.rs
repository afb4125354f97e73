//! Fault and latency injection, per ARM operation.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One fault rule: which requests it applies to, what it does, and how often.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// The operation ID (`VirtualMachineScaleSets_Update`, …) or `*`.
    pub operation: String,
    /// Only requests whose path contains this text (case-insensitive).
    #[serde(default)]
    pub path_contains: Option<String>,
    /// What happens.
    pub fault: Fault,
    /// How many requests it hits before it is spent; absent means forever.
    #[serde(default)]
    pub count: Option<u32>,
}

/// What a fault does to a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// Wait before answering: `minMs` to `maxMs`, uniformly.
    Latency {
        /// The shortest wait.
        min_ms: u64,
        /// The longest wait.
        max_ms: u64,
    },
    /// Answer 429 with `Retry-After`.
    Throttle {
        /// The `Retry-After` value in seconds.
        retry_after_seconds: u64,
    },
    /// Answer with an error status and code.
    Error {
        /// The HTTP status.
        status: u16,
        /// The ARM error code.
        code: String,
    },
    /// Answer 409 as Compute does for a concurrent write.
    Conflict,
    /// Drop the connection before the request has any effect (the client sees a reset).
    Reset,
    /// Carry the request out, then drop the connection before the answer is complete:
    /// the change is made and the client does not know it.
    ResponseLost,
    /// Accept a VMSS/VM update but end its operation `Failed`, leaving the resource as it was.
    LroFail,
    /// Accept a VMSS/VM update whose operation never ends.
    LroNeverEnds,
    /// Answer 400 `PrincipalNotFound` to grants for principals younger than `seconds`.
    PrincipalReplicationDelay {
        /// How long a new principal stays unknown.
        seconds: u64,
    },
}

impl Fault {
    /// True for faults decided before the request runs (the others shape its effect).
    pub fn is_immediate(&self) -> bool {
        matches!(self, Fault::Throttle { .. } | Fault::Error { .. } | Fault::Conflict | Fault::Reset)
    }

    /// The wait a latency fault asks for.
    pub fn latency(&self) -> Option<Duration> {
        match self {
            Fault::Latency { min_ms, max_ms } => {
                let ms = if max_ms > min_ms { rand::rng().random_range(*min_ms..=*max_ms) } else { *min_ms };
                Some(Duration::from_millis(ms))
            }
            _ => None,
        }
    }
}

/// The active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
    /// How many faults were injected, by kind.
    pub injected: u64,
}

impl Faults {
    /// Replaces every rule.
    pub fn set(&mut self, rules: Vec<FaultRule>) {
        self.rules = rules;
    }

    /// Adds rules.
    pub fn add(&mut self, rules: Vec<FaultRule>) {
        self.rules.extend(rules);
    }

    /// The rules, as they stand.
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Takes the faults that apply to this request, spending one use of each counted rule.
    /// Replication delays are not spent: they apply to every grant while they hold.
    pub fn take(&mut self, operation: &str, path: &str) -> Vec<Fault> {
        let path = path.to_ascii_lowercase();
        let mut hit = Vec::new();
        for rule in &mut self.rules {
            let matches = (rule.operation == "*" || rule.operation.eq_ignore_ascii_case(operation))
                && rule.path_contains.as_ref().is_none_or(|p| path.contains(&p.to_ascii_lowercase()))
                && rule.count != Some(0);
            if !matches {
                continue;
            }
            if !matches!(rule.fault, Fault::PrincipalReplicationDelay { .. })
                && let Some(n) = rule.count.as_mut()
            {
                *n -= 1;
            }
            hit.push(rule.fault.clone());
        }
        self.injected += hit.iter().filter(|f| !matches!(f, Fault::Latency { .. } | Fault::PrincipalReplicationDelay { .. })).count() as u64;
        self.rules.retain(|r| r.count != Some(0));
        hit
    }
}
