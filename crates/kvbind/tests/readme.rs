//! The README's AKS quick start and its upgrade and uninstall commands, run exactly as
//! written (the shell blocks are read out of README.md) against the real API server with
//! the ARM simulator standing in for Azure. The operator runs as `kvbind run`, configured
//! from the Deployment the chart installed: its arguments, its environment and its
//! ServiceAccount's RBAC, plus what AKS's workload identity webhook would inject.
//! `image.rs` runs the same with the operator in its image.
//!
//! Only the blocks that need Azure itself (`az ...`) are left out.

mod support;

use kvbind_e2e::repo_root;
use support::chart_operator::Launch;

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
    support::quick_start::run(Launch::Binary, |_| {}).await;
}
