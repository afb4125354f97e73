//! GitOps health, read by kstatus itself (`sigs.k8s.io/cli-utils`, what Flux's health
//! checks use; built beside the control plane as `kstatus`) and by the Argo CD health
//! check in `examples/argocd/argocd-cm.yaml` (run in gopher-lua as Argo CD runs it), in
//! every phase of a binding's life. A binding kvbind has not seen must never read as
//! `Current` or `Healthy`: a Flux Kustomization or an Argo CD sync would pass its health
//! check before anything happened in Azure.

use std::io::Write;
use std::process::Stdio;

use kvbind_e2e::operator::{Scenario, seed};
use kvbind_e2e::world::{binding, class, cluster};
use kvbind_e2e::{TestNamespace, control_plane};

/// What `checker` prints for `identitybinding/<name>` as `kubectl get -o json` gives it on
/// its standard input: its first line.
fn verdict(ns: &str, name: &str, mut checker: std::process::Command) -> String {
    let object = control_plane().kubectl().args(["--namespace", ns, "get", "identitybinding", name, "-o", "json"]).output().expect("kubectl runs");
    assert!(object.status.success(), "{}", String::from_utf8_lossy(&object.stderr));
    let mut child = checker.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the checker runs");
    child.stdin.take().expect("stdin").write_all(&object.stdout).expect("the checker reads the object");
    let out = child.wait_with_output().expect("the checker finishes");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned()
}

/// kstatus's verdict on `identitybinding/<name>`: `(status, message)`.
fn kstatus(ns: &str, name: &str) -> (String, String) {
    let line = verdict(ns, name, std::process::Command::new(control_plane().bin_dir().join("kstatus")));
    let mut words = line.splitn(3, ' ');
    assert_eq!(words.next(), Some(name), "{line}");
    (words.next().unwrap_or_default().to_owned(), words.next().unwrap_or_default().to_owned())
}

/// The Argo CD health check's script, as `examples/argocd/argocd-cm.yaml` gives it.
/// Removed when dropped.
fn argocd_script() -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(kvbind_e2e::repo_root().join("examples/argocd/argocd-cm.yaml")).expect("the Argo CD example");
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let script = config["data"]["resource.customizations.health.kvbind.io_IdentityBinding"].as_str().expect("the health check key");
    let file = tempfile::Builder::new().prefix("kvbind-argocd-health-").suffix(".lua").tempfile().expect("a temporary file");
    std::fs::write(file.path(), script).expect("write the script");
    file
}

/// The Argo CD health check's verdict on `identitybinding/<name>`: `(status, message)`.
fn argocd(ns: &str, name: &str) -> (String, String) {
    let script = argocd_script();
    let mut checker = std::process::Command::new(kvbind_e2e::go_tool("argocd-health"));
    checker.arg(script.path());
    let line = verdict(ns, name, checker);
    let (status, message) = line.split_once(' ').unwrap_or((&line, ""));
    (status.to_owned(), message.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kstatus_reads_every_phase_of_a_binding_truthfully() {
    // Created, with no operator running: in progress, not current.
    let ns = TestNamespace::new("kstatus").await;
    let out = ns.kubectl_apply(&format!("{}\n---\n{}", class("app", &[("db-password", "secret", 0)]), binding("app", "app-reader", &["app"], "")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&ns.kubectl(&["get", "identitybinding", "app", "-o", "jsonpath={.status.observedGeneration}"]).stdout), "0");
    let (status, message) = kstatus(&ns.name, "app");
    assert_eq!(status, "InProgress", "a binding kvbind has not seen: {message}");
    assert_eq!(argocd(&ns.name, "app").0, "Progressing", "Argo CD, a binding kvbind has not seen");

    // Converging: scale set updates take seconds, and the binding says it is working.
    let mut world = seed(&cluster(&["pool-vmss"], &[], false));
    world.lro.as_mut().expect("the test seed sets lro").duration_ms = 4000;
    let client = ns.client.clone();
    let s = Scenario::start_in(ns, client, world, |_| {}).await;
    s.node("pool-0", &Scenario::vmss_node("pool-vmss", 0), &[]).await;
    s.wait_condition("app", "Reconciling").await;
    let (status, message) = kstatus(&s.ns.name, "app");
    assert_eq!(status, "InProgress", "converging: {message}");
    let (status, message) = argocd(&s.ns.name, "app");
    assert_eq!(status, "Progressing", "Argo CD, converging: {message}");

    // Ready: current.
    s.wait_condition("app", "Ready").await;
    assert_eq!(kstatus(&s.ns.name, "app").0, "Current");
    assert_eq!(argocd(&s.ns.name, "app").0, "Healthy");

    // Stalled on bad input: failed.
    s.apply(&class("broken", &[("db-password", "secret", 0)]).replace("objectType: secret", "objectType: password"));
    s.apply(&binding("broken", "broken-reader", &["broken"], ""));
    s.wait_condition("broken", "Stalled").await;
    let (status, message) = kstatus(&s.ns.name, "broken");
    assert_eq!(status, "Failed", "stalled: {message}");
    let (status, message) = argocd(&s.ns.name, "broken");
    assert_eq!(status, "Degraded", "Argo CD, stalled: {message}");
    assert!(message.contains("objectType"), "Argo CD shows why, naming the field: {message}");

    // The spec edited while the operator is down: in progress until it observes it.
    let namespace = s.ns.name.clone();
    s.stop().await;
    let edit = control_plane()
        .kubectl()
        .args([
            "--namespace",
            &namespace,
            "patch",
            "identitybinding",
            "app",
            "--type=merge",
            "-p",
            r#"{"spec":{"secretProviderClasses":{"names":["app","other"]}}}"#,
        ])
        .output()
        .expect("kubectl runs");
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));
    let (status, message) = kstatus(&namespace, "app");
    assert_eq!(status, "InProgress", "spec edited, not yet observed: {message}");
    assert_eq!(argocd(&namespace, "app").0, "Progressing", "Argo CD, spec edited, not yet observed");

    // Terminating (the finalizer holds it while the operator is down): in progress.
    let delete =
        control_plane().kubectl().args(["--namespace", &namespace, "delete", "identitybinding", "app", "--wait=false"]).output().expect("kubectl runs");
    assert!(delete.status.success(), "{}", String::from_utf8_lossy(&delete.stderr));
    let (status, message) = kstatus(&namespace, "app");
    // kstatus names this phase itself; what matters is that it is not Current.
    assert_eq!(status, "Terminating", "terminating: {message}");
    assert_eq!(argocd(&namespace, "app").0, "Progressing", "Argo CD, terminating");
}
