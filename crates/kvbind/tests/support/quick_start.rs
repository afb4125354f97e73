//! The README's AKS quick start, then its upgrade and uninstall, run as written with the
//! operator launched as `launch` says; checks what the binding promised in the class and
//! in Azure, and that uninstalling leaves Azure as it was.

use std::path::PathBuf;

use kvbind_arm_sim::{Seed, Simulator};
use kvbind_e2e::{control_plane, repo_root};

use super::chart_operator::{ChartOperator, Launch};
use super::{OPERATOR_CLIENT_ID, kubectl_ok, run_ok, shell_blocks};

/// Runs it; `while_ready` looks at the operator once the first binding is Ready.
pub async fn run(launch: Launch, while_ready: impl FnOnce(&ChartOperator)) {
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
    let operator = ChartOperator::start(&launch, &sim, &workdir);
    run(&quick_start[1]).await.expect("policy");
    let status = run(&quick_start[2]).await.unwrap_or_else(|e| panic!("first binding: {e}; operator log: {}", operator_log(&workdir)));
    assert!(status.contains("identitybinding.kvbind.io/kvname-reader condition met"), "{status}");
    assert!(status.contains("default/kvname-reader  Ready=True"), "kvbind status shows it Ready:\n{status}");
    while_ready(&operator);

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

fn operator_log(workdir: &std::path::Path) -> String {
    std::fs::read_to_string(workdir.join("operator.log")).unwrap_or_default()
}
