//! The provider page's manual steps, run with the real Azure CLI (pinned in
//! `e2e/azure-cli/requirements.txt`, installed by `e2e/azure-cli/install`) against the ARM
//! simulator exactly as the README's "Try the seed page's commands without Azure" shows
//! them: the simulator as its first block starts it, the CLI commands as its second block
//! writes them. Then the simulator's state must hold what the page promises.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

mod support;

use kvbind_e2e::repo_root;
use serde_json::Value;

/// Kills the simulator when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_seed_pages_az_commands_work_against_the_simulator() {
    let blocks = support::blocks_under("### Try the seed page's commands without Azure");
    assert_eq!(blocks.len(), 2, "the simulator, then the CLI: {blocks:#?}");
    let install = Command::new(repo_root().join("e2e/azure-cli/install")).stderr(Stdio::inherit()).output().expect("e2e/azure-cli/install runs");
    assert!(install.status.success(), "the Azure CLI could not be installed");
    let az_dir = String::from_utf8(install.stdout).expect("UTF-8").trim().to_owned();
    let kvbind_dir = Path::new(env!("CARGO_BIN_EXE_kvbind")).parent().expect("bin dir").to_owned();
    let path = std::env::join_paths([kvbind_dir, az_dir.into()].into_iter().chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))
        .expect("PATH");

    let mut simulator = Command::new("bash")
        .args(["-c", &format!("exec {}", blocks[0].trim())])
        .current_dir(repo_root())
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the simulator starts");
    let stdout = simulator.stdout.take().expect("stdout");
    let simulator = Running(simulator);
    let mut url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("the simulator's output");
        if let Some(rest) = line.strip_prefix("ARM simulator listening on ") {
            url = Some(rest.trim().to_owned());
            break;
        }
    }
    let url = url.expect("the simulator says where it listens");

    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &blocks[1]])
        .current_dir(repo_root())
        .env("PATH", &path)
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "the README's az block failed:\n{}\n--- stdout\n{}\n--- stderr\n{}",
        blocks[1],
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The simulator's state, through its admin API.
    let ca = std::fs::read("/tmp/arm-sim-ca.pem").expect("the CA the simulator wrote");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let state: Value = runtime.block_on(async {
        let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM")).build().expect("client");
        http.get(format!("{url}/_admin/state")).send().await.expect("state").json().await.expect("JSON")
    });
    drop(simulator);

    let identity = state["identities"].as_object().and_then(|all| all.values().find(|i| i["name"] == "kvname-reader")).expect("az identity create made it");
    // The simulator keys attachments by the lowercase ID without its leading slash.
    let id = format!(
        "subscriptions/{}/resourcegroups/rg-identities/providers/microsoft.managedidentity/userassignedidentities/kvname-reader",
        identity["subscription"].as_str().unwrap_or_default()
    )
    .to_ascii_lowercase();
    for (target, name) in [("the scale set", "aks-apps-12345678-vmss"), ("the VM", "aks-agentpool-12345678-0")] {
        let resource = state["compute"].as_object().and_then(|all| all.values().find(|c| c["name"] == name)).unwrap_or_else(|| panic!("{name} is seeded"));
        let attached: Vec<String> = resource["userAssigned"].as_object().map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect()).unwrap_or_default();
        assert!(attached.contains(&id), "az {} identity assign put it on {target}: {attached:?}", if name.ends_with("vmss") { "vmss" } else { "vm" });
    }
    let vault = state["vaults"].as_object().and_then(|all| all.values().find(|v| v["name"] == "kvname")).expect("kvname is seeded");
    let principal = identity["principalId"].as_str().expect("principal");
    let entry = vault["accessPolicies"].as_array().into_iter().flatten().find(|p| p["objectId"] == principal).expect("az keyvault set-policy added an entry");
    for kind in ["keys", "secrets", "certificates"] {
        assert_eq!(entry["permissions"][kind], serde_json::json!(["get"]), "{kind}: {entry}");
    }
}
