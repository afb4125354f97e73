//! What the README test and the image test share: the README's shell blocks run as
//! written, and the operator started as the chart's Deployment starts it, either as this
//! build's `kvbind` binary or as the image `image/build` makes.

#![allow(dead_code)]

pub mod chart_operator;
pub mod quick_start;

use std::path::Path;
use std::process::{Command, Output};

use kvbind_e2e::{control_plane, repo_root};

pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The operator's client in `examples/demo/arm-sim-seed.yaml`.
pub const OPERATOR_CLIENT_ID: &str = "kvbind-operator";

/// The fenced ```sh blocks of the README section headed `heading` (a `##` heading), dedented.
pub fn shell_blocks(heading: &str) -> Vec<String> {
    blocks_under(&format!("## {heading}"))
}

/// The fenced ```sh blocks under the README heading line `heading` (`## …`, `### …`) up to
/// the next heading of its level or above, dedented.
pub fn blocks_under(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let level = heading.len() - heading.trim_start_matches('#').len();
    let start = readme.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading:?}"));
    let section = &readme[start + 1..];
    let end = section
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let hashes = section[i..].len() - section[i..].trim_start_matches('#').len();
            (1..=level).contains(&hashes) && section[i + hashes..].starts_with(' ')
        })
        .unwrap_or(section.len());
    let section = &section[..end];
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
pub fn shell(block: &str, kubeconfig: &Path) -> Output {
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

pub fn run_ok(block: &str, kubeconfig: &Path) -> String {
    let out = shell(block, kubeconfig);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "this README block failed:\n{block}\n--- stdout\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

pub fn kubectl_ok(args: &[&str]) -> Vec<u8> {
    control_plane().kubectl_ok(args).unwrap_or_else(|e| panic!("{e}")).stdout
}
