//! The Helm chart: it renders, its schema refuses bad values, its manifests pass the real
//! API server's validation, and its RBAC is all the operator needs.

use std::process::Output;

use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::{TestNamespace, client_with_token, control_plane, repo_root};

use kvbind_e2e::world::{binding, class, cluster, cluster_with_secrets};

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";

fn helm_template(release: &str, namespace: &str, sets: &[&str]) -> Output {
    let mut command = std::process::Command::new(control_plane().bin_dir().join("helm"));
    command.args(["template", release]).arg(repo_root().join("charts/kvbind")).args([
        "--namespace",
        namespace,
        "--kube-version",
        "1.35.4",
        "--set",
        &format!("azure.subscriptions[0]={SUBSCRIPTION}"),
    ]);
    for set in sets {
        command.args(["--set", set]);
    }
    command.env("HELM_CACHE_HOME", std::env::temp_dir().join("kvbind-helm-cache"));
    command.env("HELM_CONFIG_HOME", std::env::temp_dir().join("kvbind-helm-config"));
    command.output().expect("helm runs")
}

fn rendered(release: &str, namespace: &str, sets: &[&str]) -> String {
    let out = helm_template(release, namespace, sets);
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Applies the RBAC documents of the chart as rendered (`all`) and returns a client with
/// the release's ServiceAccount token, which has only those rights.
async fn client_of_the_charts_rbac(ns: &TestNamespace, release: &str, all: &str) -> kube::Client {
    let rbac = only(all, &["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
    let out = ns.kubectl_apply_args(&rbac, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = ns.kubectl(&["create", "token", release]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    client_with_token(String::from_utf8_lossy(&token.stdout).trim()).await
}

/// The documents of `yaml` whose kind is one of `kinds`.
fn only(yaml: &str, kinds: &[&str]) -> String {
    yaml.split("\n---").filter(|doc| kinds.iter().any(|k| doc.contains(&format!("\nkind: {k}\n")))).collect::<Vec<_>>().join("\n---")
}

#[tokio::test]
async fn the_chart_renders_and_passes_server_side_validation() {
    let ns = TestNamespace::new("chart").await;
    let all = rendered(
        "kvbind",
        &ns.name,
        &[
            "networkPolicy.enabled=true",
            "azure.clientId=11111111-1111-1111-1111-111111111111",
            "defaultPolicy.vaults={/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-vaults}",
            "defaultPolicy.maxAzureWritesPerHour=600",
            "defaultPolicy.maxRoleAssignmentsPerNamespace=400",
            "defaultPolicy.maxBindingsPerNamespace=0",
            "controller.accessVerification.enabled=true",
        ],
    );
    for kind in [
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "BindingPolicy",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(all.contains(&format!("kind: {kind}\n")), "{kind} missing from the chart");
    }
    assert!(all.contains("azure.workload.identity/client-id: \"11111111-1111-1111-1111-111111111111\""));
    assert!(all.contains("readOnlyRootFilesystem: true") && all.contains("runAsNonRoot: true"));
    assert!(all.contains("  maxAzureWritesPerHour: 600\n") && all.contains("  maxRoleAssignmentsPerNamespace: 400\n"), "the default policy's quotas");
    assert!(all.contains("  maxBindingsPerNamespace: 0\n"), "0 is a quota");
    assert!(!all.contains("maxIdentitiesPerNamespace"), "a quota left null is not written");
    let out = ns.kubectl_apply_args(&all, &["--dry-run=server"]);
    assert!(out.status.success(), "the server refused the chart: {}", String::from_utf8_lossy(&out.stderr));

    let with_monitor =
        rendered("kvbind", &ns.name, &["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true"]);
    assert!(with_monitor.contains("kind: ServiceMonitor") && with_monitor.contains("kind: PrometheusRule"));
    // The dashboard's ConfigMap carries files/dashboard.json as it is, and the server takes it.
    let dashboard = only(&with_monitor, &["ConfigMap"]);
    let map: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(dashboard.trim_start_matches("\n---").trim_start_matches("---")).expect("the dashboard ConfigMap is YAML");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"), "Grafana's sidecar label");
    let json: serde_json::Value = serde_json::from_str(map["data"]["kvbind.json"].as_str().expect("kvbind.json")).expect("the dashboard is JSON");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("charts/kvbind/files/dashboard.json")).expect("dashboard")).expect("JSON");
    assert_eq!(json, file);
    let out = ns.kubectl_apply_args(&dashboard, &["--dry-run=server"]);
    assert!(out.status.success(), "the server refused the dashboard: {}", String::from_utf8_lossy(&out.stderr));
    let crd = std::fs::read_to_string(repo_root().join("charts/kvbind/crds/identitybindings.kvbind.io.yaml")).expect("chart CRD");
    assert_eq!(crd, std::fs::read_to_string(repo_root().join("crds/identitybindings.kvbind.io.yaml")).expect("CRD"), "one source for the CRD");
}

#[tokio::test]
async fn the_values_schema_refuses_bad_values() {
    for (set, words) in [
        ("replicaCount=0", "replicaCount"),
        ("azure.credential=password", "credential"),
        ("logFormat=xml", "logFormat"),
        ("azure.subscriptions[0]=not-a-guid", "subscriptions"),
        ("controller.resyncSeconds=1", "resyncSeconds"),
        ("unknownValue=1", "unknownValue"),
        ("defaultPolicy.vaults={not-an-id}", "vaults"),
        ("defaultPolicy.modes={PodIdentity}", "modes"),
        ("defaultPolicy.maxAzureWritesPerHour=0", "maxAzureWritesPerHour"),
        ("controller.oidcIssuerUrl=http://issuer", "oidcIssuerUrl"),
    ] {
        let out = helm_template("kvbind", "kvbind-system", &[set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains(words), "{set}: {stderr}");
    }
    let mut command = std::process::Command::new(control_plane().bin_dir().join("helm"));
    let out = command.args(["template", "kvbind", "--kube-version", "1.35.4"]).arg(repo_root().join("charts/kvbind")).output().expect("helm runs");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("azure.subscriptions"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_needs_no_permission_beyond_the_charts_rbac() {
    let ns = TestNamespace::new("chart-rbac").await;
    let release = format!("kvbind-{}", &ns.name[ns.name.len() - 8..]);
    let client = client_of_the_charts_rbac(&ns, &release, &rendered(&release, &ns.name, &[])).await;

    let s = Scenario::start_in(ns, client, seed(&cluster(&["pool-vmss"], &[], false)), |_| {}).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply(&class("app", &[("db-password", "secret", 0)]));
    s.apply(&binding("app", "app-reader", &["app"], ""));
    s.wait_condition("app", "Ready").await;
    s.eventually("events written under the chart's RBAC", |s| s.event_reasons("app").iter().any(|r| r == "IdentityCreated")).await;
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "app", "--wait=true", "--timeout=60s"]).await;
    assert!(out.status.success(), "the finalizer was removed under the chart's RBAC: {}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proving_access_needs_no_permission_beyond_the_charts_rbac_with_access_verification_on() {
    let ns = TestNamespace::new("chart-probe").await;
    let release = format!("kvbind-{}", &ns.name[ns.name.len() - 8..]);
    let sets = ["controller.accessVerification.enabled=true"];
    let all = rendered(&release, &ns.name, &sets);
    assert!(all.contains("name: KVBIND_PROBE_IMAGE"), "the operator is told its own image");
    let client = client_of_the_charts_rbac(&ns, &release, &all).await;

    let text = cluster_with_secrets(&["pool-vmss"], false, &["db-password"]);
    let s =
        Scenario::start_verifying_in(ns, client, seed(&text), |config| config.oidc_issuer = Some("https://kubernetes.default.svc.cluster.local".to_owned()))
            .await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n");
    s.apply(&class("vm", &[("db-password", "secret", 0)]));
    s.apply(&class("wi", &[("db-password", "secret", 0)]));
    s.apply(&binding("vm", "vm-reader", &["vm"], "  verifyAccess: true\n"));
    s.apply(&binding("wi", "wi-reader", &["wi"], "  mode: WorkloadIdentity\n  serviceAccount: {name: app}\n  verifyAccess: true\n"));
    s.wait_condition("vm", "AccessVerified").await;
    s.wait_condition("wi", "AccessVerified").await;
    let out = s.ns.kubectl_off_runtime(&["delete", "identitybinding", "vm", "wi", "--wait=true", "--timeout=60s"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}

#[tokio::test]
async fn namespace_editors_may_manage_bindings_but_never_their_status_or_policies() {
    let ns = TestNamespace::new("chart-tenant").await;
    let release = format!("kvbind-{}", &ns.name[ns.name.len() - 8..]);
    let roles = only(&rendered(&release, &ns.name, &[]), &["ClusterRole"]);
    let tenant_roles: Vec<&str> = roles.split("\n---").filter(|doc| doc.contains("-tenant-")).collect();
    assert_eq!(tenant_roles.len(), 2, "edit and view: {roles}");
    let out = ns.kubectl_apply_args(&tenant_roles.join("\n---\n"), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let binding = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: editor\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: editor\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}\nsubjects: [{{kind: ServiceAccount, name: editor, namespace: {}}}]\n",
        ns.name
    );
    let out = ns.kubectl_apply_args(&binding, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let user = format!("--as=system:serviceaccount:{}:editor", ns.name);
    let can = |verb: &str, resource: &str| {
        let (resource, subresource) = resource.split_once('/').map_or((resource, None), |(r, s)| (r, Some(format!("--subresource={s}"))));
        let mut args = vec!["auth", "can-i", verb, resource, user.as_str()];
        args.extend(subresource.as_deref());
        let out = ns.kubectl(&args);
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    // The aggregation controller folds the rules into `edit` shortly after they appear.
    let deadline = std::time::Instant::now() + kvbind_e2e::DEADLINE;
    while !can("create", "identitybindings.kvbind.io") {
        assert!(std::time::Instant::now() < deadline, "the edit role never gained IdentityBindings");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(can("delete", "identitybindings.kvbind.io"));
    assert!(!can("patch", "identitybindings.kvbind.io/status"), "status is kvbind's alone");
    assert!(!can("create", "bindingpolicies.kvbind.io"), "policies are the platform team's");
}

/// Provider issue #837 closed at admission: a tenant cannot name, in its own class, an
/// identity kvbind bound to another namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_naming_another_namespaces_identity_is_refused_at_admission() {
    let ns = TestNamespace::new("chart-vap").await;
    let release = format!("kvbind-{}", &ns.name[ns.name.len() - 8..]);
    let list = format!("{release}-bound-identities");
    let policy = only(&rendered(&release, &ns.name, &[]), &["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]);
    let out = ns.kubectl_apply_args(&policy, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other = TestNamespace::new("chart-vap-other").await;
    let (owner, intruder) = (kvbind_e2e::tenant::Tenant::of(&ns), kvbind_e2e::tenant::Tenant::of(&other));

    let client = ns.client.clone();
    let namespace = ns.name.clone();
    let s = Scenario::start_in(ns, client, seed(&cluster(&["pool-vmss"], &[], false)), |c| c.bound_identities = Some((namespace, list.clone()))).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    // A name no other test uses: the policy is cluster-wide while this test runs.
    owner.apply(&class("app", &[("db-password", "secret", 0)]));
    owner.apply(&binding("app", &format!("vap-{}", &s.ns.name[s.ns.name.len() - 8..]), &["app"], ""));
    s.wait_condition("app", "Ready").await;
    let client_id = s.jsonpath("identitybinding/app", "{.status.identity.clientId}");
    assert_eq!(s.jsonpath(&format!("configmap/{list}"), &format!("{{.data.{client_id}}}")), s.ns.name, "published before the class named it");

    let naming = |parameter: &str, id: &str| {
        class("stolen", &[("db-password", "secret", 0)])
            .replace("    keyvaultName: kvname\n", &format!("    keyvaultName: kvname\n    {parameter}: \"{id}\"\n"))
    };
    // The API server picks the policy up shortly after it is created.
    let deadline = std::time::Instant::now() + kvbind_e2e::DEADLINE;
    loop {
        let out = intruder.apply_args(&naming("userAssignedIdentityID", &client_id), &["--dry-run=server"]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(&list) && stderr.contains(&client_id) && stderr.contains("other namespaces only"), "{stderr}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the admission policy never refused the class");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for (parameter, id) in [("userAssignedIdentityID", client_id.to_uppercase()), ("clientID", client_id.clone())] {
        let out = intruder.apply_args(&naming(parameter, &id), &["--dry-run=server"]);
        assert!(!out.status.success(), "{parameter}: {id} was let through");
    }
    let out = owner.apply_args(&naming("userAssignedIdentityID", &client_id), &["--dry-run=server"]);
    assert!(out.status.success(), "its own namespace may name it: {}", String::from_utf8_lossy(&out.stderr));

    // Once the binding is gone, the identity is no namespace's any more.
    let out = owner.kubectl(&["delete", "identitybinding", "app", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.jsonpath(&format!("configmap/{list}"), &format!("{{.data.{client_id}}}")), "");
    for kind in ["validatingadmissionpolicybinding", "validatingadmissionpolicy"] {
        let _ = s.ns.kubectl(&["delete", kind, &list]);
    }
    s.stop().await;
}
