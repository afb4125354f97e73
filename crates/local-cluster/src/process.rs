//! Server processes that cannot outlive the process that started them.
//!
//! Each server runs under `sh`, which holds the read end of a pipe whose write end only
//! this process has. When this process exits for any reason the pipe closes, `read`
//! returns, and the shell kills the server (and removes its folder when asked to). No
//! destructor has to run, which is what makes it safe for statics shared by tests.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::ControlPlaneError;

const SUPERVISOR: &str = r#"
log="$1"; cleanup="$2"; shift 2
"$@" >"$log" 2>&1 </dev/null &
server=$!
read -r _ || true
kill -9 "$server" 2>/dev/null
wait "$server" 2>/dev/null
[ -n "$cleanup" ] && rm -rf "$cleanup"
exit 0
"#;

/// A server process tied to this process's lifetime.
pub struct Supervised {
    supervisor: Child,
    lifeline: Option<ChildStdin>,
}

impl Supervised {
    /// Starts `binary` with `args`, logging to `<logdir>/<name>.log`; `cleanup`, if given,
    /// is removed after the server is killed.
    pub fn spawn(name: &'static str, binary: &Path, args: &[String], logdir: &Path, cleanup: Option<&Path>) -> Result<Self, ControlPlaneError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(logdir.join(format!("{name}.log")))
            .arg(cleanup.map(|p| p.as_os_str().to_owned()).unwrap_or_default())
            .arg(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ControlPlaneError::Spawn { binary: name, source })?;
        let lifeline = child.stdin.take().ok_or_else(|| ControlPlaneError::Spawn { binary: name, source: std::io::Error::other("no stdin pipe") })?;
        Ok(Supervised { supervisor: child, lifeline: Some(lifeline) })
    }

    /// Kills the server now and waits until it is gone (its port is free again).
    pub fn stop(mut self) {
        drop(self.lifeline.take());
        let _ = self.supervisor.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
