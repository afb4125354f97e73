//! Serving the simulator as a process, for `kvbind-arm-sim` and `kvbind arm-sim`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::{Seed, Simulator};

/// How to serve the simulator.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "ARM_SIM_LISTEN", default_value = "127.0.0.1:8790")]
    pub listen: SocketAddr,
    /// A YAML seed with subscriptions, resources, clients and faults.
    #[arg(long, env = "ARM_SIM_SEED")]
    pub seed: Option<PathBuf>,
    /// Serve HTTPS with a certificate from a CA made at start, written to this file.
    #[arg(long, env = "ARM_SIM_TLS_CA_OUT")]
    pub tls_ca_out: Option<PathBuf>,
}

/// Serves until the process is stopped.
pub async fn serve(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let seed = match &args.seed {
        Some(path) => Seed::from_yaml(&std::fs::read_to_string(path)?)?,
        None => Seed::default(),
    };
    let sim = match &args.tls_ca_out {
        Some(ca_out) => {
            let sim = Simulator::start_tls(&seed, args.listen).await?;
            std::fs::write(ca_out, sim.ca_pem().unwrap_or_default())?;
            println!("CA certificate written to {}", ca_out.display());
            sim
        }
        None => Simulator::start(&seed, args.listen).await?,
    };
    println!("ARM simulator listening on {}", sim.url);
    sim.serve_forever().await;
    Ok(())
}
