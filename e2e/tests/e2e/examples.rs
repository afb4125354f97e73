//! Every example under `examples/` applies to the real API server, and every
//! SecretProviderClass among them has an `objects` parameter kvbind can read.

use std::collections::BTreeMap;

use kvbind_api::secret_provider_class::AzureParameters;
use kvbind_e2e::{TestNamespace, repo_root};
use serde_yaml_ng::Value;

fn example_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![repo_root().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples/ is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_secret_provider_class_parses() {
    let mut classes = 0;
    for file in example_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("YAML");
            if value.get("kind").and_then(Value::as_str) != Some("SecretProviderClass") {
                continue;
            }
            let parameters: BTreeMap<String, String> = serde_yaml_ng::from_value(value["spec"]["parameters"].clone()).expect("string map");
            let objects = AzureParameters::read(&parameters).validate().unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(!objects.is_empty());
            classes += 1;
        }
    }
    assert!(classes >= 2, "examples/ should hold SecretProviderClasses, found {classes}");
}

#[tokio::test]
async fn every_example_applies_to_the_server() {
    let ns = TestNamespace::new("examples").await;
    // The control plane's ServiceAccount controller gives the namespace its `default`
    // ServiceAccount, as a cluster's does; the seed's Pod is refused without one.
    ns.wait_for_service_account("default").await;
    for file in example_files() {
        // Flux's manifests need Flux's CRDs; they are checked to parse below.
        if file.components().any(|c| c.as_os_str() == "flux") {
            continue;
        }
        // Simulator seeds live beside the manifests; they are not Kubernetes objects.
        if !std::fs::read_to_string(&file).expect("readable").contains("\nkind: ") {
            continue;
        }
        // Argo CD's ConfigMap names Argo CD's namespace; the server checks it in this one.
        if file.components().any(|c| c.as_os_str() == "argocd") {
            let text = std::fs::read_to_string(&file).expect("readable").replace("\n  namespace: argocd\n", "\n");
            let out = ns.kubectl_apply_args(&text, &["--dry-run=server"]);
            assert!(out.status.success(), "{} was rejected: {}", file.display(), String::from_utf8_lossy(&out.stderr));
            continue;
        }
        let out = ns.kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]);
        assert!(out.status.success(), "{} was rejected: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn flux_examples_health_check_the_binding() {
    let text = std::fs::read_to_string(repo_root().join("examples/flux/kustomization.yaml")).expect("readable");
    let doc: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let check = &doc["spec"]["healthChecks"][0];
    assert_eq!(check["apiVersion"].as_str(), Some("kvbind.io/v1alpha1"));
    assert_eq!(check["kind"].as_str(), Some("IdentityBinding"));
    let release = std::fs::read_to_string(repo_root().join("examples/flux/helmrelease.yaml")).expect("readable");
    for doc in serde_yaml_ng::Deserializer::from_str(&release) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("YAML");
        assert!(value.get("kind").is_some());
    }
}
