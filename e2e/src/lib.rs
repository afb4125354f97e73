//! What kvbind's end-to-end tests stand on: one real control plane per test run, shared
//! by every test through a fresh namespace each.
//!
//! The first test to ask starts the control plane (building it on the first run on a
//! machine) and installs the CRDs: kvbind's generated ones and the Secrets Store CSI
//! driver's upstream `SecretProviderClass` CRD. The servers stop, and their folder goes,
//! when the test process exits, whether the tests passed, failed or were interrupted.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kvbind_local_cluster::ControlPlane;

pub mod chart;
pub mod kubelet;
pub mod operator;
pub mod tenant;
pub mod world;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The upstream SecretProviderClass CRD, as the CSI driver ships it.
pub fn secret_provider_class_crd() -> PathBuf {
    repo_root().join("e2e/fixtures/secretproviderclass-crd.yaml")
}

/// One of the Go tools `e2e/tools/build.sh` builds (`argocd-health`, `actionlint`,
/// `promtool`), built on first use on a machine and cached like the control plane.
pub fn go_tool(name: &str) -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("e2e/tools/build.sh"))
        .arg(name)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("e2e/tools/build.sh {name} cannot run: {e}"));
    assert!(out.status.success(), "e2e/tools/build.sh {name} failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(name)
}

/// The control plane shared by every test in this process.
pub fn control_plane() -> &'static ControlPlane {
    static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let plane = PLANE.get_or_init(|| {
        let plane = ControlPlane::start(&repo_root()).map_err(|e| e.to_string())?;
        install_crds(&plane).map_err(|e| e.to_string())?;
        Ok(plane)
    });
    match plane {
        Ok(plane) => plane,
        Err(e) => panic!("the test control plane could not start: {e}"),
    }
}

/// The External Secrets Operator's CRDs the tests install (see `e2e/fixtures/README.md`).
pub const ESO_CRDS: [&str; 2] = ["external-secrets.io_secretstores.yaml", "external-secrets.io_externalsecrets.yaml"];

fn install_crds(plane: &ControlPlane) -> Result<(), kvbind_local_cluster::ControlPlaneError> {
    plane.install_crds(&repo_root())?;
    // ESO's, so that every operator a test starts watches SecretStores. The demo and the
    // operator process tests start kvbind on a control plane without them.
    let fixtures = repo_root().join("e2e/fixtures");
    let mut args = vec!["apply".to_owned(), "--server-side".to_owned()];
    for crd in ESO_CRDS {
        args.extend(["-f".to_owned(), fixtures.join(crd).to_string_lossy().into_owned()]);
    }
    plane.kubectl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    // `kubectl wait` fails at once, rather than waiting, while a new CRD has no status yet:
    // it is asked again until the deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let established =
        ["wait", "--for=condition=Established", "--timeout=10s", "crd/secretstores.external-secrets.io", "crd/externalsecrets.external-secrets.io"];
    while let Err(e) = plane.kubectl_ok(&established) {
        if std::time::Instant::now() > deadline {
            return Err(e);
        }
    }
    let policy = std::env::temp_dir().join(format!("kvbind-e2e-policy-{}.yaml", std::process::id()));
    std::fs::write(&policy, TEST_POLICY).map_err(|e| kvbind_local_cluster::ControlPlaneError::Write { what: "the test policy", source: e })?;
    let applied = plane.kubectl_ok(&["apply", "--server-side", "-f", &policy.to_string_lossy()]);
    let _ = std::fs::remove_file(&policy);
    applied?;
    Ok(())
}

/// Allows everything in the namespaces of [`TestNamespace::new`]: tests that are not
/// about policies run as on a single-tenant cluster. Policy tests make namespaces this
/// does not select ([`TestNamespace::unpoliced`]).
const TEST_POLICY: &str = "apiVersion: kvbind.io/v1alpha1
kind: BindingPolicy
metadata:
  name: e2e-allow-all
spec:
  namespaceSelector:
    matchLabels:
      kvbind.io/test: \"true\"
  vaults: [\"*\"]
  identityResourceGroups: [\"*\"]
  adoptableIdentities: [\"*\"]
  modes: [VMManagedIdentity, WorkloadIdentity, AKSIdentityBinding]
";

/// A client for the shared control plane, made for the calling test's runtime.
pub async fn admin_client() -> Client {
    let plane = control_plane();
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig is readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig is valid");
    Client::try_from(config).expect("client builds")
}

/// A client that authenticates with `token` (for example a ServiceAccount's), for the
/// calling test's runtime.
pub async fn client_with_token(token: &str) -> Client {
    let plane = control_plane();
    let mut kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig is readable");
    for user in &mut kubeconfig.auth_infos {
        if let Some(auth) = user.auth_info.as_mut() {
            auth.token = Some(token.to_owned().into());
        }
    }
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig is valid");
    Client::try_from(config).expect("client builds")
}

/// A namespace of its own for one test, on the shared control plane.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    /// An admin client.
    pub client: Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn new(prefix: &str) -> Self {
        Self::labelled(prefix, "kvbind.io/test").await
    }

    /// A fresh namespace that the tests' allow-all BindingPolicy does not select.
    pub async fn unpoliced(prefix: &str) -> Self {
        Self::labelled(prefix, "kvbind.io/policy-test").await
    }

    async fn labelled(prefix: &str, label: &str) -> Self {
        let client = admin_client().await;
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { label: "true" } }
        }))
        .expect("namespace literal");
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.expect("namespace is created");
        TestNamespace { name, client }
    }

    /// Runs kubectl in this namespace and returns what it did.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        control_plane().kubectl().arg("--namespace").arg(&self.name).args(args).output().expect("kubectl runs")
    }

    /// Runs kubectl off the async workers, for commands that wait (a blocked worker can
    /// hold tasks that other servers in the test process need, such as the simulator).
    pub async fn kubectl_off_runtime(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let namespace = self.name.clone();
        tokio::task::spawn_blocking(move || control_plane().kubectl().arg("--namespace").arg(namespace).args(args).output().expect("kubectl runs"))
            .await
            .expect("kubectl finishes")
    }

    /// Waits (up to [`DEADLINE`]) until the ServiceAccount controller has created the
    /// ServiceAccount `name` in this namespace.
    pub async fn wait_for_service_account(&self, name: &str) {
        let out = self.kubectl_off_runtime(&["wait", "--for=create", &format!("serviceaccount/{name}"), &format!("--timeout={}s", DEADLINE.as_secs())]).await;
        assert!(out.status.success(), "ServiceAccount {name} did not appear in {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
    }

    /// Runs `kubectl apply -f -` with `yaml` on stdin.
    pub fn kubectl_apply(&self, yaml: &str) -> Output {
        self.kubectl_apply_args(yaml, &[])
    }

    /// Runs `kubectl apply -f - <extra>` with `yaml` on stdin.
    pub fn kubectl_apply_args(&self, yaml: &str, extra: &[&str]) -> Output {
        use std::io::Write;
        let mut child = control_plane()
            .kubectl()
            .args(["--namespace", &self.name, "apply", "-f", "-"])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child.stdin.take().expect("stdin is piped").write_all(yaml.as_bytes()).expect("kubectl reads stdin");
        child.wait_with_output().expect("kubectl finishes")
    }
}

/// How long tests wait for a condition before they fail.
pub const DEADLINE: Duration = Duration::from_secs(60);
