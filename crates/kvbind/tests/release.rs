//! What a release publishes agrees with itself: one version everywhere, the Dockerfile
//! builds the image `image/build` makes, Artifact Hub's metadata describes the CRDs and
//! the example that exist, and krew installs an archive the workflow publishes.

use std::path::Path;

use kvbind_e2e::repo_root;
use serde_yaml_ng::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("YAML")
}

fn version() -> String {
    let out = std::process::Command::new(repo_root().join("release/version")).output().expect("release/version runs");
    assert!(out.status.success());
    let version = String::from_utf8(out.stdout).expect("UTF-8").trim().to_owned();
    assert!(!version.is_empty(), "release/version prints the version");
    version
}

#[test]
fn the_chart_the_image_and_the_binary_carry_the_one_version() {
    let version = version();
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "release/version reads Cargo.toml's workspace version");
    let chart = yaml(&read("charts/kvbind/Chart.yaml"));
    assert_eq!(chart["version"].as_str(), Some(version.as_str()), "the chart's version");
    assert_eq!(chart["appVersion"].as_str(), Some(version.as_str()), "the chart's appVersion (the image tag it installs)");
    let images = yaml(chart["annotations"]["artifacthub.io/images"].as_str().expect("Artifact Hub's images"));
    let values = yaml(&read("charts/kvbind/values.yaml"));
    let repository = values["image"]["repository"].as_str().expect("image.repository");
    assert_eq!(images[0]["image"].as_str(), Some(format!("{repository}:{version}").as_str()), "Artifact Hub names the image the chart installs");
}

#[test]
fn artifact_hub_describes_the_crds_and_the_example_that_exist() {
    let chart = yaml(&read("charts/kvbind/Chart.yaml"));
    let described = yaml(chart["annotations"]["artifacthub.io/crds"].as_str().expect("Artifact Hub's CRDs"));
    let mut described: Vec<(String, String)> = described
        .as_sequence()
        .expect("a list")
        .iter()
        .map(|crd| (crd["name"].as_str().expect("name").to_owned(), crd["version"].as_str().expect("version").to_owned()))
        .collect();
    described.sort();
    let mut generated = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("crds")).expect("crds/") {
        let crd = yaml(&std::fs::read_to_string(entry.expect("entry").path()).expect("a CRD"));
        for served in crd["spec"]["versions"].as_sequence().expect("versions") {
            generated.push((crd["metadata"]["name"].as_str().expect("name").to_owned(), served["name"].as_str().expect("version").to_owned()));
        }
    }
    generated.sort();
    assert_eq!(described, generated, "artifacthub.io/crds lists the CRDs in crds/");

    let examples = yaml(chart["annotations"]["artifacthub.io/crdsExamples"].as_str().expect("Artifact Hub's examples"));
    assert_eq!(examples[0], yaml(&read("examples/seed/identitybinding.yaml")), "the example Artifact Hub shows is examples/seed/identitybinding.yaml");
}

/// A Containerfile's or Dockerfile's last stage: its instructions from the last `FROM`,
/// comments and blank lines left out.
fn final_stage(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let from = lines.iter().rposition(|l| l.starts_with("FROM ")).expect("a FROM");
    lines[from..].iter().map(|l| (*l).to_owned()).collect()
}

#[test]
fn the_dockerfile_builds_the_image_the_containerfile_describes() {
    let local = final_stage(&read("image/Containerfile"));
    let docker = final_stage(&read("Dockerfile"));
    assert_eq!(local[0], "FROM scratch");
    assert_eq!(local.len(), docker.len(), "{local:#?}\n{docker:#?}");
    for (ours, theirs) in local.iter().zip(&docker) {
        // The same root filesystem, from the build context here and from the builder stage there.
        if ours.starts_with("COPY ") {
            assert_eq!((ours.as_str(), theirs.as_str()), ("COPY rootfs/ /", "COPY --from=build /out/rootfs/ /"));
        } else {
            assert_eq!(ours, theirs);
        }
    }
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("--no-default-features"), "the Dockerfile builds without the simulator and the demo");
    assert!(dockerfile.contains("image/rootfs target/release/kvbind /out/rootfs"), "the Dockerfile assembles the root filesystem as image/build does");
    let build = read("image/build");
    assert!(build.contains("--no-default-features"), "image/build builds without the simulator and the demo");
}

#[test]
fn krew_installs_an_archive_the_release_publishes() {
    let workflow = yaml(&read(".github/workflows/release.yml"));
    let matrix = workflow["jobs"]["binaries"]["strategy"]["matrix"]["include"].as_sequence().expect("the binaries' matrix");
    let mut published: Vec<String> = matrix.iter().map(|m| m["platform"].as_str().expect("platform").to_owned()).collect();
    published.sort();
    let krew = read(".krew.yaml");
    let mut installed: Vec<String> = krew
        .lines()
        .filter_map(|l| l.split("/kvbind-{{ .TagName }}-").nth(1))
        .map(|rest| rest.split(".tar.gz").next().expect("an archive").to_owned())
        .collect();
    installed.sort();
    assert_eq!(installed, published, ".krew.yaml installs the archives the workflow publishes");
    let steps = workflow["jobs"]["binaries"]["steps"].as_sequence().expect("steps");
    let archive = steps.iter().filter_map(|s| s["run"].as_str()).find(|r| r.contains("tar -czf")).expect("the archive step");
    assert!(archive.contains(r#"dir="kvbind-$GITHUB_REF_NAME-$PLATFORM""#) && archive.contains("kubectl-kvbind"), "{archive}");
    assert!(Path::new(&repo_root().join("LICENSE")).is_file(), "the archives carry LICENSE");
}
