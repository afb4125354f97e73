//! `kvbind demo`: the whole flow on this machine. A real control plane (etcd,
//! kube-apiserver and kube-controller-manager on loopback), the ARM simulator seeded with
//! an AKS cluster's Azure side, and the operator, reconciling the examples; then the
//! bindings' conditions and the ARM calls it took, told beside the seed page's manual steps
//! ([`story`]).

mod story;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kvbind_arm_sim::{Seed, Simulator};
use kvbind_azure::client::http_client;
use kvbind_azure::{ArmClient, ArmClientConfig, CredentialConfig, LroSettings, build_credential};
use kvbind_controller::ControllerConfig;
use kvbind_local_cluster::ControlPlane;

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn step(text: &str) {
    println!("\n==> {text}");
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let out = plane.kubectl_ok(args)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The example folders the demo applies, in order.
const EXAMPLES: [&str; 3] = ["examples/policy", "examples/seed", "examples/adopt"];

/// Runs the demo from the repository at `root`.
pub async fn demo(root: &Path) -> anyhow::Result<()> {
    let path = |p: &str| -> PathBuf { root.join(p) };
    anyhow::ensure!(
        path("examples/demo").is_dir() && path("e2e/controlplane/build.sh").is_file(),
        "{} is not a kvbind checkout: run the demo from the repository root or pass --root",
        root.display()
    );
    step("starting etcd, kube-apiserver and kube-controller-manager on loopback (the first run builds them, a few minutes)");
    let plane = tokio::task::spawn_blocking({
        let root = root.to_owned();
        move || ControlPlane::start(&root)
    })
    .await?
    .context("starting the local control plane")?;
    println!("API server at {}", plane.server);

    step("installing the CRDs: kvbind's IdentityBinding and BindingPolicy, and the CSI driver's SecretProviderClass");
    plane.install_crds(root).context("installing the CRDs")?;

    step("starting the ARM simulator with examples/demo/arm-sim-seed.yaml");
    let seed_file = path("examples/demo/arm-sim-seed.yaml");
    let seed_text = std::fs::read_to_string(&seed_file).with_context(|| format!("reading {}", seed_file.display()))?;
    let seed = Seed::from_yaml(&seed_text).with_context(|| format!("reading {}", seed_file.display()))?;
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse()?).await.context("starting the ARM simulator")?;
    println!("ARM and token endpoint at {}", sim.url);

    step("creating two nodes, one per VM scale set (examples/demo/nodes.yaml)");
    kubectl(&plane, &["apply", "-f", &path("examples/demo/nodes.yaml").to_string_lossy()])?;

    step("starting the operator");
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig)?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)?;
    let endpoint: url::Url = sim.url.parse()?;
    let credential = build_credential(
        &CredentialConfig::ClientSecret { tenant_id: TENANT.into(), client_id: "kvbind-operator".into(), secret: "demo-only-secret".into() },
        &endpoint,
        http_client(None, Duration::from_secs(10))?,
    );
    let arm = ArmClient::new(
        &ArmClientConfig {
            endpoint,
            scope: format!("{}/.default", sim.url),
            extra_ca: None,
            request_timeout: Duration::from_secs(10),
            lro: LroSettings { poll_interval: Duration::from_secs(1), ..LroSettings::default() },
            observer: None,
            fence: None,
            pacing: kvbind_azure::PacingSettings::default(),
        },
        credential,
    )?;
    let config = ControllerConfig { subscriptions: vec![SUBSCRIPTION.to_owned()], batch_window: Duration::from_millis(500), ..ControllerConfig::default() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(kvbind_controller::run(client, Arc::new(arm), config, kvbind_controller::Telemetry::default(), async move {
        let _ = stopped.await;
    }));

    step(&format!("applying {}", EXAMPLES.join(", ")));
    for dir in EXAMPLES {
        print!("{}", kubectl(&plane, &["apply", "-n", "default", "-f", &path(dir).to_string_lossy()])?);
    }

    step("kubectl wait --for=condition=Ready identitybinding --all");
    let waited = tokio::task::spawn_blocking({
        let kubeconfig = plane.kubeconfig.clone();
        let kubectl = plane.bin_dir().join("kubectl");
        move || {
            std::process::Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["wait", "-n", "default", "--for=condition=Ready", "identitybinding", "--all", "--timeout=120s"])
                .status()
        }
    })
    .await??;

    step("kubectl get identitybindings");
    print!("{}", kubectl(&plane, &["get", "identitybindings", "-n", "default", "-o", "wide"])?);
    step("conditions");
    print!(
        "{}",
        kubectl(
            &plane,
            &[
                "get",
                "identitybindings",
                "-n",
                "default",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{range .status.conditions[*]}{\"  \"}{.type}={.status} {.reason}: {.message}{\"\\n\"}{end}{end}"
            ]
        )?
    );
    step("kvbind status");
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig)?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)?;
    let bindings =
        kube::Api::<kvbind_api::IdentityBinding>::namespaced(client, "default").list(&Default::default()).await.context("listing the IdentityBindings")?.items;
    for binding in &bindings {
        println!("{}", crate::status::render(binding));
    }
    step("what the SecretProviderClasses carry now");
    print!(
        "{}",
        kubectl(
            &plane,
            &[
                "get",
                "secretproviderclasses",
                "-n",
                "default",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}: useVMManagedIdentity={.spec.parameters.useVMManagedIdentity} userAssignedIdentityID={.spec.parameters.userAssignedIdentityID}{\"\\n\"}{end}"
            ]
        )?
    );
    let counters = sim.counters();
    step("the seed page's manual steps, and what kvbind did for each");
    print!("{}", story::render(&bindings, &counters.by_operation, counters.reads, counters.writes));
    step("ARM calls made (from the simulator's counters)");
    println!("reads {}, writes {}, token requests {}", counters.reads, counters.writes, counters.tokens);
    for (operation, count) in &counters.by_operation {
        println!("  {operation:<40} {count}");
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), operator).await;
    anyhow::ensure!(waited.success(), "not every binding became Ready");
    println!("\nEvery binding is Ready. The servers stop as this command exits.");
    Ok(())
}
