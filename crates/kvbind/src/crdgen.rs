//! `kvbind crdgen`: writes the generated CRD YAML to `crds/` and the chart's copy, or
//! checks that they are fresh.

use std::path::{Path, PathBuf};

use kvbind_api::crdgen::{CRD_DIRS, crds};

/// Writes the CRDs under `root`, or with `check` reports every file that differs.
pub fn run(root: &Path, check: bool) -> anyhow::Result<()> {
    let mut stale: Vec<PathBuf> = Vec::new();
    for dir in CRD_DIRS {
        for (file, yaml) in crds()? {
            let path = root.join(dir).join(file);
            if check {
                if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                    stale.push(path);
                }
            } else {
                std::fs::create_dir_all(root.join(dir))?;
                std::fs::write(&path, yaml)?;
            }
        }
    }
    anyhow::ensure!(
        stale.is_empty(),
        "generated CRDs are stale, run `cargo run -p kvbind -- crdgen`: {}",
        stale.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
