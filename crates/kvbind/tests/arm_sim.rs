//! `cargo run -p kvbind -- arm-sim --seed examples/demo/arm-sim-seed.yaml`, as the README
//! shows it (on a free port instead of the default 8790): it serves the seeded Azure and
//! its admin API.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_simulator_command_serves_the_demo_seed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvbind"))
        .args(["arm-sim", "--seed", "examples/demo/arm-sim-seed.yaml", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kvbind arm-sim starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("it says where it listens");
    let url = first.trim().strip_prefix("ARM simulator listening on ").unwrap_or_else(|| panic!("unexpected first line: {first}")).to_owned();

    let state: serde_json::Value = reqwest::get(format!("{url}/_admin/state")).await.expect("admin API").json().await.expect("JSON");
    let vaults: Vec<&str> = state["vaults"].as_object().expect("vaults").values().filter_map(|v| v["name"].as_str()).collect();
    assert!(vaults.contains(&"kvname") && vaults.contains(&"payments-kv"), "{vaults:?}");
    let counters: serde_json::Value = reqwest::get(format!("{url}/_admin/counters")).await.expect("admin API").json().await.expect("JSON");
    assert_eq!((counters["reads"].as_u64(), counters["writes"].as_u64()), (Some(0), Some(0)), "{counters}");
    let _ = child.kill();
    let _ = child.wait();
}
