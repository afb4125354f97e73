//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and
//! kube-controller-manager built from the Go modules pinned in `e2e/controlplane`, with
//! RBAC on, plus the matching `kubectl`.
//!
//! [`ControlPlane::start`] builds the binaries on first use (cached outside `target/`),
//! writes certificates and an admin kubeconfig to a temporary folder, and starts the
//! servers under a small supervisor that kills them and removes the folder as soon as
//! this process goes away, however it goes: a failed test, a panic or a signal.
//!
//! The controller-manager runs the controllers a cluster relies on for kvbind's objects
//! (see [`CONTROLLERS`]), so namespaces get their `default` ServiceAccount, deleted
//! namespaces empty out and owned objects are collected, as on AKS.

mod certs;
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use process::Supervised;

/// Why the control plane could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// Building the Go binaries failed.
    #[error("building the control plane with {script}: {detail}")]
    Build {
        /// The build script.
        script: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Writing certificates, keys or config failed.
    #[error("writing {what}: {source}")]
    Write {
        /// What was being written.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Generating certificates failed.
    #[error("generating certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// A server process could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A server did not become ready in time.
    #[error("{server} was not ready after {waited:?}; its log is in {log}")]
    NotReady {
        /// The server that was waited for.
        server: &'static str,
        /// How long it was waited for.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
    },
    /// kubectl failed.
    #[error("kubectl {args}: {stderr}")]
    Kubectl {
        /// The arguments given.
        args: String,
        /// What kubectl printed on stderr.
        stderr: String,
    },
}

/// The controllers kube-controller-manager runs here: those a cluster relies on for the
/// objects kvbind's users and tests create. Without a kubelet or a cloud, the rest
/// (nodes, endpoints, replica sets, ...) would only add load.
pub const CONTROLLERS: &[&str] = &[
    // Every namespace gets its `default` ServiceAccount; Pods are refused without one.
    "serviceaccount-controller",
    // Legacy token Secrets and their cleanup, as the API server expects them.
    "serviceaccount-token-controller",
    // The `kube-root-ca.crt` ConfigMap projected service-account volumes read.
    "root-ca-certificate-publisher-controller",
    // A deleted namespace is emptied and then removed.
    "namespace-controller",
    // Objects with owner references go with their owners.
    "garbage-collector-controller",
    // ClusterRoles labelled to aggregate into admin, edit and view do (the chart's tenant roles).
    "clusterrole-aggregation-controller",
];

/// A running etcd, kube-apiserver and kube-controller-manager, and the files to talk to them.
pub struct ControlPlane {
    workdir: PathBuf,
    bin_dir: PathBuf,
    apiserver_args: Vec<String>,
    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub server: String,
    /// The admin's kubeconfig (cluster-admin through `system:masters`).
    pub kubeconfig: PathBuf,
    servers: Vec<Supervised>,
}

/// How long kube-apiserver may take to answer `/readyz` with ok, and the
/// controller-manager to create the `default` namespace's ServiceAccount.
const READY_DEADLINE: Duration = Duration::from_secs(90);

impl ControlPlane {
    /// Builds (first time only) and starts a control plane. `repo_root` is the kvbind
    /// checkout, where `e2e/controlplane/build.sh` lives.
    pub fn start(repo_root: &Path) -> Result<Self, ControlPlaneError> {
        let bin_dir = build(repo_root)?;
        let workdir = tempfile::Builder::new()
            .prefix("kvbind-control-plane-")
            .tempdir()
            .map_err(|source| ControlPlaneError::Write { what: "the work folder", source })?
            .keep();
        let pki = certs::write(&workdir)?;
        let etcd_client = process::free_port();
        let etcd_peer = process::free_port();
        let apiserver_port = process::free_port();

        // The etcd supervisor also owns the work folder: it removes it once both are gone.
        let etcd = Supervised::spawn(
            "etcd",
            &bin_dir.join("etcd"),
            &[
                "--name=default".into(),
                format!("--data-dir={}", workdir.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync".into(),
                "--log-level=error".into(),
            ],
            &workdir,
            Some(&workdir),
        )?;
        let apiserver_args: Vec<String> = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={apiserver_port}"),
            format!("--cert-dir={}", workdir.display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            format!("--token-auth-file={}", pki.token_file.display()),
            "--authorization-mode=Node,RBAC".into(),
            format!("--service-account-key-file={}", pki.service_account_public.display()),
            format!("--service-account-signing-key-file={}", pki.service_account_private.display()),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--endpoint-reconciler-type=none".into(),
            "--enable-priority-and-fairness=false".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--v=0".into(),
        ];
        let apiserver = Supervised::spawn("kube-apiserver", &bin_dir.join("kube-apiserver"), &apiserver_args, &workdir, None)?;
        let server = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig = workdir.join("kubeconfig");
        std::fs::write(&kubeconfig, certs::kubeconfig(&server, &pki)).map_err(|source| ControlPlaneError::Write { what: "the kubeconfig", source })?;
        let mut plane = ControlPlane { workdir, bin_dir, apiserver_args, server, kubeconfig, servers: vec![apiserver, etcd] };
        plane.wait_ready()?;
        let controller_manager = plane.start_controller_manager(&pki)?;
        plane.servers.push(controller_manager);
        plane.wait_for_default_service_account()?;
        Ok(plane)
    }

    /// Kills kube-apiserver (SIGKILL, as a crash would) and starts it again on the same port
    /// and etcd, waiting until it is ready. Watches from before get `410 Gone` and relist.
    pub fn restart_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        // The first supervised server is the API server.
        self.servers.remove(0).stop();
        let apiserver = Supervised::spawn("kube-apiserver", &self.bin_dir.join("kube-apiserver"), &self.apiserver_args, &self.workdir, None)?;
        self.servers.insert(0, apiserver);
        self.wait_ready()
    }

    /// Starts kube-controller-manager with [`CONTROLLERS`]. Each controller acts with its
    /// own ServiceAccount's token, as in a cluster, so RBAC sees what it would there.
    fn start_controller_manager(&self, pki: &certs::Pki) -> Result<Supervised, ControlPlaneError> {
        let port = process::free_port();
        let args = vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--controllers={}", CONTROLLERS.join(",")),
            "--use-service-account-credentials=true".into(),
            format!("--service-account-private-key-file={}", pki.service_account_private.display()),
            format!("--root-ca-file={}", pki.ca_cert.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", self.workdir.join("controller-manager").display()),
            "--profiling=false".into(),
            "--v=0".into(),
        ];
        Supervised::spawn("kube-controller-manager", &self.bin_dir.join("kube-controller-manager"), &args, &self.workdir, None)
    }

    /// Waits until the ServiceAccount controller has given `default` its ServiceAccount:
    /// from then on namespaces behave as a cluster's do.
    fn wait_for_default_service_account(&self) -> Result<(), ControlPlaneError> {
        let start = Instant::now();
        while !self.kubectl().args(["get", "serviceaccount", "default", "-n", "default"]).output().is_ok_and(|o| o.status.success()) {
            if start.elapsed() > READY_DEADLINE {
                return Err(ControlPlaneError::NotReady {
                    server: "kube-controller-manager",
                    waited: READY_DEADLINE,
                    log: self.workdir.join("kube-controller-manager.log"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The folder with the `kubectl`, `kube-apiserver`, `kube-controller-manager` and `etcd` binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The folder with the certificates, kubeconfig and logs.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// A `kubectl` command that talks to this control plane as admin.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Runs kubectl and returns its output, or an error with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<Output, ControlPlaneError> {
        let output = self.kubectl().args(args).output().map_err(|source| ControlPlaneError::Spawn { binary: "kubectl", source })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(ControlPlaneError::Kubectl { args: args.join(" "), stderr: String::from_utf8_lossy(&output.stderr).trim_end().to_owned() })
        }
    }

    /// Installs kvbind's CRDs (`crds/`) and the Secrets Store CSI driver's
    /// SecretProviderClass CRD, and waits until the API server serves them.
    pub fn install_crds(&self, repo_root: &Path) -> Result<(), ControlPlaneError> {
        let crds = repo_root.join("crds");
        let spc = repo_root.join("e2e/fixtures/secretproviderclass-crd.yaml");
        self.kubectl_ok(&["apply", "--server-side", "-f", &crds.to_string_lossy(), "-f", &spc.to_string_lossy()])?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/identitybindings.kvbind.io",
            "crd/bindingpolicies.kvbind.io",
            "crd/secretproviderclasses.secrets-store.csi.x-k8s.io",
        ])?;
        Ok(())
    }

    fn wait_ready(&self) -> Result<(), ControlPlaneError> {
        let start = Instant::now();
        loop {
            let ready = self.kubectl().args(["get", "--raw", "/readyz"]).output().is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ok"));
            if ready {
                return Ok(());
            }
            if start.elapsed() > READY_DEADLINE {
                return Err(ControlPlaneError::NotReady { server: "kube-apiserver", waited: READY_DEADLINE, log: self.workdir.join("kube-apiserver.log") });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Runs `e2e/controlplane/build.sh` and returns the folder it prints.
fn build(repo_root: &Path) -> Result<PathBuf, ControlPlaneError> {
    let script = repo_root.join("e2e/controlplane/build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| ControlPlaneError::Build { script: script.clone(), detail: e.to_string() })?;
    if !output.status.success() {
        return Err(ControlPlaneError::Build { script, detail: format!("exited with {}", output.status) });
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(PathBuf::from(dir))
}
