//! `kvbind run`: the operator.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kvbind_azure::TokenCredential;
use kvbind_azure::client::{WriteFence, http_client};
use kvbind_azure::{ArmClient, ArmClientConfig, LroSettings, build_credential};
use kvbind_controller::request_limit::RequestLimitLayer;
use kvbind_controller::{ControllerConfig, Telemetry};

use crate::config::RunConfig;
use crate::fence::LeaseFence;
use crate::leader::Leadership;

/// The ARM client, its credential and token scope, as configured.
pub fn arm_client(
    config: &RunConfig,
    observer: Option<Arc<dyn kvbind_azure::client::ArmObserver>>,
    fence: Option<Arc<dyn WriteFence>>,
) -> anyhow::Result<(ArmClient, Arc<dyn TokenCredential>, String)> {
    let cloud = config.cloud()?;
    let endpoint = config.arm_endpoint.clone().unwrap_or_else(|| cloud.resource_manager.clone());
    let (scope, authority) = match &config.arm_endpoint {
        Some(e) => (format!("{}/.default", e.as_str().trim_end_matches('/')), e.clone()),
        None => (cloud.token_scope(), cloud.authority_host.clone()),
    };
    let credential = build_credential(&config.credential()?, &authority, http_client(None, Duration::from_secs(30))?);
    let arm = ArmClient::new(
        &ArmClientConfig {
            endpoint,
            scope: scope.clone(),
            extra_ca: None,
            request_timeout: Duration::from_secs(30),
            lro: LroSettings::default(),
            observer,
            fence,
            pacing: kvbind_azure::PacingSettings { enabled: !config.no_pacing, reserve: config.arm_reserve, ..kvbind_azure::PacingSettings::default() },
        },
        credential.clone(),
    )?;
    Ok((arm, credential, scope))
}

/// Runs the operator until SIGTERM or Ctrl-C (or, with leader election, until the lease is
/// lost).
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let cloud = config.cloud()?;
    let telemetry = Telemetry::default();
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&RequestLimitLayer::new(kvbind_controller::request_limit::DEFAULT_API_REQUESTS))
        .build();
    let identity = config.pod_name.clone().unwrap_or_else(|| format!("kvbind-{}", std::process::id()));
    // An eighth of the lease: how often the fence rereads the Lease, and how much sooner
    // than the Lease's own expiry it closes.
    let fence_period = Duration::from_millis((config.lease_seconds * 1000 / 8).clamp(250, 2000));
    let fence = Arc::new(LeaseFence::new(client.clone(), &config.lease_namespace, &config.lease_name, &identity, fence_period));
    let write_fence = config.leader_election.then(|| fence.clone() as Arc<dyn WriteFence>);
    let (arm, credential, scope) = arm_client(&config, Some(telemetry.metrics.clone()), write_fence)?;
    tokio::spawn(check_credential(credential, scope, telemetry.clone()));
    tokio::spawn({
        let (addr, telemetry) = (config.admin_address, telemetry.clone());
        async move {
            if let Err(e) = crate::admin::serve(addr, telemetry).await {
                tracing::error!(error = %e, "the admin server stopped");
            }
        }
    });

    let controller = ControllerConfig {
        subscriptions: config.subscriptions.clone(),
        default_location: config.default_location.clone(),
        cloud,
        resync: config.resync(),
        batch_window: Duration::from_millis(config.batch_window_ms),
        batching: !config.no_batching,
        reporter: "kvbind".to_owned(),
        namespace: config.namespace.clone(),
        node_selector: config.node_selector.clone(),
        binding_selector: config.binding_selector.clone(),
        oidc_issuer: config.oidc_issuer_url.clone(),
        managed_cluster: config.managed_cluster_id.clone(),
        addon_identity: kvbind_controller::addon::AddonIdentitySource::default(),
        role_assignment_limit: config.role_assignment_limit,
        installation: config.installation_id.clone().unwrap_or_default(),
        bound_identities: config.bound_identities_configmap.clone().map(|name| (config.lease_namespace.clone(), name)),
        adoption_records: config.adoption_records_configmap.clone().map(|name| (config.lease_namespace.clone(), name)),
        access_probe: kvbind_controller::config::AccessProbeConfig {
            namespace: config.probe_image.as_ref().map(|_| config.lease_namespace.clone()),
            image: config.probe_image.clone().unwrap_or_default(),
            data_plane_origin: None,
        },
    };

    if !config.leader_election {
        telemetry.health.leading.store(true, Ordering::Relaxed);
        telemetry.metrics.set_leader(true);
        tracing::info!("starting kvbind without leader election");
        kvbind_controller::run(client, Arc::new(arm), controller, telemetry, shutdown_signal()).await;
        return Ok(());
    }

    let mut leadership = Leadership::start(client.clone(), &config.lease_name, &config.lease_namespace, &identity, config.lease_seconds).await?;
    tracing::info!(%identity, lease = %config.lease_name, "waiting for the leader lease");
    tokio::select! {
        acquired = async {
            leadership.acquired().await?;
            fence_opened(&fence).await;
            anyhow::Ok(())
        } => acquired?,
        () = shutdown_signal() => {
            leadership.release().await;
            return Ok(());
        }
    }
    tokio::spawn(async move { fence.keep_refreshing(fence_period).await });
    tracing::info!(%identity, "leading; starting the controller");
    telemetry.health.leading.store(true, Ordering::Relaxed);
    telemetry.metrics.set_leader(true);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut controller = tokio::spawn(kvbind_controller::run(client, Arc::new(arm), controller, telemetry.clone(), async move {
        let _ = stopped.await;
    }));
    tokio::select! {
        () = leadership.lost() => {
            // Another replica may be writing already: stop now, not after in-flight work.
            tracing::error!(%identity, "lost the leader lease; exiting");
            std::process::exit(1);
        }
        () = shutdown_signal() => {
            tracing::info!("shutting down");
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(20), &mut controller).await;
        }
        _ = &mut controller => {}
    }
    leadership.release().await;
    Ok(())
}

/// Waits until the fence has read the Lease as this replica's.
async fn fence_opened(fence: &LeaseFence) {
    while !fence.is_open() {
        if let Err(error) = fence.refresh().await {
            tracing::warn!(%error, "reading the leader lease");
        }
        if !fence.is_open() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Asks for a token now and every minute, for `/readyz`.
async fn check_credential(credential: Arc<dyn TokenCredential>, scope: String, telemetry: Telemetry) {
    loop {
        let ok = credential.get_token(&[scope.as_str()]).await.is_ok();
        if !ok {
            tracing::warn!("the Azure credential could not get a token");
        }
        telemetry.health.credential_ok.store(ok, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(if ok { 60 } else { 5 })).await;
    }
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
