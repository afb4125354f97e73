//! The `kvbind` command.

mod admin;
mod config;
mod crdgen;
mod demo;
mod doctor;
mod fence;
mod leader;
mod run;
mod status;

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
    Run(Box<config::RunConfig>),
    /// Run the whole flow locally: control plane, ARM simulator, operator and the examples.
    Demo {
        /// The repository root (where crds/, examples/ and e2e/ are).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Check that the operator's identity has every permission kvbind needs on these
    /// scopes, and print the `az role assignment create` lines for what is missing.
    Doctor {
        /// How to reach Azure, as for `run`.
        #[command(flatten)]
        azure: Box<config::RunConfig>,
        /// A resource group of identities kvbind creates (SUBSCRIPTION/GROUP); repeatable.
        #[arg(long = "identity-group")]
        identity_groups: Vec<String>,
        /// A node resource group, `MC_…` (SUBSCRIPTION/GROUP); repeatable.
        #[arg(long = "node-group")]
        node_groups: Vec<String>,
        /// A vault's resource ID; repeatable.
        #[arg(long = "vault")]
        vaults: Vec<String>,
    },
    /// Show each IdentityBinding as a tree: identity, node pools, vault grants,
    /// SecretProviderClasses, and what needs attention. Install as `kubectl-kvbind` to run
    /// it as `kubectl kvbind status`.
    Status {
        /// The namespace (default: all namespaces).
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Serve the ARM simulator.
    ArmSim(kvbind_arm_sim::serve::ServeArgs),
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
            run::run(*config).await
        }
        Command::Demo { root } => {
            init_logging(false);
            demo::demo(&root).await
        }
        Command::ArmSim(args) => {
            init_logging(false);
            kvbind_arm_sim::serve::serve(&args).await.map_err(|e| anyhow::anyhow!(e))
        }
        Command::Doctor { azure, identity_groups, node_groups, vaults } => {
            init_logging(false);
            let identity_groups = identity_groups.iter().map(|g| doctor::resource_group(g)).collect::<anyhow::Result<Vec<_>>>()?;
            let node_groups = node_groups.iter().map(|g| doctor::resource_group(g)).collect::<anyhow::Result<Vec<_>>>()?;
            let vaults = vaults.iter().map(|v| doctor::vault(v)).collect::<anyhow::Result<Vec<_>>>()?;
            let (arm, _, _) = run::arm_client(&azure, None, None)?;
            let assignee = azure.client_id.clone().unwrap_or_else(|| "<operator client ID>".to_owned());
            let ok = doctor::doctor(&arm, &assignee, &doctor::requirements(&identity_groups, &node_groups, &vaults)).await?;
            anyhow::ensure!(ok, "permissions are missing");
            Ok(())
        }
        Command::Status { namespace } => status::status(namespace.as_deref()).await,
        Command::Crdgen { root, check } => crdgen::run(&root, check),
    }
}
