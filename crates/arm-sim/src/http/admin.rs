//! The admin API: counters, the request log, state snapshots, identity history, faults
//! and seeding at run time. Loopback only; never counted in the ARM counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Shared, lock};
use crate::faults::FaultRule;
use crate::seed::Seed;

/// Request counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// ARM GETs.
    pub reads: u64,
    /// ARM PUT, PATCH, POST and DELETE.
    pub writes: u64,
    /// Token requests.
    pub tokens: u64,
    /// Count by operation ID.
    pub by_operation: BTreeMap<String, u64>,
    /// Count by operation ID and status.
    pub by_status: BTreeMap<String, u64>,
    /// Faults injected so far.
    pub faults_injected: u64,
}

/// Counts the logged requests.
pub fn count(shared: &Shared) -> Counters {
    let mut c = Counters { faults_injected: lock(&shared.faults).injected, ..Counters::default() };
    for r in lock(&shared.log).iter() {
        if r.operation == "Token" {
            c.tokens += 1;
            continue;
        }
        if r.method == "GET" {
            c.reads += 1;
        } else {
            c.writes += 1;
        }
        *c.by_operation.entry(r.operation.clone()).or_default() += 1;
        *c.by_status.entry(format!("{} {}", r.operation, r.status)).or_default() += 1;
    }
    c
}

/// A snapshot of every resource, for comparing states.
pub fn snapshot(shared: &Shared) -> Value {
    let world = lock(&shared.world);
    json!({
        "identities": world.identities,
        "compute": world.compute,
        "vaults": world.vaults,
        "roleAssignments": world.role_assignments,
        "identityBindings": world.identity_bindings,
    })
}

pub async fn counters(State(shared): State<Arc<Shared>>) -> Json<Counters> {
    Json(count(&shared))
}

pub async fn reset_counters(State(shared): State<Arc<Shared>>) -> Json<Value> {
    lock(&shared.log).clear();
    Json(json!({}))
}

pub async fn requests(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(*lock(&shared.log)))
}

pub async fn state(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(snapshot(&shared))
}

pub async fn history(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(lock(&shared.world).history))
}

pub async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Vec<FaultRule>> {
    Json(lock(&shared.faults).rules().to_vec())
}

pub async fn put_faults(State(shared): State<Arc<Shared>>, Json(rules): Json<Vec<FaultRule>>) -> Json<Value> {
    lock(&shared.faults).set(rules);
    Json(json!({}))
}

pub async fn add_faults(State(shared): State<Arc<Shared>>, Json(rules): Json<Vec<FaultRule>>) -> Json<Value> {
    lock(&shared.faults).add(rules);
    Json(json!({}))
}

pub async fn add_seed(State(shared): State<Arc<Shared>>, Json(seed): Json<Seed>) -> Json<Value> {
    lock(&shared.world).add_seed(&seed);
    shared.add_seed_clients_and_faults(&seed);
    Json(json!({}))
}
