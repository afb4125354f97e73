//! The operator under test: `kvbind run` as its own process, so its memory and CPU are its
//! own, read from `/proc`.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// A running `kvbind run`.
pub struct Operator {
    child: Child,
    pid: u32,
}

/// How the operator is started.
pub struct OperatorArgs<'a> {
    /// The simulator's URL.
    pub arm_endpoint: &'a str,
    /// The kubeconfig of the control plane.
    pub kubeconfig: &'a std::path::Path,
    /// The namespace it watches.
    pub namespace: &'a str,
    /// Its batch window.
    pub batch_window_ms: u64,
    /// Its resync period.
    pub resync_seconds: u64,
    /// Batching off: the naive strategy.
    pub naive: bool,
    /// The share of Azure's budgets left to others.
    pub reserve: f64,
    /// The role assignments it lets the subscription reach, when not Azure's.
    pub role_assignment_limit: Option<usize>,
    /// The managed cluster's ARM ID, for AKS identity bindings.
    pub managed_cluster: Option<String>,
}

/// The `kvbind` binary next to this one (build both with the same profile).
fn binary() -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe()?;
    let path = here.with_file_name("kvbind");
    anyhow::ensure!(path.exists(), "{} is missing: build it with the same profile (cargo build --release -p kvbind)", path.display());
    Ok(path)
}

impl Operator {
    /// Starts the operator.
    pub fn start(args: &OperatorArgs<'_>) -> anyhow::Result<Operator> {
        let mut command = match std::env::var("KVBIND_BENCH_WRAPPER") {
            // A profiler in front of the operator, e.g. "heaptrack -o /tmp/kvbind".
            Ok(wrapper) if !wrapper.trim().is_empty() => {
                let mut words = wrapper.split_whitespace();
                let mut command = Command::new(words.next().unwrap_or_default());
                command.args(words).arg(binary()?);
                command
            }
            _ => Command::new(binary()?),
        };
        command
            .args(["run", "--subscriptions", kvbind_e2e::operator::SUBSCRIPTION, "--credential", "client-secret"])
            .args(["--arm-endpoint", args.arm_endpoint, "--namespace", args.namespace, "--leader-election", "false"])
            .args(["--node-selector", &format!("kvbind.io/test={}", args.namespace)])
            .args(["--batch-window-ms", &args.batch_window_ms.to_string(), "--resync-seconds", &args.resync_seconds.to_string()])
            .args(["--admin-address", "127.0.0.1:0"])
            .env("KUBECONFIG", args.kubeconfig)
            .env("AZURE_TENANT_ID", kvbind_e2e::operator::TENANT)
            .env("AZURE_CLIENT_ID", "kvbind-operator")
            .env("AZURE_CLIENT_SECRET", "test-only-secret")
            .env("RUST_LOG", "warn")
            // As the chart sets it.
            .env("MALLOC_ARENA_MAX", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if args.naive {
            command.arg("--no-batching");
        }
        // Paced within Azure's rates, as shipped; the bound counts the same share.
        command.args(["--arm-reserve", &args.reserve.to_string(), "--oidc-issuer-url", crate::world::ISSUER]);
        if let Some(cluster) = &args.managed_cluster {
            command.args(["--managed-cluster-id", cluster]);
        }
        if let Some(limit) = args.role_assignment_limit {
            command.args(["--role-assignment-limit", &limit.to_string()]);
        }
        let child = command.spawn()?;
        let pid = child.id().ok_or_else(|| anyhow::anyhow!("the operator exited at once"))?;
        Ok(Operator { child, pid })
    }

    /// The most resident memory it has had, in MiB (`VmHWM`).
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib =
            status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        kib / 1024.0
    }

    /// User and system CPU seconds it has used.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of the line; after ')' the count starts at
        // field 3. Linux reports them in clock ticks of 1/100 s.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
