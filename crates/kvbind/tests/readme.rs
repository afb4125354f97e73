//! The README's AKS quick start and its upgrade and uninstall commands, run exactly as
//! written (the shell blocks are read out of README.md) against the real API server with
//! the ARM simulator standing in for Azure. The operator runs as `kvbind run`, configured
//! from the Deployment the chart installed: its arguments, its environment and its
//! ServiceAccount's RBAC, plus what AKS's workload identity webhook would inject.
//!
//! Only the blocks that need Azure itself (`az ...`) are left out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use kvbind_arm_sim::{Seed, Simulator};
use kvbind_e2e::{control_plane, repo_root};
use serde_json::Value;

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The operator's client in `examples/demo/arm-sim-seed.yaml`.
const OPERATOR_CLIENT_ID: &str = "kvbind-operator";

/// The fenced ```sh blocks of the README section headed `heading`, dedented.
fn shell_blocks(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no section {heading:?}"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").map(|l| l.get(indent..).unwrap_or("").trim_end()).collect();
        blocks.push(body.join("\n") + "\n");
    }
    blocks
}

/// What the shell blocks run with: the control plane's kubectl and helm, this build's
/// kvbind, and the variables the quick start asks the reader to set.
fn shell(block: &str, kubeconfig: &Path) -> Output {
    let plane = control_plane();
    let kvbind_dir = Path::new(env!("CARGO_BIN_EXE_kvbind")).parent().expect("bin dir").to_owned();
    let path =
        std::env::join_paths([plane.bin_dir().to_owned(), kvbind_dir].into_iter().chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))
            .expect("PATH");
    let helm_home = std::env::temp_dir().join(format!("kvbind-readme-helm-{}", std::process::id()));
    Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(repo_root())
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_DATA_HOME", helm_home.join("data"))
        .env("SUBSCRIPTION_ID", SUBSCRIPTION)
        .env("OPERATOR_CLIENT_ID", OPERATOR_CLIENT_ID)
        .env("OIDC_ISSUER_URL", "https://oidc.prod-aks.azure.com/72f988bf-86f1-41af-91ab-2d7cd011db47/cluster/")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("bash runs")
}

fn run_ok(block: &str, kubeconfig: &Path) -> String {
    let out = shell(block, kubeconfig);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "this README block failed:\n{block}\n--- stdout\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn kubectl_ok(args: &[&str]) -> Vec<u8> {
    control_plane().kubectl_ok(args).unwrap_or_else(|e| panic!("{e}")).stdout
}

/// The operator, started as the chart's Deployment would start it in AKS.
struct ChartOperator {
    child: Child,
}

impl ChartOperator {
    fn start(sim: &Simulator, workdir: &Path) -> ChartOperator {
        let manifest = String::from_utf8(kubectl_ok(&["get", "deployment", "kvbind", "-n", "kvbind-system", "-o", "json"])).expect("UTF-8");
        let deployment: Value = serde_json::from_str(&manifest).expect("Deployment JSON");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let service_account = pod["serviceAccountName"].as_str().expect("a ServiceAccount");

        // In-cluster, the pod talks to the API server as its ServiceAccount.
        let token = kubectl_ok(&["create", "token", service_account, "-n", "kvbind-system"]);
        let admin = std::fs::read_to_string(&control_plane().kubeconfig).expect("kubeconfig");
        let kubeconfig = workdir.join("operator-kubeconfig");
        let token = String::from_utf8(token).expect("token").trim().to_owned();
        let replaced: String = admin
            .lines()
            .map(|l| if l.trim_start().starts_with("token:") { format!("    token: {token}") } else { l.to_owned() })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&kubeconfig, replaced).expect("write kubeconfig");

        // What AKS's workload identity webhook injects: a projected token for Azure AD.
        let federated = kubectl_ok(&["create", "token", service_account, "-n", "kvbind-system", "--audience", "api://AzureADTokenExchange"]);
        let token_file = workdir.join("azure-identity-token");
        std::fs::write(&token_file, federated).expect("write token");

        let mut command = Command::new(env!("CARGO_BIN_EXE_kvbind"));
        for arg in container["args"].as_array().expect("args") {
            command.arg(arg.as_str().expect("string arg"));
        }
        for variable in container["env"].as_array().expect("env") {
            let name = variable["name"].as_str().expect("name");
            let value = match (&variable["value"], variable["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
                (Value::String(value), _) => value.clone(),
                (_, Some("metadata.name")) => "kvbind-readme-0".to_owned(),
                (_, Some("metadata.namespace")) => "kvbind-system".to_owned(),
                other => panic!("the chart sets {name} from {other:?}, which this test cannot provide"),
            };
            command.env(name, value);
        }
        let admin_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let log = std::fs::File::create(workdir.join("operator.log")).expect("log file");
        let child = command
            .env("KUBECONFIG", &kubeconfig)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
            // The simulator stands in for Azure Resource Manager and the authority.
            .env("KVBIND_ARM_ENDPOINT", &sim.url)
            // Loopback here; the pod listens on every address of its own network namespace.
            .env("KVBIND_ADMIN_ADDRESS", format!("127.0.0.1:{admin_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kvbind run starts");
        ChartOperator { child }
    }
}

impl Drop for ChartOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_binding_the_quick_start_shows_is_the_one_it_applies() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme.find("The binding is this:").expect("the quick start shows its binding");
    let block = &readme[start..];
    let body: String = block
        .lines()
        .skip_while(|l| l.trim() != "```yaml")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .map(|l| format!("{}\n", l.get(3..).unwrap_or("")))
        .collect();
    let shown: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).expect("the shown binding is YAML");
    let file = std::fs::read_to_string(repo_root().join("examples/seed/identitybinding.yaml")).expect("example");
    let applied: serde_yaml_ng::Value = serde_yaml_ng::from_str(&file).expect("the example is YAML");
    assert_eq!(shown, applied, "the README shows a binding other than examples/seed/identitybinding.yaml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_works_as_written_and_uninstalling_restores_azure() {
    let plane = control_plane();
    let workdir: PathBuf = tempfile::tempdir().expect("temp dir").keep();
    let seed_text = std::fs::read_to_string(repo_root().join("examples/demo/arm-sim-seed.yaml")).expect("seed");
    let mut seed = Seed::from_yaml(&seed_text).expect("seed parses");
    // Step 1's federated credential: the operator's identity trusts its ServiceAccount's tokens.
    seed.clients.iter_mut().filter(|c| c.client_id == OPERATOR_CLIENT_ID).for_each(|c| c.federated = true);
    let sim = Simulator::start(&seed, "127.0.0.1:0".parse().expect("addr")).await.expect("simulator");
    // The cluster's nodes (AKS would have them).
    kubectl_ok(&["apply", "-f", &repo_root().join("examples/demo/nodes.yaml").to_string_lossy()]);
    let before = sim.snapshot();
    let kubeconfig = plane.kubeconfig.clone();

    let quick_start: Vec<String> = shell_blocks("AKS quick start").into_iter().filter(|b| !b.trim_start().starts_with("az ")).collect();
    assert_eq!(quick_start.len(), 3, "install, policy, first binding: {quick_start:#?}");
    assert!(quick_start[0].contains("helm install"), "{}", quick_start[0]);

    let run = |block: &str| {
        let block = block.to_owned();
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || run_ok(&block, &kubeconfig))
    };
    run(&quick_start[0]).await.expect("install");
    let operator = ChartOperator::start(&sim, &workdir);
    run(&quick_start[1]).await.expect("policy");
    let status = run(&quick_start[2]).await.expect("first binding");
    assert!(status.contains("identitybinding.kvbind.io/kvname-reader condition met"), "{status}");
    assert!(status.contains("default/kvname-reader  Ready=True"), "kvbind status shows it Ready:\n{status}");

    // What the binding promised, in the class and in Azure.
    let class = String::from_utf8(kubectl_ok(&[
        "get",
        "secretproviderclass",
        "azure-kvname-user-msi",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.parameters.userAssignedIdentityID}",
    ]))
    .expect("UTF-8");
    let client_id = String::from_utf8(kubectl_ok(&["get", "identitybinding", "kvname-reader", "-n", "default", "-o", "jsonpath={.status.identity.clientId}"]))
        .expect("UTF-8");
    assert!(!client_id.is_empty() && class == client_id, "class carries {class:?}, binding shows {client_id:?}");
    assert_ne!(sim.snapshot(), before, "Azure changed");

    let operating = shell_blocks("Operating");
    assert_eq!(operating.len(), 2, "upgrade, uninstall: {operating:#?}");
    assert!(operating[0].contains("helm upgrade") && operating[1].contains("helm uninstall"), "{operating:#?}");
    run(&operating[0]).await.expect("upgrade");
    run(&operating[1]).await.expect("uninstall");
    drop(operator);

    // The finalizers went only after kvbind had undone its work, so there is nothing to wait for.
    assert_eq!(sim.snapshot(), before, "uninstalling as the README says leaves Azure as it was");
    let left = String::from_utf8(kubectl_ok(&["get", "deployment", "-n", "kvbind-system", "-o", "name"])).expect("UTF-8");
    assert!(left.trim().is_empty(), "the release is gone: {left}");
}
