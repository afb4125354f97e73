//! The operator, started as the chart's Deployment would start it in AKS: its arguments,
//! its environment, its ServiceAccount's token, plus what AKS's workload identity webhook
//! injects. As a process of this build's binary, or in the image under the Deployment's
//! security context.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use kvbind_arm_sim::Simulator;
use kvbind_e2e::control_plane;
use serde_json::Value;

use super::{TENANT, kubectl_ok};

/// How the operator runs.
pub enum Launch {
    /// `kvbind run` from this build.
    Binary,
    /// The image `image/build` made, run by podman.
    Image {
        /// `localhost/kvbind:VERSION`.
        reference: String,
    },
}

pub struct ChartOperator {
    child: Child,
    container: Option<String>,
}

/// Where the image sees the files the kubelet would mount.
const MOUNT: &str = "/var/run/kvbind";

impl ChartOperator {
    pub fn start(launch: &Launch, sim: &Simulator, workdir: &Path) -> ChartOperator {
        let manifest = String::from_utf8(kubectl_ok(&["get", "deployment", "kvbind", "-n", "kvbind-system", "-o", "json"])).expect("UTF-8");
        let deployment: Value = serde_json::from_str(&manifest).expect("Deployment JSON");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let service_account = pod["serviceAccountName"].as_str().expect("a ServiceAccount");

        // In-cluster, the pod talks to the API server as its ServiceAccount.
        let token = kubectl_ok(&["create", "token", service_account, "-n", "kvbind-system"]);
        let admin = std::fs::read_to_string(&control_plane().kubeconfig).expect("kubeconfig");
        let token = String::from_utf8(token).expect("token").trim().to_owned();
        let files = match launch {
            Launch::Binary => workdir.to_string_lossy().into_owned(),
            Launch::Image { .. } => MOUNT.to_owned(),
        };
        let replaced: String = admin
            .lines()
            .map(|l| {
                let line = l.trim_start();
                if line.starts_with("token:") {
                    format!("    token: {token}")
                } else if let Some(ca) = line.strip_prefix("certificate-authority:") {
                    // The cluster's CA, where the pod (or the process) finds it.
                    std::fs::copy(ca.trim(), workdir.join("ca.crt")).expect("copy the CA");
                    format!("    certificate-authority: {files}/ca.crt")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(workdir.join("operator-kubeconfig"), replaced).expect("write kubeconfig");
        // What AKS's workload identity webhook injects: a projected token for Azure AD.
        let federated = kubectl_ok(&["create", "token", service_account, "-n", "kvbind-system", "--audience", "api://AzureADTokenExchange"]);
        std::fs::write(workdir.join("azure-identity-token"), federated).expect("write token");

        let mut env: Vec<(String, String)> = Vec::new();
        for variable in container["env"].as_array().expect("env") {
            let name = variable["name"].as_str().expect("name");
            let value = match (&variable["value"], variable["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
                (Value::String(value), _) => value.clone(),
                (_, Some("metadata.name")) => "kvbind-readme-0".to_owned(),
                (_, Some("metadata.namespace")) => "kvbind-system".to_owned(),
                other => panic!("the chart sets {name} from {other:?}, which this test cannot provide"),
            };
            env.push((name.to_owned(), value));
        }
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        env.extend([
            ("KUBECONFIG".to_owned(), format!("{files}/operator-kubeconfig")),
            ("AZURE_TENANT_ID".to_owned(), TENANT.to_owned()),
            ("AZURE_FEDERATED_TOKEN_FILE".to_owned(), format!("{files}/azure-identity-token")),
            // The simulator stands in for Azure Resource Manager and the authority.
            ("KVBIND_ARM_ENDPOINT".to_owned(), sim.url.clone()),
            // Loopback here; the pod listens on every address of its own network namespace.
            ("KVBIND_ADMIN_ADDRESS".to_owned(), format!("127.0.0.1:{admin_port}")),
        ]);
        let args: Vec<String> = container["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("string arg").to_owned()).collect();

        let log = std::fs::File::create(workdir.join("operator.log")).expect("log file");
        let (mut command, name) = match launch {
            Launch::Binary => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_kvbind"));
                command.args(&args).envs(env);
                (command, None)
            }
            Launch::Image { reference } => {
                let name = format!("kvbind-test-{}", std::process::id());
                // The files the kubelet would mount are readable by the pod's user only
                // through their mode, as a projected token is.
                for file in ["operator-kubeconfig", "azure-identity-token", "ca.crt"] {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(workdir.join(file), std::fs::Permissions::from_mode(0o644)).expect("chmod");
                }
                let mut command = podman_run();
                command.args(["--name", &name, "--network", "host"]);
                command.args(security_context_flags(&pod["securityContext"], &container["securityContext"]));
                command.args(resource_flags(&container["resources"]));
                command.args(["-v", &format!("{}:{MOUNT}:ro", workdir.display())]);
                for (key, value) in &env {
                    command.args(["--env", &format!("{key}={value}")]);
                }
                command.arg(reference).args(&args);
                (command, Some(name))
            }
        };
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("the operator starts");
        ChartOperator { child, container: name }
    }

    /// How the host sees the operator's process (`podman top`): the host user, the
    /// container user, its effective capabilities and its seccomp mode, one line a process.
    pub fn container_process(&self) -> Option<Vec<Vec<String>>> {
        let name = self.container.as_ref()?;
        let out = podman().args(["top", name, "huser", "user", "capeff", "seccomp"]).output().expect("podman top");
        assert!(out.status.success(), "podman top: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        Some(text.lines().skip(1).map(|l| l.split_whitespace().map(str::to_owned).collect()).collect())
    }
}

impl Drop for ChartOperator {
    fn drop(&mut self) {
        if let Some(name) = &self.container {
            let _ = podman().args(["rm", "--force", "--time", "0", name]).output();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// podman, with the OCI runtime `image/test` found working on this machine.
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    if let Ok(runtime) = std::env::var("KVBIND_PODMAN_RUNTIME") {
        command.args(["--runtime", &runtime]);
    }
    command
}

/// `podman run --rm` of a local image, with this process's limits.
pub fn podman_run() -> Command {
    let mut command = podman();
    command.args(["run", "--rm", "--pull", "never"]).args(ulimit_flags());
    command
}

/// The Deployment's pod and container security contexts as podman flags. A field this
/// does not know fails the test, so the image is never run more loosely than the chart
/// says without anyone noticing.
pub fn security_context_flags(pod: &Value, container: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    let (mut user, mut group) = (None, None);
    for (context, fields) in [("pod", pod), ("container", container)] {
        for (key, value) in fields.as_object().into_iter().flatten() {
            match (key.as_str(), value) {
                ("runAsUser", Value::Number(n)) => user = Some(n.to_string()),
                ("runAsGroup", Value::Number(n)) => group = Some(n.to_string()),
                ("fsGroup", Value::Number(n)) => flags.extend(["--group-add".to_owned(), n.to_string()]),
                // Checked below: the user must not be root.
                ("runAsNonRoot", Value::Bool(true)) => {}
                // podman's default profile is the runtime default.
                ("seccompProfile", profile) if profile["type"] == "RuntimeDefault" => {}
                ("allowPrivilegeEscalation", Value::Bool(false)) => flags.push("--security-opt=no-new-privileges".to_owned()),
                // Kubernetes mounts no tmpfs on a read-only root; podman would.
                ("readOnlyRootFilesystem", Value::Bool(true)) => flags.extend(["--read-only".to_owned(), "--read-only-tmpfs=false".to_owned()]),
                ("capabilities", caps) if caps["drop"] == serde_json::json!(["ALL"]) && caps.get("add").is_none() => {
                    flags.push("--cap-drop=all".to_owned());
                }
                other => panic!("the chart's {context} securityContext sets {other:?}, which this test does not map to podman"),
            }
        }
    }
    let user = user.expect("the chart names the user to run as");
    assert_ne!(user, "0", "runAsNonRoot with runAsUser 0");
    flags.extend(["--user".to_owned(), format!("{user}:{}", group.unwrap_or_else(|| user.clone()))]);
    flags
}

/// The container's memory limit, as the kubelet would set it.
fn resource_flags(resources: &Value) -> Vec<String> {
    match resources["limits"]["memory"].as_str() {
        Some(limit) => vec![format!("--memory={}", limit.trim_end_matches("i").to_lowercase())],
        None => Vec::new(),
    }
}

/// Podman raises a container's open-file and process limits to its own maxima, which a
/// sandbox may not let the runtime set; Kubernetes leaves them to the runtime. The operator
/// needs far fewer than these, which any machine allows (`image/test` probes with the same).
fn ulimit_flags() -> [&'static str; 2] {
    ["--ulimit=nofile=4096:4096", "--ulimit=nproc=4096:4096"]
}
