//! The `kvbind` command.

mod crdgen;

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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crdgen { root, check } => crdgen::run(&root, check),
    }
}
