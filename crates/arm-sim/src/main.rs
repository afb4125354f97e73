//! `kvbind-arm-sim`: the ARM simulator as a process.

use clap::Parser;
use kvbind_arm_sim::serve::{ServeArgs, serve};

/// Serves a simulated Azure Resource Manager, AAD and IMDS token endpoints and an admin API.
#[derive(Parser, Debug)]
#[command(name = "kvbind-arm-sim", version, about)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    serve(&Args::parse().serve).await
}
