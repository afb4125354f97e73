//! Following a long-running operation to its end.
//!
//! The generated futures of azure_mgmt_compute 0.21 re-send the PATCH instead of polling
//! and read `provisioning_state` in snake_case, so they report success while the scale set
//! is still `Updating`. Here the operation is followed as ARM defines it: the
//! `Azure-AsyncOperation` URL until its `status` is terminal, else the `Location` URL until
//! it stops answering 202, else the resource itself until its `provisioningState` is terminal.

use std::time::Duration;

use azure_core::headers::HeaderName;
use azure_core::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::time::Instant;

use super::raw::{RawArm, RawResponse};
use super::transport::{classify, retry_after};
use crate::error::AzureError;

/// How operations are polled.
#[derive(Debug, Clone, Copy)]
pub struct LroSettings {
    /// The wait between polls when the server gives no `Retry-After`.
    pub poll_interval: Duration,
    /// The longest wait between polls, whatever the server asks.
    pub max_poll_interval: Duration,
    /// How long an operation may take before kvbind gives up on it (it may still finish;
    /// the next reconcile reads the result).
    pub deadline: Duration,
}

impl Default for LroSettings {
    fn default() -> Self {
        LroSettings { poll_interval: Duration::from_secs(5), max_poll_interval: Duration::from_secs(60), deadline: Duration::from_secs(600) }
    }
}

/// The wait before the next poll: the server's `Retry-After`, or the configured interval
/// when it gives none or zero (a zero would turn polling into a busy loop).
fn poll_wait(headers: &azure_core::headers::Headers, settings: &LroSettings) -> Duration {
    retry_after(headers).filter(|d| !d.is_zero()).unwrap_or(settings.poll_interval)
}

fn terminal(status: &str) -> Option<Result<(), ()>> {
    match status.to_ascii_lowercase().as_str() {
        "succeeded" => Some(Ok(())),
        "failed" | "canceled" | "cancelled" => Some(Err(())),
        _ => None,
    }
}

/// Follows the operation started by `first` (the write's response) on `resource`. The
/// response is let go once read: only its headers say where to poll.
pub async fn follow(
    arm: &RawArm,
    first: RawResponse,
    resource_url: Url,
    settings: LroSettings,
    operation: &'static str,
    resource: &str,
) -> Result<(), AzureError> {
    // Polls carry the bearer token, so only URLs on the ARM endpoint's own origin are
    // followed; any other makes kvbind poll the resource itself instead.
    let header = |name: &'static str| {
        first.headers.get_optional_str(&HeaderName::from_static(name)).and_then(|v| Url::parse(v).ok()).filter(|url| same_origin(url, &resource_url))
    };
    let (poll_url, mode) = if let Some(url) = header("azure-asyncoperation") {
        (url, Mode::AsyncOperation)
    } else if let Some(url) = header("location") {
        (url, Mode::Location)
    } else {
        let state = provisioning_state(&first.json());
        match state.as_deref().map(terminal) {
            None | Some(Some(Ok(()))) => return Ok(()),
            Some(Some(Err(()))) => return Err(failed(&first.json(), operation, resource)),
            Some(None) => (resource_url, Mode::Resource),
        }
    };
    let started = Instant::now();
    let mut wait = poll_wait(&first.headers, &settings);
    drop(first);
    loop {
        if started.elapsed() + wait > settings.deadline {
            return Err(AzureError::Transient {
                operation,
                resource: resource.to_owned(),
                message: format!("the operation did not finish within {:?}", settings.deadline),
            });
        }
        tokio::time::sleep(wait.min(settings.max_poll_interval)).await;
        let poll = match arm.send(Method::Get, poll_url.clone(), None).await {
            Ok(poll) => poll,
            Err(e) => {
                // The write was accepted; a throttled or failed poll only delays the answer.
                let class = classify(&e, operation, resource);
                if !class.is_retryable() {
                    return Err(class);
                }
                wait = class.retry_after().unwrap_or(settings.poll_interval);
                continue;
            }
        };
        wait = poll_wait(&poll.headers, &settings);
        let body = poll.json();
        let state = match mode {
            Mode::AsyncOperation => body.get("status").and_then(Value::as_str).map(str::to_owned),
            Mode::Location if poll.status == StatusCode::Accepted => None,
            Mode::Location => Some("Succeeded".to_owned()),
            Mode::Resource => provisioning_state(&body).or_else(|| Some("Succeeded".to_owned())),
        };
        match state.as_deref().and_then(terminal) {
            Some(Ok(())) => return Ok(()),
            Some(Err(())) => return Err(failed(&body, operation, resource)),
            None => {}
        }
    }
}

/// Whether `url` is on the same scheme, host and port as `endpoint`.
fn same_origin(url: &Url, endpoint: &Url) -> bool {
    url.scheme() == endpoint.scheme()
        && url.host_str().map(str::to_ascii_lowercase) == endpoint.host_str().map(str::to_ascii_lowercase)
        && url.port_or_known_default() == endpoint.port_or_known_default()
}

#[derive(Clone, Copy)]
enum Mode {
    AsyncOperation,
    Location,
    Resource,
}

fn provisioning_state(body: &Value) -> Option<String> {
    body.pointer("/properties/provisioningState").and_then(Value::as_str).map(str::to_owned)
}

fn failed(body: &Value, operation: &'static str, resource: &str) -> AzureError {
    let error = body.get("error").unwrap_or(&Value::Null);
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let code = Some(text("code")).filter(|c| !c.is_empty()).unwrap_or_else(|| "OperationFailed".to_owned());
    let message = Some(text("message")).filter(|m| !m.is_empty()).unwrap_or_else(|| "the long-running operation ended Failed".to_owned());
    // A failed operation may succeed when tried again (Compute fails them on transient
    // platform trouble), so it is transient unless ARM says the request itself was bad.
    if code.contains("Invalid") || code == "BadRequest" {
        AzureError::Invalid { operation, resource: resource.to_owned(), code, message }
    } else {
        AzureError::Transient { operation, resource: resource.to_owned(), message: format!("{code}: {message}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_urls_on_the_arm_endpoints_origin_are_polled_with_the_token() {
        let arm =
            Url::parse("https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/v").expect("url");
        for (poll, followed) in [
            ("https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/locations/eastus/operations/1", true),
            ("https://MANAGEMENT.azure.com:443/operations/1", true),
            ("https://attacker.example/operations/1", false),
            ("http://management.azure.com/operations/1", false),
            ("https://management.azure.com:8443/operations/1", false),
            ("https://management.azure.com.attacker.example/operations/1", false),
        ] {
            assert_eq!(same_origin(&Url::parse(poll).expect("url"), &arm), followed, "{poll}");
        }
    }
}
