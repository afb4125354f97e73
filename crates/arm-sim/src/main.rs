//! `kvbind-arm-sim`: the ARM simulator as a process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kvbind_arm_sim::{Seed, Simulator};

/// Serves a simulated Azure Resource Manager, AAD and IMDS token endpoints and an admin API.
#[derive(Parser, Debug)]
#[command(name = "kvbind-arm-sim", version, about)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "ARM_SIM_LISTEN", default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
    /// A YAML seed with subscriptions, resources, clients and faults.
    #[arg(long, env = "ARM_SIM_SEED")]
    seed: Option<PathBuf>,
    /// Serve HTTPS with a certificate from a CA made at start, written to this file.
    #[arg(long, env = "ARM_SIM_TLS_CA_OUT")]
    tls_ca_out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let seed = match &args.seed {
        Some(path) => Seed::from_yaml(&std::fs::read_to_string(path)?)?,
        None => Seed::default(),
    };
    let sim = match &args.tls_ca_out {
        Some(ca_out) => {
            let sim = Simulator::start_tls(&seed, args.listen).await?;
            std::fs::write(ca_out, sim.ca_pem().unwrap_or_default())?;
            sim
        }
        None => Simulator::start(&seed, args.listen).await?,
    };
    println!("ARM simulator listening on {}", sim.url);
    sim.serve_forever().await;
    Ok(())
}
