//! The simulator's HTTP face: ARM, the AAD token endpoint, and the admin API.

mod admin;
pub use admin::{Counters, count, snapshot};
mod arm;
mod discovery;
mod key_vault;
pub mod route;
mod throttle;
mod token;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};
use serde::Serialize;

use crate::faults::Faults;
use crate::seed::{ClientSeed, Seed};
use crate::world::World;

/// One request as the simulator saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Order of arrival.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The REST spec's operation ID (or `Token`, `Unknown`).
    pub operation: String,
    /// The status answered.
    pub status: u16,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// The client whose bearer token came with the request, when it was a known one.
    pub client_id: Option<String>,
}

/// A principal that holds a token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client ID.
    pub client_id: String,
    /// The principal's object ID.
    pub principal_id: String,
    /// Actions it may perform.
    pub actions: Vec<String>,
    /// The resource or scope the token was issued for (empty for the seed's static tokens,
    /// which only ARM accepts).
    pub audience: String,
}

/// Everything the handlers share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The simulated resources.
    pub world: Mutex<World>,
    /// Injected faults.
    pub faults: Mutex<Faults>,
    /// Registered clients by client ID.
    pub clients: Mutex<BTreeMap<String, ClientSeed>>,
    /// Issued tokens.
    pub tokens: Mutex<BTreeMap<String, Caller>>,
    /// Every request, in order.
    pub log: Mutex<Vec<LoggedRequest>>,
    /// `scheme://host:port` of this server, for operation and next-page links.
    pub origin: Mutex<String>,
    /// When the simulator started.
    pub started: Mutex<Option<std::time::Instant>>,
}

/// Locks a mutex, recovering from a handler that panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// State from a seed.
    pub fn from_seed(seed: &Seed) -> Shared {
        let shared = Shared { world: Mutex::new(World::from_seed(seed)), ..Shared::default() };
        shared.add_seed_clients_and_faults(seed);
        shared
    }

    /// Registers the seed's clients and faults.
    pub fn add_seed_clients_and_faults(&self, seed: &Seed) {
        let mut clients = lock(&self.clients);
        let mut tokens = lock(&self.tokens);
        let mut world = lock(&self.world);
        for client in &seed.clients {
            let mut client = client.clone();
            let principal = client.principal_id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
            world.principals.insert(principal.to_ascii_lowercase(), std::time::Instant::now() - std::time::Duration::from_secs(3600));
            for token in &client.static_tokens {
                tokens.insert(
                    token.clone(),
                    Caller { client_id: client.client_id.clone(), principal_id: principal.clone(), actions: client.actions.clone(), audience: String::new() },
                );
            }
            clients.insert(client.client_id.clone(), client);
        }
        lock(&self.faults).add(seed.faults.clone());
    }

    /// Appends a request to the log.
    pub fn record(&self, method: &str, path: &str, operation: &str, status: u16, client_id: Option<String>) {
        let mut log = lock(&self.log);
        let seq = log.len() as u64 + 1;
        let at_ms = lock(&self.started).get_or_insert_with(std::time::Instant::now).elapsed().as_millis() as u64;
        log.push(LoggedRequest { seq, method: method.to_owned(), path: path.to_owned(), operation: operation.to_owned(), status, at_ms, client_id });
    }
}

/// The router for all three faces.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_admin/counters", get(admin::counters))
        .route("/_admin/counters/reset", post(admin::reset_counters))
        .route("/_admin/requests", get(admin::requests))
        .route("/_admin/state", get(admin::state))
        .route("/_admin/history", get(admin::history))
        .route("/_admin/faults", get(admin::get_faults).put(admin::put_faults).post(admin::add_faults))
        .route("/_admin/seed", post(admin::add_seed))
        .route("/{tenant}/oauth2/v2.0/token", post(token::issue))
        .route("/metadata/identity/oauth2/token", get(token::imds))
        .route("/_imds/{*node}", get(token::node_imds))
        .route("/metadata/endpoints", get(discovery::endpoints))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/v1.0/servicePrincipals", get(discovery::service_principals))
        .fallback(arm::handle)
        .with_state(shared)
}
