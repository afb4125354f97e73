//! `kvbind run` as a process: two replicas elect a leader that alone writes to Azure,
//! a killed leader hands over, and `/readyz` waits for the caches.

use std::process::Stdio;
use std::time::Duration;

use kvbind_arm_sim::Simulator;
use kvbind_e2e::operator::{Scenario, TENANT, seed};
use kvbind_e2e::world::{binding, class, cluster};
use kvbind_e2e::{DEADLINE, TestNamespace, control_plane};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Starts `kvbind run` as replica `name`, returning it and its admin port.
fn replica(name: &str, ns: &TestNamespace, sim: &Simulator, kubeconfig: &std::path::Path, extra: &[&str]) -> (Child, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_kvbind"))
        .args(["run", "--subscriptions", "00000000-0000-0000-0000-000000000001", "--credential", "client-secret"])
        .args(["--arm-endpoint", &sim.url, "--namespace", &ns.name, "--lease-namespace", &ns.name, "--pod-name", name])
        .args(["--node-selector", &format!("kvbind.io/test={}", ns.name), "--lease-seconds", "4", "--batch-window-ms", "200"])
        .args(["--admin-address", &format!("127.0.0.1:{port}"), "--adoption-records-configmap", "kvbind-adoption-records"])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", name)
        .env("AZURE_CLIENT_SECRET", "test-only-secret")
        .env("RUST_LOG", "info,kube=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(std::env::temp_dir().join(format!("kvbind-{}-{name}.log", ns.name))).map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
        .kill_on_drop(true)
        .spawn()
        .expect("kvbind starts");
    (child, port)
}

/// `world` with an Azure client per replica name (each replica signs in as its name), so
/// the simulator's request log tells the replicas apart.
fn with_replicas(mut world: kvbind_arm_sim::Seed, replicas: &[&str]) -> kvbind_arm_sim::Seed {
    let operator = world.clients[0].clone();
    for name in replicas {
        world.clients.push(kvbind_arm_sim::ClientSeed { client_id: (*name).to_owned(), ..operator.clone() });
    }
    world
}

/// A simulator seeded with `rest` and a client per replica.
async fn simulator_for(replicas: &[&str], rest: &str) -> Simulator {
    Simulator::start(&with_replicas(seed(rest), replicas), "127.0.0.1:0".parse().expect("addr")).await.expect("sim")
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let start = tokio::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A node on `pool-vmss`, a class and binding `app` for it, and the binding Ready.
async fn first_binding_ready(ns: &TestNamespace) {
    let node = kvbind_e2e::operator::node_manifest(&ns.name, "pool-0", &Scenario::vmss_node("pool-vmss", 0));
    for yaml in [node, class("app", &[("db-password", "secret", 0)]), binding("app", "app-reader", &["app"], "")] {
        let out = ns.kubectl_apply(&yaml);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let wait = ns.kubectl_off_runtime(&["wait", "--for=condition=Ready", "identitybinding/app", "--timeout=60s"]).await;
    assert!(wait.status.success(), "{}", String::from_utf8_lossy(&wait.stderr));
}

fn holder(ns: &TestNamespace) -> String {
    let out = ns.kubectl(&["get", "lease", "kvbind", "-o", "jsonpath={.spec.holderIdentity}"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_killed_leader_hands_over() {
    let ns = TestNamespace::new("leader").await;
    let sim = simulator_for(&["replica-a", "replica-b"], &cluster(&["pool-vmss"], &[], false)).await;
    let kubeconfig = control_plane().kubeconfig.clone();
    let (mut a, a_port) = replica("replica-a", &ns, &sim, &kubeconfig, &[]);
    until("a leader", || async { !holder(&ns).is_empty() }).await;
    let (mut b, b_port) = replica("replica-b", &ns, &sim, &kubeconfig, &[]);
    until("both admin servers", || async { get(a_port, "/healthz").await.is_some() && get(b_port, "/healthz").await.is_some() }).await;

    first_binding_ready(&ns).await;

    let leader = holder(&ns);
    let (leader_port, follower_port, leader_child, mut follower_child) =
        if leader == "replica-a" { (a_port, b_port, &mut a, b) } else { (b_port, a_port, &mut b, a) };
    // Counted from the leader's cache when scraped, which sees the Ready status soon after.
    until("the leader to count the binding Ready", || async {
        get(leader_port, "/metrics").await.is_some_and(|(_, m)| m.contains("kvbind_bindings{ready=\"True\"} 1"))
    })
    .await;
    let (_, leader_metrics) = get(leader_port, "/metrics").await.expect("leader metrics");
    let (_, follower_metrics) = get(follower_port, "/metrics").await.expect("follower metrics");
    assert!(leader_metrics.contains("kvbind_leader 1"), "{leader_metrics}");
    assert!(leader_metrics.contains("kvbind_arm_requests_total{method=\"PUT\",resource=\"userAssignedIdentities\",status=\"201\"} 1"), "{leader_metrics}");
    assert!(leader_metrics.contains("kvbind_reconciles_total{result=\"converged\"}"), "{leader_metrics}");
    assert!(follower_metrics.contains("kvbind_leader 0"), "{follower_metrics}");
    assert!(!follower_metrics.contains("kvbind_arm_requests_total{"), "the follower called ARM: {follower_metrics}");
    assert_eq!(get(leader_port, "/readyz").await.map(|r| r.0), Some(200));
    assert_eq!(get(follower_port, "/readyz").await.map(|r| r.0), Some(200), "a standby replica is ready");

    leader_child.kill().await.expect("kill the leader");
    for yaml in [class("two", &[("signing", "key", 0)]), binding("two", "two-reader", &["two"], "")] {
        let out = ns.kubectl_apply(&yaml);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let wait = ns.kubectl_off_runtime(&["wait", "--for=condition=Ready", "identitybinding/two", "--timeout=60s"]).await;
    assert!(
        wait.status.success(),
        "the new leader reconciles: {}\n{}",
        String::from_utf8_lossy(&wait.stderr),
        String::from_utf8_lossy(&ns.kubectl(&["get", "identitybinding,secretproviderclass,lease,events", "-o", "yaml"]).stdout)
    );
    assert_ne!(holder(&ns), leader, "leadership moved");
    let (_, metrics) = get(follower_port, "/metrics").await.expect("new leader metrics");
    assert!(metrics.contains("kvbind_leader 1"), "{metrics}");
    follower_child.kill().await.expect("stop");
}

fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args([signal, &pid]).status().expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// The leader is stopped (SIGSTOP) just as it starts on a new binding, stays stopped past
/// its lease while the other replica takes over, and is resumed with the work it had
/// begun: its fence has closed, so nothing it sends after the pause is a write, and it
/// exits once it sees the lease gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_does_not_write_after_losing_it() {
    let ns = TestNamespace::new("paused").await;
    let sim = simulator_for(&["replica-a", "replica-b"], &cluster(&["pool-vmss"], &[], false)).await;
    let kubeconfig = control_plane().kubeconfig.clone();
    let (mut a, _) = replica("replica-a", &ns, &sim, &kubeconfig, &[]);
    until("replica-a leads", || async { holder(&ns) == "replica-a" }).await;
    let (mut b, _) = replica("replica-b", &ns, &sim, &kubeconfig, &[]);
    let node = kvbind_e2e::operator::node_manifest(&ns.name, "pool-0", &Scenario::vmss_node("pool-vmss", 0));
    for yaml in [node, class("one", &[("db-password", "secret", 0)]), binding("one", "one-reader", &["one"], "")] {
        let out = ns.kubectl_apply(&yaml);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let wait = ns.kubectl_off_runtime(&["wait", "--for=condition=Ready", "identitybinding/one", "--timeout=60s"]).await;
    assert!(wait.status.success(), "{}", String::from_utf8_lossy(&wait.stderr));

    // The leader's first read for the new binding is slow, so it is mid-reconcile, one
    // answer away from its first write, when it is stopped.
    sim.set_faults(vec![kvbind_arm_sim::FaultRule {
        operation: "UserAssignedIdentities_Get".into(),
        path_contains: Some("two-reader".into()),
        fault: kvbind_arm_sim::Fault::Latency { min_ms: 1500, max_ms: 1500 },
        count: Some(1),
    }]);
    let seen_before_pause = sim.requests().len();
    for yaml in [class("two", &[("signing", "key", 0)]), binding("two", "two-reader", &["two"], "")] {
        let out = ns.kubectl_apply(&yaml);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    signal(&a, "-STOP");
    until("replica-b takes the lease", || async { holder(&ns) == "replica-b" }).await;
    signal(&a, "-CONT");
    let exit = tokio::time::timeout(kvbind_e2e::DEADLINE, a.wait()).await.expect("the resumed replica exits").expect("wait");
    assert!(!exit.success(), "it exits as a replica that lost its lease: {exit:?}");

    let wait = ns.kubectl_off_runtime(&["wait", "--for=condition=Ready", "identitybinding/two", "--timeout=60s"]).await;
    assert!(wait.status.success(), "the new leader reconciles: {}", String::from_utf8_lossy(&wait.stderr));
    let late_writes: Vec<_> =
        sim.requests()[seen_before_pause..].iter().filter(|r| r.client_id.as_deref() == Some("replica-a") && r.method != "GET").cloned().collect();
    assert!(late_writes.is_empty(), "the paused leader wrote after losing the lease: {late_writes:?}");
    assert!(
        sim.requests()[seen_before_pause..].iter().any(|r| r.client_id.as_deref() == Some("replica-b") && r.method == "PUT"),
        "the new leader did the work"
    );
    b.kill().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_caches_while_healthz_answers() {
    let ns = TestNamespace::new("readyz").await;
    let sim = simulator_for(&["solo"], &cluster(&[], &[], false)).await;
    // A kubeconfig whose API server never answers: the caches can never sync.
    let dead = std::env::temp_dir().join(format!("kvbind-dead-{}.kubeconfig", ns.name));
    std::fs::write(&dead, format!("apiVersion: v1\nkind: Config\nclusters: [{{name: dead, cluster: {{server: \"https://127.0.0.1:{}\", insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: dead, user: u}}}}]\ncurrent-context: c\n", free_port())).expect("write");
    let (mut child, port) = replica("solo", &ns, &sim, &dead, &["--leader-election", "false"]);
    until("/healthz", || async { get(port, "/healthz").await.is_some_and(|r| r.0 == 200) }).await;
    until("the credential check", || async { sim.counters().tokens >= 1 }).await;
    assert_eq!(get(port, "/readyz").await.map(|r| r.0), Some(503), "not ready before the caches sync");
    child.kill().await.expect("stop");
    let _ = std::fs::remove_file(dead);
}

#[tokio::test]
async fn doctor_prints_the_role_assignments_that_would_fix_missing_permissions() {
    // A Regional identity in another region, beside the open one every world has.
    let world = cluster(&["pool-vmss"], &[], false).replace(
        "      - name: rg-identities\n        identities: [{name: team-foreign}]\n",
        "      - name: rg-identities\n        identities: [{name: team-foreign}]\n      - name: rg-west\n        location: westeurope\n        identities: [{name: regional, isolationScope: Regional}]\n",
    );
    assert!(world.contains("rg-west"), "{world}");
    let mut limited = seed(&world);
    limited.clients[0].actions = vec!["Microsoft.ManagedIdentity/*".into(), "Microsoft.Compute/*/read".into(), "Microsoft.KeyVault/*".into()];
    let sim = Simulator::start(&limited, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let vault = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-vaults/providers/Microsoft.KeyVault/vaults/kvname";
    let doctor = |sim_url: String| {
        Command::new(env!("CARGO_BIN_EXE_kvbind"))
            .args(["doctor", "--subscriptions", "00000000-0000-0000-0000-000000000001", "--credential", "client-secret", "--arm-endpoint", &sim_url])
            .args(["--identity-group", "00000000-0000-0000-0000-000000000001/rg-identities"])
            .args(["--identity-group", "00000000-0000-0000-0000-000000000001/rg-west"])
            .args(["--node-group", &format!("00000000-0000-0000-0000-000000000001/{}", kvbind_e2e::operator::NODE_GROUP)])
            .args(["--vault", vault])
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", "kvbind-operator")
            .env("AZURE_CLIENT_SECRET", "test-only-secret")
            .output()
    };
    let out = doctor(sim.url.clone()).await.expect("doctor runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "missing permissions fail the command:\n{stdout}");
    assert!(stdout.contains("MISSING") && stdout.contains("Microsoft.Compute/virtualMachineScaleSets/write"), "{stdout}");
    assert!(stdout.contains(&format!("az role assignment create --assignee kvbind-operator --role \"Virtual Machine Contributor\" --scope /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/{}", kvbind_e2e::operator::NODE_GROUP)), "{stdout}");
    assert!(stdout.contains("--role \"Role Based Access Control Administrator\""), "{stdout}");
    assert!(!stdout.contains("--role \"Managed Identity Contributor\""), "identity permissions are there: {stdout}");

    let full = Simulator::start(&seed(&world), "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let out = doctor(full.url.clone()).await.expect("doctor runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("every permission it needs"), "{stdout}");
    // The vault's permission model, and what runs out there.
    assert!(stdout.contains("vault    kvname  access policies: 1 of 1024 entries used"), "{stdout}");
    assert!(
        stdout.contains(&format!("open     /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/{}", kvbind_e2e::operator::NODE_GROUP)),
        "{stdout}"
    );
    assert!(stdout.contains("VMManagedIdentity works here too"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("nodes    ")), "what the nodes mean for VM mode, or why they were not read: {stdout}");
    // What limits where the identity groups' identities may be attached.
    assert!(
        stdout.contains("identity /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-identities  1 identity, none Regional"),
        "{stdout}"
    );
    assert!(stdout.contains("rg-west  1 identity, 1 Regional") && stdout.contains("regional regional in westeurope"), "{stdout}");

    // A locked node resource group is named, and only workload identity fits.
    let locked = cluster(&["pool-vmss"], &[], false).replace(
        &format!("- name: {}\n", kvbind_e2e::operator::NODE_GROUP),
        &format!("- name: {}\n        lockdown: true\n", kvbind_e2e::operator::NODE_GROUP),
    );
    assert!(locked.contains("lockdown: true"), "{locked}");
    let sim = Simulator::start(&seed(&locked), "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let stdout = String::from_utf8_lossy(&doctor(sim.url.clone()).await.expect("doctor runs").stdout).into_owned();
    assert!(stdout.contains("locked") && stdout.contains("deny assignment 'System deny assignment created by managed cluster'"), "{stdout}");
    assert!(stdout.contains("VMManagedIdentity cannot work here"), "{stdout}");
}

/// Starts the operator again and again, killing run `k` right after its `k`-th ARM request
/// (reads, writes and token requests alike), until a run reaches `condition` for every
/// binding first. Returns how many runs were killed, and how many ARM writes the killed
/// runs had made.
async fn kill_at_every_request(ns: &TestNamespace, sim: &Simulator, kubeconfig: &std::path::Path, condition: &str) -> (usize, u64) {
    let mut kills = 0;
    loop {
        let seen = sim.requests().len();
        let written = sim.counters().writes;
        let (mut operator, _) = replica("solo", ns, sim, kubeconfig, &["--leader-election", "false"]);
        let args = ["wait", condition, "identitybinding", "--all", "--timeout=60s"];
        let done = ns.kubectl_off_runtime(&args);
        let kill_point = async { until("the kill point", || async { sim.requests().len() > seen + kills }).await };
        let finished = tokio::select! {
            () = kill_point => false,
            out = done => out.status.success(),
        };
        operator.kill().await.expect("SIGKILL");
        if finished {
            return (kills, written);
        }
        kills += 1;
        assert!(kills < 150, "no end after {kills} kills");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_at_every_request_recovers_without_duplicates_or_losses() {
    let ns = TestNamespace::new("kill").await;
    // Besides identities kvbind creates, one it adopts: nothing in Azure marks what kvbind
    // does to it, so only kvbind's record, kept ahead of each write, lets a restarted
    // operator undo exactly that.
    let text = cluster(&["pool-a-vmss", "pool-b-vmss"], &[], false)
        .replace("identities: [{name: team-foreign}]", "identities: [{name: team-foreign}, {name: adopted-reader}]");
    assert!(text.contains("adopted-reader"), "{text}");
    let mut world = with_replicas(seed(&text), &["solo"]);
    world.lro = Some(kvbind_arm_sim::seed::LroSeed { duration_ms: 300, retry_after_seconds: 0 });
    let sim = Simulator::start(&world, "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let before = sim.snapshot();
    let kubeconfig = control_plane().kubeconfig.clone();
    let mut all = String::new();
    for pool in ["pool-a-vmss", "pool-b-vmss"] {
        all.push_str(&kvbind_e2e::operator::node_manifest(&ns.name, pool, &Scenario::vmss_node(pool, 0)));
        all.push_str("\n---\n");
    }
    for i in 0..4 {
        let identity = if i < 2 { "shared-reader".to_owned() } else { format!("app-{i}-reader") };
        all.push_str(&class(&format!("app-{i}"), &[("db-password", "secret", 0)]));
        all.push_str("\n---\n");
        all.push_str(&binding(&format!("app-{i}"), &identity, &[&format!("app-{i}")], ""));
        all.push_str("\n---\n");
    }
    all.push_str(&class("adopted", &[("db-password", "secret", 0)]));
    all.push_str(&format!(
        "\n---\napiVersion: kvbind.io/v1alpha1\nkind: IdentityBinding\nmetadata:\n  name: adopted\nspec:\n  identity:\n    resourceId: {}\n  secretProviderClasses:\n    names: [adopted]\n---\n",
        kvbind_e2e::world::uami("rg-identities", "adopted-reader")
    ));
    let out = ns.kubectl_apply(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Kill the operator at every point of convergence: after its first ARM request, then
    // after its second, and so on, until a run gets to Ready before its kill point.
    let (kills, killed_writes) = kill_at_every_request(&ns, &sim, &kubeconfig, "--for=condition=Ready").await;
    let (mut operator, _) = replica("solo", &ns, &sim, &kubeconfig, &["--leader-election", "false"]);
    let out = ns.kubectl_off_runtime(&["wait", "--for=condition=Ready", "identitybinding", "--all", "--timeout=60s"]).await;
    assert!(out.status.success(), "after {kills} kills: {}", String::from_utf8_lossy(&out.stderr));
    println!("converged after {kills} kills, {} ARM writes", sim.counters().writes);
    // Every run repeats its reads, so the kill points run well past the first write: runs
    // died with their writes half done, which is what this test is about.
    assert!(kills >= 5, "the test killed the operator only {kills} times");
    assert!(killed_writes >= 1, "no run was killed after writing to ARM ({kills} kills)");

    let foreign = kvbind_e2e::world::key(&kvbind_e2e::world::uami("rg-identities", "team-foreign"));
    for state in sim.history() {
        assert!(state.system_assigned && state.user_assigned.contains(&foreign), "an identity went missing: {state:?}");
    }
    let snapshot = sim.snapshot();
    assert_eq!(snapshot["identities"].as_object().map(|m| m.len()), Some(2 + 3), "no duplicate identities");
    let vault = snapshot["vaults"].as_object().and_then(|m| m.values().next().cloned()).expect("vault");
    assert_eq!(vault["accessPolicies"].as_array().map(Vec::len), Some(1 + 4), "one entry per principal");
    let adopted = kvbind_e2e::world::key(&kvbind_e2e::world::uami("rg-identities", "adopted-reader"));
    for pool in ["pool-a-vmss", "pool-b-vmss"] {
        assert!(kvbind_e2e::world::identities_on(&sim, pool).contains(&adopted), "the adopted identity is on {pool}");
    }

    // Deletion, killed as well, still honours the finalizers and restores Azure.
    operator.kill().await.ok();
    let out = ns.kubectl(&["delete", "identitybinding", "--all", "--wait=false"]);
    assert!(out.status.success());
    let (deletion_kills, _) = kill_at_every_request(&ns, &sim, &kubeconfig, "--for=delete").await;
    println!("deleted after {deletion_kills} more kills");
    let out = ns.kubectl(&["get", "identitybinding", "-o", "name"]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "finalizers were honoured and removed");
    assert_eq!(sim.snapshot()["identities"], before["identities"]);
    assert_eq!(sim.snapshot()["compute"], before["compute"], "every attachment kvbind made is gone, the rest stays");
    assert_eq!(sim.snapshot()["vaults"], before["vaults"], "every grant kvbind made is gone, the rest stays");
}

/// The API server is SIGKILLed and restarted while a binding is being reconciled: the
/// watches come back within seconds (see `watch_backoff`), the interrupted binding and one
/// created after the restart are reconciled, and nothing is created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_carries_on_after_the_api_server_crashes() {
    // A control plane of its own: restarting the shared one would disturb other tests.
    let root = kvbind_e2e::repo_root();
    let mut plane = tokio::task::spawn_blocking(move || kvbind_local_cluster::ControlPlane::start(&root)).await.expect("join").expect("control plane");
    plane.install_crds(&kvbind_e2e::repo_root()).expect("CRDs installed");
    plane.kubectl_ok(&["apply", "-f", &kvbind_e2e::repo_root().join("examples/policy").to_string_lossy()]).expect("policies apply");
    let ns = "restart";
    plane.kubectl_ok(&["create", "namespace", ns]).expect("namespace");
    let apply = |plane: &kvbind_local_cluster::ControlPlane, yaml: String| {
        let file = std::env::temp_dir().join(format!("kvbind-restart-{}.yaml", std::process::id()));
        std::fs::write(&file, yaml).expect("write");
        plane.kubectl_ok(&["apply", "-n", ns, "-f", &file.to_string_lossy()]).expect("apply");
    };
    apply(&plane, kvbind_e2e::operator::node_manifest(ns, "pool-0", &Scenario::vmss_node("pool-vmss", 0)));
    apply(&plane, format!("{}\n---\n{}", class("one", &[("db-password", "secret", 0)]), binding("one", "one-reader", &["one"], "")));

    let sim = Simulator::start(&seed(&cluster(&["pool-vmss"], &[], false)), "127.0.0.1:0".parse().expect("addr")).await.expect("sim");
    let port = free_port();
    let mut operator = Command::new(env!("CARGO_BIN_EXE_kvbind"))
        .args(["run", "--subscriptions", "00000000-0000-0000-0000-000000000001", "--credential", "client-secret", "--arm-endpoint", &sim.url])
        .args(["--namespace", ns, "--node-selector", &format!("kvbind.io/test={ns}"), "--leader-election", "false", "--batch-window-ms", "200"])
        .args(["--admin-address", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", "kvbind-operator")
        .env("AZURE_CLIENT_SECRET", "test-only-secret")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kvbind starts");
    let wait = |plane: &kvbind_local_cluster::ControlPlane, name: &str| {
        plane.kubectl().args(["wait", "-n", ns, "--for=condition=Ready", &format!("identitybinding/{name}"), "--timeout=60s"]).output().expect("kubectl")
    };
    // The second binding's first ARM read is slow, so its reconcile is in flight while
    // the API server goes down and its status write meets the restarted server.
    sim.set_faults(vec![kvbind_arm_sim::FaultRule {
        operation: "UserAssignedIdentities_Get".into(),
        path_contains: Some("two-reader".into()),
        fault: kvbind_arm_sim::Fault::Latency { min_ms: 2000, max_ms: 2000 },
        count: Some(1),
    }]);
    let plane = tokio::task::spawn_blocking(move || {
        let out = wait(&plane, "one");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        apply(&plane, format!("{}\n---\n{}", class("two", &[("signing", "key", 0)]), binding("two", "two-reader", &["two"], "")));
        plane.restart_apiserver().expect("the API server comes back");
        apply(&plane, format!("{}\n---\n{}", class("three", &[("tls", "cert", 0)]), binding("three", "three-reader", &["three"], "")));
        for name in ["two", "three"] {
            let out = wait(&plane, name);
            assert!(out.status.success(), "{name} reconciled after the restart: {}", String::from_utf8_lossy(&out.stderr));
        }
        plane
    })
    .await
    .expect("the checks run");
    assert_eq!(sim.counters().by_operation.get("UserAssignedIdentities_CreateOrUpdate"), Some(&3), "each identity created once");
    operator.kill().await.ok();
    drop(plane);
}

/// The metric names (`kvbind_…`) that `text` mentions.
fn metric_names_in(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (start, _) in text.match_indices("kvbind_") {
        let name: String = text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        names.insert(name);
    }
    names
}

/// The sample names a `/metrics` page can carry: each family's `# TYPE` name with the
/// suffixes its type gives its samples.
fn exposed_sample_names(metrics: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alerts_use_only_metrics_the_operator_exposes() {
    let ns = TestNamespace::new("monitoring").await;
    let sim = simulator_for(&["solo"], &cluster(&["pool-vmss"], &[], false)).await;
    let (mut child, port) = replica("solo", &ns, &sim, &control_plane().kubeconfig, &["--leader-election", "false"]);
    first_binding_ready(&ns).await;
    until("the binding counted Ready", || async { get(port, "/metrics").await.is_some_and(|(_, m)| m.contains("kvbind_bindings{ready=\"True\"} 1")) }).await;
    let (_, metrics) = get(port, "/metrics").await.expect("metrics");
    child.kill().await.expect("stop");
    let exposed = exposed_sample_names(&metrics);
    // The budgets ARM reports are read off its responses, not invented.
    assert!(metrics.contains("kvbind_arm_ratelimit_remaining{bucket=\"subscription-writes\"}"), "{metrics}");

    let root = kvbind_e2e::repo_root().join("charts/kvbind");
    let dashboard = std::fs::read_to_string(root.join("files/dashboard.json")).expect("dashboard");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let queries: Vec<&str> = json["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    let rules = std::fs::read_to_string(root.join("templates/prometheusrule.yaml")).expect("rules");
    for (what, text) in [("the dashboard", queries.join("\n")), ("the alert rules", rules)] {
        let used = metric_names_in(&text);
        assert!(used.len() >= 4, "{what} names too few metrics for this check to mean anything: {used:?}");
        let unknown: Vec<&String> = used.iter().filter(|name| !exposed.contains(*name)).collect();
        assert!(unknown.is_empty(), "{what} names metrics the operator does not expose: {unknown:?}\nexposed: {exposed:?}");
    }
    // And the dashboard shows every family the operator exposes.
    let shown = metric_names_in(&queries.join("\n"));
    for line in metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let family = line.split_whitespace().next().unwrap_or_default();
        assert!(shown.iter().any(|name| name.starts_with(family)), "the dashboard does not show {family}");
    }
}
