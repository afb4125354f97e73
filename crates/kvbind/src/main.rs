//! The `kvbind` command.

mod config;
mod crdgen;
mod demo;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// kvbind binds Azure user-assigned managed identities to Secrets Store CSI
/// SecretProviderClasses, with least-privilege Key Vault access.
#[derive(Parser, Debug)]
#[command(name = "kvbind", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator.
    Run(config::RunConfig),
    /// Run the whole flow locally: control plane, ARM simulator, operator and the examples.
    Demo {
        /// The repository root (where crds/, examples/ and e2e/ are).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Serve the ARM simulator.
    ArmSim {
        /// The address to listen on.
        #[arg(long, env = "ARM_SIM_LISTEN", default_value = "127.0.0.1:8790")]
        listen: SocketAddr,
        /// A YAML seed with subscriptions, resources, clients and faults.
        #[arg(long, env = "ARM_SIM_SEED")]
        seed: Option<PathBuf>,
        /// Serve HTTPS with a certificate from a CA made at start, written to this file.
        #[arg(long, env = "ARM_SIM_TLS_CA_OUT")]
        tls_ca_out: Option<PathBuf>,
    },
    /// Write the generated CRD YAML to crds/ and charts/kvbind/crds/ (or check it).
    Crdgen {
        /// The repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Fail if the committed files differ from the generated ones, writing nothing.
        #[arg(long)]
        check: bool,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(config) => {
            init_logging(config.log_json);
            run::run(config).await
        }
        Command::Demo { root } => {
            init_logging(false);
            demo::demo(&root).await
        }
        Command::ArmSim { listen, seed, tls_ca_out } => {
            init_logging(false);
            let seed = match seed {
                Some(path) => kvbind_arm_sim::Seed::from_yaml(&std::fs::read_to_string(path)?)?,
                None => kvbind_arm_sim::Seed::default(),
            };
            let sim = match tls_ca_out {
                Some(ca_out) => {
                    let sim = kvbind_arm_sim::Simulator::start_tls(&seed, listen).await?;
                    std::fs::write(&ca_out, sim.ca_pem().unwrap_or_default())?;
                    println!("CA certificate written to {}", ca_out.display());
                    sim
                }
                None => kvbind_arm_sim::Simulator::start(&seed, listen).await?,
            };
            println!("ARM simulator listening on {}", sim.url);
            sim.serve_forever().await;
            Ok(())
        }
        Command::Crdgen { root, check } => crdgen::run(&root, check),
    }
}
