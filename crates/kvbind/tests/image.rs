//! The image `image/build` makes, run as the chart runs it: the README's quick start with
//! the operator in the image under the Deployment's security context (non-root 65532,
//! read-only root filesystem, no capabilities, no privilege escalation, its memory limit),
//! until the first binding is Ready and uninstalling has left Azure as it was.
//!
//! It needs podman and the image, so it is not in the default run: `image/test` builds the
//! image and runs it, and `.ci/run` calls that when podman can run containers here.

mod support;

use std::process::Command;

use support::chart_operator::{Launch, podman, podman_run};

fn version() -> String {
    let out = Command::new(kvbind_e2e::repo_root().join("release/version")).output().expect("release/version");
    String::from_utf8(out.stdout).expect("UTF-8").trim().to_owned()
}

fn reference() -> String {
    std::env::var("KVBIND_IMAGE").unwrap_or_else(|_| format!("localhost/kvbind:{}", version()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs podman and the image; image/test runs it"]
async fn the_image_runs_the_quick_start_under_the_charts_security_context() {
    let reference = reference();
    let user = podman().args(["image", "inspect", "--format", "{{.Config.User}}", &reference]).output().expect("podman image inspect");
    assert!(user.status.success(), "no image {reference}: {}", String::from_utf8_lossy(&user.stderr));
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532", "the image's own user is nonroot");

    support::quick_start::run(Launch::Image { reference: reference.clone() }, |operator| {
        let processes = operator.container_process().expect("a container");
        assert!(!processes.is_empty(), "the operator runs");
        for process in &processes {
            // 65532 on the host too: no user namespace hides a root process.
            assert_eq!(process[..2], ["65532", "nonroot"], "host user, container user: {processes:?}");
            assert_eq!(process[2], "none", "no effective capabilities: {processes:?}");
            assert_eq!(process[3], "filter", "the runtime's default seccomp profile: {processes:?}");
        }
    })
    .await;
}

#[test]
#[ignore = "needs podman and the image; image/test runs it"]
fn the_image_carries_neither_the_simulator_nor_the_demo() {
    let reference = reference();
    for command in ["arm-sim", "demo"] {
        let out = podman_run().args(["--network", "none", &reference, command]).output().expect("podman run");
        assert_eq!(out.status.code(), Some(2), "`kvbind {command}` in the image is a usage error: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = podman_run().args(["--network", "none", &reference, "--version"]).output().expect("podman run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("kvbind {}", version()), "{}", String::from_utf8_lossy(&out.stderr));
}
