//! A tenant as a shared cluster has them: a ServiceAccount bound to a Role in its own
//! namespace that may manage IdentityBindings, SecretProviderClasses, ServiceAccounts and
//! Pods there, and nothing else. The tenancy tests play every attack through it, never as
//! the admin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use crate::{TestNamespace, control_plane};

/// What every tenant may do in its namespace.
const TENANT_RULES: &str = "- apiGroups: [kvbind.io]
  resources: [identitybindings]
  verbs: [\"*\"]
- apiGroups: [secrets-store.csi.x-k8s.io]
  resources: [secretproviderclasses]
  verbs: [\"*\"]
- apiGroups: [\"\"]
  resources: [serviceaccounts, pods]
  verbs: [\"*\"]
";

/// A namespace's tenant, with a kubeconfig of its own.
pub struct Tenant {
    /// The tenant's namespace.
    pub namespace: String,
    kubeconfig: PathBuf,
}

impl Tenant {
    /// The tenant of `ns`, with the usual rights.
    pub fn of(ns: &TestNamespace) -> Tenant {
        Self::with_rules(ns, TENANT_RULES)
    }

    /// A tenant granted `resources: ["*"]` in kvbind's API group, as a carelessly written
    /// Role does: that includes `identitybindings/status`.
    pub fn with_every_kvbind_resource(ns: &TestNamespace) -> Tenant {
        Self::with_rules(ns, &format!("{TENANT_RULES}- apiGroups: [kvbind.io]\n  resources: [\"*\"]\n  verbs: [\"*\"]\n"))
    }

    fn with_rules(ns: &TestNamespace, rules: &str) -> Tenant {
        let role = format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: tenant\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: tenant\nrules:\n{rules}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: tenant\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant}}\nsubjects: [{{kind: ServiceAccount, name: tenant, namespace: {}}}]\n",
            ns.name
        );
        let out = ns.kubectl_apply(&role);
        assert!(out.status.success(), "the tenant's Role: {}", String::from_utf8_lossy(&out.stderr));
        let token = ns.kubectl(&["create", "token", "tenant", "--duration=2h"]);
        assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
        let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
        let admin = std::fs::read_to_string(&control_plane().kubeconfig).expect("kubeconfig");
        let own: Vec<String> = admin.lines().map(|l| if l.trim_start().starts_with("token:") { format!("    token: {token}") } else { l.to_owned() }).collect();
        let kubeconfig = control_plane().workdir().join(format!("tenant-{}.kubeconfig", ns.name));
        std::fs::write(&kubeconfig, own.join("\n")).expect("write the tenant's kubeconfig");
        Tenant { namespace: ns.name.clone(), kubeconfig }
    }

    /// kubectl as the tenant, in its namespace.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        std::process::Command::new(control_plane().bin_dir().join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// `kubectl apply -f -` as the tenant, failing the test if the server refuses it.
    pub fn apply(&self, yaml: &str) {
        let out = self.apply_args(yaml, &[]);
        assert!(out.status.success(), "the tenant's apply was refused: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `kubectl apply -f - <extra>` as the tenant.
    pub fn apply_args(&self, yaml: &str, extra: &[&str]) -> Output {
        let mut child = std::process::Command::new(control_plane().bin_dir().join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace, "apply", "-f", "-"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child.stdin.take().expect("stdin is piped").write_all(yaml.as_bytes()).expect("kubectl reads stdin");
        child.wait_with_output().expect("kubectl finishes")
    }
}
