//! `kvbind probe`: the node side of `spec.verifyAccess`, run in a Pod on a node of a pool.

use anyhow::Context as _;
use kvbind_controller::verify::probe::{self, ProbeRequest, TokenSource};

/// Where the kubelet reads a container's termination message.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Proves the path for `request` from this node and reports it on stdout and as the
/// termination message. A failed proof is a report, not an error: the Pod ends well
/// either way, so the operator reads the report rather than a crash.
pub async fn run(request: &str, imds: url::Url) -> anyhow::Result<()> {
    let request: ProbeRequest = serde_json::from_str(request).context("reading --request")?;
    let http = probe::http_client(None).context("building the HTTP client")?;
    let source = TokenSource::Imds { endpoint: imds, client_id: request.pinned_client_id.clone() };
    let report = probe::run(&http, &source, &request, None).await;
    let text = serde_json::to_string(&report).context("writing the report")?;
    println!("{text}");
    if std::path::Path::new(TERMINATION_LOG).exists() {
        std::fs::write(TERMINATION_LOG, &text).context("writing the termination message")?;
    }
    Ok(())
}
