//! kvbind's controller running in the test process against the shared control plane and
//! a fresh ARM simulator, scoped to one test namespace and that test's nodes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use kvbind_arm_sim::{Seed, Simulator};
use kvbind_azure::client::http_client;
use kvbind_azure::{ArmClient, ArmClientConfig, CredentialConfig, LroSettings, build_credential};
use kvbind_controller::ControllerConfig;
use serde_json::json;
use tokio::sync::oneshot;

use crate::{DEADLINE, TestNamespace};

/// The subscription the test seeds use.
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
/// The tenant the test seeds use.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The node resource group of the simulated AKS cluster.
pub const NODE_GROUP: &str = "MC_rg-aks_aks_eastus";

/// What the operator paces itself to against a simulator seeded with `seed`: the seed's
/// rates where it shrinks Azure's (the operator's own are Azure's published ones).
pub fn pacing_for(seed: &Seed) -> kvbind_azure::PacingSettings {
    let rates = seed.rates.unwrap_or_default();
    let budget = |b: kvbind_arm_sim::rates::BucketSeed| kvbind_azure::Budget { size: b.size, per_second: b.per_second };
    kvbind_azure::PacingSettings {
        enabled: true,
        reserve: kvbind_azure::DEFAULT_RESERVE,
        reads: budget(rates.reads),
        writes: budget(rates.writes),
        deletes: budget(rates.deletes),
        compute_updates: budget(rates.compute_updates),
        identity_creates: budget(rates.identity_creates),
        identity_assignments: budget(rates.identity_assignments),
    }
}

/// A test namespace with a simulator and a running controller.
pub struct Scenario {
    /// The namespace.
    pub ns: TestNamespace,
    /// The simulator.
    pub sim: Simulator,
    /// The controller's metrics and health.
    pub telemetry: kvbind_controller::Telemetry,
    /// Runs the probe Pods of `spec.verifyAccess`, when the scenario proves access.
    _kubelet: Option<crate::kubelet::ProbeKubelet>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// The operator's client in the simulator: may do everything.
const OPERATOR_CLIENT: &str = "clients:\n  - clientId: kvbind-operator\n    secret: test-only-secret\n    actions: [\"*\"]\n";

/// A seed with the operator's client and `rest` (YAML under `subscriptions:` etc.).
pub fn seed(rest: &str) -> Seed {
    Seed::from_yaml(&format!("tenantId: {TENANT}\nlro: {{durationMs: 200, retryAfterSeconds: 0}}\n{OPERATOR_CLIENT}{rest}")).expect("seed parses")
}

/// A Node for test namespace `namespace` that runs on `provider_id`, as YAML.
pub fn node_manifest(namespace: &str, name: &str, provider_id: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {namespace}-{name}\n  labels:\n    kvbind.io/test: {namespace}\nspec:\n  providerID: {provider_id}\n"
    )
}

impl Scenario {
    /// Starts a simulator with `seed` and the controller for a new namespace.
    pub async fn start(prefix: &str, seed: Seed) -> Scenario {
        Self::start_with(prefix, seed, |_| {}).await
    }

    /// Like [`Scenario::start`], adjusting the controller's settings first.
    pub async fn start_with(prefix: &str, seed: Seed, adjust: impl FnOnce(&mut ControllerConfig)) -> Scenario {
        let ns = TestNamespace::new(prefix).await;
        let client = ns.client.clone();
        Self::start_in(ns, client, seed, adjust).await
    }

    /// Starts the controller for an existing namespace, talking to Kubernetes through
    /// `client` (for example with a ServiceAccount's token).
    pub async fn start_in(ns: TestNamespace, client: kube::Client, seed: Seed, adjust: impl FnOnce(&mut ControllerConfig)) -> Scenario {
        Self::start_with_simulator(ns, client, seed, |config, _| adjust(config)).await
    }

    /// Like [`Scenario::start_with`], proving access (`spec.verifyAccess`) as in a cluster:
    /// probe Pods in the test namespace, run by a [`crate::kubelet::ProbeKubelet`], and the
    /// simulator as Entra ID, IMDS and Key Vault.
    pub async fn start_verifying(prefix: &str, seed: Seed, adjust: impl FnOnce(&mut ControllerConfig)) -> Scenario {
        let ns = TestNamespace::new(prefix).await;
        let client = ns.client.clone();
        Self::start_verifying_in(ns, client, seed, adjust).await
    }

    /// Like [`Scenario::start_verifying`] in an existing namespace, the controller talking
    /// to Kubernetes through `client`; the probe Pods' kubelet uses the namespace's own.
    pub async fn start_verifying_in(ns: TestNamespace, client: kube::Client, seed: Seed, adjust: impl FnOnce(&mut ControllerConfig)) -> Scenario {
        let kubelet_client = ns.client.clone();
        let namespace = ns.name.clone();
        let mut scenario = Self::start_with_simulator(ns, client, seed, |config, sim| {
            let origin: url::Url = sim.url.parse().expect("simulator URL");
            config.cloud.authority_host = origin.clone();
            config.access_probe = kvbind_controller::config::AccessProbeConfig {
                namespace: Some(namespace.clone()),
                image: "kvbind:test".to_owned(),
                data_plane_origin: Some(origin),
            };
            adjust(config);
        })
        .await;
        scenario._kubelet = Some(crate::kubelet::ProbeKubelet::start(kubelet_client, &namespace, &scenario.sim.url));
        scenario
    }

    async fn start_with_simulator(ns: TestNamespace, client: kube::Client, seed: Seed, adjust: impl FnOnce(&mut ControllerConfig, &Simulator)) -> Scenario {
        let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("simulator starts");
        let endpoint: url::Url = sim.url.parse().expect("url");
        let http = http_client(None, Duration::from_secs(5)).expect("http client");
        let credential = build_credential(
            &CredentialConfig::ClientSecret { tenant_id: TENANT.into(), client_id: "kvbind-operator".into(), secret: "test-only-secret".into() },
            &endpoint,
            http,
        );
        let telemetry = kvbind_controller::Telemetry::default();
        let arm = ArmClient::new(
            &ArmClientConfig {
                endpoint,
                scope: format!("{}/.default", sim.url),
                extra_ca: None,
                // Short, so the fault tests' timeouts and endless operations end quickly.
                request_timeout: Duration::from_secs(5),
                lro: LroSettings { poll_interval: Duration::from_millis(100), max_poll_interval: Duration::from_secs(1), deadline: Duration::from_secs(10) },
                observer: Some(telemetry.metrics.clone()),
                fence: None,
                pacing: pacing_for(&seed),
            },
            credential,
        )
        .expect("ARM client");
        let mut config = ControllerConfig {
            subscriptions: vec![SUBSCRIPTION.to_owned()],
            batch_window: Duration::from_millis(300),
            namespace: Some(ns.name.clone()),
            node_selector: Some(format!("kvbind.io/test={}", ns.name)),
            ..ControllerConfig::default()
        };
        adjust(&mut config, &sim);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kvbind_controller::run(client, Arc::new(arm), config, telemetry.clone(), async move {
            let _ = stopped.await;
        }));
        Scenario { ns, sim, telemetry, _kubelet: None, stop: Some(stop), task }
    }

    /// Creates a Node for this test that runs on `provider_id`, with extra labels.
    pub async fn node(&self, name: &str, provider_id: &str, labels: &[(&str, &str)]) {
        let mut all = serde_json::Map::new();
        all.insert("kvbind.io/test".into(), json!(self.ns.name));
        for (k, v) in labels {
            all.insert((*k).into(), json!(v));
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("{}-{name}", self.ns.name), "labels": all},
            "spec": {"providerID": provider_id},
        }))
        .expect("node literal");
        Api::<Node>::all(self.ns.client.clone()).create(&PostParams::default(), &node).await.expect("node is created");
    }

    /// A VMSS Uniform node's providerID.
    pub fn vmss_node(vmss: &str, instance: u32) -> String {
        format!(
            "azure:///subscriptions/{SUBSCRIPTION}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{instance}",
            NODE_GROUP.to_ascii_lowercase()
        )
    }

    /// Applies YAML in the namespace, failing the test if kubectl does.
    pub fn apply(&self, yaml: &str) {
        let out = self.ns.kubectl_apply(yaml);
        assert!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `kubectl wait --for=condition=<condition> identitybinding/<name>`, off the async
    /// workers so the controller keeps running meanwhile.
    pub async fn wait_condition(&self, binding: &str, condition: &str) {
        let timeout = format!("--timeout={}s", DEADLINE.as_secs());
        let args = vec!["wait".to_owned(), format!("--for=condition={condition}"), format!("identitybinding/{binding}"), timeout];
        let namespace = self.ns.name.clone();
        let out =
            tokio::task::spawn_blocking(move || crate::control_plane().kubectl().arg("--namespace").arg(namespace).args(args).output().expect("kubectl runs"))
                .await
                .expect("kubectl wait finishes");
        assert!(
            out.status.success(),
            "{binding} never became {condition}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&self.ns.kubectl(&["get", "identitybinding", binding, "-o", "yaml"]).stdout)
        );
    }

    /// Waits until every IdentityBinding in the namespace has `condition`.
    pub async fn wait_all(&self, condition: &str) {
        let args = vec![
            "wait".to_owned(),
            format!("--for=condition={condition}"),
            "identitybinding".to_owned(),
            "--all".to_owned(),
            format!("--timeout={}s", DEADLINE.as_secs() * 2),
        ];
        let namespace = self.ns.name.clone();
        let out =
            tokio::task::spawn_blocking(move || crate::control_plane().kubectl().arg("--namespace").arg(namespace).args(args).output().expect("kubectl runs"))
                .await
                .expect("kubectl wait finishes");
        assert!(out.status.success(), "not every binding became {condition}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The reasons of the Events about `object` (a name in this namespace).
    pub fn event_reasons(&self, object: &str) -> Vec<String> {
        let selector = format!("involvedObject.name={object}");
        let out = self.ns.kubectl(&["get", "events", "--field-selector", &selector, "-o", "jsonpath={.items[*].reason}"]);
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
    }

    /// A field of a resource, by jsonpath.
    pub fn jsonpath(&self, resource: &str, path: &str) -> String {
        let out = self.ns.kubectl(&["get", resource, "-o", &format!("jsonpath={path}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `check` holds, or fails the test after the deadline.
    pub async fn eventually(&self, what: &str, mut check: impl FnMut(&Scenario) -> bool) {
        let start = tokio::time::Instant::now();
        while !check(self) {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the controller and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.task.abort();
    }
}
