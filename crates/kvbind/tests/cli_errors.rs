//! A failing `kvbind` command reads as one sentence on stderr, even with
//! `RUST_BACKTRACE=1` exported, and its exit code says which kind of failure it was:
//! 2 for a command line that does not parse, 1 for a command that failed.

use std::process::{Command, Output};

fn kvbind(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kvbind"));
    command.args(args).env("RUST_BACKTRACE", "1").env_remove("RUST_LIB_BACKTRACE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("kvbind runs")
}

fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "expected one line on stderr, got:\n{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Caused by"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    stderr.trim_end().to_owned()
}

#[test]
fn a_usage_error_is_one_line_and_exits_with_2() {
    let out = kvbind(&["demoo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let line = one_line(&out);
    assert!(line.starts_with("error: unrecognized subcommand 'demoo'"), "{line}");
}

#[test]
fn a_failed_command_is_one_line_with_its_causes_and_exits_with_1() {
    let missing = std::env::temp_dir().join("kvbind-no-such-checkout");
    let out = kvbind(&["demo", "--root", &missing.to_string_lossy()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_line(&out);
    assert!(line.starts_with(&format!("error: {} is not a kvbind checkout", missing.display())), "{line}");

    // An error with a chain of causes: the kubeconfig cannot be read.
    let out = kvbind(&["status"], &[("KUBECONFIG", &missing.join("kubeconfig").to_string_lossy())]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_line(&out);
    assert!(line.starts_with("error: ") && line.contains(": "), "{line}");
}

#[test]
fn a_backtrace_comes_only_when_asked_for() {
    let missing = std::env::temp_dir().join("kvbind-no-such-checkout");
    let out = kvbind(&["--verbose", "demo", "--root", &missing.to_string_lossy()], &[("RUST_LIB_BACKTRACE", "1")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Stack backtrace"), "{stderr}");
}
