//! `kvbind-bench`: runs kvbind against the real control plane and the ARM simulator with
//! realistic latencies and Azure's own limits and request rates, in scenarios from one
//! binding to a thousand, and prints one table of ARM writes and time to Ready beside their
//! lower bounds (the latency critical path or what the published rates allow, whichever is
//! longer) and beside the naive strategy (no batching), with the 429s received, the share
//! of the write budget used, and the operator's peak memory and CPU. Writes the table as
//! markdown and JSON and a plot as SVG. Not a test: run it with `bench/run`.

mod operator;
mod report;
mod run;
mod scenario;
mod world;

use std::path::PathBuf;

use clap::Parser;

use crate::run::{Settings, Strategy};
use crate::scenario::{Kind, Latencies};

/// Benchmark settings.
#[derive(Debug, Parser)]
#[command(version, about = "kvbind's benchmark: ARM writes, time to Ready and memory at scale")]
struct Args {
    /// Multiplies the injected latencies (identity 1 s, VMSS PATCH 20 s, access policy
    /// 0.5 s, role assignment 1 s) and the operator's batch window (2 s).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Three small scenarios instead of the full set.
    #[arg(long)]
    quick: bool,
    /// Run the naive strategy for scenarios of at most this many bindings: it writes once per
    /// binding per scale set, one long-running PATCH at a time, so 100 bindings take 100
    /// PATCHes in a row (over half an hour at full latency).
    #[arg(long, default_value_t = 10)]
    naive_up_to: usize,
    /// The share of Azure's request budgets the operator leaves to others (its
    /// `--arm-reserve`); the rate bound counts the same share.
    #[arg(long, default_value_t = 0.25)]
    reserve: f64,
    /// Run only the scenarios whose name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the table and plot go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Settings {
        latencies: Latencies::scaled(args.scale),
        batch_window_ms: (2000.0 * args.scale).round() as u64,
        steady_resync_seconds: 10,
        steady_periods: 6,
        reserve: args.reserve,
    };
    eprintln!("starting the control plane (built on first use)");
    tokio::task::spawn_blocking(kvbind_e2e::control_plane).await?;
    let mut rows = Vec::new();
    for scenario in scenario::all(args.quick).into_iter().filter(|s| args.only.is_empty() || args.only.iter().any(|o| s.name.contains(o.as_str()))) {
        let mut strategies = vec![Strategy::Kvbind];
        if scenario.kind == Kind::Converge && scenario.bindings <= args.naive_up_to && scenario.refusal.is_none() {
            strategies.push(Strategy::Naive);
        }
        for strategy in strategies {
            eprintln!("{} ({strategy:?})", scenario.name);
            match run::run(&scenario, strategy, &settings).await {
                Ok(m) => {
                    eprintln!(
                        "  {} writes (bound {}), {:.1} s (latency bound {:.1} s, rate bound {:.1} s), {} 429s, {:.1} MiB",
                        m.writes, m.writes_lower_bound, m.seconds_to_ready, m.critical_path_seconds, m.rate_bound_seconds, m.throttled, m.peak_rss_mib
                    );
                    rows.push(m);
                }
                Err(e) => eprintln!("  failed: {e:#}"),
            }
        }
    }
    let l = settings.latencies;
    let header = format!(
        "Latencies: identity PUT {} ms, VMSS PATCH {} ms (long-running), access policy {} ms, role assignment {} ms; batch window {} ms; {} logical CPUs. \
         Azure's limits and rates as the simulator enforces them by default (ARM writes 200 + 10/s, identity creates 80 per 20 s, assignments 300 per 20 s, \
         Compute updates 12 + 4/min per scale set); the operator leaves {:.0}% of each budget to others, and the rate bound counts the same share.",
        l.identity_put_ms,
        l.vmss_patch_ms,
        l.access_policy_ms,
        l.role_assignment_ms,
        settings.batch_window_ms,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        settings.reserve * 100.0
    );
    let table = report::markdown(&rows, &header);
    println!("{table}");
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("results.md"), &table)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"settings": {"latencies": l, "batchWindowMs": settings.batch_window_ms, "scale": args.scale, "reserve": settings.reserve}, "scenarios": rows}),
        )?,
    )?;
    std::fs::write(args.out.join("plot.svg"), report::svg(&rows, 5))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
