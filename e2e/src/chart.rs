//! The operator as the chart installs it: its ServiceAccount, ClusterRole and
//! ClusterRoleBinding rendered by helm and applied in a test namespace, and a client with
//! that ServiceAccount's token, so a test proves the chart's RBAC is all the operator needs.

use crate::operator::SUBSCRIPTION;
use crate::{TestNamespace, client_with_token, control_plane, repo_root};

/// The chart's RBAC for release `kvbind-<namespace suffix>` with `sets` (helm `--set`
/// values), applied in `ns`, and a client with its ServiceAccount's token.
pub async fn operator_client(ns: &TestNamespace, sets: &[&str]) -> kube::Client {
    let release = format!("kvbind-{}", &ns.name[ns.name.len() - 8..]);
    let mut helm = std::process::Command::new(control_plane().bin_dir().join("helm"));
    helm.args(["template", &release]).arg(repo_root().join("charts/kvbind")).args([
        "--namespace",
        &ns.name,
        "--kube-version",
        "1.35.4",
        "--set",
        &format!("azure.subscriptions[0]={SUBSCRIPTION}"),
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/clusterrole.yaml",
        "--show-only",
        "templates/clusterrolebinding.yaml",
    ]);
    for set in sets {
        helm.args(["--set", set]);
    }
    helm.env("HELM_CACHE_HOME", std::env::temp_dir().join("kvbind-helm-cache"));
    helm.env("HELM_CONFIG_HOME", std::env::temp_dir().join("kvbind-helm-config"));
    let out = helm.output().expect("helm runs");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = ns.kubectl_apply_args(&String::from_utf8_lossy(&out.stdout), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = ns.kubectl(&["create", "token", &release]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    client_with_token(String::from_utf8_lossy(&token.stdout).trim()).await
}
