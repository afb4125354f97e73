//! `kvbind-arm-sim`: the ARM simulator as a process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kvbind_arm_sim::{Seed, Simulator};

/// Serves a simulated Azure Resource Manager, AAD token endpoint and admin API.
#[derive(Parser, Debug)]
#[command(name = "kvbind-arm-sim", version, about)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "ARM_SIM_LISTEN", default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
    /// A YAML seed with subscriptions, resources, clients and faults.
    #[arg(long, env = "ARM_SIM_SEED")]
    seed: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => Seed::from_yaml(&std::fs::read_to_string(path)?)?,
        None => Seed::default(),
    };
    let sim = Simulator::start(&seed, args.listen).await?;
    println!("ARM simulator listening on {}", sim.url);
    sim.serve_forever().await;
    Ok(())
}
