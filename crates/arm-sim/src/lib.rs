//! An Azure Resource Manager simulator for exactly the operations kvbind performs.
//!
//! It speaks ARM's wire protocol as the public REST specs define it: the same paths
//! (matched case-insensitively), `api-version` checks, bodies, status codes, ARM error
//! bodies, long-running operations with `Azure-AsyncOperation`, `Retry-After` on 429,
//! and an AAD-style token endpoint whose tokens every ARM request must carry. Faults and
//! latency can be injected per operation, and every request is counted and logged, so
//! tests and benchmarks can assert exactly how many ARM calls happened.
//!
//! Start it in-process with [`Simulator::start`], or as `kvbind-arm-sim` / `kvbind arm-sim`.

pub mod faults;
pub mod http;
pub mod rates;
pub mod seed;
pub mod serve;
pub mod tls;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

pub use faults::{Fault, FaultRule};
pub use http::{Counters, Shared};
pub use seed::{ClientSeed, Seed};

use crate::http::lock;

/// A running simulator.
pub struct Simulator {
    /// `http://127.0.0.1:PORT` (or `https://`), the ARM endpoint and AAD authority host.
    pub url: String,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Starts a simulator with `seed` on `addr` (port 0 picks a free one), on the current
    /// tokio runtime.
    pub async fn start(seed: &Seed, addr: SocketAddr) -> std::io::Result<Simulator> {
        let shared = Arc::new(Shared::from_seed(seed));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        *lock(&shared.origin) = url.clone();
        let app = http::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the ARM simulator stopped");
            }
        });
        Ok(Simulator { url, ca_pem: None, shared, server })
    }

    /// Like [`Simulator::start`], serving HTTPS with a certificate signed by a CA made for
    /// this run; trust [`Simulator::ca_pem`].
    pub async fn start_tls(seed: &Seed, addr: SocketAddr) -> Result<Simulator, tls::TlsError> {
        let shared = Arc::new(Shared::from_seed(seed));
        let (config, ca_pem) = tls::self_signed().await?;
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let url = format!("https://{}", listener.local_addr()?);
        *lock(&shared.origin) = url.clone();
        let app = http::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum_server::from_tcp_rustls(listener, config).serve(app.into_make_service()).await {
                tracing::error!(error = %e, "the ARM simulator stopped");
            }
        });
        Ok(Simulator { url, ca_pem: Some(ca_pem), shared, server })
    }

    /// The CA certificate (PEM) to trust when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Request counts so far.
    pub fn counters(&self) -> Counters {
        http::count(&self.shared)
    }

    /// Forgets the requests seen so far.
    pub fn reset_counters(&self) {
        lock(&self.shared.log).clear();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<http::LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Every resource, as JSON, for comparing states.
    pub fn snapshot(&self) -> Value {
        http::snapshot(&self.shared)
    }

    /// Every identity block each VM scale set and VM has had.
    pub fn history(&self) -> Vec<world::IdentityHistoryEntry> {
        lock(&self.shared.world).history.clone()
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        lock(&self.shared.faults).set(rules);
    }

    /// Adds resources, clients or faults.
    pub fn seed(&self, seed: &Seed) {
        lock(&self.shared.world).add_seed(seed);
        self.shared.add_seed_clients_and_faults(seed);
    }

    /// Direct access to the simulated resources, for assertions.
    pub fn world(&self) -> std::sync::MutexGuard<'_, world::World> {
        lock(&self.shared.world)
    }

    /// Waits until the server task ends (it runs until the process exits).
    pub async fn serve_forever(mut self) {
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = server.await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}
