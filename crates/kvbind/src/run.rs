//! `kvbind run`: the operator.

use std::sync::Arc;
use std::time::Duration;

use kvbind_azure::client::http_client;
use kvbind_azure::{ArmClient, ArmClientConfig, LroSettings, build_credential};
use kvbind_controller::ControllerConfig;

use crate::config::RunConfig;

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let cloud = config.cloud()?;
    let endpoint = config.arm_endpoint.clone().unwrap_or_else(|| cloud.resource_manager.clone());
    let scope = match &config.arm_endpoint {
        Some(e) => format!("{}/.default", e.as_str().trim_end_matches('/')),
        None => cloud.token_scope(),
    };
    let http = http_client(None, Duration::from_secs(30))?;
    let authority = match &config.arm_endpoint {
        Some(e) => e.clone(),
        None => cloud.authority_host.clone(),
    };
    let credential = build_credential(&config.credential()?, &authority, http);
    let arm = ArmClient::new(
        &ArmClientConfig { endpoint, scope, extra_ca: None, request_timeout: Duration::from_secs(30), lro: LroSettings::default() },
        credential,
    )?;
    let client = kube::Client::try_default().await?;
    let controller = ControllerConfig {
        subscriptions: config.subscriptions.clone(),
        default_location: config.default_location.clone(),
        cloud,
        resync: config.resync(),
        batch_window: Duration::from_millis(config.batch_window_ms),
        reporter: "kvbind".to_owned(),
        namespace: config.namespace.clone(),
        node_selector: config.node_selector.clone(),
    };
    tracing::info!(subscriptions = ?controller.subscriptions, cloud = %controller.cloud.name, "starting kvbind");
    kvbind_controller::run(client, Arc::new(arm), controller, shutdown_signal()).await;
    tracing::info!("kvbind stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
