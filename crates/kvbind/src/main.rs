//! The `kvbind` command.

mod admin;
mod config;
mod crdgen;
#[cfg(feature = "dev-tools")]
mod demo;
mod doctor;
mod fence;
mod leader;
mod probe;
mod run;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kvbind binds Azure user-assigned managed identities to Secrets Store CSI
/// SecretProviderClasses, with least-privilege Key Vault access.
#[derive(Parser, Debug)]
#[command(name = "kvbind", version, about)]
struct Cli {
    /// On failure, print the error's full chain on separate lines, with a backtrace when
    /// one was captured (`RUST_LIB_BACKTRACE=1`), instead of one line.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator.
    Run(Box<config::RunConfig>),
    /// Run the whole flow locally: control plane, ARM simulator, operator and the examples.
    #[cfg(feature = "dev-tools")]
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
    /// Prove a pod's path to its Key Vault objects from this node: a token from IMDS, then
    /// a read of each object; prints the report (JSON) and writes it as the container's
    /// termination message. Run by the Pods of `spec.verifyAccess`.
    Probe {
        /// What to prove (JSON), as the operator writes it.
        #[arg(long = "request")]
        request: String,
        /// IMDS's address.
        #[arg(long, env = "KVBIND_IMDS_ENDPOINT", default_value = "http://169.254.169.254/")]
        imds: url::Url,
    },
    /// Serve the ARM simulator.
    #[cfg(feature = "dev-tools")]
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

/// The log filter when `RUST_LOG` is unset.
const DEFAULT_LOG_FILTER: &str = "info,kube=warn";

/// The demo's: its story is on stdout, so the operator it runs says only what went wrong.
#[cfg(feature = "dev-tools")]
const DEMO_LOG_FILTER: &str = "warn";

fn init_logging(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    // Logs go to stderr, so what a command prints on stdout (the demo's story, `status`'s
    // trees, `crdgen`'s files) stays readable and can be piped.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Exit code of a command that failed.
const FAILED: u8 = 1;
/// Exit code of a command line that does not parse.
const USAGE_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print to stdout and exit with 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("{}", usage_error_line(&e.render().to_string()));
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let verbose = cli.verbose;
    match execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", failure_message(&error, verbose || backtrace_requested()));
            ExitCode::from(FAILED)
        }
    }
}

/// Whether the user asked for library backtraces. `RUST_BACKTRACE=1` alone does not
/// count: many shells and CI images export it, and it is meant for panics.
fn backtrace_requested() -> bool {
    std::env::var_os("RUST_LIB_BACKTRACE").is_some_and(|v| v != "0")
}

/// What a failed command prints: the error and its causes as one sentence
/// (`error: reading x: no such file`), or anyhow's long form when asked for.
fn failure_message(error: &anyhow::Error, verbose: bool) -> String {
    if verbose { format!("error: {error:?}") } else { format!("error: {error:#}") }
}

/// clap's usage error (message, tips, usage, hint on separate lines) as one line: the
/// message and tips, without the usage synopsis that `--help` shows anyway.
fn usage_error_line(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("Usage:")) {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(config) => {
            init_logging(config.log_json, DEFAULT_LOG_FILTER);
            run::run(*config).await
        }
        #[cfg(feature = "dev-tools")]
        Command::Demo { root } => {
            init_logging(false, DEMO_LOG_FILTER);
            demo::demo(&root).await
        }
        #[cfg(feature = "dev-tools")]
        Command::ArmSim(args) => {
            init_logging(false, DEFAULT_LOG_FILTER);
            kvbind_arm_sim::serve::serve(&args).await.map_err(|e| anyhow::anyhow!(e))
        }
        Command::Doctor { azure, identity_groups, node_groups, vaults } => {
            init_logging(false, DEFAULT_LOG_FILTER);
            let identity_groups = identity_groups.iter().map(|g| doctor::resource_group(g)).collect::<anyhow::Result<Vec<_>>>()?;
            let node_groups = node_groups.iter().map(|g| doctor::resource_group(g)).collect::<anyhow::Result<Vec<_>>>()?;
            let vaults = vaults.iter().map(|v| doctor::vault(v)).collect::<anyhow::Result<Vec<_>>>()?;
            let (arm, _, _) = run::arm_client(&azure, None, None)?;
            let assignee = azure.client_id.clone().unwrap_or_else(|| "<operator client ID>".to_owned());
            let ok = doctor::doctor(&arm, &assignee, &doctor::requirements(&identity_groups, &node_groups, &vaults)).await?;
            doctor::report_vaults(&arm, &vaults).await?;
            doctor::report_cluster(&arm, &node_groups, &identity_groups).await?;
            anyhow::ensure!(ok, "permissions are missing");
            Ok(())
        }
        Command::Status { namespace } => status::status(namespace.as_deref()).await,
        Command::Probe { request, imds } => probe::run(&request, imds).await,
        Command::Crdgen { root, check } => crdgen::run(&root, check),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_one_line_with_its_causes() {
        let error = anyhow::Error::from(std::io::Error::other("no such file")).context("reading examples/demo/nodes.yaml");
        assert_eq!(failure_message(&error, false), "error: reading examples/demo/nodes.yaml: no such file");
    }

    #[test]
    fn a_usage_error_reads_as_one_line_with_its_tip() {
        let error = Cli::try_parse_from(["kvbind", "demoo"]).expect_err("not a subcommand");
        let line = usage_error_line(&error.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("error: unrecognized subcommand 'demoo'"), "{line}");
        assert!(line.contains("'demo'"), "the tip names the near miss: {line}");
        assert!(!line.contains("Usage:"), "{line}");
    }

    #[test]
    fn a_missing_argument_names_it_on_the_same_line() {
        let error = Cli::try_parse_from(["kvbind", "doctor", "--identity-group"]).expect_err("a value is required");
        let line = usage_error_line(&error.render().to_string());
        assert!(!line.contains('\n') && line.contains("--identity-group"), "{line}");
    }

    #[test]
    fn verbose_shows_the_causes_on_their_own_lines() {
        let error = anyhow::Error::from(std::io::Error::other("no such file")).context("reading examples/demo/nodes.yaml");
        let message = failure_message(&error, true);
        assert!(message.starts_with("error: reading examples/demo/nodes.yaml\n"), "{message}");
        assert!(message.contains("Caused by:"), "{message}");
    }
}
