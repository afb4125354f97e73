//! The admin server: `/healthz` (the process answers), `/readyz` (caches synced and, when
//! leading, the Azure credential works) and `/metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kvbind_controller::Telemetry;

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    if t.health.ready() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], t.metrics.encode())
}

/// The admin routes.
pub fn router(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(telemetry))
}

/// Serves the admin routes on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, telemetry: Telemetry) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin server listening");
    axum::serve(listener, router(telemetry)).await?;
    Ok(())
}
