//! The committed CRD files, in `crds/` and the chart, are exactly what the types generate.

use std::path::Path;

use kvbind_api::crdgen::{CRD_DIRS, crds};

#[test]
fn committed_crds_match_the_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in CRD_DIRS {
        for (file, generated) in crds().expect("CRDs serialise") {
            let path = root.join(dir).join(file);
            let committed =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is missing ({e}); run `cargo run -p kvbind -- crdgen`", path.display()));
            assert!(committed == generated, "{} is stale; run `cargo run -p kvbind -- crdgen`", path.display());
        }
    }
}
