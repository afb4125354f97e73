//! The HTTP transport under every ARM call, generated or hand-built.
//!
//! azure_core 0.21 turns an error response into an `HttpError` whose headers are private,
//! so `Retry-After` is lost by the time the caller sees the error, and its retry policy
//! sleeps inside the call instead. This transport sits at the end of every pipeline (the
//! crates' and ours, with retries switched off) and turns each error response into an
//! [`ArmFailure`] carrying status, code, message and the server's delay, which
//! [`classify`] then maps to an [`AzureError`] for the controller to act on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::headers::{HeaderName, Headers};
use azure_core::{Context, HttpClient, Policy, PolicyResult, Request};
use serde_json::Value;

use crate::error::{ArmFailure, AzureError};

/// Told about every ARM request, for metrics. Never sees a body, and of the headers only
/// the rate-limit counters.
pub trait ArmObserver: Send + Sync + std::fmt::Debug {
    /// One request: its method, the resource type it was about (see [`resource_type`]),
    /// the status (0 when no response came) and how long it took.
    fn observe(&self, method: &str, resource: &'static str, status: u16, seconds: f64);

    /// What a response said is left of one of ARM's request budgets: `bucket` is the
    /// header's name after `x-ms-ratelimit-remaining-` (`subscription-writes`,
    /// `subscription-reads`, `subscription-deletes`, and the same for `tenant-`).
    fn remaining(&self, _bucket: &'static str, _remaining: u64) {}
}

/// The request budgets ARM reports on its responses: the bucket and its header.
const RATE_LIMIT_HEADERS: [(&str, &str); 6] = [
    ("subscription-reads", "x-ms-ratelimit-remaining-subscription-reads"),
    ("subscription-writes", "x-ms-ratelimit-remaining-subscription-writes"),
    ("subscription-deletes", "x-ms-ratelimit-remaining-subscription-deletes"),
    ("tenant-reads", "x-ms-ratelimit-remaining-tenant-reads"),
    ("tenant-writes", "x-ms-ratelimit-remaining-tenant-writes"),
    ("tenant-deletes", "x-ms-ratelimit-remaining-tenant-deletes"),
];

/// Each `x-ms-ratelimit-remaining-*` counter in `headers`, by bucket, read once a response
/// for the metrics and the pacer alike.
fn remaining_budgets(headers: &Headers) -> Vec<(&'static str, u64)> {
    RATE_LIMIT_HEADERS
        .into_iter()
        .filter_map(|(bucket, header)| Some((bucket, headers.get_optional_str(&HeaderName::from_static(header))?.trim().parse::<u64>().ok()?)))
        .collect()
}

/// Decides whether this process may still write to Azure. Consulted before every request
/// that changes something (anything but GET and HEAD), so a replica that lost leadership
/// while paused cannot write before it notices.
pub trait WriteFence: Send + Sync + std::fmt::Debug {
    /// `Err` with the reason when writing is no longer allowed.
    fn may_write(&self) -> Result<(), String>;
}

/// The resource type an ARM path is about, as a metric label.
pub fn resource_type(path: &str) -> &'static str {
    let p = path.to_ascii_lowercase();
    [
        ("/microsoft.authorization/roleassignments", "roleAssignments"),
        ("/accesspolicies/", "accessPolicies"),
        ("/operations/", "operations"),
        ("/virtualmachinescalesets/", "virtualMachineScaleSets"),
        ("/virtualmachines/", "virtualMachines"),
        ("/userassignedidentities/", "userAssignedIdentities"),
        ("/microsoft.keyvault/vaults", "vaults"),
    ]
    .into_iter()
    .find(|(needle, _)| p.contains(needle))
    .map_or("other", |(_, label)| label)
}

/// Sends requests and converts error responses into [`ArmFailureError`]s.
///
/// After a 429, no request goes to the throttled scope before its `Retry-After` has
/// passed: a request for it fails at once with the remaining delay, so whichever binding
/// asks next is requeued too instead of spending the server's patience. The scope is the
/// subscription for ARM's subscription throttling, else the resource itself (Compute
/// throttles per scale set).
#[derive(Debug)]
pub struct ArmTransport {
    http: Arc<dyn HttpClient>,
    pacer: super::pacing::Pacer,
    observer: Option<Arc<dyn ArmObserver>>,
    fence: Option<Arc<dyn WriteFence>>,
    throttled_until: Mutex<HashMap<String, Instant>>,
    in_flight: tokio::sync::Semaphore,
    in_flight_shared: tokio::sync::Semaphore,
}

/// How many ARM requests one client sends at once. Each needs a connection of its own
/// (HTTP/1.1). ARM's write bucket per subscription holds 200 writes (refilled at 10 a
/// second), so a full bucket takes 128 at once without a 429: a thousand new bindings'
/// identity PUTs go out in eight rounds.
pub const MAX_CONCURRENT_REQUESTS: usize = 128;

/// How many requests to scale sets, VMs and vaults (the resources many bindings share) go
/// at once, apart from the rest. Each of those has one batched writer, so they are few; but
/// a thousand new bindings queue a thousand identity requests, and a vault's next write,
/// on which every one of them waits, must not queue behind them.
pub const MAX_CONCURRENT_SHARED_REQUESTS: usize = 32;

/// True for requests about the resources that many bindings share: scale sets, VMs and
/// their long-running operations, and vaults.
fn is_shared_resource(lowercase_path: &str) -> bool {
    lowercase_path.contains("/providers/microsoft.compute/") || lowercase_path.contains("/providers/microsoft.keyvault/")
}

impl ArmTransport {
    /// A transport over `http`, reporting each request to `observer` and sending writes
    /// only while `fence` allows them.
    pub fn new(
        http: Arc<dyn HttpClient>,
        observer: Option<Arc<dyn ArmObserver>>,
        fence: Option<Arc<dyn WriteFence>>,
        pacing: super::pacing::PacingSettings,
    ) -> Self {
        ArmTransport {
            http,
            pacer: super::pacing::Pacer::new(pacing),
            observer,
            fence,
            throttled_until: Mutex::default(),
            in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS),
            in_flight_shared: tokio::sync::Semaphore::new(MAX_CONCURRENT_SHARED_REQUESTS),
        }
    }

    /// Refuses a write the fence does not allow, as a transient failure: by the time it
    /// would be retried, this process has stepped down.
    fn fenced(&self, method: &str) -> Option<ArmFailure> {
        if matches!(method, "GET" | "HEAD") {
            return None;
        }
        let reason = self.fence.as_ref()?.may_write().err()?;
        Some(ArmFailure { status: 503, code: "NotLeader".to_owned(), message: format!("not sent: {reason}"), retry_after: None })
    }

    /// The remaining wait for `path`, if a 429 covers it.
    fn throttled(&self, path: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut gates = self.throttled_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.retain(|_, until| *until > now);
        gates.iter().filter(|(scope, _)| path.starts_with(scope.as_str())).map(|(_, until)| *until - now).max()
    }

    /// Corrects the pacer from what the response says is left: ARM's `budgets`, and
    /// Compute's per-resource count in `headers`.
    fn pace_from(&self, method: &str, scope: &str, budgets: &[(&'static str, u64)], headers: &Headers) {
        use super::pacing::RemainingHeader;
        for &(bucket, n) in budgets {
            match bucket {
                "subscription-reads" => self.pacer.observed(method, scope, RemainingHeader::SubscriptionReads, n),
                "subscription-writes" => self.pacer.observed(method, scope, RemainingHeader::SubscriptionWrites, n),
                "subscription-deletes" => self.pacer.observed(method, scope, RemainingHeader::SubscriptionDeletes, n),
                _ => {}
            }
        }
        // `Microsoft.Compute/Policy;N`, possibly several joined by commas: the smallest binds.
        let resource = headers
            .get_optional_str(&HeaderName::from_static("x-ms-ratelimit-remaining-resource"))
            .and_then(|v| v.split(',').filter_map(|policy| policy.rsplit_once(';')).filter_map(|(_, n)| n.trim().parse::<u64>().ok()).min());
        if let Some(n) = resource {
            self.pacer.observed(method, scope, RemainingHeader::Resource, n);
        }
    }

    fn throttle(&self, path: &str, failure: &ArmFailure) {
        let Some(wait) = failure.retry_after else { return };
        let scope = if failure.code == "SubscriptionRequestsThrottled" { path.split('/').take(3).collect::<Vec<_>>().join("/") } else { path.to_owned() };
        self.throttled_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(scope, Instant::now() + wait);
    }
}

/// How many user-assigned identities a scale set or VM update attaches: the entries of its
/// `identity.userAssignedIdentities` that are not `null` (kvbind's PATCHes name only what
/// changes). Zero for anything else.
fn assigned_identities(method: &str, body: &azure_core::Body) -> usize {
    let azure_core::Body::Bytes(bytes) = body else { return 0 };
    if !matches!(method, "PATCH" | "PUT") || bytes.is_empty() {
        return 0;
    }
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.pointer("/identity/userAssignedIdentities").and_then(serde_json::Value::as_object).map(|m| m.values().filter(|v| !v.is_null()).count()))
        .unwrap_or(0)
}

/// An ARM error response, carried inside an `azure_core::Error`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("HTTP {} {}: {}", .0.status, .0.code, .0.message)]
pub struct ArmFailureError(pub ArmFailure);

#[async_trait]
impl Policy for ArmTransport {
    async fn send(&self, _ctx: &Context, request: &mut Request, _next: &[Arc<dyn Policy>]) -> PolicyResult {
        let method = request.method().to_string();
        let path = request.url().path().to_owned();
        let scope = path.to_ascii_lowercase();
        // Within Azure's rates, before the fence: a write that waited its turn is still
        // checked against leadership when it goes.
        let wait = self.pacer.admit(&method, &scope, assigned_identities(&method, request.body()));
        if !wait.is_zero() {
            tracing::debug!(%method, %path, ?wait, "paced within Azure's rates");
            tokio::time::sleep(wait).await;
        }
        if let Some(failure) = self.fenced(&method) {
            tracing::warn!(%method, %path, "write refused: {}", failure.message);
            return Err(failure_error(azure_core::StatusCode::ServiceUnavailable, failure));
        }
        if let Some(wait) = self.throttled(&scope) {
            let failure = ArmFailure {
                status: 429,
                code: "ThrottledByServer".to_owned(),
                message: format!("not sent: ARM asked for no requests here for another {wait:?}"),
                retry_after: Some(wait),
            };
            return Err(azure_core::Error::new(
                ErrorKind::HttpResponse { status: azure_core::StatusCode::TooManyRequests, error_code: Some(failure.code.clone()) },
                ArmFailureError(failure),
            ));
        }
        let lane = if is_shared_resource(&scope) { &self.in_flight_shared } else { &self.in_flight };
        let _turn = lane.acquire().await;
        let started = std::time::Instant::now();
        let response = self.http.execute_request(request).await;
        let status = response.as_ref().map_or(0, |r| u16::from(r.status()));
        if let Some(observer) = &self.observer {
            observer.observe(&method, resource_type(&path), status, started.elapsed().as_secs_f64());
        }
        let response = response?;
        let budgets = remaining_budgets(response.headers());
        if let Some(observer) = &self.observer {
            budgets.iter().for_each(|&(bucket, n)| observer.remaining(bucket, n));
        }
        self.pace_from(&method, &scope, &budgets, response.headers());
        tracing::debug!(%method, %path, status, "ARM request");
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        let body = body.collect().await.unwrap_or_default();
        let failure = parse_failure(u16::from(status), &headers, &body);
        if failure.status == 429 {
            self.throttle(&scope, &failure);
        }
        Err(failure_error(status, failure))
    }
}

fn failure_error(status: azure_core::StatusCode, failure: ArmFailure) -> azure_core::Error {
    azure_core::Error::new(ErrorKind::HttpResponse { status, error_code: Some(failure.code.clone()) }, ArmFailureError(failure))
}

/// Reads an ARM error body: `{"error":{"code","message"}}`, Compute's unwrapped
/// `{"code","message"}`, or only an `x-ms-error-code` header.
pub fn parse_failure(status: u16, headers: &Headers, body: &[u8]) -> ArmFailure {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = json.get("error").unwrap_or(&json);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let code =
        text(error, "code").or_else(|| headers.get_optional_string(&HeaderName::from_static("x-ms-error-code"))).unwrap_or_else(|| format!("Http{status}"));
    let message = text(error, "message").unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    ArmFailure { status, code, message, retry_after: retry_after(headers) }
}

/// The server's delay: `retry-after-ms`, `x-ms-retry-after-ms`, or `Retry-After` seconds.
pub fn retry_after(headers: &Headers) -> Option<Duration> {
    let header = |name: &'static str| headers.get_optional_str(&HeaderName::from_static(name));
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header(name).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// Maps any error of an ARM call to its class.
pub fn classify(error: &azure_core::Error, operation: &'static str, resource: &str) -> AzureError {
    if let Some(ArmFailureError(failure)) = error.downcast_ref::<ArmFailureError>() {
        return failure.clone().classify(operation, resource);
    }
    match error.kind() {
        ErrorKind::Credential => AzureError::Unauthenticated { operation, resource: resource.to_owned(), message: error.to_string() },
        _ => AzureError::Transient { operation, resource: resource.to_owned(), message: error.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use azure_core::{Method, Response, StatusCode, Url};

    use super::*;

    /// An HTTP client on which identity requests never end and everything else answers 200.
    #[derive(Debug)]
    struct IdentitiesHang;

    #[async_trait]
    impl HttpClient for IdentitiesHang {
        async fn execute_request(&self, request: &Request) -> azure_core::Result<azure_core::Response> {
            if request.url().path().contains("userAssignedIdentities") {
                std::future::pending::<()>().await;
            }
            Ok(Response::new(StatusCode::Ok, Headers::new(), Box::pin(futures::stream::empty())))
        }
    }

    fn request(path: &str) -> Request {
        Request::new(Url::parse(&format!("https://management.azure.com{path}")).expect("url"), Method::Put)
    }

    #[tokio::test]
    async fn a_vault_write_does_not_wait_behind_a_flood_of_identity_requests() {
        // Unpaced: this is about the lanes, and pacing would hold the identity flood back.
        let unpaced = crate::client::pacing::PacingSettings { enabled: false, ..Default::default() };
        let transport = Arc::new(ArmTransport::new(Arc::new(IdentitiesHang), None, None, unpaced));
        for i in 0..MAX_CONCURRENT_REQUESTS * 2 {
            let transport = transport.clone();
            tokio::spawn(async move {
                let mut identity = request(&format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{i}"));
                let _ = transport.send(&Context::new(), &mut identity, &[]).await;
            });
        }
        // Until the identity requests hold every general permit.
        while transport.in_flight.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let mut vault = request("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv/accessPolicies/add");
        let answered = tokio::time::timeout(Duration::from_secs(5), transport.send(&Context::new(), &mut vault, &[])).await;
        assert!(answered.expect("the vault write waited behind identity requests").is_ok());
    }
}
